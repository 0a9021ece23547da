"""The PSA's files (per-draw Parquet or CSV, tables, figures, run.json) and terminal summary."""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from cea.analysis import voi
from cea.io.output import OutputDir
from cea.io.provenance import dumps, run_json
from cea.pipeline.base import describe
from cea.pipeline.decision import WITHOUT_BSAB_LABEL, psa_without_bsab
from cea.pipeline.psa import CountryPsa, PsaRun, psa_conventions, regional_table
from cea.report.files import FORMULA_STARTS, write_csv
from cea.report.plots.psa import plot_all, plot_countries

#: gzip level of draws.csv.gz / outcomes.csv.gz: 1 is several times faster than 9 for
#: about 10-20% larger files. mtime 0 makes the bytes reproducible.
GZIP_LEVEL = 1

#: Formats of the two per-draw files (``--per-draw``): Parquet (the default: typed columns,
#: about 6x faster to write than compressed CSV, read by pandas, R's arrow, DuckDB and Excel's
#: Power Query) or gzip-compressed CSV (any tool).
PER_DRAW_FORMATS = ("parquet", "csv")
PER_DRAW_SUFFIX = {"parquet": ".parquet", "csv": ".csv.gz"}

#: Rows of the draws file formatted at a time (bounds the text held in memory).
DRAW_ROWS = 20_000

#: Characters that make a text cell need quoting in CSV (csv.QUOTE_MINIMAL).
_QUOTED = (",", '"', "\n", "\r")


def _plain_text(values: Iterable) -> bool:
    """Every value is text that pandas writes as it is: not empty, no character that needs
    quoting, nothing a spreadsheet would read as a formula (:func:`write_csv` changes those)."""
    return all(
        isinstance(v, str) and v and not v.startswith(FORMULA_STARTS)
        and not any(ch in v for ch in _QUOTED)
        for v in values
    )  # fmt: skip


def csv_text(df: pd.DataFrame, header: bool = True) -> str:
    """``df`` as the CSV text :func:`write_csv` writes (``index=False``, ``lineterminator="\\n"``),
    about twice as fast for tables of numbers: a float64 is written as Python's shortest
    repr (what pandas writes when no float format is given), an integer or a boolean as
    ``str``. Tables with anything else (non-finite numbers, text that needs quoting or
    neutralising, other types) go through pandas; tests compare the two texts."""
    cells = []
    for name in df.columns:
        col = df[name]
        kind = col.dtype.kind
        if col.dtype == np.float64:
            v = col.to_numpy()
            if not np.isfinite(v).all():
                return _pandas_text(df, header)
            cells.append(list(map(repr, v.tolist())))
        elif kind in "iub" and isinstance(col.dtype, np.dtype):
            cells.append(list(map(str, col.tolist())))
        elif kind == "O" and _plain_text(set(col.tolist())):
            cells.append(col.tolist())
        else:
            return _pandas_text(df, header)
    if not _plain_text(str(c) for c in df.columns) or len(df) == 0:
        return _pandas_text(df, header)
    body = "\n".join(map(",".join, zip(*cells, strict=True))) + "\n"
    return ",".join(map(str, df.columns)) + "\n" + body if header else body


def _pandas_text(df: pd.DataFrame, header: bool) -> str:
    buf = StringIO()
    write_csv(df, buf, lineterminator="\n", header=header)
    return buf.getvalue()


def write_csv_gz(blocks: Iterable[pd.DataFrame], path: Path) -> None:
    """Compressed CSV of the row blocks ``blocks`` (one table, its header once) with
    reproducible bytes (no timestamp in the gzip header). Each block is formatted while the
    one before is compressed in a second thread (zlib runs without the interpreter's lock),
    so only two blocks' text is ever in memory."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename=path.stem, mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL,
                      mtime=0) as gz,
        ThreadPoolExecutor(1, thread_name_prefix="cea-gzip") as pool,
    ):  # fmt: skip
        pending = None
        for i, block in enumerate(blocks):
            data = csv_text(block, header=i == 0).encode()
            if pending is not None:
                pending.result()
            pending = pool.submit(gz.write, data)
        if pending is not None:
            pending.result()


def write_parquet(blocks: Iterable[pd.DataFrame], path: Path) -> None:
    """One Parquet file (zstd) of the row blocks ``blocks``, a row group each, so only one
    block is ever in memory. Columns keep their types (float64 exactly, text as text); the
    same table and library versions give the same bytes."""
    import pyarrow as pa  # here: only this writer needs it
    import pyarrow.parquet as pq

    writer = None
    try:
        for block in blocks:
            table = pa.Table.from_pandas(block, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def write_per_draw(blocks: Iterable[pd.DataFrame], folder: Path, name: str, fmt: str) -> None:
    """``folder / name`` plus the format's suffix (:data:`PER_DRAW_SUFFIX`)."""
    path = folder / f"{name}{PER_DRAW_SUFFIX[fmt]}"
    (write_parquet if fmt == "parquet" else write_csv_gz)(blocks, path)


