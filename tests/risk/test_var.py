"""VaR / ES: order-statistic convention, analytic normal values, MC convergence, revaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from plimsoll.errors import RiskInputError
from plimsoll.risk import bs, var
from plimsoll.risk.var import OptionPositions, Portfolio

PNL_10 = np.array([3.0, -7.0, 1.5, -2.0, 12.0, -11.0, 0.5, -4.0, 6.0, -1.0])
# losses sorted ascending: -12, -6, -3, -1.5, -0.5, 1, 2, 4, 7, 11


def test_historical_var_is_the_ceil_n_alpha_order_statistic() -> None:
    m = var.empirical_var_es(PNL_10, 0.9)  # n a = 9 -> l_(9) = 7; ES = mean of worst 1
    assert float(m.var) == 7.0 and float(m.es) == 11.0
    m = var.empirical_var_es(PNL_10, 0.8)  # n a = 8 -> l_(8) = 4; ES = (7 + 11) / 2
    assert float(m.var) == 4.0 and float(m.es) == 9.0
    m = var.empirical_var_es(PNL_10, 0.75)  # n a = 7.5 -> k = 8, ES = (7 + 11 + 0.5 * 4) / 2.5
    assert float(m.var) == 4.0 and float(m.es) == pytest.approx(8.0, abs=1e-12)
    m = var.empirical_var_es(PNL_10, 0.99)  # n a = 9.9 -> k = 10: the worst loss for both
    assert float(m.var) == 11.0 and float(m.es) == pytest.approx(11.0, abs=1e-12)


def test_historical_var_handles_floating_n_alpha() -> None:
    # 0.95 * 20 and 0.99 * 100 are not exact in binary floating point; k must still be 19, 99
    pnl = -np.arange(1.0, 21.0)
    assert float(var.empirical_var_es(pnl, 0.95).var) == 19.0
    assert float(var.empirical_var_es(-np.arange(1.0, 101.0), 0.99).var) == 99.0


def test_historical_var_columns_are_independent_portfolios() -> None:
    rng = np.random.default_rng(3)
    pnl = rng.normal(size=(500, 3))
    m = var.empirical_var_es(pnl, 0.99)
    assert m.var.shape == (3,)
    for j in range(3):
        one = var.empirical_var_es(pnl[:, j], 0.99)
        assert float(one.var) == m.var[j] and float(one.es) == m.es[j]
    assert np.all(m.es >= m.var)


def test_normal_var_es_match_the_analytic_formulas() -> None:
    for a in (0.9, 0.975, 0.99, 0.999):
        m = var.normal_var_es(mean=5.0, std=20.0, confidence=a)
        z = norm.ppf(a)
        assert float(m.var) == pytest.approx(-5.0 + 20.0 * z, rel=1e-13)
        assert float(m.es) == pytest.approx(-5.0 + 20.0 * norm.pdf(z) / (1 - a), rel=1e-13)


def test_empirical_var_es_of_normal_pnl_converge_to_the_analytic_values() -> None:
    rng = np.random.default_rng(2026)
    n, a, mu, sd = 2_000_000, 0.99, 1.0, 10.0
    m = var.empirical_var_es(rng.normal(mu, sd, n), a)
    exact = var.normal_var_es(mu, sd, a)
    # standard error of the a-quantile: sqrt(a (1 - a) / n) / pdf(z) * sd ~ 0.0083 here
    se = math.sqrt(a * (1 - a) / n) / norm.pdf(norm.ppf(a)) * sd
    assert abs(float(m.var) - float(exact.var)) < 5 * se
    assert abs(float(m.es) - float(exact.es)) < 10 * se


def test_delta_normal_var_with_correlation_and_horizon() -> None:
    e = np.array([1e6, -5e5])
    vols = np.array([0.8, 0.6])
    corr = np.array([[1.0, 0.7], [0.7, 1.0]])
    m = var.delta_normal_var_es(e, vols, corr, 0.99, horizon_days=10)
    sd = math.sqrt(10 / 365) * math.sqrt(
        (e[0] * vols[0]) ** 2 + (e[1] * vols[1]) ** 2 + 2 * 0.7 * e[0] * vols[0] * e[1] * vols[1]
    )
    assert float(m.var) == pytest.approx(sd * norm.ppf(0.99), rel=1e-12)
    one_day = var.delta_normal_var_es(e, vols, corr, 0.99, horizon_days=1)
    assert float(m.var) == pytest.approx(float(one_day.var) * math.sqrt(10), rel=1e-12)


def test_monte_carlo_var_converges_to_delta_normal_for_a_linear_portfolio() -> None:
    spot = np.array([100.0, 2000.0, 1.0])
    size = np.array([3000.0, -100.0, 2e5])  # exposures 3e5, -2e5, 2e5
    vols = np.array([0.9, 0.7, 1.2])
    corr = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    pf = Portfolio.of(spot, size)
    a, n, h = 0.99, 400_000, 5.0
    rng = np.random.default_rng(42)
    mc = var.monte_carlo_var_es(spot, pf.pnl_fn(), vols, corr, rng, a, h, n, model="normal")
    exact = var.delta_normal_var_es(pf.delta_exposures(), vols, corr, a, h)
    sd = float(exact.var) / norm.ppf(a)
    se = math.sqrt(a * (1 - a) / n) / norm.pdf(norm.ppf(a)) * sd
    assert abs(float(mc.var) - float(exact.var)) < 5 * se  # ~0.3 % of VaR
    assert abs(float(mc.es) - float(exact.es)) < 10 * se


def test_monte_carlo_is_reproducible_and_gbm_is_a_martingale() -> None:
    vols, corr = [0.8, 0.5], [[1.0, -0.2], [-0.2, 1.0]]
    r1 = var.simulate_log_returns(vols, corr, 1000, np.random.default_rng(1), 7)
    r2 = var.simulate_log_returns(vols, corr, 1000, np.random.default_rng(1), 7)
    np.testing.assert_array_equal(r1, r2)
    big = var.simulate_log_returns(vols, corr, 1_000_000, np.random.default_rng(9), 30)
    h = 30 / 365
    np.testing.assert_allclose(np.exp(big).mean(axis=0), 1.0, atol=4e-3)  # E[S_h] = S_0
    np.testing.assert_allclose(big.std(axis=0), np.array(vols) * math.sqrt(h), rtol=3e-3)
    np.testing.assert_allclose(np.asarray(np.corrcoef(big.T))[0, 1], -0.2, atol=3e-3)


def test_historical_var_from_prices_revalues_the_portfolio() -> None:
    prices = np.array([100.0, 102.0, 99.0, 101.0, 95.0, 96.0, 100.0])
    pf = Portfolio.of([100.0], [-2.0])  # short 2 units
    m = var.historical_var_es(prices, pf.pnl_fn(), confidence=0.8, horizon_days=1)
    rets = np.log(prices[1:] / prices[:-1])
    pnl = -2.0 * (100.0 * np.exp(rets) - 100.0)
    losses = np.sort(-pnl)  # k = ceil(6 * 0.8) = 5
    assert float(m.var) == pytest.approx(losses[4], rel=1e-14)
    assert float(m.es) == pytest.approx((losses[5] + (5 - 4.8) * losses[4]) / 1.2, rel=1e-14)
    two_day = var.historical_scenarios(prices, 2)
    np.testing.assert_allclose(two_day[:, 0], np.log(prices[2:] / prices[:-2]), rtol=1e-15)


def test_portfolio_value_prices_options_with_bs_and_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opts = OptionPositions.of(
        underlying=[0, 1, 1],
        size=[10.0, -5.0, 2.0],
        strike=[100.0, 2000.0, 1800.0],
        expiry_years=[0.25, 0.1, 0.5],
        vol=[0.8, 0.6, 0.65],
        is_call=[True, False, True],
    )
    pf = Portfolio.of([100.0, 2000.0], [1.0, -0.5], opts, rate=0.03)
    rng = np.random.default_rng(0)
    spots = np.array([100.0, 2000.0]) * np.exp(rng.normal(0, 0.1, (1000, 2)))
    want = spots @ np.array([1.0, -0.5])
    for i, (u, sz, k, t, v, c) in enumerate(
        zip([0, 1, 1], [10.0, -5.0, 2.0], [100.0, 2000.0, 1800.0], [0.15, 0.0, 0.4],
            [0.8, 0.6, 0.65], [True, False, True], strict=True)
    ):  # fmt: skip
        assert opts.underlying[i] == u
        want = want + sz * bs.price(spots[:, u], k, t, v, 0.03, 0.0, c)
    monkeypatch.setattr(var, "_CELLS_PER_CHUNK", 7)  # force many chunks
    # Tolerance from the error analysis, not from one machine: the code sums with BLAS (its
    # order depends on the CPU's kernel, e.g. AVX-512) and numpy's SIMD exp/log may differ by a
    # few ulps between array shapes. Each term of the sum is off by at most a few ulps of its
    # own scale (|spot x perp| for a perp, |size| x (S + K) for an option, whose price is a
    # difference of two such products), so the sum is off by at most ~(terms + ulps) x eps x
    # the sum of those scales: 64 eps of it holds on every kernel (seen: 1.4e-14 relative on
    # AVX-512) and is still ~1e-13 of the values, far below any modelling error.
    scale = np.abs(spots) @ np.array([1.0, 0.5])
    for u, sz, k in zip([0, 1, 1], [10.0, -5.0, 2.0], [100.0, 2000.0, 1800.0], strict=True):
        scale = scale + abs(sz) * (spots[:, u] + k)
    tol = 64 * np.finfo(float).eps * scale
    got = pf.value(spots, elapsed_years=0.1)
    assert np.all(np.abs(got - want) <= tol)
    base = pf.value(np.array([[100.0, 2000.0]]))[0]
    assert np.all(np.abs(pf.pnl(spots, 0.1) - (want - base)) <= 2 * tol + 64 * np.finfo(float).eps * abs(base))


def test_delta_hedged_option_pnl_is_half_gamma_move_squared() -> None:
    s0, k, t, v = 100.0, 100.0, 0.5, 0.6
    opts = OptionPositions.of([0], [1.0], [k], [t], [v], [True])
    d = float(bs.delta(s0, k, t, v))
    g = float(bs.gamma(s0, k, t, v))
    pf = Portfolio.of([s0], [-d], opts)
    assert abs(float(pf.delta_exposures()[0])) < 1e-12
    moves = np.array([[99.0], [99.9], [100.1], [101.0]])
    pnl = pf.pnl(moves)
    np.testing.assert_allclose(pnl, 0.5 * g * (moves[:, 0] - s0) ** 2, rtol=2e-2)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_confidence_outside_unit_interval_is_rejected(confidence: float) -> None:
    with pytest.raises(RiskInputError, match="confidence"):
        var.empirical_var_es(PNL_10, confidence)
    with pytest.raises(RiskInputError, match="confidence"):
        var.normal_var_es(0.0, 1.0, confidence)


def test_other_bad_inputs_are_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(RiskInputError, match="semi-definite"):
        var.simulate_log_returns([0.5, 0.5], [[1.0, 1.5], [1.5, 1.0]], 10, rng)
    with pytest.raises(RiskInputError, match="unit diagonal"):
        var.simulate_log_returns([0.5, 0.5], [[2.0, 0.0], [0.0, 1.0]], 10, rng)
    with pytest.raises(RiskInputError, match="vols"):
        var.simulate_log_returns([-0.5], None, 10, rng)
    with pytest.raises(RiskInputError, match="horizon"):
        var.delta_normal_var_es([1.0], [0.5], horizon_days=0)
    with pytest.raises(RiskInputError, match="pnl"):
        var.empirical_var_es([], 0.99)
    with pytest.raises(RiskInputError, match="one PnL per scenario"):
        var.monte_carlo_var_es([100.0], lambda s: s, [0.5], None, rng, n_scenarios=10)
    with pytest.raises(RiskInputError, match="underlying"):
        Portfolio.of([100.0], [1.0], OptionPositions.of([1], [1.0], [100.0], [1.0], [0.5], [True]))
    with pytest.raises(RiskInputError, match="strike"):
        OptionPositions.of([0], [1.0], [0.0], [1.0], [0.5], [True])
