"""``python -m cea``: the command line (:mod:`cea.cli`)."""

import sys

from cea.cli import main

if __name__ == "__main__":
    sys.exit(main())
