"""Property tests (hypothesis 6.27 API): parity, bounds, monotonicity, IV round trip."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from plimsoll.risk import bs, iv

spots = st.floats(1.0, 1e5)
moneyness = st.floats(0.25, 4.0)
taus = st.floats(1.0 / 365.0, 5.0)
vols = st.floats(0.01, 5.0)
rates = st.floats(-0.05, 0.3)
yields = st.floats(-0.05, 0.3)
SETTINGS = settings(max_examples=400, deadline=None)


@SETTINGS
@given(spots, moneyness, taus, vols, rates, yields)
def test_put_call_parity(s: float, m: float, t: float, v: float, r: float, q: float) -> None:
    k = s * m
    call = float(bs.price(s, k, t, v, r, q, True))
    put = float(bs.price(s, k, t, v, r, q, False))
    parity = s * math.exp(-q * t) - k * math.exp(-r * t)
    assert abs((call - put) - parity) <= 1e-12 * (s + k)
    # delta parity: call delta - put delta = exp(-q t)
    dc = float(bs.delta(s, k, t, v, r, q, True))
    dp = float(bs.delta(s, k, t, v, r, q, False))
    assert abs(dc - dp - math.exp(-q * t)) <= 1e-14


@SETTINGS
@given(spots, moneyness, taus, vols, rates, yields, st.booleans())
def test_price_within_no_arbitrage_bounds_and_increasing_in_vol(
    s: float, m: float, t: float, v: float, r: float, q: float, call: bool
) -> None:
    k = s * m
    p = bs.price(s, k, t, np.array([v, v * 1.05]), r, q, call)
    fwd, df = s * math.exp((r - q) * t), math.exp(-r * t)
    lower = df * max((fwd - k) if call else (k - fwd), 0.0)
    upper = df * (fwd if call else k)
    tol = 1e-12 * (s + k)
    assert lower - tol <= p[0] <= upper + tol
    assert p[1] >= p[0] - tol
    assert float(bs.vega(s, k, t, v, r, q)) >= 0.0
    assert float(bs.gamma(s, k, t, v, r, q)) >= 0.0


@SETTINGS
@given(spots, moneyness, taus, st.floats(0.02, 4.0), rates, yields, st.booleans())
def test_implied_vol_round_trip(
    s: float, m: float, t: float, v: float, r: float, q: float, call: bool
) -> None:
    k = s * m
    p = float(bs.price(s, k, t, v, r, q, call))
    vega = float(bs.vega(s, k, t, v, r, q))
    out = float(iv.implied_vol(p, s, k, t, r, q, call))
    # The solved vol always reproduces the price (to rounding of the price's terms) ...
    assert not math.isnan(out)
    again = float(bs.price(s, k, t, out, r, q, call))
    assert abs(again - p) <= 4e-15 * (s + k) + 1e-12 * p
    # ... and equals the input vol wherever the price pins it down.
    if p > 1e-10 * s and vega > 1e-2 * p:
        assert abs(out - v) < 1e-11


@SETTINGS
@given(spots, moneyness, taus, vols, rates, yields, st.booleans())
def test_black76_is_bsm_on_the_forward(
    s: float, m: float, t: float, v: float, r: float, q: float, call: bool
) -> None:
    k = s * m
    fwd = s * math.exp((r - q) * t)
    a = float(bs.black76_price(fwd, k, t, v, math.exp(-r * t), call))
    b = float(bs.price(s, k, t, v, r, q, call))
    assert abs(a - b) <= 1e-12 * (s + k)
