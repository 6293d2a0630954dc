"""Properties of portfolio margin: hedges lower it, MM bounds every witness, negation and
netting, homogeneity, subadditivity, the IM / MM ratio."""

from __future__ import annotations

import numpy as np
import pytest

from plimsoll.pm import (
    MarketData,
    OptionBook,
    portfolio_margin,
    scenario_index,
    witness_loss,
)
from tests.pm.conftest import ETH, NOW, PCFG, call, put, random_book, single, w


def _pm(book: OptionBook, market: MarketData = ETH):
    return portfolio_margin(book, market, PCFG)


def test_covered_call_needs_less_than_the_naked_short_call() -> None:
    naked = _pm(single([(call(2000), -w(1))]))
    covered = _pm(single([(call(2000), -w(1))], perp=w(1)))
    assert covered.im[0] < naked.im[0] and covered.mm[0] < naked.mm[0]


def test_protective_put_needs_less_than_the_long_perp_alone() -> None:
    perp = _pm(single([], perp=w(1)))
    protected = _pm(single([(put(2000), w(1))], perp=w(1)))
    assert protected.im[0] < perp.im[0]


def test_delta_hedge_lowers_the_short_call() -> None:
    naked = _pm(single([(call(2000), -w(1))]))
    hedged = _pm(single([(call(2000), -w(1))], perp=w(0.55)))
    assert hedged.mm[0] < naked.mm[0]


def test_long_perp_alone_is_the_largest_down_shock() -> None:
    pm = _pm(single([], perp=w(2)))
    assert pm.worst[0, 0] == scenario_index(0, 0, 9)  # -18 %, first among the vol copies
    assert pm.worst_loss[0, 0] == pytest.approx(2 * 2000 * 0.18, rel=1e-12)
    assert pm.mm[0] == pytest.approx(720 + 0.005 * 2 * 2000, rel=1e-12)
    assert pm.im[0] == pytest.approx(1.2 * pm.mm[0], rel=1e-12)


@pytest.mark.parametrize("seed", [21, 22])
def test_mm_bounds_every_witness_and_equals_it_at_the_worst(seed: int) -> None:
    rb = random_book(seed, n_accounts=80)
    pm = portfolio_margin(rb.book, rb.market, PCFG)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        ks = rng.integers(0, PCFG.n_scenarios, (rb.book.n_accounts, rb.market.n_markets))
        lw = witness_loss(rb.book, rb.market, PCFG, ks)
        assert (lw <= pm.mm * (1 + 1e-12) + 1e-9).all()
    at_worst = witness_loss(rb.book, rb.market, PCFG, np.maximum(pm.worst, 0))
    np.testing.assert_allclose(at_worst, pm.mm, rtol=1e-12, atol=1e-9)
    # the witness int of the worst scenarios names the same ones
    for a in range(5):
        bits = pm.witness(a)
        ks = [(bits >> (8 * m)) & 0xFF for m in range(rb.market.n_markets)]
        one = OptionBook.from_positions([rb.book.positions(a)], [list(rb.book.perp_sizes[a])], [0])
        assert witness_loss(one, rb.market, PCFG, ks)[0] == pytest.approx(pm.mm[a], rel=1e-12)


def _negated(book: OptionBook) -> OptionBook:
    return OptionBook(
        book.series, book.series_index, -book.sizes, -book.perp_sizes, book.other_equity
    )


def _scaled(book: OptionBook, c: int) -> OptionBook:
    return OptionBook(
        book.series, book.series_index, c * book.sizes, c * book.perp_sizes, book.other_equity
    )


def _merged(a: OptionBook, b: OptionBook) -> OptionBook:
    """Account i of the result holds account i of a and account i of b (same series table)."""
    assert a.series == b.series
    return OptionBook(
        a.series,
        np.concatenate([a.series_index, b.series_index], axis=1),
        np.concatenate([a.sizes, b.sizes], axis=1),
        a.perp_sizes + b.perp_sizes,
        a.other_equity,
    )


def test_negation_flips_every_scenario_loss() -> None:
    rb = random_book(31)
    pos = portfolio_margin(rb.book, rb.market, PCFG)
    neg = portfolio_margin(_negated(rb.book), rb.market, PCFG)
    np.testing.assert_allclose(neg.grid.losses, -pos.grid.losses, rtol=0, atol=1e-9)
    np.testing.assert_allclose(neg.value, -pos.value, rtol=1e-12, atol=1e-9)
    held = pos.grid.held
    np.testing.assert_allclose(
        neg.worst_loss[held], -pos.grid.losses.min(axis=2)[held], rtol=1e-12, atol=1e-9
    )


