"""The capital-efficiency report: rows, regimes' relations, PNG and CLI."""

from __future__ import annotations

import json

import pytest

from plimsoll.capital import CapitalParams, capital_table, main, render_table, save_chart

NAMES = [
    "naked short call",
    "covered call",
    "protective put",
    "short straddle",
    "call spread",
    "calendar spread",
    "short call delta-hedged",
    "long call delta-hedged",
]


@pytest.fixture(scope="module")
def rows():
    return capital_table()


def test_rows_cover_the_strategies_with_consistent_figures(rows) -> None:
    assert [r.strategy for r in rows] == NAMES
    for r in rows:
        assert r.isolated_im == pytest.approx(r.cross_im)  # same per-position rules summed
        assert r.ratio == pytest.approx(r.portfolio_im / r.cross_im)
        assert r.cross_capital <= r.isolated_capital + 1e-9  # haircut longs carry the rest
        assert r.portfolio_capital >= 0 and r.portfolio_im > 0


def test_known_figures_of_the_defaults(rows) -> None:
    by = {r.strategy: r for r in rows}
    assert by["naked short call"].cross_im == pytest.approx(500.0)  # 2000 x shortA (ATM)
    # perp leg: 2000 x (imBase 0.1 + 1 x sizeSlope 0.00002)
    assert by["covered call"].cross_im == pytest.approx(500.0 + 2000 * 0.10002)
    assert by["protective put"].cross_im == pytest.approx(2000 * 0.10002)
    assert by["short straddle"].cross_im == pytest.approx(1000.0)
    # PM: hedged strategies need less than the naked short call and than cross standard
    for name in (
        "covered call",
        "short straddle",
        "call spread",
        "calendar spread",
        "short call delta-hedged",
    ):
        assert by[name].portfolio_im < by[name].cross_im


def test_params_are_passed_through() -> None:
    base = {r.strategy: r for r in capital_table()}
    tight = {r.strategy: r for r in capital_table(CapitalParams(spot_shock=0.10))}
    assert tight["covered call"].portfolio_im < base["covered call"].portfolio_im
    assert tight["covered call"].cross_im == base["covered call"].cross_im


def test_render_and_png(rows, tmp_path) -> None:
    text = render_table(rows)
    assert all(name in text for name in NAMES)
    out = tmp_path / "cap.png"
    save_chart(rows, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_cli_json_and_png(tmp_path, capsys) -> None:
    out = tmp_path / "c.png"
    assert main(["--json", "--png", str(out), "--set", "im_factor=1.3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["im_factor"] == 1.3 and len(doc["rows"]) == 8
    assert out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--set", "nope=1"],
        ["--set", "spot=abc"],
        ["--set", "spot=-5"],
        ["--bogus"],
        ["--set", "im_factor=0.9"],
        ["--png", "/nonexistent-dir/x.png"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(argv, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_report_defaults_are_the_deployed_parameters():
    from plimsoll import deploy
    from plimsoll.capital import CapitalParams

    p, w = CapitalParams(), 10**18
    m = deploy.DEFAULT_MARKETS[0]
    assert (p.im_base, p.size_slope, p.mm_factor) == (m.im_base / w, m.size_slope / w, m.mm_factor / w)
    o = deploy.DEFAULT_OPTIONS
    assert (p.spread, p.min_fee, p.short_a, p.short_b, p.option_mm_factor, p.long_haircut) == tuple(
        x / w for x in o[1:]
    )
    q = deploy.DEFAULT_PORTFOLIO
    assert (p.spot_shock, p.spot_points, p.vol_up, p.vol_down, p.vol_pow, p.max_vol_scale) == (
        q[0] / w, q[1], q[2] / w, q[3] / w, q[4] / w, q[5] / w
    )
    assert (p.min_vol, p.cont_perp, p.cont_option, p.im_factor) == tuple(x / w for x in q[6:])


def test_hedges_meet_the_capital_goal_with_deployed_parameters():
    from plimsoll.capital import capital_table

    rows = {r.strategy: r for r in capital_table()}
    for name in ("covered call", "short call delta-hedged"):
        assert rows[name].portfolio_im <= 0.5 * rows[name].cross_im, name
