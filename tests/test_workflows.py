"""The GitHub workflows keep credentials where they belong: a pull request's code and the scheduled drift
check get only the read-only credentials of the `<stack>-preview` environments, and what they run needs
no more (the provider's check and diff call nothing, its read only GETs); the write credentials of the
`dev` and `prod` environments serve deploy.yml alone, on pushes to main."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from conftest import DOMAIN, configured, inputs

from components.check.cli import parser
from world.sparkpost_emulator import SparkPostEmulator

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CREDENTIALS = ("SPARKPOST_API_KEY", "CLOUDFLARE_API_TOKEN", "PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE")
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


def credentials_of(job: dict[str, Any]) -> set[str]:
    text = yaml.safe_dump(job)
    return {name for name in CREDENTIALS if f"secrets.{name}" in text}


def pulumi_commands(job: dict[str, Any]) -> list[str]:
    """The `pulumi ...` command lines of the job's run steps, and the commands of its pulumi/actions steps."""
    found = [f"pulumi {s['with']['command']}" for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/")]
    for step in job["steps"]:
        found += [line.strip() for line in str(step.get("run", "")).splitlines() if line.strip().startswith("pulumi ")]
    return found


def test_every_job_with_credentials_takes_them_from_an_environment() -> None:
    # Repository-wide secrets would reach any workflow a pull request can edit: only environments hold them.
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in workflow(path.name)["jobs"].items():
            if credentials_of(job):
                assert "environment" in job, f"{path.name}: job {name} uses credentials outside an environment"


def test_write_environments_serve_only_deploy_on_main() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert {name: job.get("environment") for name, job in deploy["jobs"].items()} == {
        "test": None,
        "dev": "dev",
        "prod": "prod",
    }
    assert all(credentials_of(deploy["jobs"][stack]) == set(CREDENTIALS) for stack in ("dev", "prod"))
    for path in sorted(WORKFLOWS.glob("*.yml")):
        if path.name == "deploy.yml":
            continue
        for name, job in workflow(path.name)["jobs"].items():
            environment = job.get("environment")
            assert environment in (None, "${{ matrix.stack }}-preview"), (path.name, name, environment)


def test_previews_run_read_only_commands_with_preview_credentials() -> None:
    preview = workflow("preview.yml")
    assert list(preview["on"]) == ["pull_request"]
    job = preview["jobs"]["preview"]
    assert job["environment"] == "${{ matrix.stack }}-preview"
    assert job["strategy"]["matrix"]["stack"] == STACKS
    assert pulumi_commands(job) == ["pulumi preview"]
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_drift_workflow_checks_every_stack_with_read_only_credentials(tmp_path: Path) -> None:
    drift = workflow("drift.yml")
    assert set(drift["on"]) == {"schedule", "workflow_dispatch"}
    assert drift["permissions"] == {"contents": "read"}
    job = drift["jobs"]["drift"]
    assert job["environment"] == "${{ matrix.stack }}-preview"
    assert job["strategy"]["matrix"]["stack"] == STACKS
    (refresh,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions")]
    assert refresh["with"]["command"] == "preview"
    assert (refresh["with"]["refresh"], refresh["with"]["expect-no-changes"]) == (True, True)
    assert pulumi_commands(job) == ["pulumi preview"]
    (health,) = [s for s in job["steps"] if "components check" in str(s.get("run", ""))]
    assert health["if"] == "${{ !cancelled() }}"  # the health check runs even when drift was found
    (line,) = [line for line in health["run"].splitlines() if "components check" in line]
    command = line.split()
    assert command[:4] == ["python3", "-m", "components", "check"]
    # The command line the workflow runs is one the check accepts, with a JSON report and the summary.
    words = [w.replace('"$STACK"', "dev").replace('"$GITHUB_STEP_SUMMARY"', str(tmp_path / "summary")) for w in command]
    args = parser().parse_intermixed_args(words[4:])
    assert (args.stack, args.json, args.summary) == ("dev", True, str(tmp_path / "summary"))
    # Each host's SSL rule comes from the stack (no --ssl-rule or --managed overrides it), read with the
    # environment's read-only Cloudflare token: what `pulumi refresh` cannot see, the ssl-rule probe does.
    assert (args.ssl_rule, args.managed) == (None, False)
    assert health["env"]["CLOUDFLARE_API_TOKEN"] == "${{ secrets.CLOUDFLARE_API_TOKEN }}"


def run_health_step(tmp_path: Path, token: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """The drift workflow's health step in bash, with a stand-in `python3` that records its arguments."""
    (health,) = [s for s in workflow("drift.yml")["jobs"]["drift"]["steps"] if "components check" in str(s.get("run"))]
    fake = tmp_path / "python3"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "ran"}\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "STACK": "dev", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    done = subprocess.run(
        ["bash", "-e", "-c", health["run"]],
        env={**env, "CLOUDFLARE_API_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    ran = tmp_path / "ran"
    return done, ran.read_text() if ran.exists() else ""


def test_the_drift_check_refuses_to_run_without_the_cloudflare_token(tmp_path: Path) -> None:
    # Without a token the ssl-rule probe would be skipped and a page rule disabled in the dashboard pass unseen.
    done, ran = run_health_step(tmp_path, "")
    assert done.returncode == 1 and ran == ""
    assert "::error::CLOUDFLARE_API_TOKEN is not set in the dev-preview environment" in done.stdout
    done, ran = run_health_step(tmp_path, "a-read-only-token")
    assert done.returncode == 0, done.stderr
    assert ran == f"-m components check --stack dev --json --summary {tmp_path / 'summary'}\n"


def test_the_stack_files_hold_no_credentials() -> None:
    # A credential in a stack file is readable by anyone who can decrypt the stack, pull requests included:
    # the workflows give credentials as environment variables, per environment.
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        assert not {"sparkpost:apiKey", "cloudflare:apiToken", "cloudflare:apiKey"} & set(config), path.name


def test_a_preview_and_a_drift_check_make_no_write_call(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    provider = configured()
    olds = provider.create(inputs(sparkpost, default=True)).outs
    assert olds is not None
    sparkpost.reset_log()
    # pulumi preview: check and diff, for an unchanged and for a changed host.
    for news in (inputs(sparkpost, default=True), inputs(sparkpost, default=False)):
        checked = provider.check(olds, news)
        assert checked.failures == []
        provider.diff(DOMAIN, olds, checked.inputs)
    assert sparkpost.log == []
    # pulumi preview --refresh (the drift workflow): read, which only GETs.
    provider.read(DOMAIN, olds)
    assert [r.method for r in sparkpost.log] == ["GET"]


def test_the_docs_say_which_token_goes_where() -> None:
    workflows_page = (ROOT / "docs" / "workflows.md").read_text()
    section = workflows_page.split("## Pull requests and deploys", 1)[1].split("\n## ", 1)[0]
    for environment in ("dev-preview", "prod-preview", "`dev`", "`prod`"):
        assert environment in section
    for name in CREDENTIALS:
        assert name in section
    assert "Tracking Domains: Read" in section and "Zone: Read" in section
