"""Black-Scholes-Merton / Black-76: published values, limits, conventions and input checks."""

from __future__ import annotations

import doctest
import warnings

import mpmath  # type: ignore[import-untyped]
import numpy as np
import pytest

import plimsoll.risk
from plimsoll.errors import PlimsollError, RiskInputError
from plimsoll.risk import bs, ewma, iv, var


def test_hull_example_15_6_call_and_put() -> None:
    # Hull, Options, Futures and Other Derivatives (8th ed.), Example 15.6: c = 4.76, p = 0.81.
    call = bs.price(42.0, 40.0, 0.5, 0.2, rate=0.10)
    put = bs.price(42.0, 40.0, 0.5, 0.2, rate=0.10, is_call=False)
    assert round(float(call), 2) == 4.76
    assert round(float(put), 2) == 0.81


def test_hull_chapter_19_greeks_of_the_20_week_call() -> None:
    # Hull (8th ed.) Examples 19.1-19.7: S=49, K=50, r=5 %, sigma=20 %, T=20 weeks (0.3846).
    # Published: price 2.40, delta 0.522, theta -4.31 per year, gamma 0.066, vega 12.1 per
    # 1.00 vol, rho 8.91 per 1.00 rate.
    g = bs.greeks(49.0, 50.0, 0.3846, 0.2, rate=0.05)
    assert round(float(g.price), 2) == 2.40
    assert round(float(g.delta), 3) == 0.522
    assert round(float(g.theta), 2) == -4.31
    assert round(float(g.gamma), 3) == 0.066
    assert round(float(g.vega), 1) == 12.1
    assert round(float(g.rho), 2) == 8.91


def test_haug_merton_1973_example_with_yield() -> None:
    # Haug, The Complete Guide to Option Pricing Formulas (2nd ed.), 1.1.2: put on an index,
    # S=100, K=95, T=0.5, r=10 %, q=5 %, sigma=20 % -> 2.4648.
    assert round(float(bs.price(100.0, 95.0, 0.5, 0.2, 0.10, 0.05, False)), 4) == 2.4648


def test_haug_black76_example() -> None:
    # Haug (2nd ed.) 1.1.3: option on a futures, F=19, K=19, T=0.75, r=10 %, sigma=28 %:
    # call = put = 1.7011.
    disc = np.exp(-0.10 * 0.75)
    call = bs.black76_price(19.0, 19.0, 0.75, 0.28, disc)
    put = bs.black76_price(19.0, 19.0, 0.75, 0.28, disc, is_call=False)
    assert round(float(call), 4) == 1.7011
    assert round(float(put), 4) == 1.7011


def test_black76_on_the_forward_equals_bsm() -> None:
    rng = np.random.default_rng(7)
    s, k = 100.0, rng.uniform(50, 200, 500)
    t, v = rng.uniform(0.01, 2, 500), rng.uniform(0.1, 3, 500)
    r, q = rng.uniform(-0.01, 0.2, 500), rng.uniform(0, 0.1, 500)
    c = rng.random(500) < 0.5
    fwd = s * np.exp((r - q) * t)
    np.testing.assert_allclose(
        bs.black76_price(fwd, k, t, v, np.exp(-r * t), c),
        bs.price(s, k, t, v, r, q, c),
        rtol=1e-12,
        atol=1e-13,
    )


@pytest.mark.parametrize("call", [True, False])
def test_greeks_match_central_differences_of_the_price(call: bool) -> None:
    # Independent of any library: bump-and-reprice (theta per year, vega and rho per 1.00).
    s, k, t, v, r, q = 100.0, np.array([80.0, 100.0, 125.0]), 0.75, 0.6, 0.04, 0.01
    g = bs.greeks(s, k, t, v, r, q, call)
    h = 1e-4

    def p(spot: float = s, tau: float = t, vol: float = v, rate: float = r) -> np.ndarray:
        return bs.price(spot, k, tau, vol, rate, q, call)

    np.testing.assert_allclose(g.delta, (p(spot=s + h) - p(spot=s - h)) / (2 * h), rtol=1e-7)
    gamma_fd = (p(spot=s + 0.01) - 2 * p() + p(spot=s - 0.01)) / 1e-4
    np.testing.assert_allclose(g.gamma, gamma_fd, rtol=1e-5)
    np.testing.assert_allclose(g.vega, (p(vol=v + h) - p(vol=v - h)) / (2 * h), rtol=1e-7)
    np.testing.assert_allclose(g.theta, -(p(tau=t + h) - p(tau=t - h)) / (2 * h), rtol=1e-7)
    np.testing.assert_allclose(g.rho, (p(rate=r + h) - p(rate=r - h)) / (2 * h), rtol=1e-7)


