"""Refuse a run that cannot fit in memory before it starts, saying what would fit.

The PSA keeps every draw's parameters and, per strategy, its cost, QALYs and life-years (the
model runs in chunks and every other per-draw result goes to disk as each chunk finishes), and
the two-way DSA runs every grid point at once, so their memory grows with the number of draws or
points. The figures per draw and per point are this package's own peak resident memory,
measured on the bundled GB inputs with every default strategy (about 0.54 kB per PSA draw from
100,000 to 1,000,000 draws, the uncertain parameters and the kept results, and 13 kB per two-way
point, beyond a fixed 300-600 MB) and doubled for margin. They guard against a run that would
die on an allocation; they are not a forecast.
"""

from __future__ import annotations

import os

from cea.errors import CeaError

#: Bytes of memory per PSA draw and country (measured about 0.54 kB from 100,000 to 1,000,000
#: draws of GB, doubled and rounded up: the uncertain parameters and the kept per-draw results).
BYTES_PER_PSA_DRAW = 1_200
#: Bytes of memory per point of a two-way grid (measured about 13 kB, doubled).
BYTES_PER_GRID_POINT = 32_000


def available_bytes() -> int | None:
    """Memory available to a new allocation: MemAvailable from /proc/meminfo on Linux, the free
    physical pages elsewhere; None where neither can be read (then nothing is refused)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_fits(n: int, bytes_each: int, what: str, most: str, available: int | None = None):
    """Refuse ``n`` items of ``bytes_each`` when they need more than the available memory.

    ``what`` names the request ("10,000 draws for 2 countries"); ``most`` formats the largest
    count that fits (``most.format(k)``), the advice in the message.
    """
    free = available_bytes() if available is None else available
    if free is None:
        return
    need = n * bytes_each
    if need > free:
        raise CeaError(
            f"{what} would need about {_size(need)} of memory; {_size(free)} is available: "
            f"{most.format(max(0, free // bytes_each))}"
        )