def write_country(
    c: CountryPsa, psa: PsaRun, folder: Path, command: str, per_draw: str = "parquet"
) -> None:
    """Every file of one country's PSA into ``folder``: per-draw outcomes and draws (in the
    ``per_draw`` format of :data:`PER_DRAW_FORMATS`), the tables, the figures and run.json."""
    folder.mkdir(parents=True, exist_ok=True)
    write_per_draw(c.run.store.frames(), folder, "outcomes", per_draw)
    write_per_draw(_draw_blocks(c), folder, "draws", per_draw)
    t = c.tables
    write_csv(t.summary, folder / "summary.csv")
    write_csv(t.incremental_means, folder / "incremental_means.csv")
    write_csv(t.ceac, folder / "ceac.csv")
    write_csv(t.evpi, folder / "evpi.csv")
    if len(t.evppi):  # empty when the run left the EVPPI out
        write_csv(t.evppi, folder / "evppi.csv")
        write_csv(t.evppi_by_wtp, folder / "evppi_by_wtp.csv")
    write_csv(t.convergence, folder / "convergence.csv")
    write_csv(c.ptable.df, folder / "parameters.csv")
    plot_all(
        t, c.ptable.country, folder / "figures", {s.strategy: s.label for s in c.spec.strategies}
    )
    seconds = {k: v for k, v in psa.seconds.items() if k.endswith(c.code) or k == "total"}
    extra = {
        "analysis": "psa",
        "psa": {**psa_conventions(psa), "headline": t.headline, "seconds": seconds},
    }
    meta = run_json(command, {**describe(c.base, seed=psa.seed), **extra}, c.base.inputs.hashes)
    (folder / "run.json").write_text(dumps(meta))


def _draw_blocks(c: CountryPsa) -> Iterable[pd.DataFrame]:
    """The draws file in blocks of :data:`DRAW_ROWS`: the draw, every parameter, then the
    calibrated values per year."""
    for lo in range(0, len(c.draws), DRAW_ROWS):
        block = c.draws.iloc[lo : lo + DRAW_ROWS].copy()
        for name, col in c.run.calibrated.items():
            block[f"calibrated_{name}_per_year"] = col.to_numpy()[lo : lo + DRAW_ROWS]
        yield block.reset_index()


def default_run_name(codes: Sequence[str], n_draws: int, all_countries: bool = False) -> str:
    who = "all" if all_countries else "-".join(codes)
    return f"psa_{who}_{n_draws}"


def write_outputs(
    psa: PsaRun, target: Path, command: str, force: bool = False, per_draw: str = "parquet"
) -> None:
    """outputs/<run>/: per-country files (in <code>/ subfolders when several countries)."""
    with OutputDir(target, force=force) as tmp:
        if len(psa.countries) == 1:
            (c,) = psa.countries.values()
            write_country(c, psa, tmp, command, per_draw)
            return
        for code, c in psa.countries.items():
            write_country(c, psa, tmp / code, command, per_draw)
        table = regional_table(psa)
        write_csv(table, tmp / "countries.csv")
        first = next(iter(psa.countries.values()))
        plot_countries(
            table,
            {code: c.tables.ceac for code, c in psa.countries.items()},
            {code: c.ptable.country for code, c in psa.countries.items()},
            first.spec.strategy_names,
            {s.strategy: s.label for s in first.spec.strategies},
            tmp / "figures",
        )
        sections = {
            "analysis": "psa",
            "countries": list(psa.countries),
            "scenario": psa.scenario.name,
            "psa": psa_conventions(psa),
            "seconds": psa.seconds,
        }
        (tmp / "run.json").write_text(dumps(run_json(command, sections, psa.inputs.hashes)))


