"""Implied volatility: QuantLib's solver, no-arbitrage bounds, round trips, input checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import QuantLib as ql

from plimsoll.errors import RiskInputError
from plimsoll.risk import bs, iv


def _quantlib_implied_vols(
    cases: list[tuple[float, int, float, float, float, bool]],
) -> list[float]:
    """QuantLib's EuropeanOption.impliedVolatility (Brent, accuracy 1e-14) per case."""
    today = ql.Date(15, ql.June, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot_q, r_q, q_q = ql.SimpleQuote(100.0), ql.SimpleQuote(0.0), ql.SimpleQuote(0.0)
    r_ts = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(r_q), dc))
    q_ts = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(q_q), dc))
    vol_ts = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.3, dc))
    process = ql.BlackScholesMertonProcess(ql.QuoteHandle(spot_q), q_ts, r_ts, vol_ts)
    out = []
    for strike, days, r, q, price, call in cases:
        r_q.setValue(r)
        q_q.setValue(q)
        kind = ql.Option.Call if call else ql.Option.Put
        opt = ql.EuropeanOption(
            ql.PlainVanillaPayoff(kind, strike), ql.EuropeanExercise(today + days)
        )
        out.append(opt.impliedVolatility(price, process, 1e-14, 1000, 1e-4, 5.0))
    return out


def test_implied_vol_matches_quantlib() -> None:
    cases, vols = [], []
    grid = itertools.product(
        (60.0, 85.0, 100.0, 120.0, 180.0), (7, 91, 365, 730), (0.15, 0.6, 1.5),
        ((0.0, 0.0), (0.05, 0.02)), (True, False),
    )  # fmt: skip
    for strike, days, vol, (r, q), call in grid:
        price = float(bs.price(100.0, strike, days / 365.0, vol, r, q, call))
        vega = float(bs.vega(100.0, strike, days / 365.0, vol, r, q))
        if price > 1e-6 and vega > 1e-3 * price:  # the vol is determined by the price
            cases.append((strike, days, r, q, price, call))
            vols.append(vol)
    assert len(cases) > 150
    want = np.array(_quantlib_implied_vols(cases))
    a = np.array(cases, dtype=np.float64)
    ours = iv.implied_vol(a[:, 4], 100.0, a[:, 0], a[:, 1] / 365.0, a[:, 2], a[:, 3],
                          a[:, 5].astype(bool))  # fmt: skip
    np.testing.assert_allclose(ours, want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours, vols, rtol=0, atol=1e-11)


def test_round_trip_over_a_wide_random_grid() -> None:
    rng = np.random.default_rng(11)
    n = 50_000
    s = 100.0
    k = s * np.exp(rng.uniform(np.log(0.3), np.log(3.0), n))
    t = rng.uniform(1 / 365, 3.0, n)
    v = np.exp(rng.uniform(np.log(0.02), np.log(4.0), n))
    r, q = rng.uniform(-0.02, 0.2, n), rng.uniform(0.0, 0.1, n)
    c = rng.random(n) < 0.5
    p = bs.price(s, k, t, v, r, q, c)
    out = iv.implied_vol(p, s, k, t, r, q, c, max_iter=20)
    assert not np.isnan(out).any()  # all converge within 20 iterations, none out of bounds
    again = bs.price(s, k, t, out, r, q, c)
    assert np.abs(again - p).max() <= 1e-14 * s * 2  # the price is reproduced to ~1 ulp of S
    vega = bs.vega(s, k, t, v, r, q)
    determined = (p > 1e-10 * s) & (vega >= 1e-2 * p)
    assert determined.mean() > 0.6
    assert np.abs(out - v)[determined].max() < 1e-12


def test_tiny_out_of_the_money_prices_still_solve() -> None:
    prices = np.array([1e-200, 1e-100, 1e-50, 1e-20, 1e-10, 1e-5])
    strike = 100.0 * np.exp(0.5)
    out = iv.implied_vol(prices, 100.0, strike, 1.0)
    assert np.all(np.diff(out) > 0)
    np.testing.assert_allclose(bs.price(100.0, strike, 1.0, out), prices, rtol=1e-9)


def test_prices_outside_no_arbitrage_bounds_give_nan() -> None:
    s, k, t, r, q = 100.0, 90.0, 0.5, 0.05, 0.01
    fwd, df = s * np.exp((r - q) * t), np.exp(-r * t)
    lower_call = df * (fwd - k)
    upper_call = s * np.exp(-q * t)
    prices = np.array([lower_call * 0.999, upper_call, upper_call * 1.01, -1.0, np.nan])
    assert np.isnan(iv.implied_vol(prices, s, k, t, r, q, True)).all()
    put_upper = k * df
    assert np.isnan(iv.implied_vol([put_upper, -0.01], s, k, t, r, q, False)).all()


def test_price_at_the_lower_bound_gives_zero_vol() -> None:
    s, k, t, r = 100.0, 90.0, 0.5, 0.05
    intrinsic = float(bs.price(s, k, t, 0.0, r))
    assert float(iv.implied_vol(intrinsic, s, k, t, r)) == 0.0
    assert float(iv.implied_vol(0.0, s, 120.0, t, r)) == 0.0  # worthless OTM call
    # below the bound by more than rounding noise: NaN
    assert np.isnan(iv.implied_vol(intrinsic - 1e-9, s, k, t, r))


def test_expired_options_have_no_implied_vol() -> None:
    assert np.isnan(iv.implied_vol(10.0, 100.0, 90.0, 0.0))


def test_black76_implied_vol_inverts_black76_price() -> None:
    f = np.array([80.0, 100.0, 125.0])
    p = bs.black76_price(f, 100.0, 0.75, 0.45, 0.97, [True, False, True])
    out = iv.implied_vol_black76(p, f, 100.0, 0.75, 0.97, [True, False, True])
    np.testing.assert_allclose(out, 0.45, rtol=0, atol=1e-13)


def test_shapes_broadcast() -> None:
    p = bs.price(100.0, np.array([[90.0], [110.0]]), np.array([0.5, 1.0]), 0.3)
    assert iv.implied_vol(p, 100.0, np.array([[90.0], [110.0]]), np.array([0.5, 1.0])).shape == (
        2,
        2,
    )
    assert iv.implied_vol(5.0, 100.0, 100.0, 1.0).shape == ()


@pytest.mark.parametrize(
    "kwargs",
    [{"strike": 0.0}, {"spot": -5.0}, {"tau_years": -1.0}, {"tol": 0.0}, {"max_iter": 0}],
)
def test_bad_inputs_raise(kwargs: dict[str, float]) -> None:
    args: dict[str, float] = {"price": 5.0, "spot": 100.0, "strike": 100.0, "tau_years": 1.0}
    args |= kwargs
    with pytest.raises(RiskInputError):
        iv.implied_vol(**args)  # type: ignore[arg-type]
