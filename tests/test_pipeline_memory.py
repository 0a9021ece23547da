"""Runs too large for memory are refused before they start, in one line naming what fits
(cea.pipeline.memory); a country listed twice is refused, not silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

import cea.cli as cli
from cea.cli import main
from cea.errors import CeaError
from cea.pipeline import memory

INPUTS = Path(__file__).resolve().parents[1] / "inputs"


def test_check_fits_refuses_one_byte_over_and_names_what_fits():
    memory.check_fits(10, 100, "10 things", "at most {:,} things", available=1000)  # exactly fits
    with pytest.raises(CeaError) as err:
        memory.check_fits(10, 100, "10 things", "at most {:,} things", available=999)
    msg = str(err.value)
    assert msg == (
        "10 things would need about 1.0 kB of memory; 999 bytes is available: at most 9 things"
    )


def test_check_fits_refuses_nothing_when_memory_cannot_be_read(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.check_fits(10**15, 10**6, "a lot", "at most {:,}")


def test_available_bytes_is_positive_here():
    n = memory.available_bytes()
    assert n is None or n > 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["psa", "--country", "GB", "--draws", "1000000000000"], "--draws 1,000,000,000,000"),
        (["psa", "--countries", "all", "--draws", "200000000"], "14 countries"),
        (
            [
                "dsa",
                "--country",
                "GB",
                "--two-way",
                "hr_igrt_severe,c_ivig_per_g",
                "--grid",
                "100000",
            ],
            "two-way grid of 100,001 x 100,001 points",
        ),  # fmt: skip
    ],
)
def test_a_run_too_large_for_memory_is_one_line_exit_2_nothing_written(
    tmp_path, capsys, args, words
):
    out = tmp_path / "out"
    assert main([*args, "--inputs", str(INPUTS), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err
    assert "of memory" in err and "would fit" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("countries", ["GB,GB", "GB, gb", "DE,GB,DE"])
def test_compare_refuses_a_country_listed_twice(tmp_path, capsys, countries):
    out = tmp_path / "out"
    assert (
        main(["compare", "--countries", countries, "--inputs", str(INPUTS), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "listed twice" in err
    assert not out.exists()


def test_a_memory_error_the_checks_did_not_foresee_is_one_line_exit_2(monkeypatch, capsys):
    def boom(args):
        raise MemoryError

    monkeypatch.setitem(cli.COMMANDS, "check", boom)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "error: not enough memory for this run: use fewer draws, grid points or countries\n"
    )
