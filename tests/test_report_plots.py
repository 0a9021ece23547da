"""Figures: asserted on the matplotlib objects (labels, legend entries, colours, files), not on
pixels. Every figure is also written to disk (PNG and SVG) as the commands write it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.contour import ContourSet

from cea.cli import main
from cea.errors import InputFileError
from cea.io.load import load_inputs
from cea.io.workbook import load_inputs_xlsx
from cea.parameters.table import build_parameter_table
from cea.pipeline import dsa, psa, regional
from cea.report.plots import dsa as dsa_plots
from cea.report.plots import psa as psa_plots
from cea.report.plots import regional as regional_plots
from cea.report.plots.style import (
    STRATEGY_STYLES,
    Thousands,
    comparison_style,
    parameter_labels,
    strategy_style,
)

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
PP = ("primary_ivig", "preemptive_ivig")


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(INPUTS)


@pytest.fixture(scope="module")
def base(inputs):
    case, _ = dsa.prepare(inputs, "GB", comparison=PP)
    return case


@pytest.fixture(scope="module")
def labels(base):
    return {s.strategy: s.label for s in base.spec.strategies}


@pytest.fixture(scope="module")
def run2():
    """A small two-country PSA (the figures need tables, not precision)."""
    return psa.run_psa(INPUTS, ["GB", "US"], n_draws=40, seed=2)


def _hex(c) -> str:
    return to_hex(c, keep_alpha=False)


def _ticks(axis) -> list[str]:
    axis.figure.canvas.draw()
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def _legend(ax_or_fig) -> dict[str, object]:
    leg = ax_or_fig.get_legend() if hasattr(ax_or_fig, "get_legend") else ax_or_fig.legends[0]
    return {t.get_text(): h for t, h in zip(leg.get_texts(), leg.legend_handles, strict=True)}


def _written(png: Path) -> None:
    assert png.stat().st_size > 10_000
    svg = png.with_suffix(".svg")
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


# --------------------------------------------------------------------------- inputs


def test_every_parameter_and_price_has_a_label(inputs):
    assert (inputs.parameters.df["label"].str.strip() != "").all()
    for code, t in inputs.prices.items():
        assert (t.df["label"].str.strip() != "").all(), code
    # one label per price item across countries, so cross-country figures agree
    per_item = pd.concat(t.df[["item", "label"]] for t in inputs.prices.values())
    assert per_item.groupby("item")["label"].nunique().max() == 1


def test_label_with_a_control_character_is_refused_naming_file_row_column(tmp_path):
    folder = tmp_path / "inputs"
    shutil.copytree(INPUTS, folder)
    p = folder / "parameters.csv"
    lines = p.read_text().splitlines()
    lines[1] = lines[1].replace(",Age at bispecific start,", ",Age at\x07 start,")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as err:
        load_inputs(folder)
    msg = str(err.value)
    assert "parameters.csv" in msg and "row 2" in msg and "'label'" in msg
    assert "control character" in msg


def test_a_missing_label_falls_back_to_the_code(tmp_path):
    folder = tmp_path / "inputs"
    shutil.copytree(INPUTS, folder)
    df = pd.read_csv(folder / "parameters.csv", dtype=str, keep_default_na=False)
    df.loc[df["parameter"] == "p_igg_low_ever", "label"] = ""
    df.to_csv(folder / "parameters.csv", index=False)
    gb = folder / "prices" / "GB.csv"  # no label column at all in one price file
    pd.read_csv(gb, dtype=str, keep_default_na=False).drop(columns="label").to_csv(gb, index=False)
    names = parameter_labels(build_parameter_table(load_inputs(folder), "GB").df, 2024)
    assert names["p_igg_low_ever"] == "p_igg_low_ever (proportion)"
    assert names["c_ivig_per_g"] == "c_ivig_per_g (GBP 2024 per g)"
    assert names["hr_igrt_severe"] == "Hazard ratio of severe infection, IgRT vs none (ratio)"


def test_labels_survive_the_excel_template_round_trip(tmp_path, inputs):
    path = tmp_path / "t.xlsx"
    assert main(["template", "--out", str(path)]) == 0
    back = load_inputs_xlsx(path)
    assert back.parameters.df["label"].tolist() == inputs.parameters.df["label"].tolist()
    assert back.prices["JP"].df["label"].tolist() == inputs.prices["JP"].df["label"].tolist()


def test_parameter_labels_carry_the_unit_and_the_price_year(base):
    names = parameter_labels(base.ptable.df, base.country.price_year)
    assert names["p_igg_low_ever"] == "Probability IgG ever falls low (proportion)"
    assert names["c_ivig_per_g"] == "IVIG price (GBP 2024 per g)"
    assert names["q_scig_conversion"].startswith("SCIG to IVIG dose conversion factor")
    assert names["p_bsab_price_paid"] == "Bispecific price paid (share of list price)"


# --------------------------------------------------------------------------- style


def test_every_bundled_strategy_has_its_own_colour_and_marker(inputs):
    ids = inputs.strategies.df["strategy"].tolist()
    assert set(ids) <= set(STRATEGY_STYLES)
    pairs = [(strategy_style(s).colour, strategy_style(s).marker) for s in ids]
    assert len(set(pairs)) == len(pairs)
    assert len({c for c, _ in pairs}) == len(pairs)  # colours alone already differ


def test_an_unknown_strategy_gets_a_stable_style():
    a, b = strategy_style("my_new_strategy"), strategy_style("my_new_strategy")
    assert a == b and a.colour.startswith("#")
    assert comparison_style("primary_scig vs none") == type(a)(
        STRATEGY_STYLES["primary_scig"].colour, STRATEGY_STYLES["none"].marker
    )


def test_tick_labels_have_thousands_separators():
    f = Thousands()
    assert f.format_ticks([-25000.0, -5000.0, 0.0]) == ["-25,000", "-5,000", "0"]
    assert f.format_ticks([0.0, 5e5, 1e6, 2e6]) == ["0", "0.5M", "1M", "2M"]
    assert f.format_ticks([0.0, 0.25, 0.5]) == ["0", "0.25", "0.5"]


# --------------------------------------------------------------------------- DSA


@pytest.fixture(scope="module")
def one_way(base):
    ow = dsa.run_one_way(base)
    return ow, dsa.one_way_tables(ow, PP)


def test_tornado_rows_are_labels_with_units_and_ranges(one_way, base, tmp_path):
    _, tables = one_way
    names = parameter_labels(base.ptable.df, base.country.price_year)
    fig = dsa_plots.tornado_inmb(tables.tornado_inmb, tmp_path / "t.png", "title", 20, names)
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert any(
        r.startswith("Probability IgG ever falls low (proportion) [0.65 to 1]") for r in rows
    )
    assert any(r.startswith("IVIG price (GBP 2024 per g) [") for r in rows)
    assert not any(r.split(" ")[0] in names for r in rows)  # no row starts with a code
    assert "GBP 2024" in ax.get_xlabel()
    assert any("," in t for t in _ticks(ax.xaxis))
    _written(tmp_path / "t.png")
    fig = dsa_plots.tornado_icer(tables.tornado_icer, tmp_path / "i.png", "title", 20, names)
    assert fig.axes[0].get_yticklabels()[0].get_text().split(" [")[0] in names.values()
    _written(tmp_path / "i.png")


def _grid(inmb: np.ndarray) -> pd.DataFrame:
    x, y = np.meshgrid([0.2, 0.5, 1.0], [30.0, 40.0, 50.0])
    return pd.DataFrame(
        {
            "currency": "GBP",
            "price_year": 2024,
            "wtp_per_qaly": 20000.0,
            "comparison": "primary_ivig vs none",
            "hr_igrt_severe": x.ravel(),
            "c_ivig_per_g": y.ravel(),
            "is_base": [i == 4 for i in range(9)],
            "inmb": inmb.ravel(),
            "optimal_strategy": np.where(inmb.ravel() > 0, "primary_ivig", "none"),
        }
    )


def test_two_way_draws_the_inmb_zero_line_it_promises(tmp_path, base, labels):
    names = parameter_labels(base.ptable.df, 2024)
    p = ("hr_igrt_severe", "c_ivig_per_g")
    crossing = np.array([[3.0, 1.0, -1.0], [2.0, -1.0, -2.0], [1.0, -2.0, -3.0]]) * 1000
    fig = dsa_plots.two_way(_grid(crossing), p, {}, tmp_path / "a.png", "t", names, labels)
    a1, a2 = fig.axes[0], fig.axes[1]  # fig.axes[2] is the colour bar
    contours = [c for c in a1.get_children() if isinstance(c, ContourSet)]
    assert len(contours) == 1 and contours[0].levels.tolist() == [0.0]
    assert "black line: INMB = 0" in a1.get_title()
    assert a1.get_xlabel() == "Hazard ratio of severe infection, IgRT vs none (ratio)"
    assert a1.get_ylabel() == "IVIG price (GBP 2024 per g)"
    legend = _legend(a2)
    assert set(legend) == {"Primary IVIG", "No IgRT"}
    assert _hex(legend["Primary IVIG"].get_facecolor()) == strategy_style("primary_ivig").colour
    _written(tmp_path / "a.png")
    _nothing_cut_off(fig)
    fig = dsa_plots.two_way(_grid(-np.abs(crossing) - 1), p, {}, tmp_path / "b.png", "t", names)
    _nothing_cut_off(fig)
    a1 = fig.axes[0]
    assert not [c for c in a1.get_children() if isinstance(c, ContourSet)]
    assert "INMB < 0 on the whole grid: no INMB = 0 line" in a1.get_title()


def test_threshold_and_scenarios_name_labels_and_money(base, tmp_path, labels):
    th = dsa.find_threshold(base, "c_ivig_per_g", ("primary_ivig", "none"))
    row = {
        "parameter": th.parameter,
        "unit": "GBP per g",
        "base_value": th.base_value,
        "dsa_low": th.dsa_range[0],
        "dsa_high": th.dsa_range[1],
        "status": "found" if th.found else "no crossing",
        "threshold": th.threshold,
        "all_thresholds": ";".join(f"{r:.10g}" for r in th.roots),
        "message": th.message,
    }
    scan = th.scan.assign(currency="GBP", price_year=2024, wtp_per_qaly=20000.0)
    names = parameter_labels(base.ptable.df, 2024)
    fig = dsa_plots.threshold(scan, row, tmp_path / "th.png", "t", names)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "IVIG price (GBP 2024 per g)"
    assert ax.get_ylabel() == "INMB (GBP 2024)"
    _written(tmp_path / "th.png")
    _nothing_cut_off(fig)
    comps = pd.DataFrame(
        {
            "currency": "GBP",
            "price_year": 2024,
            "wtp_per_qaly": 20000.0,
            "scenario": ["base", "base", "x", "x"],
            "comparison": ["primary_ivig vs none", "primary_scig vs none"] * 2,
            "in_base_case": True,
            "inmb": [-1000.0, -2000.0, 500.0, -100.0],
        }
    )
    fig = dsa_plots.scenarios(comps, tmp_path / "sc.png", "t", labels)
    legend = _legend(fig.axes[0])
    assert list(legend) == ["Primary IVIG vs No IgRT", "Primary SCIG vs No IgRT"]
    assert _hex(legend["Primary SCIG vs No IgRT"].get_facecolor()[0]) == "#e69f00"
    assert "GBP 2024" in fig.axes[0].get_xlabel()
    _nothing_cut_off(fig)


# --------------------------------------------------------------------------- PSA


def _strategy_colours_ce_plane(fig) -> dict[str, str]:
    ax = fig.axes[0]
    return {
        c.get_label(): _hex(c.get_facecolor()[0])
        for c in ax.collections
        if isinstance(c, PathCollection) and not c.get_label().startswith("_")
    }


def _strategy_colours_lines(ax) -> dict[str, str]:
    return {
        ln.get_label(): _hex(ln.get_color())
        for ln in ax.get_lines()
        if not ln.get_label().startswith("_") and not ln.get_label().startswith("CEAF")
    }


def test_a_strategy_has_the_same_colour_in_every_psa_figure(run2, tmp_path):
    c = run2.countries["GB"]
    labels = {s.strategy: s.label for s in c.spec.strategies}
    expected = {labels[s]: strategy_style(s).colour for s in c.spec.strategy_names}
    figs = psa_plots.plot_all(c.tables, c.ptable.country, tmp_path, labels)
    by_name = dict(zip(["convergence", "evppi", "ce_plane", "ceac", "evpi"], figs, strict=True))
    plane = _strategy_colours_ce_plane(by_name["ce_plane"])
    ref = labels[c.tables.ce_plane["reference"].iloc[0]]
    assert plane == {k: v for k, v in expected.items() if k != ref}
    for ax in by_name["ceac"].axes:
        assert _strategy_colours_lines(ax) == expected
    assert _strategy_colours_lines(by_name["convergence"].axes[1]) == expected
    # the same strategy in a run of a different subset keeps its colour
    assert strategy_style("primary_scig").colour == expected["Primary SCIG"]
    for name in ("convergence", "evppi", "ce_plane", "ceac", "evpi"):
        _written(tmp_path / f"{name}.png")


def test_psa_money_axes_name_currency_and_price_year(run2, tmp_path):
    c = run2.countries["GB"]
    figs = psa_plots.plot_all(c.tables, c.ptable.country, tmp_path, None)
    conv, evppi, plane, ceac, evpi = figs
    assert "(GBP 2024)" in plane.axes[0].get_ylabel()
    assert all("(GBP 2024)" in ax.get_xlabel() for ax in ceac.axes)
    assert "(GBP 2024)" in evpi.axes[0].get_ylabel() and "(GBP 2024)" in evpi.axes[0].get_xlabel()
    assert "(GBP 2024)" in evppi.axes[0].get_xlabel() and "(GBP 2024)" in evppi.axes[1].get_ylabel()
    assert "(GBP 2024)" in conv.axes[0].get_ylabel()
    assert any("," in t for t in _ticks(plane.axes[0].yaxis))


def test_evppi_notes_stay_inside_their_panel(run2, tmp_path):
    c = run2.countries["GB"]
    t = c.tables
    long = t.evppi.copy()
    long["status"] = "refused: " + "a very long message from the estimator " * 4
    fig = psa_plots.plot_evppi(long, t.evppi_by_wtp, t.evpi, c.ptable.country, tmp_path / "e.png")
    ax = fig.axes[0]
    fig.canvas.draw()
    right = ax.get_window_extent().x1
    notes = [tx for tx in ax.texts if tx.get_text()]
    assert len(notes) == len(long)
    assert all(tx.get_window_extent().x1 <= right for tx in notes)


def test_cross_country_psa_figures(run2, tmp_path):
    table = psa.regional_table(run2)
    first = run2.countries["GB"]
    labels = {s.strategy: s.label for s in first.spec.strategies}
    p_ce, ceacs = psa_plots.plot_countries(
        table,
        {k: c.tables.ceac for k, c in run2.countries.items()},
        {k: c.ptable.country for k, c in run2.countries.items()},
        first.spec.strategy_names,
        labels,
        tmp_path,
    )
    ax = p_ce.axes[0]
    legend = _legend(ax)
    assert list(legend) == [labels[s] for s in first.spec.strategy_names]
    for s in first.spec.strategy_names:
        assert _hex(legend[labels[s]].get_facecolor()) == strategy_style(s).colour
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows[0].startswith("GB  (GBP 20,000 per QALY") and rows[1].startswith("US  (USD")
    # stacked shares: the bars of a country add up to its P(CE) of every strategy, i.e. 1
    widths = {}
    for patch in ax.patches:
        widths.setdefault(round(patch.get_y(), 6), []).append(patch.get_width())
    assert all(sum(w) == pytest.approx(1.0) for w in widths.values())
    shown = [a for a in ceacs.axes if a.get_visible() and a.has_data()]
    assert [a.get_title() for a in shown] == [
        "United Kingdom: GBP 20,000 per QALY",
        "United States: USD 100,000 per QALY",
    ]
    for a in shown:
        assert _strategy_colours_lines(a) == {
            labels[s]: strategy_style(s).colour for s in first.spec.strategy_names
        }
    assert {t.get_text() for t in ceacs.legends[0].get_texts()} >= set(labels.values())
    _written(tmp_path / "countries_p_ce.png")
    _written(tmp_path / "countries_ceac.png")


# --------------------------------------------------------------------------- regional


@pytest.fixture(scope="module")
def compared(inputs):
    return regional.compare_countries(inputs, ["GB", "US", "IN"])


def test_net_benefit_heatmap_is_inmb_over_wtp_per_strategy(compared, tmp_path, labels):
    res = compared
    no_igrt = {"none"}
    fig = regional_plots.plot_net_benefit_heatmap(
        res.strategies, res.regional, labels, no_igrt, tmp_path / "h.png"
    )
    ax = fig.axes[0]
    shown = [s for s in labels if s in set(res.strategies["strategy"]) and s not in no_igrt]
    assert [t.get_text() for t in ax.get_xticklabels()] == [labels[s] for s in shown]
    img = ax.get_images()[0].get_array()
    st = res.strategies.set_index(["country", "strategy"])["nmb_lcu"]
    wtp = res.regional.drop_duplicates("country").set_index("country")["wtp_lcu"]
    for i, c in enumerate(["GB", "US", "IN"]):
        for j, s in enumerate(shown):
            assert img[i, j] == pytest.approx((st[c, s] - st[c, "none"]) / wtp[c], rel=1e-12)
    assert len(set(np.round(np.asarray(img), 6).ravel())) > 1  # not 70 identical cells
    _written(tmp_path / "h.png")


def test_regional_figures_use_strategy_styles_and_price_year(compared, tmp_path, labels):
    res = compared
    files = regional_plots.plot_all(res.regional, res.strategies, labels, {"none"}, tmp_path)
    assert files == [
        "icer_vs_wtp.png",
        "icer_vs_wtp.svg",
        "threshold_price.png",
        "threshold_price.svg",
        "net_benefit_heatmap.png",
        "net_benefit_heatmap.svg",
    ]
    fig = regional_plots.plot_icer_vs_wtp(res.regional, {"none"}, tmp_path / "i.png", labels)
    legend = _legend(fig.axes[0])
    handle = legend["Primary SCIG vs No IgRT"]
    assert _hex(handle.get_color()) == strategy_style("primary_scig").colour
    assert handle.get_marker() == strategy_style("none").marker
    fig = regional_plots.plot_threshold_prices(res.regional, tmp_path / "t.png", labels)
    assert "2024 prices" in fig.axes[-1].get_xlabel() or any(
        "2024 prices" in a.get_xlabel() for a in fig.axes
    )


# --------------------------------------------------------------------------- layout


def _nothing_cut_off(fig) -> None:
    """Everything the figure draws (axes, ticks, labels, titles, legends, texts) lies inside
    it (checked here on the PSA, cross-country, regional and tornado figures, and on the
    two-way, threshold and scenario figures by their own tests): :func:`cea.report.plots.style.save` lays it out once and writes the whole figure, with
    no tight bounding box to rescue what falls outside."""
    fig.draw_without_rendering()
    drawn = fig.get_tightbbox()  # inches
    width, height = fig.get_size_inches()
    tol = 0.01
    assert drawn.x0 >= -tol and drawn.y0 >= -tol, (fig.get_suptitle(), drawn)
    assert drawn.x1 <= width + tol and drawn.y1 <= height + tol, (fig.get_suptitle(), drawn)


def test_nothing_is_cut_off_at_the_edges_of_any_figure(run2, compared, one_way, base, tmp_path):
    c = run2.countries["GB"]
    labels = {s.strategy: s.label for s in c.spec.strategies}
    figs = psa_plots.plot_all(c.tables, c.ptable.country, tmp_path, labels)
    figs += psa_plots.plot_countries(
        psa.regional_table(run2),
        {k: c.tables.ceac for k, c in run2.countries.items()},
        {k: c.ptable.country for k, c in run2.countries.items()},
        c.spec.strategy_names,
        labels,
        tmp_path,
    )
    res = compared
    figs.append(regional_plots.plot_icer_vs_wtp(res.regional, {"none"}, tmp_path / "i.png", labels))
    figs.append(regional_plots.plot_threshold_prices(res.regional, tmp_path / "t.png", labels))
    figs.append(
        regional_plots.plot_net_benefit_heatmap(
            res.strategies, res.regional, labels, {"none"}, tmp_path / "h.png"
        )
    )
    _, tables = one_way
    names = parameter_labels(base.ptable.df, base.country.price_year)
    figs.append(
        dsa_plots.tornado_inmb(tables.tornado_inmb, tmp_path / "ti.png", "title", 20, names)
    )
    figs.append(
        dsa_plots.tornado_icer(tables.tornado_icer, tmp_path / "tc.png", "title", 20, names)
    )
    bad = []
    for fig in figs:
        try:
            _nothing_cut_off(fig)
        except AssertionError as e:
            bad.append(str(e)[:300])
    assert not bad, "\n".join(bad)


def test_a_rerun_writes_the_same_svg_bytes(tmp_path):
    # two processes: Matplotlib's ids are random per process unless their salt is fixed
    code = (
        "import sys\n"
        "from matplotlib.figure import Figure\n"
        "from cea.report.plots.style import save\n"
        "fig = Figure(figsize=(4, 3))\n"
        "ax = fig.subplots()\n"
        "ax.plot([0, 1, 2], [1, 0, 2], marker='o', label='a')\n"
        "ax.set_title('title')\n"
        "ax.legend()\n"
        "save(fig, sys.argv[1])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for name in ("a.png", "b.png"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], env=env, check=True,
                       timeout=120)  # fmt: skip
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_a_character_the_font_lacks_is_one_note_not_a_warning_per_figure(
    tmp_path, capsys, monkeypatch
):
    # a strategy label with an emoji (or a script DejaVu Sans lacks) printed Matplotlib's
    # "Glyph ... missing from font(s)" UserWarning, two source lines each, for every figure
    import warnings

    from cea.report.plots import style

    monkeypatch.setattr(style, "_NOTED_GLYPHS", set())  # one note a process: this one's

    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    strategies = root / "strategies.csv"
    strategies.write_text(strategies.read_text().replace("Primary IVIG", "Primary \U0001f489 IVIG"))
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["dsa", "--inputs", str(root), "--comparison", "primary_ivig:none",
                     "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []
    assert err.count("\n") == 1 and err.startswith("cea: note: "), err
    assert "\U0001f489" in err and "U+1F489" in err
    assert (out / "tornado_inmb.png").is_file()


def test_each_missing_character_is_named_once_whichever_figure_first_lacks_it(capsys, monkeypatch):
    # a character first missing in a later figure was never named (only the first figure's were)
    import warnings

    from cea.report.plots import style

    monkeypatch.setattr(style, "_NOTED_GLYPHS", set())

    def missing(*chars):
        return [
            warnings.WarningMessage(
                UserWarning(f"Glyph {ord(c)} (\\N{{...}}) missing from font(s) DejaVu Sans."),
                UserWarning, "x.py", 1,
            )
            for c in chars
        ]  # fmt: skip

    style._note_missing_glyphs(missing("\U0001f489"))
    style._note_missing_glyphs(missing("\U0001f489", "\u4e2d"))
    style._note_missing_glyphs(missing("\u4e2d", "\U0001f489"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert "U+1F489" in lines[0] and "U+4E2D" not in lines[0]
    assert "U+4E2D" in lines[1] and "U+1F489" not in lines[1]