def test_deep_tail_prices_match_50_digit_mpmath() -> None:
    # Where QuantLib's CDF loses relative accuracy (see test_bs_quantlib.py), ours must not.
    mpmath.mp.dps = 50
    cases = [  # (K, T, vol, r, q, call): prices from ~1e-5 down to ~1e-40
        (200.0, 30 / 365, 0.5, 0.0, 0.0, True),
        (200.0, 7 / 365, 0.5, 0.05, 0.0, True),
        (50.0, 7 / 365, 0.6, 0.05, 0.02, False),
        (150.0, 1 / 365, 0.9, 0.0, 0.0, True),
        (70.0, 91 / 365, 0.1, 0.03, 0.0, False),
    ]
    for kk, tt, vv, rr, qq, cc in cases:
        got = float(bs.price(100.0, kk, tt, vv, rr, qq, cc))
        sm, km, tm, vm, rm, qm = (mpmath.mpf(x) for x in (100.0, kk, tt, vv, rr, qq))
        sd = vm * mpmath.sqrt(tm)
        d1 = (mpmath.log(sm / km) + (rm - qm) * tm) / sd + sd / 2
        sign = 1 if cc else -1
        want = sign * (
            sm * mpmath.exp(-qm * tm) * mpmath.ncdf(sign * d1)
            - km * mpmath.exp(-rm * tm) * mpmath.ncdf(sign * (d1 - sd))
        )
        assert 0 < want < 1e-4
        assert abs(got - want) <= 1e-11 * want, (kk, tt, vv, got, float(want))


def test_expiry_and_zero_vol_give_intrinsic_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            k = np.array([90.0, 100.0, 110.0])
            at_expiry = bs.greeks(100.0, k, 0.0, 0.5, 0.05, 0.0, True)
            zero_vol = bs.greeks(100.0, k, 1.0, 0.0, 0.05, 0.01, False)
            tiny = bs.greeks(100.0, k, 1e-300, 1e-300)
    np.testing.assert_array_equal(at_expiry.price, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(at_expiry.delta, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(at_expiry.gamma, [0.0, np.inf, 0.0])
    np.testing.assert_array_equal(at_expiry.vega, [0.0, 0.0, 0.0])
    # theta at expiry: the carry term -r K for the ITM call, -inf at the money, 0 OTM
    np.testing.assert_array_equal(at_expiry.theta, [-0.05 * 90.0, -np.inf, 0.0])
    fwd, df = 100.0 * np.exp(0.04), np.exp(-0.05)
    np.testing.assert_allclose(zero_vol.price, df * np.maximum(k - fwd, 0.0), rtol=1e-14)
    np.testing.assert_allclose(zero_vol.delta, [0.0, 0.0, -np.exp(-0.01)], rtol=1e-15)
    assert np.all(zero_vol.gamma == 0.0) and np.all(zero_vol.vega == 0.0)
    np.testing.assert_allclose(tiny.price, [10.0, 0.0, 0.0], atol=1e-12)
    assert np.all(np.isfinite(tiny.delta))


def test_price_converges_to_the_limit_as_vol_shrinks() -> None:
    vols = np.array([1e-2, 1e-4, 1e-8, 0.0])
    p = bs.price(100.0, 100.0, 0.5, vols, 0.02)
    limit = 100.0 - 100.0 * np.exp(-0.01)
    assert abs(p[0] - limit) > 1e-6  # not yet at the limit at 1 % vol
    np.testing.assert_allclose(p[1:], limit, rtol=1e-14)


def test_broadcasting_shapes() -> None:
    spots = np.array([90.0, 100.0, 110.0])[:, None]
    strikes = np.array([95.0, 105.0])[None, :]
    g = bs.greeks(spots, strikes, 0.5, 0.4, 0.0, 0.0, np.array([True, False]))
    for arr in g:
        assert arr.shape == (3, 2)
    assert bs.price(100.0, 100.0, 1.0, 0.2).shape == ()
    assert isinstance(bs.delta(100.0, 100.0, 1.0, 0.2), np.ndarray)


def test_put_call_parity_on_a_grid() -> None:
    s, k = 100.0, np.linspace(40, 250, 50)[:, None]
    t, v = np.array([1 / 365, 0.25, 2.0])[None, :], 0.8
    c = bs.price(s, k, t, v, 0.05, 0.02, True)
    p = bs.price(s, k, t, v, 0.05, 0.02, False)
    parity = s * np.exp(-0.02 * t) - k * np.exp(-0.05 * t)
    np.testing.assert_allclose(c - p, parity, atol=1e-12 * s)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spot": 0.0}, "spot"),
        ({"spot": -1.0}, "spot"),
        ({"strike": 0.0}, "strike"),
        ({"tau_years": -0.1}, "tau_years"),
        ({"vol": -0.2}, "vol"),
        ({"vol": float("nan")}, "vol"),
        ({"rate": float("inf")}, "rate"),
        ({"spot": [1.0, 2.0], "strike": [1.0, 2.0, 3.0]}, "broadcast"),
        ({"is_call": "yes"}, "is_call"),
        ({"is_call": 2}, "is_call"),
    ],
)
def test_bad_inputs_raise_risk_input_error(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"spot": 100.0, "strike": 100.0, "tau_years": 1.0, "vol": 0.2}
    args |= kwargs
    for fn in (bs.price, bs.greeks, bs.delta, bs.gamma, bs.vega, bs.theta, bs.rho):
        with pytest.raises(RiskInputError, match=message) as info:
            fn(**args)  # type: ignore[arg-type]
        assert isinstance(info.value, PlimsollError) and isinstance(info.value, ValueError)


def test_black76_rejects_bad_discount() -> None:
    with pytest.raises(RiskInputError, match="discount"):
        bs.black76_price(100.0, 100.0, 1.0, 0.2, 0.0)


@pytest.mark.parametrize("module", [bs, iv, var, ewma, plimsoll.risk])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0
    if module is not plimsoll.risk:
        assert result.attempted > 0
