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
    assert by["naked short call"].cross_im == pytest.approx(300.0)  # 2000 x shortA
    assert by["covered call"].cross_im == pytest.approx(300.0 + 2000 * 0.1001)
    assert by["protective put"].cross_im == pytest.approx(2000 * 0.1001)
    assert by["short straddle"].cross_im == pytest.approx(600.0)
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
