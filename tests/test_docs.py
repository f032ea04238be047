"""What the README, Pulumi.yaml and pyproject.toml tell a newcomer agrees with the code: the Python
version the requirements really need, what the tests and the benchmark need installed, the
configuration keys and which of them are required, and the check command's options and variables."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from components.check.cli import EPILOG, parser
from components.config import HOST_KEYS, STACK_KEYS, parse_settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MINORS = range(8, 15)  # Python 3.8 ... 3.14: the versions a claim could name


def section(title: str) -> str:
    """The README section under `title` (a heading of any level), up to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", README, re.MULTILINE)
    assert match, f"README has no section {title!r}"
    rest = README[match.end() :]
    end = re.search(rf"^#{{1,{len(match.group(1))}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


# --- the Python version -------------------------------------------------------------------------------


def required_distributions() -> dict[str, SpecifierSet]:
    """Requires-Python of every distribution requirements.txt installs, its dependencies included."""
    environment = {k: str(v) for k, v in default_environment().items()}
    todo = [
        Requirement(line.split("#")[0].strip())
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    found: dict[str, SpecifierSet] = {}
    while todo:
        requirement = todo.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in found:
            continue
        metadata = importlib.metadata.metadata(requirement.name)
        if requirement.specifier:  # a pin of requirements.txt: what is installed is what it names
            assert requirement.specifier.contains(metadata["Version"]), (name, metadata["Version"])
        found[name] = SpecifierSet(metadata["Requires-Python"] or "")
        for dependency in importlib.metadata.requires(requirement.name) or []:
            child = Requirement(dependency)
            if child.marker is None or child.marker.evaluate({**environment, "extra": ""}):
                todo.append(child)
    return found


def test_the_claimed_python_is_the_oldest_the_requirements_allow() -> None:
    needs = required_distributions()
    assert "dnspython" in needs and "pulumi" in needs  # the walk reached the pins
    allowed = [m for m in MINORS if all(spec.contains(f"3.{m}.0") for spec in needs.values())]
    oldest = min(allowed)
    blockers = {name: str(spec) for name, spec in needs.items() if not spec.contains(f"3.{oldest - 1}.0")}
    assert blockers  # e.g. dnspython: >=3.11 (names what rules out the version before)

    assert PYPROJECT["project"]["requires-python"] == f">=3.{oldest}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py3{oldest}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"3.{oldest}"
    assert re.findall(r"Python (3\.\d+)\+", README) == [f"3.{oldest}"]
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for version in re.findall(r'python-version: "(3\.\d+)"', workflow.read_text()):
            assert version == f"3.{oldest}", workflow.name
    # CI runs the suite on the oldest version claimed (the workflows above); so does this machine's venv.
    assert sys.version_info[:2] >= (3, oldest)


# --- what the tests and the benchmark need installed ---------------------------------------------------


def test_prerequisites_name_every_program_the_tests_start() -> None:
    prerequisites = section("Prerequisites")
    fakes = (ROOT / "world" / "network_fakes.py").read_text()
    quality = (ROOT / "tests" / "test_quality.py").read_text()
    assert 'shutil.which("nsd")' in fakes and 'run("node"' in quality  # the programs the tests start
    assert "**NSD**" in prerequisites and "apt-get install nsd" in prerequisites
    assert "**Node.js**" in prerequisites


def test_the_benchmark_says_what_it_needs() -> None:
    benchmark = section("Benchmark")
    assert "requirements-dev.txt" in benchmark and "NSD" in benchmark
    bench = (ROOT / "bench" / "run.py").read_text()
    assert "from world.network_fakes import NsdServer" in bench  # it starts NSD, as the tests do
    assert "Needs the test requirements (requirements-dev.txt) and NSD" in bench
    assert "best of 3" not in benchmark.split("```")[1]  # the command line's note on --quick
    assert "--quick measures each figure once" in benchmark


# --- configuration keys ----------------------------------------------------------------------------------


def readme_config_rows() -> dict[str, str]:
    rows = re.findall(r"^\| `([^`]+)` \|([^|]*)\|", section("Configuration"), re.MULTILINE)
    return {key: default.strip() for key, default in rows}


def test_every_setting_is_in_the_readme_table() -> None:
    rows = readme_config_rows()
    assert set(STACK_KEYS) <= set(rows)
    assert {"sparkpost:apiKey", "sparkpost:apiUrl", "cloudflare:apiToken"} <= set(rows)


VALID_STACKS: dict[str, dict[str, Any]] = {
    "zone and trackingDomains": {
        "https-tracking:zone": "example.com",
        "https-tracking:cloudflareAccountId": "0123456789abcdef0123456789abcdef",
        "https-tracking:trackingDomains": [{"domain": "track.example.com"}],
    },
    "zone and trackingDomain": {
        "https-tracking:zone": "example.com",
        "https-tracking:cloudflareAccountId": "0123456789abcdef0123456789abcdef",
        "https-tracking:trackingDomain": "track.example.com",
    },
    "zones": {
        "https-tracking:cloudflareAccountId": "0123456789abcdef0123456789abcdef",
        "https-tracking:zones": [{"zone": "example.com", "trackingDomains": ["track.example.com"]}],
    },
}


@pytest.mark.parametrize("name", sorted(VALID_STACKS))
def test_keys_marked_required_are_in_every_valid_stack(name: str) -> None:
    config = VALID_STACKS[name]
    parse_settings(config, require_credentials=False)  # valid, so it shows what is really required
    given = {key.split(":", 1)[1] for key in config}
    for key, default in readme_config_rows().items():
        if default == "(required)":
            assert key in given, f"README marks {key} (required), but a stack without it is valid"
        match = re.fullmatch(r"\(required unless (.+)\)", default)
        if match:
            alternatives = re.findall(r"`([^`]+)`", match.group(1))
            assert alternatives and set(alternatives) <= set(STACK_KEYS)
            assert key in given or given & set(alternatives), (key, name)


def test_pulumi_yaml_lists_every_host_key() -> None:
    project = (ROOT / "Pulumi.yaml").read_text()
    (listed,) = re.findall(r"^#\s+trackingDomains\s+list of \{([^}]*)\}", project, re.MULTILINE)
    assert [k.strip() for k in listed.split(",")] == list(HOST_KEYS)
    assert yaml.safe_load(project)["name"] == "https-tracking"


# --- the check command -----------------------------------------------------------------------------------

CHECK_VARIABLES = (
    "SPARKPOST_API_KEY",
    "SPARKPOST_API_URL",
    "SPARKPOST_REGION",
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_BASE_URL",
)


def test_every_variable_the_check_reads_is_documented() -> None:
    read = set(
        re.findall(
            r'env(?:\.get)?\(?\[?"([A-Z_]+)"',
            "".join(p.read_text() for p in (ROOT / "components" / "check").glob("*.py")),
        )
    )
    assert read - {"PATH"} == set(CHECK_VARIABLES)
    check = section("The check command")
    for name in CHECK_VARIABLES:
        assert f"| `{name}` |" in check
        assert f"\n  {name}" in EPILOG


def test_the_readme_examples_of_the_check_are_valid_command_lines() -> None:
    examples = re.findall(
        r"^python3 -m components check (.*?)(?:\s+#.*)?$",
        section("The check command").replace("\\\n", " "),
        re.MULTILINE,
    )
    assert len(examples) == 3
    for example in examples:
        args = parser().parse_intermixed_args(shlex.split(example))
        assert all(not host.startswith(("ns", "ada.", "bob.")) for host in args.hosts), (
            example
        )  # no NS taken for a host
        if args.expect_ns:
            assert [ns for group in args.expect_ns for ns in group] == [
                "ada.ns.cloudflare.com",
                "bob.ns.cloudflare.com",
            ]


# --- the recovery recipe --------------------------------------------------------------------------------


def test_the_recovery_recipe_finds_the_configuration_ruleset_by_its_phase(cf: Any) -> None:
    # A zone's /rulesets list starts with Cloudflare's managed rulesets: the recipe must not send people there.
    recovery = section("After an interrupted `pulumi up`")
    (path,) = re.findall(r"`\.\.\.(/zones/<zone id>/rulesets[^`]*)`", recovery)
    assert path == "/zones/<zone id>/rulesets/phases/http_config_settings/entrypoint"
    import requests

    zone = cf.add_zone("example.com")
    made = requests.put(
        cf.url + path.replace("<zone id>", zone),
        json={"rules": [{"expression": "true", "action": "set_config", "action_parameters": {"ssl": "full"}}]},
        headers={"Authorization": f"Bearer {cf.token}"},
        timeout=10,
    ).json()["result"]
    listed = requests.get(
        f"{cf.url}/zones/{zone}/rulesets", headers={"Authorization": f"Bearer {cf.token}"}, timeout=10
    ).json()["result"]
    assert listed[0]["id"] != made["id"]  # the first of the list is not the zone's configuration ruleset
    found = requests.get(
        cf.url + path.replace("<zone id>", zone), headers={"Authorization": f"Bearer {cf.token}"}, timeout=10
    ).json()["result"]
    assert (found["id"], found["phase"]) == (made["id"], "http_config_settings")
