"""EWMA volatility: the RiskMetrics recursion by hand, batch vs incremental, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plimsoll.errors import RiskInputError
from plimsoll.risk.ewma import EwmaVol, ewma_variance, ewma_vol


def _prices(n: int, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 2000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.04, n)))


def _by_hand(prices: list[float], lam: float, m: int) -> list[float]:
    """The recursion written out with plain floats (no numpy), per-period variance."""
    r2 = [math.log(prices[i] / prices[i - 1]) ** 2 for i in range(1, len(prices))]
    out = [math.nan] * (m - 1)
    v = sum(r2[:m]) / m
    out.append(v)
    for x in r2[m:]:
        v = lam * v + (1.0 - lam) * x
        out.append(v)
    return out


def test_batch_matches_the_hand_written_recursion() -> None:
    p = _prices(300)
    for lam, m in ((0.94, 20), (0.97, 1), (0.5, 5)):
        want = np.array(_by_hand(p.tolist(), lam, m))
        got = ewma_variance(p, lam, m)
        assert np.isnan(got[: m - 1]).all() and not np.isnan(got[m - 1 :]).any()
        np.testing.assert_allclose(got[m - 1 :], want[m - 1 :], rtol=1e-13)
        np.testing.assert_allclose(
            ewma_vol(p, lam, 8760.0, m)[m - 1 :], np.sqrt(want[m - 1 :] * 8760.0), rtol=1e-13
        )


def test_constant_return_size_gives_that_volatility() -> None:
    p = 100.0 * np.exp(0.02 * (np.arange(200) % 2))  # |r| = 0.02 every period
    np.testing.assert_allclose(ewma_vol(p, periods_per_year=365.0)[19:], 0.02 * math.sqrt(365))


def test_ewma_reacts_to_a_volatility_jump_with_half_life_of_lambda() -> None:
    calm = 100.0 * np.exp(0.01 * (np.arange(101) % 2))
    jumpy = calm[-1] * np.exp(0.05 * (np.arange(1, 12) % 2))
    v = ewma_variance(np.concatenate([calm, jumpy]), 0.94, 20)
    # after j jump periods: v = 0.05^2 + (0.01^2 - 0.05^2) * 0.94^j
    for j in range(1, 12):
        want = 0.05**2 + (0.01**2 - 0.05**2) * 0.94**j
        assert v[99 + j] == pytest.approx(want, rel=1e-12)


def test_incremental_class_equals_the_batch_function() -> None:
    p = _prices(500, seed=8)
    batch = ewma_vol(p, 0.94, 365.0, 20)
    est = EwmaVol(0.94, 365.0, 20)
    got = [est.update(x) for x in p]
    assert got[0] is None and all(g is None for g in got[1:20])
    inc = np.array(got[20:], dtype=np.float64)
    np.testing.assert_allclose(inc, batch[19:], rtol=1e-14)
    assert est.vol == pytest.approx(batch[-1], rel=1e-14)
    assert est.variance == pytest.approx(ewma_variance(p)[-1], rel=1e-14)
    assert est.n_returns == 499 and est.last_price == p[-1] and est.ready
    warm = EwmaVol.from_prices(p)
    assert warm.vol == est.vol


def test_two_dimensional_batch_is_column_by_column() -> None:
    p = np.column_stack([_prices(120, 1), _prices(120, 2), _prices(120, 3)])
    both = ewma_vol(p)
    assert both.shape == (119, 3)
    for j in range(3):
        np.testing.assert_allclose(both[:, j], ewma_vol(p[:, j]), rtol=1e-15, equal_nan=True)


def test_short_history_is_all_nan() -> None:
    assert np.isnan(ewma_vol([100.0, 101.0, 102.0], seed_returns=5)).all()


def test_bad_price_is_rejected_and_leaves_the_estimator_unchanged() -> None:
    est = EwmaVol(seed_returns=2)
    for x in (100.0, 101.0, 100.5):
        est.update(x)
    before = (est.vol, est.n_returns, est.last_price)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(RiskInputError, match="price"):
            est.update(bad)
    assert (est.vol, est.n_returns, est.last_price) == before


@pytest.mark.parametrize(
    "kwargs",
    [{"lam": 0.0}, {"lam": 1.0}, {"periods_per_year": 0.0}, {"seed_returns": 0},
     {"seed_returns": 2.5}],
)  # fmt: skip
def test_bad_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(RiskInputError):
        EwmaVol(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(RiskInputError):
        ewma_vol(_prices(50), **kwargs)  # type: ignore[arg-type]


def test_non_positive_prices_are_rejected_by_the_batch_function() -> None:
    with pytest.raises(RiskInputError, match="prices"):
        ewma_vol([100.0, 0.0, 101.0])
