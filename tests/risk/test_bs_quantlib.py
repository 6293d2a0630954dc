"""Black-Scholes-Merton prices and greeks against QuantLib's AnalyticEuropeanEngine.

QuantLib is set up with flat continuously compounded curves and a constant Black vol, all on
Actual/365 (Fixed), and expiries a whole number of days after the evaluation date, so QuantLib's
time to expiry is exactly ``days / 365``: the same float we pass as ``tau_years``.

Conventions are QuantLib's own: vega per 1.00 vol, theta per year, rho per 1.00 rate (our
documented conventions), so values are compared directly.

Tolerance: ``|ours - ql| <= 1e-8 * |ql| + atol`` with an absolute floor ``atol = 1e-12 * S``
(spot 100, so 1e-10 currency units; the largest absolute difference measured on this grid is
~7e-12). The floor only matters for tiny values (deep out-of-the-money prices and their greeks,
below ~1e-6 of spot): there QuantLib's own normal CDF (``0.5 (1 + erf(z / sqrt 2))``, and an
asymptotic series below 1e-8) loses relative accuracy (up to ~1e-6 relative on this grid), while
scipy's ``ndtr`` does not: ``test_bs_mpmath.py`` checks those same tail prices against 50-digit
mpmath. Above 1e-6 of spot every value must meet the pure relative tolerance.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import QuantLib as ql

from plimsoll.risk import bs

SPOT = 100.0
MONEYNESS = (0.5, 0.7, 0.9, 1.0, 1.1, 1.4, 2.0)  # K / S
DAYS = (1, 7, 30, 91, 182, 365, 730)
VOLS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0)
RATES = ((0.0, 0.0), (0.05, 0.0), (0.05, 0.03), (-0.01, 0.02), (0.15, 0.08))  # (r, q)
RTOL = 1e-8
ATOL = 1e-12 * SPOT
FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho")


def _quantlib_grid() -> dict[str, np.ndarray]:
    today = ql.Date(15, ql.June, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot_q, r_q, q_q, vol_q = (ql.SimpleQuote(x) for x in (SPOT, 0.0, 0.0, 0.1))
    r_ts = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(r_q), dc))
    q_ts = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(q_q), dc))
    vol_ts = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol_q), dc)
    )
    engine = ql.AnalyticEuropeanEngine(
        ql.BlackScholesMertonProcess(ql.QuoteHandle(spot_q), q_ts, r_ts, vol_ts)
    )
    options = {}
    for m, days, call in itertools.product(MONEYNESS, DAYS, (True, False)):
        kind = ql.Option.Call if call else ql.Option.Put
        opt = ql.EuropeanOption(
            ql.PlainVanillaPayoff(kind, m * SPOT), ql.EuropeanExercise(today + days)
        )
        opt.setPricingEngine(engine)
        assert dc.yearFraction(today, today + days) == days / 365.0
        options[(m, days, call)] = opt

    rows: dict[str, list[Any]] = {k: [] for k in ("strike", "tau", "vol", "r", "q", "call")}
    rows.update({f: [] for f in FIELDS})
    for vol, (r, q) in itertools.product(VOLS, RATES):
        vol_q.setValue(vol)
        r_q.setValue(r)
        q_q.setValue(q)
        for (m, days, call), opt in options.items():
            for key, val in zip(
                ("strike", "tau", "vol", "r", "q", "call"),
                (m * SPOT, days / 365.0, vol, r, q, call),
                strict=True,
            ):
                rows[key].append(val)
            rows["price"].append(opt.NPV())
            rows["delta"].append(opt.delta())
            rows["gamma"].append(opt.gamma())
            rows["vega"].append(opt.vega())
            rows["theta"].append(opt.theta())
            rows["rho"].append(opt.rho())
    return {k: np.asarray(v) for k, v in rows.items()}


@pytest.fixture(scope="module")
def grid() -> dict[str, np.ndarray]:
    return _quantlib_grid()


def test_grid_covers_the_brief(grid: dict[str, np.ndarray]) -> None:
    assert grid["price"].size == len(MONEYNESS) * len(DAYS) * 2 * len(VOLS) * len(RATES)
    assert grid["tau"].min() == 1 / 365 and grid["tau"].max() == 2.0
    assert grid["vol"].min() == 0.1 and grid["vol"].max() == 3.0


@pytest.mark.parametrize("field", FIELDS)
def test_matches_quantlib(grid: dict[str, np.ndarray], field: str) -> None:
    ours = bs.greeks(
        SPOT, grid["strike"], grid["tau"], grid["vol"], grid["r"], grid["q"], grid["call"]
    )
    got = getattr(ours, field)
    want = grid[field]
    err = np.abs(got - want)
    bad = err > RTOL * np.abs(want) + ATOL
    assert not bad.any(), (
        f"{field}: {bad.sum()} of {bad.size} outside tolerance; worst at index "
        f"{int(np.argmax(err - RTOL * np.abs(want)))}"
    )
    # The floor must stay a floor: most of the grid meets the pure relative tolerance.
    big = np.abs(want) > 1e-6 * SPOT
    rel = err[big] / np.abs(want[big])
    assert big.mean() > 0.5
    assert rel.max() < RTOL, f"{field}: max relative error {rel.max():.3g} on non-tiny values"


def test_individual_greek_functions_equal_greeks(grid: dict[str, np.ndarray]) -> None:
    args = (SPOT, grid["strike"], grid["tau"], grid["vol"], grid["r"], grid["q"], grid["call"])
    g = bs.greeks(*args)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(bs, field)(*args), getattr(g, field))
