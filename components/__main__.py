"""`python -m components check ...`: the project's command line (one command today: check)."""

import sys

from components.check.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] != ["check"]:
        print("usage: python -m components check HOST... [options]   (see --help)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[2:]))
