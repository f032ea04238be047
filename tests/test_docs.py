"""What the README, the pages of docs/, Pulumi.yaml and pyproject.toml tell a newcomer agrees with the
code: the Python version the requirements really need, what the tests and the benchmark need installed,
the install and test commands CI runs, the configuration keys and which of them are required, the check
command's options and variables, and the recovery recipe. And the documentation holds together: the
README stays one short page linking every page of docs/, every relative link lands on a file and
heading that exist, and so does every section the code's comments and messages point at."""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import os
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
from components.https_tracking import next_step
from world import sandbox
from world.click_tracker import TRACKER_NAMES, ClickTracker
from world.cloudflare_emulator import NAME_SERVER_HOSTS, CloudflareEmulator
from world.dns import AuthoritativeServer, RecursiveResolver
from world.edge import Edge
from world.local_world import (
    OLD_NAME_SERVERS,
    ROOT_SERVER,
    SPARKPOST_NAME_SERVER,
    V2_TARGETS,
    Domain,
    LocalWorld,
    WorldAddresses,
)
from world.loopback_api import LoopbackApi

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
DOC_PAGES = sorted(DOCS.glob("*.md"))  # one page per subject, each linked from the README
EVERY_PAGE = [ROOT / "README.md", *DOC_PAGES]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MINORS = range(8, 15)  # Python 3.8 ... 3.14: the versions a claim could name
README_LIMIT = 12 * 1024  # bytes: the README is a first screen and a map, the subjects live in docs/


def page(name: str) -> str:
    """The text of docs/<name>."""
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing"
    return path.read_text()


