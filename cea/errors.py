"""Error types. Every user-facing error is one line that names where the problem is.

The command line turns a :class:`CeaError` into that one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CeaError(ValueError):
    """Base class for errors caused by the user's inputs or options (exit code 2)."""


class InputFileError(CeaError):
    """A problem in an input file, located by file, row and column.

    ``row`` is the 1-based line number as a spreadsheet shows it (the header is row 1),
    ``column`` the column name. Either may be ``None`` when the problem is the whole file.
    """

    def __init__(self, file: str, problem: str, row: int | None = None, column: str | None = None):
        self.file = str(file)
        self.row = row
        self.column = column
        self.problem = problem
        where = [self.file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        # one line whatever the file holds: a line break in a cell or header is shown escaped
        message = f"{', '.join(where)}: {problem}"
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


class ModelInputError(CeaError):
    """Arrays handed to the engine or the model are invalid (shape, range, row sums).

    The message names the strategy, draw, cycle and state where that applies.
    """


def did_you_mean(name: str, known, what: str = "") -> str:
    """``"; did you mean 'x'?"`` for the known name closest to ``name`` (difflib, case
    ignored), or ``""`` when none is close; ``what`` is appended to the suggestion."""
    import difflib

    lower = {str(k).lower(): str(k) for k in known}
    close = difflib.get_close_matches(str(name).lower(), list(lower), n=1, cutoff=0.6)
    return f"; did you mean '{lower[close[0]]}'{what}?" if close else ""
