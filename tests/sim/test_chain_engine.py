"""The chain engine's entry points: ``plimsoll simulate --engine chain`` and its input checks.
(Its agreement with the fast engine is ``test_agreement.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plimsoll.cli import main
from plimsoll.sim import PopulationSpec, SimConfig, SimInputError, draw_population, scenario
from plimsoll.sim.chain import book_specs, run_chain


def test_simulate_engine_chain_writes_the_fast_engines_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["simulate", "--engine", "chain", "--scenario", "gap_down", "--steps", "8",
               "--accounts", "8", "--out", str(tmp_path / "r"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    head = json.loads(out.strip().splitlines()[-1])
    assert "chain engine" in head["title"]
    assert head["feedback all"]["insurance_left_usd"] > 0
    for f in ("summary.md", "headline.json", "series.csv", "price.png"):
        assert (tmp_path / "r" / f).stat().st_size > 0, f
    assert len((tmp_path / "r" / "series.csv").read_text().splitlines()) == 1 + 9


def test_chain_engine_refuses_options_and_portfolio_books() -> None:
    cfg = SimConfig()
    book = draw_population(PopulationSpec(n_accounts=50, p_options=0.5), cfg, seed=1)
    with pytest.raises(SimInputError, match="perps and collateral only"):
        run_chain(cfg, scenario("wick", cfg, 4), book)


def test_book_specs_deposit_the_opening_fee_on_top_of_the_books_cash() -> None:
    cfg = SimConfig()
    book = draw_population(PopulationSpec(n_accounts=20, p_options=0.0, p_portfolio=0.0), cfg,
                           seed=2)
    fee = 5 * 10**14  # 0.05% [wad]
    specs = book_specs(book, cfg, fee)
    for i, s in enumerate(specs):
        cash = sum(a for asset, a in s.deposits if asset == 0) / 1e6
        price = np.array([cfg.assets[m.asset].price for m in cfg.markets])
        opening = float((np.abs(book.sizes[i]) * price).sum()) * 5e-4
        assert cash == pytest.approx(book.cash[i] + opening, abs=2e-6)
        assert (s.isolated_market is not None) == bool(book.isolated[i])
        assert s.sub == (1 if book.isolated[i] else 0)
        assert len(s.trades) == int((book.sizes[i] != 0).sum())