def test_a_portfolio_with_its_negation_needs_no_margin() -> None:
    rb = random_book(32)
    both = portfolio_margin(_merged(rb.book, _negated(rb.book)), rb.market, PCFG)
    scale = max(1.0, float(np.abs(portfolio_margin(rb.book, rb.market, PCFG).mm).max()))
    assert np.abs(both.mm).max() <= 1e-9 * scale
    assert np.abs(both.value).max() <= 1e-9 * scale


def test_margin_is_positively_homogeneous() -> None:
    rb = random_book(33)
    one = portfolio_margin(rb.book, rb.market, PCFG)
    three = portfolio_margin(_scaled(rb.book, 3), rb.market, PCFG)
    np.testing.assert_allclose(three.mm, 3 * one.mm, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(three.im, 3 * one.im, rtol=1e-12, atol=1e-9)


def test_margin_is_subadditive() -> None:
    a = random_book(34)
    shuffled = np.random.default_rng(0).permutation(a.book.n_accounts)
    b = OptionBook(
        a.book.series,
        a.book.series_index[shuffled],
        a.book.sizes[shuffled],
        a.book.perp_sizes[shuffled],
        a.book.other_equity,
    )
    ma = portfolio_margin(a.book, a.market, PCFG).mm
    mb = portfolio_margin(b, a.market, PCFG).mm
    mab = portfolio_margin(_merged(a.book, b), a.market, PCFG).mm
    assert (mab <= (ma + mb) * (1 + 1e-12) + 1e-9).all()


def test_im_is_mm_times_im_factor_and_the_scalar_ratio_per_market() -> None:
    mkt = MarketData(
        spot=(w(2000), w(50)),
        iv=(w(0.8), w(1.1)),
        timestamp=NOW,
        im_scalar=(w(1.5), w(1.0)),
        mm_scalar=(w(1.2), w(1.0)),
    )
    book = OptionBook.from_positions(
        [
            [(call(2000), -w(1))],
            [(put(50, m=1), -w(10))],
            [(call(2000), -w(1)), (put(50, m=1), -w(10))],
        ],
        [[0, 0], [0, 0], [0, 0]],
        [0, 0, 0],
    )
    pm = portfolio_margin(book, mkt, PCFG)
    assert pm.im[0] == pytest.approx(pm.mm[0] * 1.2 * 1.5 / 1.2, rel=1e-12)
    assert pm.im[1] == pytest.approx(pm.mm[1] * 1.2, rel=1e-12)
    assert pm.mm[2] == pytest.approx(pm.mm[0] + pm.mm[1], rel=1e-12)
    assert pm.im[2] == pytest.approx(pm.im[0] + pm.im[1], rel=1e-12)
    assert list(pm.worst[1]) == [-1, pm.worst[1, 1]] and pm.worst[1, 1] >= 0


def test_settled_options_carry_no_scenario_risk_but_unsettled_expired_ones_do() -> None:
    settled = call(1900, days=-1)
    settled = type(settled)(0, True, settled.expiry, settled.strike, w(1950))
    unsettled = call(1900, days=-1)
    pm = _pm(
        OptionBook.from_positions([[(settled, -w(1))], [(unsettled, -w(1))]], [[0], [0]], [0, 0])
    )
    assert pm.worst_loss[0, 0] == 0.0
    assert pm.value[0] == pytest.approx(-50.0)
    assert pm.value[1] == pytest.approx(-100.0)
    assert pm.worst_loss[1, 0] == pytest.approx(2000 * 0.18, rel=1e-12)  # intrinsic moves 1:1
    assert pm.mm[0] == pytest.approx(0.01 * 2000)  # the net-short contingency remains


def test_vol_scale_is_one_from_30_days_and_capped_below() -> None:
    """A long option's worst vol-down loss grows as tau shrinks below 30 days (the scale)."""
    from plimsoll.pm import _vol_scale

    taus = np.array([-5, 0, 1, 7 * 86_400, 15 * 86_400, 30 * 86_400, 60 * 86_400])
    got = _vol_scale(PCFG, taus)
    want = [2.0, 2.0, 2.0, min((30 / 7) ** 0.5, 2.0), 2.0**0.5, 1.0, 1.0]
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_largest_shock_is_capped_at_95_percent() -> None:
    wild = MarketData(spot=(w(2000),), iv=(w(0.8),), timestamp=NOW, mm_scalar=(w(6.0),))
    pm = portfolio_margin(single([], perp=w(1)), wild, PCFG)  # 0.18 x 6 = 1.08 -> 0.95
    assert pm.worst_loss[0, 0] == pytest.approx(2000 * 0.95, rel=1e-12)