def _share(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else "n/a"


def _money(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "n/a"


def evppi_words(r, cur: str, n_draws: int) -> str:
    """One EVPPI row (evppi.csv) in words: the value and its standard error, then what to read
    from it."""
    status = str(r["status"])
    if not status.startswith("ok"):
        return status
    v, se = r["evppi_per_patient"], r["se_per_patient"]
    value = f"{cur} {_money(v):>9}" + (f" +- {_money(se)}" if se > 0 else "")
    if r["method"] == "evpi":
        return (
            f"{value}  = the EVPI, by definition (the model is deterministic given its parameters)"
        )
    if status != "ok":  # capped: the standard error is that of the regression's estimate
        return (
            f"{cur} {_money(v):>9}  ({_share(r['share_of_evpi'])} of EVPI): the regression gave "
            f"{cur} {_money(r['estimate_per_patient'])} +- {_money(se)}, above the EVPI, which no "
            "group can exceed; capped there (the excess is estimation error)"
        )
    if r["distinguishable_from_zero"]:
        return f"{value}  ({_share(r['share_of_evpi'])} of EVPI)"
    if not se > 0:
        return (
            f"{value}  given these parameters alone, the expected net benefit never favours "
            "another strategy at these draws"
        )
    need = r["draws_needed"]
    more = (
        f"; about {int(need):,} draws would tell an EVPPI of "
        f"{cur} {_money(r['draws_needed_evppi_per_patient'])} from 0"
        if pd.notna(need)
        else ""
    )
    return f"{value}  cannot be told apart from 0 at {n_draws:,} draws{more}"


def draw_share(p: float) -> str:
    """A share of draws in words that never rounds a few draws away: "over 99.5%" rather than
    "100%" when some draws disagree (they are what the EVPI is made of)."""
    if 0.995 <= p < 1:
        return "over 99.5%"
    if 0 < p < 0.005:
        return "under 0.5%"
    return f"{p:.0%}"


def _without_bsab_line(c: CountryPsa, cur: str) -> str:
    """The PSA's decision with the bispecific's costs excluded, beside the base view."""
    if not c.spec.include_bsab_costs:
        return f"This run has {WITHOUT_BSAB_LABEL}."
    wtp = c.ptable.country.wtp_per_qaly
    run = c.run
    optimal, p = psa_without_bsab(run.cost, run.per_draw("cost_bsab"), run.qaly,
                                  list(c.spec.strategy_names), wtp)  # fmt: skip
    return (
        f"With {WITHOUT_BSAB_LABEL}: at {cur} {wtp:,.0f} per QALY the cost-effective strategy is "
        f"{optimal}, cost-effective in {draw_share(p[optimal])} of the draws."
    )


def summary_text(c: CountryPsa) -> str:
    """A readable summary of one country's PSA for the terminal."""
    t, h, country = c.tables, c.tables.headline, c.ptable.country
    cur = country.currency
    s = t.summary
    lines = [
        f"PSA {country.name} ({country.code}) | {h['n_draws']:,} draws | {cur} {country.price_year} | "
        f"WTP {cur} {h['wtp']:,.0f} per QALY",
        "",
        f"discounted cost ({cur}) and QALYs; P(CE): probability cost-effective at the WTP; "
        "PSA-det: PSA mean against the deterministic result",
        f"{'strategy':<18}{'mean cost':>12}{'95% interval':>24}{'QALY':>8}{'95% interval':>16}"
        f"{'P(CE)':>7}{'cost PSA-det':>14}{'QALY PSA-det':>14}",
    ]
    for name in c.spec.strategy_names:
        r = s[(s["kind"] == "strategy") & (s["name"] == name)].set_index("measure")
        cost_iv = f"{r.loc['cost', 'interval_low']:,.0f} to {r.loc['cost', 'interval_high']:,.0f}"
        qaly_iv = f"{r.loc['qaly', 'interval_low']:.3f} to {r.loc['qaly', 'interval_high']:.3f}"
        lines.append(
            f"{name:<18}{r.loc['cost', 'psa_mean']:>12,.0f}{cost_iv:>24}{r.loc['qaly', 'psa_mean']:>8.3f}{qaly_iv:>16}"
            f"{r.loc['p_cost_effective', 'psa_mean']:>7.2f}"
            f"{r.loc['cost', 'relative_difference']:>13.2%} {r.loc['qaly', 'relative_difference']:>13.2%}"
        )
    comps = s[(s["kind"] == "comparison") & (s["measure"] == "inmb")]
    if not comps.empty:
        lines += ["", f"INMB at WTP ({cur}), mean [95% interval], P(INMB > 0):"]
        for _, r in comps.iterrows():
            p = s[(s["name"] == r["name"]) & (s["measure"] == "p_inmb_positive")]["psa_mean"].iloc[
                0
            ]
            lines.append(
                f"  {r['name']:<36}{r['psa_mean']:>12,.0f} [{r['interval_low']:,.0f} to {r['interval_high']:,.0f}]  {p:.2f}"
            )
    pop = h["population_eligible_annual"]
    lines += [
        "",
        f"At {cur} {h['wtp']:,.0f} per QALY the cost-effective strategy is "
        f"{h['optimal_strategy']} (highest mean net monetary benefit over the draws; costs and "
        f"QALYs discounted), cost-effective in "
        f"{draw_share(h['p_cost_effective'][h['optimal_strategy']])} of the draws.",
        _without_bsab_line(c, cur),
        f"EVPI per patient: {cur} {_money(h['evpi_per_patient'])}; population ({_money(pop) if pop else 'n/a'} a year, "
        f"{h['decision_horizon_years']:g} years at {h['population_discount_rate']:.1%}): {cur} {_money(h['evpi_population'])}",
    ]
    if t.evppi.empty:
        return "\n".join([*lines, "EVPPI: not computed in this run (--no-evppi)."])
    lines.append(
        "EVPPI per patient by parameter group, the value of resolving that group's uncertainty "
        f"alone (+- one standard error; told apart from 0 above {voi.RESOLVE_Z:g} standard errors):"
    )
    n = h["n_draws"]
    for _, r in t.evppi.iterrows():
        lines.append(f"  {r['group']:<16}{evppi_words(r, cur, n)}")
    return "\n".join(lines)
