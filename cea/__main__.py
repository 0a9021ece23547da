"""``python -m cea``: the command line (:mod:`cea.cli`)."""

from cea.cli import run

if __name__ == "__main__":
    run()
