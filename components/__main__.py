"""`python -m components COMMAND ...`: the project's command line (one command today: check).

Kept free of imports until a command is chosen, so `--help` answers at once.
"""

import sys

USAGE = """\
usage: python -m components COMMAND [options]

commands:
  check   tell whether HTTPS tracking works for hosts, and if not, why and what to do
          (python -m components check --help)
"""


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    if argv[:1] != ["check"]:
        what = f"unknown command '{argv[0]}'" if argv else "no command given"
        print(f"python -m components: {what}: use `python -m components check ...` (see --help)", file=sys.stderr)
        return 2
    from components.check.cli import main as check

    try:
        return check(argv[1:])
    except KeyboardInterrupt:
        print("check: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
