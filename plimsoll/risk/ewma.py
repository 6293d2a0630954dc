"""EWMA (RiskMetrics) volatility from a price series, batch and incremental.

With log returns ``r_t = ln(p_t / p_{t-1})`` (``t = 1..n``), decay ``lam`` (0.94, the
RiskMetrics daily value) and ``m`` seed returns::

    v_m = (r_1^2 + ... + r_m^2) / m                 (seed: zero-mean sample variance)
    v_t = (1 - lam) r_t^2 + lam v_{t-1},  t > m     (RiskMetrics recursion, zero mean)
    vol_t = sqrt(v_t * periods_per_year)            (annualized)

``vol_t`` uses returns up to and including ``r_t``: it is the estimate after observing price
``p_t`` (the forecast for period ``t + 1``). The effective sample size is ``1 / (1 - lam)``
(~17 periods for 0.94), which is why ``m = 20`` is the default seed length.

``periods_per_year`` is the number of price samples per year: 365 for daily crypto closes,
252 for exchange trading days, 8,760 for hourly oracle samples. The estimator assumes the
samples are evenly spaced; resample irregular oracle updates onto a fixed grid first.

:func:`ewma_vol` runs the recursion as a linear filter (``scipy.signal.lfilter``, no Python
loop); :class:`EwmaVol` runs the same recursion one price at a time, for a keeper that posts
volatility updates from oracle prices, and gives the same numbers.

References
----------
.. [1] J.P. Morgan/Reuters, "RiskMetrics - Technical Document", 4th ed., 1996, section 5.2.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import lfilter

from plimsoll.errors import RiskInputError
from plimsoll.risk._validate import FloatArray, positive

__all__ = ["EwmaVol", "ewma_variance", "ewma_vol"]

RISKMETRICS_LAMBDA = 0.94


def _check_params(lam: float, periods_per_year: float, seed_returns: int) -> None:
    if not 0.0 < lam < 1.0:
        raise RiskInputError(f"lam must be in (0, 1), got {lam!r}")
    if not (periods_per_year > 0.0 and math.isfinite(periods_per_year)):
        raise RiskInputError(f"periods_per_year must be > 0, got {periods_per_year!r}")
    if int(seed_returns) != seed_returns or seed_returns < 1:
        raise RiskInputError(f"seed_returns must be a whole number >= 1, got {seed_returns!r}")


def ewma_variance(
    prices: ArrayLike, lam: float = RISKMETRICS_LAMBDA, seed_returns: int = 20
) -> FloatArray:
    """Per-period EWMA variance of log returns (not annualized).

    Parameters
    ----------
    prices : array_like, shape (n_obs,) or (n_obs, n_assets)
        Positive prices, oldest first, evenly spaced.
    lam : float, optional
        Decay factor in (0, 1) (default 0.94).
    seed_returns : int, optional
        Number of initial returns averaged into the seed variance (default 20).

    Returns
    -------
    ndarray, shape (n_obs - 1,) or (n_obs - 1, n_assets)
        ``v_t`` aligned with the returns (entry ``t - 1`` uses prices up to ``p_t``); NaN for
        the first ``seed_returns - 1`` entries (all NaN if there are fewer returns).
    """
    _check_params(lam, 1.0, seed_returns)
    p = positive("prices", prices)
    if p.ndim not in (1, 2) or p.shape[0] < 2:
        raise RiskInputError(f"prices must be 1-D or 2-D with >= 2 rows, got shape {p.shape}")
    r2 = np.log(p[1:] / p[:-1]) ** 2
    m = int(seed_returns)
    out = np.full(r2.shape, np.nan)
    if r2.shape[0] < m:
        return out
    seed = np.cumsum(r2[:m], axis=0)[-1] / m  # sequential sum, as EwmaVol accumulates it
    out[m - 1] = seed
    if r2.shape[0] > m:
        zi = (lam * seed)[np.newaxis, ...]
        out[m:], _ = lfilter([1.0 - lam], [1.0, -lam], r2[m:], axis=0, zi=zi)
    return out


def ewma_vol(
    prices: ArrayLike,
    lam: float = RISKMETRICS_LAMBDA,
    periods_per_year: float = 365.0,
    seed_returns: int = 20,
) -> FloatArray:
    """Annualized EWMA volatility after each price (RiskMetrics).

    Parameters
    ----------
    prices : array_like, shape (n_obs,) or (n_obs, n_assets)
        Positive prices, oldest first, evenly spaced.
    lam : float, optional
        Decay factor in (0, 1), default 0.94.
    periods_per_year : float, optional
        Price samples per year (default 365: daily, every day).
    seed_returns : int, optional
        Returns averaged into the seed variance (default 20).

    Returns
    -------
    ndarray, shape (n_obs - 1,) or (n_obs - 1, n_assets)
        ``sqrt(v_t * periods_per_year)``, aligned with the returns; NaN while seeding.

    Raises
    ------
    plimsoll.errors.RiskInputError
        For non-positive or non-finite prices, ``lam`` outside (0, 1), a bad
        ``periods_per_year`` or ``seed_returns``.

    Examples
    --------
    A price that alternates +-1 % every day has a per-day return variance of ~1e-4:

    >>> p = 100.0 * np.exp(0.01 * (np.arange(41) % 2))
    >>> v = ewma_vol(p, periods_per_year=365.0)
    >>> round(float(v[-1]), 4)  # 0.01 * sqrt(365)
    0.191
    """
    _check_params(lam, periods_per_year, seed_returns)
    out: FloatArray = np.sqrt(ewma_variance(prices, lam, seed_returns) * periods_per_year)
    return out


class EwmaVol:
    """Incremental EWMA volatility: feed one price at a time.

    Gives the same numbers as :func:`ewma_vol` on the same prices (the same recursion and
    the same operation order).

    Parameters
    ----------
    lam : float, optional
        Decay factor in (0, 1), default 0.94.
    periods_per_year : float, optional
        Price samples per year (default 365).
    seed_returns : int, optional
        Returns averaged into the seed variance before the first estimate (default 20).

    Examples
    --------
    >>> est = EwmaVol(seed_returns=2)
    >>> [est.update(p) for p in (100.0, 101.0, 100.0)][:2]
    [None, None]
    >>> est.ready, est.n_returns
    (True, 2)
    """

    def __init__(
        self,
        lam: float = RISKMETRICS_LAMBDA,
        periods_per_year: float = 365.0,
        seed_returns: int = 20,
    ) -> None:
        _check_params(lam, periods_per_year, seed_returns)
        self.lam = float(lam)
        self.periods_per_year = float(periods_per_year)
        self.seed_returns = int(seed_returns)
        self._last_price: float | None = None
        self._n_returns = 0
        self._seed_sum = 0.0
        self._variance: float | None = None

    @classmethod
    def from_prices(
        cls,
        prices: ArrayLike,
        lam: float = RISKMETRICS_LAMBDA,
        periods_per_year: float = 365.0,
        seed_returns: int = 20,
    ) -> EwmaVol:
        """An estimator warmed up on a 1-D price history (e.g. at keeper start-up)."""
        est = cls(lam, periods_per_year, seed_returns)
        p = positive("prices", prices)
        if p.ndim != 1:
            raise RiskInputError(f"prices must be 1-D, got shape {p.shape}")
        for x in p.tolist():
            est.update(x)
        return est

    def update(self, price: float) -> float | None:
        """Add the next price; return the annualized volatility, or None while seeding.

        Raises
        ------
        plimsoll.errors.RiskInputError
            If ``price`` is not a positive finite number (the state is left unchanged).
        """
        p = float(price)
        if not (p > 0.0 and math.isfinite(p)):
            raise RiskInputError(f"price must be a positive finite number, got {price!r}")
        last, self._last_price = self._last_price, p
        if last is None:
            return None
        r2 = math.log(p / last) ** 2
        self._n_returns += 1
        if self._variance is not None:
            self._variance = (1.0 - self.lam) * r2 + self.lam * self._variance
        else:
            self._seed_sum += r2
            if self._n_returns == self.seed_returns:
                self._variance = self._seed_sum / self.seed_returns
        return self.vol

    @property
    def ready(self) -> bool:
        """Whether the seed is complete and :attr:`vol` is available."""
        return self._variance is not None

    @property
    def n_returns(self) -> int:
        """Number of returns seen so far."""
        return self._n_returns

    @property
    def last_price(self) -> float | None:
        """The most recent price, or None before the first update."""
        return self._last_price

    @property
    def variance(self) -> float | None:
        """Per-period variance ``v_t`` (not annualized), or None while seeding."""
        return self._variance

    @property
    def vol(self) -> float | None:
        """Annualized volatility ``sqrt(v_t * periods_per_year)``, or None while seeding."""
        if self._variance is None:
            return None
        return math.sqrt(self._variance * self.periods_per_year)
