"""Per-draw outcomes of a PSA kept on disk, not in memory, so that memory does not grow with
the draws.

The model runs in chunks of draws; each chunk's outcomes (every strategy, the columns
:data:`OUTCOME_COLUMNS`) go into one unnamed temporary file as float64 at the place of their
draws, laid out (strategy, draw, column), i.e. in the order of the outcomes file: all draws of
a strategy together, strategies in the model's order. Reading it back gives the very numbers the
model produced (raw doubles, no formatting), in blocks of bounded size for the writer or as one
table for a small run. The file has no name in the file system (``tempfile.TemporaryFile``), so
nothing is left behind whatever happens to the process; the operating system's page cache, not
this process's memory, holds it while it is small.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from cea.errors import CeaError
from cea.igrt.spec import COST_CATEGORIES, COUNTS

#: Per-draw outcome columns kept for every draw and strategy (and written to the outcomes file):
#: discounted costs by category, QALYs, life-years, and undiscounted event counts.
OUTCOME_COLUMNS = ("cost", *COST_CATEGORIES, "qaly", "ly", *(f"{c}_undiscounted" for c in COUNTS))

#: Bytes of one float64.
FLOAT_BYTES = 8

#: Rows (draw x strategy) per block read back for writing: bounds the writer's memory.
READ_ROWS = 50_000


class OutcomeStore:
    """A (K, D, C) float64 array of per-draw outcomes in an unnamed temporary file.

    Parameters
    ----------
    names : the K strategies, in the model's order.
    draw_ids : the D draw labels, in the draws' order.
    columns : the C outcome columns (a subset of the model's outcomes table).
    """

    def __init__(self, names: Sequence[str], draw_ids: np.ndarray, columns: Sequence[str]):
        self.names = list(names)
        self.draw_ids = np.asarray(draw_ids)
        self.columns = list(columns)
        self._file = tempfile.TemporaryFile(prefix="cea-psa-outcomes-")
        self._lock = threading.Lock()
        K, D, C = self.shape
        self._file.truncate(K * D * C * FLOAT_BYTES)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.names), len(self.draw_ids), len(self.columns)

    def _offset(self, k: int, lo: int) -> int:
        _, D, C = self.shape
        return (k * D + lo) * C * FLOAT_BYTES

    def put(self, lo: int, block: np.ndarray) -> None:
        """Store the outcomes of draws ``lo .. lo + n``: ``block`` (K, n, C)."""
        K, D, C = self.shape
        if block.ndim != 3 or block.shape[0] != K or block.shape[2] != C:
            raise CeaError(f"outcome block of shape {block.shape}, expected ({K}, n, {C})")
        if not 0 <= lo <= lo + block.shape[1] <= D:
            raise CeaError(f"outcome block for draws {lo}..{lo + block.shape[1]} of {D}")
        with self._lock:
            for k in range(K):
                self._file.seek(self._offset(k, lo))
                self._file.write(np.ascontiguousarray(block[k], dtype="<f8").tobytes())

    def read(self, k: int, lo: int, hi: int) -> np.ndarray:
        """The outcomes of strategy ``k``, draws ``lo .. hi``: (hi - lo, C)."""
        C = self.shape[2]
        out = np.empty((hi - lo, C), dtype="<f8")
        with self._lock:
            self._file.seek(self._offset(k, lo))
            if self._file.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise CeaError("the PSA's outcome file is shorter than written")
        return out

    def column(self, name: str, rows: int = READ_ROWS) -> np.ndarray:
        """One outcome column of every draw and strategy, (D, K), read in blocks."""
        j = self.columns.index(name)
        K, D, _ = self.shape
        out = np.empty((D, K))
        for k in range(K):
            for lo in range(0, D, max(1, rows)):
                hi = min(D, lo + max(1, rows))
                out[lo:hi, k] = self.read(k, lo, hi)[:, j]
        return out

    def frames(self, rows: int = READ_ROWS) -> Iterator[pd.DataFrame]:
        """The long outcomes table (``draw, strategy`` and the columns), all draws of a strategy
        together, strategies in order, in blocks of at most ``rows`` rows."""
        _, D, _ = self.shape
        step = max(1, rows)
        for k, name in enumerate(self.names):
            for lo in range(0, D, step):
                hi = min(D, lo + step)
                df = pd.DataFrame(self.read(k, lo, hi), columns=self.columns)
                df.insert(0, "strategy", name)
                df.insert(0, "draw", self.draw_ids[lo:hi])
                yield df

    def frame(self) -> pd.DataFrame:
        """The whole long outcomes table in memory (for small runs and tests)."""
        return pd.concat(list(self.frames()), ignore_index=True)

    def close(self) -> None:
        self._file.close()
