"""The fast engine's margin and liquidation decisions are the contract's: checked against the
exact integer mirror ``plimsoll.margin`` and the portfolio mirror ``plimsoll.pm``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from plimsoll import pm
from plimsoll.margin import compute_margin
from plimsoll.sim import (
    FeedbackSpec,
    KeeperSpec,
    PopulationSpec,
    PricePaths,
    SimConfig,
    TraderSpec,
    book_to_state,
    draw_population,
)
from plimsoll.sim.engine import CAUSES, margin, simulate
from plimsoll.sim.population import Book

WAD = 10**18
CFG = SimConfig()


def _quantized(book: Book) -> Book:
    """The book rounded to what book_to_state encodes (9 decimals), so both sides see the
    same numbers."""
    q = lambda x: np.round(x * 1e9) / 1e9  # noqa: E731
    return replace(book, cash=q(book.cash), sizes=q(book.sizes),
                   open_notional=q(book.open_notional),
                   balances=np.round(book.balances * 1e8) / 1e8)


def _standard_book(n: int, seed: int) -> Book:
    spec = PopulationSpec(n_accounts=n, p_options=0.0, p_portfolio=0.0, leverage_median=8.0)
    return _quantized(draw_population(spec, CFG, seed=seed))


def _engine_margin(book: Book, prices: np.ndarray, s: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    m_asset = [m.asset for m in CFG.markets]
    c_asset = [c.asset for c in CFG.collateral]
    ones = np.ones(len(CFG.markets)) if s is None else s
    return margin(CFG, book.cash, book.balances.T, book.sizes.T, book.open_notional.T,
                  book.portfolio, prices[m_asset], prices[c_asset], ones, ones)


@pytest.mark.parametrize("drop", [0.0, 0.08, 0.2])
def test_standard_margin_matches_the_exact_mirror(drop: float) -> None:
    book = _standard_book(300, seed=drop.hex().__hash__() % 1000)
    prices = np.array([a.price for a in CFG.assets]) * np.array([1 - drop, 1 - drop, 1 - drop,
                                                                 1.0])
    exact = compute_margin(book_to_state(book, CFG, prices))
    got = _engine_margin(book, prices)
    for name in ("equity", "im", "mm"):
        ref = np.array(getattr(exact, name), dtype=float) / WAD
        np.testing.assert_allclose(getattr(got, name), ref, rtol=1e-9, atol=1e-6)
    flags = got.equity < got.mm
    margin_gap = np.abs(got.equity - got.mm) > 1e-6
    assert np.array_equal(flags[margin_gap], np.asarray(exact.liquidatable)[margin_gap])
    if drop >= 0.08:
        assert exact.liquidatable.sum() > 0  # the comparison covers liquidatable accounts


def test_vol_scalars_match_the_exact_mirror() -> None:
    book = _standard_book(200, seed=7)
    prices = np.array([a.price for a in CFG.assets]) * 0.9
    s = np.array([1.5, 2.0, 0.75])
    exact = compute_margin(book_to_state(book, CFG, prices, s_im=s, s_mm=s))
    got = _engine_margin(book, prices, s)
    np.testing.assert_allclose(got.mm, np.array(exact.mm, dtype=float) / WAD, rtol=1e-9)
    np.testing.assert_allclose(got.im, np.array(exact.im, dtype=float) / WAD, rtol=1e-9)


def test_portfolio_margin_perps_match_the_pm_mirror() -> None:
    book = _standard_book(100, seed=3)
    book = replace(book, portfolio=np.ones(100, dtype=bool))
    prices = np.array([a.price for a in CFG.assets]) * 0.95
    got = _engine_margin(book, prices)
    spot = [int(round(prices[m.asset] * 1e9)) * 10**9 for m in CFG.markets]
    market = pm.MarketData(
        spot=tuple(spot), iv=(WAD,) * 3, timestamp=0,
        size_slope=tuple(int(round(m.size_slope * 1e18)) for m in CFG.markets),
        mm_factor=tuple(int(round(m.mm_factor * 1e18)) for m in CFG.markets))
    from plimsoll.deploy import DEFAULT_PORTFOLIO

    sizes = np.vectorize(lambda v: int(round(v * 1e9)) * 10**9, otypes=[object])(book.sizes)
    ob = pm.OptionBook.from_positions([[] for _ in range(100)], sizes, [0] * 100)
    ref = pm.portfolio_margin(ob, market, pm.PortfolioConfig.from_wad_tuple(DEFAULT_PORTFOLIO))
    # portfolio_margin adds the size part (perp_size_margin) when the market carries slopes
    np.testing.assert_allclose(got.mm, ref.mm, rtol=1e-9)
    np.testing.assert_allclose(got.im, ref.im, rtol=1e-9)


def _one_step(book: Book, drop: float) -> PricePaths:
    p0 = np.array([a.price for a in CFG.assets])
    p1 = p0 * np.array([1 - drop, 1 - drop, 1 - drop, 1.0])
    return PricePaths(np.array([0.0, 60.0]), np.stack([p0, p1])[None], tuple(CFG.asset_names),
                      np.ones(2))


def test_engine_liquidates_exactly_the_accounts_the_mirror_flags() -> None:
    """One oracle update of -12%, keepers with room for everyone and no latency: the engine
    liquidates the accounts the exact mirror says are liquidatable at the new oracle price, and
    none other."""
    book = _standard_book(400, seed=11)
    cfg = replace(CFG, keeper=KeeperSpec(latency_blocks=0, max_per_block=10_000,
                                         gas_per_liquidation=1, min_profit=-1e18),
                  traders=TraderSpec(p_topup=0.0, p_reduce=0.0),
                  feedback=FeedbackSpec(False, False))
    cfg = replace(cfg, gas=replace(cfg.gas, spikes_per_day=0.0, spike_on_move=1.0))
    path = _one_step(book, 0.12)
    res = simulate(cfg, path, book, workers=1)
    exact = compute_margin(book_to_state(book, CFG, path.prices[0, 1]))
    n_exact = int(np.asarray(exact.liquidatable).sum())
    assert n_exact > 10
    assert res.liquidatable[0, 1] == n_exact
    assert res.liquidated[0, 1] == n_exact


def test_no_feedback_means_the_market_is_the_fundamental_path() -> None:
    book = _standard_book(200, seed=5)
    from plimsoll.sim import scenario

    cfg = replace(CFG, feedback=FeedbackSpec(False, False))
    res = simulate(cfg, scenario("black_thursday", cfg, n_steps=48), book, workers=1)
    np.testing.assert_array_equal(res.market, res.fundamental)
    assert res.bad_debt[0, -1, CAUSES.index("feedback")] == 0.0


def test_bad_debt_is_paid_by_insurance_then_lps_and_never_negative() -> None:
    book = draw_population(PopulationSpec(n_accounts=300, leverage_median=9.0), CFG, seed=2)
    from plimsoll.sim import scenario

    # Without the keeper's purchases of recovered collateral (they refill the fund within
    # the step, after the deficits: the step's figure would not show it emptied).
    cfg = replace(
        CFG,
        insurance=1_000.0,
        feedback=FeedbackSpec(True, True),
        keeper=replace(CFG.keeper, buy_recovered=False),
    )
    res = simulate(cfg, scenario("gap_down", cfg, n_steps=48), book, workers=1)
    cum = res.bad_debt[0].sum(-1)
    assert np.all(np.diff(cum) >= 0) and cum[-1] > 0
    assert np.all(res.bad_debt >= 0)
    assert res.insurance[0].min() >= 0
    assert res.insurance_exhausted[0]  # 1,000 USD cannot cover a -20% gap on this book
    assert res.recovered_sold[0, -1] == 0.0
    # With them, the forfeited collateral is sold back to the keeper and the fund refilled.
    cfg_on = replace(cfg, keeper=CFG.keeper)
    on = simulate(cfg_on, scenario("gap_down", cfg_on, n_steps=48), book, workers=1)
    assert on.recovered[0, -1] > 0 and on.recovered_sold[0, -1] > 0
    assert np.all(np.diff(on.recovered_sold[0]) >= 0)
    assert on.insurance[0, -1] > res.insurance[0, -1]
    assert on.insurance[0].min() >= 0
    # ... but it ran dry within the gap's step (the LPs paid the rest), and says so
    assert on.insurance_exhausted[0] and on.insurance_low[0].min() <= 1e-9
    assert np.all(on.insurance_low[0] <= on.insurance[0] + 1e-9)