def section(title: str, text: str = README) -> str:
    """The section of `text` (the README unless given) under `title` (a heading of any level), up to
    the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.MULTILINE)
    assert match, f"no section {title!r}"
    rest = text[match.end() :]
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
    for path in DOC_PAGES:  # the README makes the one claim; no page of docs/ makes another
        assert re.findall(r"Python (3\.\d+)\+", path.read_text()) == [], path.name
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
    benchmark = section("Benchmark", page("benchmark.md"))
    assert "requirements-dev.txt" in benchmark and "NSD" in benchmark
    bench = (ROOT / "bench" / "run.py").read_text()
    assert "from world.network_fakes import NsdServer" in bench  # it starts NSD, as the tests do
    assert "Needs the test requirements (requirements-dev.txt) and NSD" in bench
    assert "best of 3" not in benchmark.split("```")[1]  # the command line's note on --quick
    assert "--quick measures each figure once" in benchmark


# --- configuration keys ----------------------------------------------------------------------------------


# Two tables: the README's at a glance, and the full reference of docs/configuration.md.
CONFIG_TABLES = {
    "README, Configuration at a glance": lambda: section("Configuration at a glance"),
    "docs/configuration.md": lambda: section("Configuration", page("configuration.md")),
}


def config_rows(table: str) -> dict[str, str]:
    """key -> default, for every row of the table named `table` in CONFIG_TABLES."""
    rows = re.findall(r"^\| `([^`]+)` \|([^|]*)\|", CONFIG_TABLES[table](), re.MULTILINE)
    return {key: default.strip() for key, default in rows}


@pytest.mark.parametrize("table", sorted(CONFIG_TABLES))
def test_every_setting_is_in_the_configuration_tables(table: str) -> None:
    rows = config_rows(table)
    assert set(STACK_KEYS) <= set(rows)
    assert {"sparkpost:apiKey", "sparkpost:apiUrl", "cloudflare:apiToken"} <= set(rows)


def test_the_readme_at_a_glance_agrees_with_the_full_reference() -> None:
    glance = config_rows("README, Configuration at a glance")
    full = config_rows("docs/configuration.md")
    assert glance == full  # the same keys, with the same defaults
    assert list(glance) == list(full)  # in the same order, so one can be read against the other


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


@pytest.mark.parametrize("table", sorted(CONFIG_TABLES))
@pytest.mark.parametrize("name", sorted(VALID_STACKS))
def test_keys_marked_required_are_in_every_valid_stack(name: str, table: str) -> None:
    config = VALID_STACKS[name]
    parse_settings(config, require_credentials=False)  # valid, so it shows what is really required
    given = {key.split(":", 1)[1] for key in config}
    for key, default in config_rows(table).items():
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
    check = section("The check command", page("drift-and-health.md"))
    for name in CHECK_VARIABLES:
        assert f"| `{name}` |" in check
        assert f"\n  {name}" in EPILOG


def check_examples(text: str) -> list[str]:
    """The arguments of every line of `text` that starts `python3 -m components check` (continuations joined)."""
    return re.findall(r"^python3 -m components check (.*?)(?:\s+#.*)?$", text.replace("\\\n", " "), re.MULTILINE)


def test_the_examples_of_the_check_are_valid_command_lines() -> None:
    examples = check_examples(section("The check command", page("drift-and-health.md")))
    assert len(examples) == 3
    assert check_examples(README)  # the quick start shows one too
    for example in [example for path in EVERY_PAGE for example in check_examples(path.read_text())]:
        args = parser().parse_intermixed_args(shlex.split(example))
        assert all(not host.startswith(("ns", "ada.", "bob.")) for host in args.hosts), (
            example
        )  # no NS taken for a host
        if args.expect_ns:
            assert [ns for group in args.expect_ns for ns in group] == [
                "ada.ns.cloudflare.com",
                "bob.ns.cloudflare.com",
            ]


# --- the install and test commands ----------------------------------------------------------------------


def readme_commands() -> list[str]:
    """The commands of the README's first code block, which comes before its first section."""
    head = README.split("\n## ", 1)[0]
    assert "```sh\n" in head, "the README's first screen has no command block"
    block = head.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    commands = readme_commands()
    assert commands == ["bash tools/install", "tools/sandbox", ".venv/bin/python -m pytest"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    assert any(line.startswith("bash tools/install ") for line in ci)  # then `|| { ...; exit 1; }`
    assert ".venv/bin/python -m pytest" in ci  # the README's test command, as it stands
    assert (ROOT / "tools" / "install").is_file()
    for workflow in ("preview.yml", "deploy.yml"):  # and both workflows that test run .ci/run
        assert "run: bash .ci/run" in (ROOT / ".github" / "workflows" / workflow).read_text(), workflow


# --- the recovery recipe --------------------------------------------------------------------------------


def test_the_recovery_recipe_finds_the_configuration_ruleset_by_its_phase(cf: Any) -> None:
    # A zone's /rulesets list starts with Cloudflare's managed rulesets: the recipe must not send people there.
    recovery = section("After an interrupted `pulumi up`", page("recovery.md"))
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


# --- the documentation holds together --------------------------------------------------------------------

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`]*`")  # a code span may run over a line break
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto: ...: not a file of this repository


def prose(text: str) -> str:
    """`text` without its code blocks and code spans, where brackets and '#' are not Markdown."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (word characters, hyphens and
    spaces kept), spaces turned into hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a Markdown page; a repeated one gets -1, -2 ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.MULTILINE):
        slug = anchor(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def relative_links(text: str) -> list[str]:
    return [target for target in LINK.findall(prose(text)) if not SCHEME.match(target)]


def broken_links(path: Path) -> list[str]:
    """The relative links of the page at `path` whose file, or whose heading after '#', does not exist."""
    broken = []
    for target in relative_links(path.read_text()):
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text()):
            broken.append(f"{target}: no heading with the anchor #{fragment} in {linked.name}")
    return broken


def test_anchors_are_the_ones_github_makes() -> None:
    assert anchor("After an interrupted `pulumi up`") == "after-an-interrupted-pulumi-up"
    assert anchor("Managed HTTPS (per host)") == "managed-https-per-host"
    assert anchor("Several brands: sending domains and their tracking hosts") == (
        "several-brands-sending-domains-and-their-tracking-hosts"
    )
    assert anchors("# A\n```sh\n# not a heading\n```\n## A\n") == {"a", "a-1"}


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Known heading\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n[fine](other.md#known-heading) [fine too](#doc) [web](https://example.com/x)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n"
        "[no file](missing.md) [no heading](other.md#unknown) [not here](#nowhere)\n"
    )
    assert [problem.split(":")[0] for problem in broken_links(doc)] == [
        "missing.md",
        "other.md#unknown",
        "#nowhere",
    ]


@pytest.mark.parametrize("path", EVERY_PAGE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_readme_lists_every_page_of_docs_once() -> None:
    assert len(DOC_PAGES) >= 10  # the pages the README's subjects moved to
    listed = [
        (ROOT / target).resolve()
        for line in section("Documentation").splitlines()
        if line.startswith("- ")
        for target in relative_links(line)[:1]  # the line's first link names its page
    ]
    assert sorted(listed) == sorted(p.resolve() for p in DOC_PAGES)  # each page, one line each


def test_the_readme_stays_short() -> None:
    assert len(README.encode()) < README_LIMIT, f"README.md is {len(README.encode())} bytes: move a subject to docs/"


# --- the code's references to the documentation ----------------------------------------------------------

# How comments, docstrings and messages point at a section: `docs/<page>.md, "<Heading>"` (for the README,
# README in place of the page), the whole heading in quotes on the same line as the page (backticks
# left out), or an anchor, `docs/<page>.md#<anchor>`. A page named without a section must exist.
SECTION_REFERENCE = re.compile(r'\b(README(?:\.md)?|docs/[\w-]+\.md)(?:[,:] "([^"\n]*)("?)|#([\w-]+))?')
NOT_SCANNED = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def headings(path: Path) -> set[str]:
    """Every heading of the Markdown page at `path`, as a reference spells it: without backticks."""
    return {h.replace("`", "") for h in re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), re.MULTILINE)}


def bad_references(text: str) -> list[str]:
    """Each reference in `text` to a page that does not exist, or to a heading or anchor it lacks."""
    bad = []
    for match in SECTION_REFERENCE.finditer(text):
        name, heading, closed, fragment = match.groups()
        path = ROOT / (name if name.endswith(".md") else f"{name}.md")
        if not path.is_file():
            bad.append(f"{match.group(0)}: no page {path.relative_to(ROOT)}")
        elif heading is not None and not closed:
            bad.append(f"{match.group(0)}: the heading's closing quote is not on the page's line")
        elif heading is not None and heading not in headings(path):
            bad.append(f"{match.group(0)}: no heading {heading!r} on {path.relative_to(ROOT)}")
        elif fragment and fragment not in anchors(path.read_text()):
            bad.append(f"{match.group(0)}: no anchor #{fragment} on {path.relative_to(ROOT)}")
    return bad


def repository_texts() -> dict[str, str]:
    """Relative path -> text of every text file of the checkout, without the virtualenv, caches and VCS."""
    texts = {}
    for directory, subdirectories, files in os.walk(ROOT):  # Path.walk is 3.12+
        subdirectories[:] = [d for d in subdirectories if d not in NOT_SCANNED]
        for file in files:
            path = Path(directory, file)
            try:
                texts[str(path.relative_to(ROOT))] = path.read_text()
            except UnicodeDecodeError:  # a binary file holds no comment
                continue
    return texts


def test_every_reference_to_a_section_names_one_that_exists() -> None:
    # Samples spelled in parts, so that this file's own text holds no bad reference.
    recovery, readme, docs = "docs/recovery.md", "README", "docs"
    assert bad_references(f'{recovery}, "After an interrupted pulumi up"; {readme}, "Prerequisites"') == []
    assert bad_references(f"{recovery}#after-an-interrupted-pulumi-up; {readme}.md#prerequisites") == []
    assert len(bad_references(f'{recovery}, "No such heading"; {recovery}, "Split\nheading"; {docs}/gone.md')) == 3
    assert len(bad_references(f'{recovery}#no-such-anchor; {readme}: "Pull requests and deploys"')) == 2  # moved

    texts = repository_texts()
    named = {m.group(2) for text in texts.values() for m in SECTION_REFERENCE.finditer(text) if m.group(2)}
    assert {"Pull requests and deploys", "Which SSL rule", "The toolchain"} <= named  # the scan reached the code
    problems = {path: bad_references(text) for path, text in texts.items()}
    assert {path: found for path, found in problems.items() if found} == {}


# --- the local world and tools/sandbox ---------------------------------------------------------------------

LOCAL_WORLD = "local-world.md"
SANDBOX_COMMAND = re.compile(r"tools/sandbox((?: --?[\w-]+(?:[ =][^\s`'|)\-][^\s`'|)]*)?)*)")
BLOCK = "127.B."  # how docs/local-world.md writes a world's loopback block


def sandbox_actions() -> list[argparse.Action]:
    return list(sandbox.parser()._actions)  # argparse lists its options nowhere public


def long_name(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def usage_form(action: argparse.Action) -> str:
    """How the docs write an option: `--hosts N`, `--ssl-rule page-rule|configuration-rule`, `--keep`."""
    if action.nargs == 0:
        return long_name(action)
    if action.choices:
        return f"{long_name(action)} {'|'.join(map(str, action.choices))}"
    return f"{long_name(action)} {action.metavar or action.dest.upper()}"


def table_rows(text: str, first_column: str) -> list[list[str]]:
    """The rows of the Markdown table in `text` whose header starts with `first_column`: each row's cells,
    stripped, an escaped `\\|` kept as `|`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
        rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_every_sandbox_option_the_pages_name_exists() -> None:
    known = {name for action in sandbox_actions() for name in action.option_strings}
    mentioned = {
        str(path.relative_to(ROOT)): re.findall(r"--?[\w-]+", " ".join(SANDBOX_COMMAND.findall(path.read_text())))
        for path in EVERY_PAGE
    }
    assert "--help" in mentioned["README.md"]  # the scan reads command lines with options
    assert {page: set(names) - known for page, names in mentioned.items() if set(names) - known} == {}
    assert SANDBOX_COMMAND.findall("`tools/sandbox --hosts 3 --keep`") == [" --hosts 3 --keep"]


def test_the_readme_lists_the_sandbox_options_as_the_parser_has_them() -> None:
    paragraph = next(p for p in README.split("\n\n") if p.startswith("`tools/sandbox` runs"))
    listed = [form for form in spans(paragraph.replace("\n", " ")) if form.startswith("--")]
    expected = [usage_form(a) for a in sandbox_actions() if not isinstance(a, argparse._HelpAction)]
    assert listed == expected  # every option but --help, in the parser's order, with its metavar or choices


def test_local_world_documents_every_sandbox_option_with_its_default() -> None:
    rows = table_rows(section("`tools/sandbox`", page(LOCAL_WORLD)), "option")
    documented = {spans(row[0])[0]: spans(row[1]) for row in rows}
    # A flag (--managed, --keep, --help) has no default to name; an option names its own.
    expected = {usage_form(a): [] if a.nargs == 0 else [str(a.default)] for a in sandbox_actions()}
    assert "--hosts N" in expected and "--keep" in expected
    assert documented == expected


def world_server_rows() -> dict[str, list[str]]:
    """docs/local-world.md's table of servers: server -> [what it is, address, port, names]."""
    rows = table_rows(section("The servers and their addresses", page(LOCAL_WORLD)), "server")
    return {row[0]: row[1:] for row in rows}


def world_zone_addresses() -> dict[str, set[str]]:
    """Name -> the A records the world's own zones give it (registry, old provider, Cloudflare's DNS),
    read from LocalWorld's zone builders without starting a server."""
    world = LocalWorld.__new__(LocalWorld)  # no __init__: that starts NSD, Unbound and the rest
    world.addresses = WorldAddresses(BLOCK)
    world.domains = {"example.com": Domain("example.com", ["example.com"])}
    with CloudflareEmulator("docs-token") as world.cloudflare:  # holds no zone yet: only the name servers'
        zones = {**world._registry_zones(), **world._elsewhere_zones(), **world._cloudflare_zones()}
    found: dict[str, set[str]] = {}
    for lines in zones.values():
        for name, _ttl, _class, kind, *data in (line.split() for line in lines):
            if kind == "A":
                found.setdefault(name.rstrip("."), set()).add(data[0])
    return found


def default_of(function: Any, parameter: str) -> Any:
    return inspect.signature(function).parameters[parameter].default


def test_the_server_table_gives_the_addresses_and_ports_the_world_uses() -> None:
    a = WorldAddresses(BLOCK)
    dns_port = str(default_of(AuthoritativeServer, "port"))
    edge_ports = f"{default_of(Edge, 'https_port')}, {default_of(Edge, 'http_port')}"
    tracker_ports = f"{default_of(ClickTracker, 'https_port')}, {default_of(ClickTracker, 'http_port')}"
    assert "port" not in inspect.signature(RecursiveResolver).parameters  # it takes a free high port itself
    assert default_of(LoopbackApi, "port") == 0  # 0: any free port
    any_free = "any free"
    expected = {
        "registry": ([a.registry], dns_port),
        "Cloudflare's name servers": ([a.cloudflare_dns], dns_port),
        "old DNS provider, and spgo.io's": ([a.elsewhere_dns], dns_port),
        "resolver": ([default_of(RecursiveResolver, "address")], any_free),
        "edge": (list(a.edge), edge_ports),
        "click tracker": ([a.tracker], tracker_ports),
        "V2 endpoint": ([a.v2], tracker_ports),
        "SparkPost API": (["127.0.0.1"], any_free),
        "Cloudflare API": (["127.0.0.1"], any_free),
    }
    documented = {server: (spans(cells[1]), cells[2]) for server, cells in world_server_rows().items()}
    assert documented == expected
    # LocalWorld starts every server on those defaults: it passes no port of its own.
    assert not re.search(r"\b\w*port\s*=", inspect.getsource(LocalWorld._start))
    # Every address WorldAddresses has is in the table, or (the edge's network) on the page.
    properties = [name for name, value in vars(WorldAddresses).items() if isinstance(value, property)]
    assert len(properties) == 7
    given = {address for addresses, _port in documented.values() for address in addresses}
    for name in properties:
        value = getattr(a, name)
        assert set(value if isinstance(value, tuple) else [value]) <= given or f"`{value}`" in page(LOCAL_WORLD), name


def test_the_names_in_the_server_table_lead_to_their_server() -> None:
    a_records = world_zone_addresses()
    rows = world_server_rows()
    named = {name: server for server, cells in rows.items() for name in spans(cells[3])}
    constants = [ROOT_SERVER, *OLD_NAME_SERVERS, SPARKPOST_NAME_SERVER, *V2_TARGETS, *TRACKER_NAMES]
    assert set(constants) | {NAME_SERVER_HOSTS[0], NAME_SERVER_HOSTS[-1]} <= set(named)
    for name, server in named.items():
        assert a_records.get(name), f"{name} ({server}) has no A record in the world's zones"
        assert a_records[name] <= set(spans(rows[server][1])), f"{name} leads elsewhere than the {server}"


def test_readme_prerequisites_name_every_package_tools_install_installs() -> None:
    install = (ROOT / "tools" / "install").read_text()
    packages = {
        package
        for line in re.findall(r"\bapt_install((?: [a-z0-9][a-z0-9.+-]*)+)\s*$", install, re.MULTILINE)
        for package in line.split()
    }
    assert {"nsd", "unbound"} <= packages  # the scan found the installs
    prerequisites = section("Prerequisites")
    named = {
        package for command in re.findall(r"`apt-get install ([^`]+)`", prerequisites) for package in command.split()
    }
    assert packages <= named, f"tools/install installs {sorted(packages - named)}, which Prerequisites does not name"
    assert "**NSD**" in prerequisites and "**Unbound**" in prerequisites


# --- the registrar step's sample and the check's permissions -----------------------------------------------


def test_the_registrar_steps_sample_next_steps_is_what_the_program_says() -> None:
    first = section("First `pulumi up`, the registrar, the next `pulumi up`", page("registrar-step.md"))
    block = first.split("```\n", 2)[1]
    (sample,) = re.findall(r'nextSteps\s*: \{ example\.com: "(.*?)" \}', block, re.DOTALL)
    (servers,) = re.findall(r"nameServers: \{ example\.com: \[([^\]]*)\] \}", block)
    name_servers = re.findall(r'"([^"]+)"', servers)
    said = next_step("example.com", "pending", name_servers, {"track.example.com": "pending"}, stack="dev")
    assert " ".join(sample.split()) == said


def epilog_variables() -> dict[str, str]:
    """The check's --help epilog, environment section: variable -> its text on one line."""
    environment = EPILOG.split("environment:\n", 1)[1].split("\n\n", 1)[0]
    found: dict[str, str] = {}
    for line in environment.splitlines():
        if match := re.match(r"  ([A-Z_]+)\s+(.*)", line):
            name = match.group(1)
            found[name] = match.group(2)
        else:
            found[name] += " " + line.strip()
    return found


def test_the_variables_table_names_every_permission_the_help_names() -> None:
    table = {
        spans(row[0])[0]: row[1]
        for row in table_rows(section("The check command", page("drift-and-health.md")), "environment variable")
    }
    needs = {
        name: re.findall(r"((?:[A-Z][a-z]+ )*[A-Z][A-Za-z]+): Read", text) for name, text in epilog_variables().items()
    }
    assert "DNS" in needs["CLOUDFLARE_API_TOKEN"] and "Sending Domains" in needs["SPARKPOST_API_KEY"]
    missing = {name: [p for p in permissions if f"{p}: Read" not in table[name]] for name, permissions in needs.items()}
    assert {name: found for name, found in missing.items() if found} == {}
