"""The check command's command line: every mistake is exit 2 with one line naming what is wrong (never
a traceback, never a network call), help that answers at once, and options that cannot swallow hosts."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import API_KEY, CLOUDFLARE_TOKEN, assert_no_secret

from components.check.cli import EPILOG, STEPS_PER_HOST, command_bound, main, parser
from components.sparkpost.deadline import SHUTDOWN_GRACE

ROOT = Path(__file__).resolve().parent.parent
HOST = "track.example.com"
GOOD_STACK = """\
config:
  https-tracking:zone: example.com
  https-tracking:cloudflareAccountId: "0123456789abcdef0123456789abcdef"
  https-tracking:trackingDomains:
    - domain: track.example.com
"""


def usage_error(
    args: list[str], capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None, root: Path = ROOT
) -> str:
    """Run the command expecting a usage error; return its one line."""
    out = io.StringIO()
    code = main(args, out=out, env=env or {}, root=root)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert out.getvalue() == "" and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("check: ")
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"SPARKPOST_API_KEY": "abc def"}, "SPARKPOST_API_KEY has spaces or characters an HTTP header cannot carry"),
        ({"SPARKPOST_API_KEY": "clé-0123"}, "SPARKPOST_API_KEY has spaces or characters an HTTP header cannot carry"),
        ({"SPARKPOST_REGION": "mars"}, "SPARKPOST_REGION: 'mars' is not a SparkPost region: use one of us, eu"),
        ({"SPARKPOST_API_URL": "api.sparkpost.com/api/v1"}, "SPARKPOST_API_URL: "),
        ({"CLOUDFLARE_API_TOKEN": "tok en"}, "CLOUDFLARE_API_TOKEN has spaces or characters"),
        (
            {"CLOUDFLARE_BASE_URL": "api.cloudflare.com"},
            "CLOUDFLARE_BASE_URL: 'api.cloudflare.com' is not an http(s) URL",
        ),
    ],
)
def test_environment_mistakes(capsys: pytest.CaptureFixture[str], env: dict[str, str], names: str) -> None:
    line = usage_error([HOST], capsys, env)
    assert names in line
    if "KEY" in names or "TOKEN" in names:
        assert env.popitem()[1] not in line  # a secret, even a mistyped one, is not echoed


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--resolver", "dns.google"], "argument --resolver: 'dns.google' is not an IP address"),
        (["--resolver", "127.0.0.1:abc"], "argument --resolver: '127.0.0.1:abc' has no valid port"),
        (["--resolver", "127.0.0.1:70000"], "argument --resolver: '127.0.0.1:70000' has no valid port"),
        (["--timeout", "0"], "argument --timeout: 0 is out of range"),
        (["--timeout", "-3"], "argument --timeout: -3 is out of range"),
        (["--timeout", "nan"], "argument --timeout: nan is out of range"),
        (["--timeout", "inf"], "argument --timeout: inf is out of range"),
        (["--timeout", "soon"], "argument --timeout: 'soon' is not a number of seconds"),
        (["--port", "70000"], "argument --port: '70000' is not a TCP port (1-65535)"),
        (["--port", "0"], "argument --port: '0' is not a TCP port"),
        (["--ca-bundle", "/nonexistent/ca.pem"], "argument --ca-bundle: no such file: '/nonexistent/ca.pem'"),
        (["--ca-bundle", str(ROOT / "README.md")], "argument --ca-bundle: "),
        (["--region", "mars"], "argument --region: invalid choice: 'mars'"),
        (["--expect-ns", "not a host"], "argument --expect-ns: "),
        (["--edge-networks", "104.16.0.0/99"], "argument --edge-networks: "),
        (["--nonsense"], "unrecognized arguments: --nonsense"),
        (["https://track.example.com/x"], "https://track.example.com/x"),
        ([], "name at least one host, or --stack with tracking domains"),
    ],
)
def test_option_mistakes(capsys: pytest.CaptureFixture[str], args: list[str], names: str) -> None:
    assert names in usage_error([*([HOST] if args else []), *args], capsys)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("config:\n  https-tracking:zone: [example.com\n", "stacks/Pulumi.broken.yaml is not valid YAML (line 3"),
        ("- a\n- b\n", "stacks/Pulumi.broken.yaml must be a mapping with a `config:` mapping in it, found a list"),
        ("config: [1, 2]\n", "must be a mapping with a `config:` mapping in it, found a list"),
        ("", "must be a mapping with a `config:` mapping in it, found a NoneType"),
        (GOOD_STACK.replace("track.example.com\n", "track.example.com\n      subaccount: '²'\n"), "Pulumi.broken.yaml"),
        (GOOD_STACK.replace("track.example.com\n", "track.example.com\n      subaccount: -4\n"), "subaccount"),
        (
            GOOD_STACK.replace("example.com\n  https", "example.com\n  https-tracking:sslRule: fast\n  https", 1),
            "sslRule",
        ),
        (GOOD_STACK + "  https-tracking:zones: 7\n", "https-tracking:zones"),
    ],
)
def test_stack_file_mistakes(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, names: str) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.broken.yaml").write_text(text)
    line = usage_error(["--stack", "broken"], capsys, root=tmp_path)
    assert line.startswith("check: --stack broken: stacks/Pulumi.broken.yaml")
    assert names in line


def test_an_unknown_stack_lists_the_stacks_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(["--stack", "nosuch"], capsys)
    assert line == f"check: --stack nosuch: no stack 'nosuch' in {ROOT / 'stacks'}: the stacks there are dev, prod"
    assert "'dev prod' is not a stack name" in usage_error(["--stack", "dev prod"], capsys)
    assert "no stack 'passwd'" in usage_error(
        ["--stack", "../../etc/passwd"], capsys
    )  # org/project/stack: its last part


def test_a_good_stack_file_gives_its_hosts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The stack-file tests above fail for their reason only: the same file, well formed, is read.
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.good.yaml").write_text(GOOD_STACK)
    with pytest.raises(AssertionError):  # not a usage error: it goes on to probe (against nothing)
        usage_error(["--stack", "good", "--resolver", "127.0.0.1:9", "--timeout", "0.2"], capsys, root=tmp_path)


def test_a_mistake_in_a_real_process_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "components", "check", HOST, "--resolver", "dns.google"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "SPARKPOST_API_KEY": f"{API_KEY} x", "CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN},
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr
        == "check: argument --resolver: 'dns.google' is not an IP address: give the resolver as IP[:PORT], e.g. 1.1.1.1\n"
    )
    assert_no_secret(done.stderr, "stderr")


def test_python_m_components_help_prints_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "components", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m components COMMAND")
    assert "check" in done.stdout and "python -m components check --help" in done.stdout
    nothing = subprocess.run([sys.executable, "-m", "components"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert nothing.returncode == 2 and len(nothing.stderr.splitlines()) == 1


def test_expect_ns_cannot_swallow_hosts() -> None:
    args = parser().parse_intermixed_args(
        [
            "--expect-ns",
            "ada.ns.cloudflare.com",
            "track.example.com",
            "--expect-ns",
            "bob.ns.cloudflare.com",
            "b.example.com",
        ]
    )
    assert args.hosts == ["track.example.com", "b.example.com"]
    assert args.expect_ns == [["ada.ns.cloudflare.com"], ["bob.ns.cloudflare.com"]]
    comma = parser().parse_intermixed_args(
        ["--expect-ns", "ada.ns.cloudflare.com,bob.ns.cloudflare.com", "track.example.com"]
    )
    assert comma.hosts == ["track.example.com"]
    assert comma.expect_ns == [["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]]


def test_help_states_the_bound_and_every_environment_variable() -> None:
    text = parser().format_help()
    assert f"ends within {STEPS_PER_HOST} x --timeout + {SHUTDOWN_GRACE:g} seconds" in text
    assert f"({command_bound(1, 5):g} s by default)" in text
    for name in (
        "SPARKPOST_API_KEY",
        "SPARKPOST_API_URL",
        "SPARKPOST_REGION",
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_BASE_URL",
    ):
        assert f"\n  {name}" in EPILOG
    assert (
        command_bound(128, 5) == command_bound(1, 5) == 50 + SHUTDOWN_GRACE
        and command_bound(129, 5) == 100 + 2 * SHUTDOWN_GRACE
    )


def test_help_names_what_the_zone_move_comparison_needs() -> None:
    # (That --help does not import the comparison itself: tests/test_bench.py, the check's start-up.)
    done = subprocess.run(
        [sys.executable, "-m", "components", "check", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "with DNS: Read, while" in done.stdout and "Sending Domains: Read" in done.stdout
