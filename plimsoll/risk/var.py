"""Value-at-Risk and expected shortfall: historical, parametric (normal) and Monte Carlo.

Conventions
-----------
* **Losses are positive.** With PnL ``X`` the loss is ``L = -X``; VaR and ES are reported in
  the PnL's currency, positive when the portfolio loses money.
* **Quantile.** ``VaR_a = inf{l : P(L <= l) >= a}`` (the lower ``a``-quantile of the loss).
  For ``n`` equally weighted scenarios with sorted losses ``l_(1) <= ... <= l_(n)`` this is the
  order statistic ``l_(k)`` with ``k = ceil(n a)`` (``n a`` rounded to 9 decimals first, so
  ``0.99 * 100`` is 99). E.g. 100 scenarios at 99 %: the second-worst loss.
* **Expected shortfall** (Acerbi-Tasche, coherent):
  ``ES_a = (sum_{i > k} l_(i) + (k - n a) l_(k)) / (n (1 - a))``, the mean of the worst
  ``n (1 - a)`` losses, with ``l_(k)`` weighted by the fractional remainder. Always ``>= VaR``.
  For a continuous distribution it is ``E[L | L >= VaR_a]``.
* **Horizon.** Parametric and Monte Carlo returns scale with ``sqrt(horizon_days /
  days_per_year)`` (``days_per_year = 365`` by default: crypto markets trade every day). The
  historical method instead uses overlapping ``horizon_days``-day log returns of the price
  history (autocorrelated for horizons above one day).
* Scenario revaluation is a function ``pnl_fn(spots) -> pnl`` taking an ``(n_scenarios,
  n_assets)`` array of scenario spot prices and returning ``(n_scenarios,)`` PnL;
  :meth:`Portfolio.pnl_fn` builds one for perps plus European options.

References
----------
.. [1] C. Acerbi, D. Tasche, "On the coherence of expected shortfall", J. Banking & Finance
   26(7), 2002.
.. [2] J.P. Morgan/Reuters, "RiskMetrics - Technical Document", 4th ed., 1996.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from plimsoll.errors import RiskInputError
from plimsoll.risk import bs
from plimsoll.risk._validate import (
    FloatArray,
    as_float,
    broadcast,
    confidence_level,
    flags,
    non_negative,
    positive,
)

__all__ = [
    "OptionPositions",
    "PnlFn",
    "Portfolio",
    "RiskMeasure",
    "delta_normal_var_es",
    "empirical_var_es",
    "historical_scenarios",
    "historical_var_es",
    "monte_carlo_var_es",
    "normal_var_es",
    "simulate_log_returns",
]

PnlFn = Callable[[FloatArray], FloatArray]
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Scenario x option cells priced per chunk in Portfolio.value (bounds peak memory).
_CELLS_PER_CHUNK = 1 << 21


class RiskMeasure(NamedTuple):
    """VaR and expected shortfall at one confidence level (positive numbers are losses).

    Attributes
    ----------
    var : ndarray
        Value-at-Risk (0-d for a single PnL vector, one entry per column otherwise).
    es : ndarray
        Expected shortfall, same shape, ``es >= var``.
    """

    var: FloatArray
    es: FloatArray


def _order_index(n: int, confidence: float) -> tuple[int, float]:
    na = round(n * confidence, 9)
    return max(1, math.ceil(na)), na


def empirical_var_es(pnl: ArrayLike, confidence: float = 0.99) -> RiskMeasure:
    """VaR and ES of equally weighted PnL scenarios (historical simulation's last step).

    Parameters
    ----------
    pnl : array_like, shape (n_scenarios,) or (n_scenarios, n_portfolios)
        Scenario profit and loss (gains positive), finite.
    confidence : float, optional
        Confidence level ``a`` in (0, 1), default 0.99.

    Returns
    -------
    RiskMeasure
        ``var = l_(k)`` with ``k = ceil(n a)`` and the Acerbi-Tasche ES (module docstring), per
        column; losses positive.

    Raises
    ------
    plimsoll.errors.RiskInputError
        For an empty or non-finite ``pnl``, more than 2 dimensions, or a confidence outside
        (0, 1).

    Examples
    --------
    >>> pnl = -np.arange(1.0, 101.0)  # losses 1..100
    >>> m = empirical_var_es(pnl, 0.99)
    >>> float(m.var), float(m.es)  # 99th smallest loss; mean of the worst 1
    (99.0, 100.0)
    >>> m = empirical_var_es(pnl, 0.975)  # k = ceil(97.5) = 98
    >>> float(m.var), float(m.es)  # (99 + 100 + 0.5 * 98) / 2.5
    (98.0, 99.2)
    """
    a = confidence_level(confidence)
    x = as_float("pnl", pnl)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise RiskInputError(f"pnl must be 1-D or 2-D with >= 1 scenario, got shape {x.shape}")
    n = x.shape[0]
    k, na = _order_index(n, a)
    losses = np.sort(-x, axis=0)
    var = losses[k - 1]
    tail = losses[k:].sum(axis=0)
    es = (tail + (k - na) * var) / (n - na)
    return RiskMeasure(np.asarray(var, dtype=np.float64), np.asarray(es, dtype=np.float64))


def normal_var_es(mean: ArrayLike, std: ArrayLike, confidence: float = 0.99) -> RiskMeasure:
    """Analytic VaR and ES of normally distributed PnL.

    Parameters
    ----------
    mean : array_like
        Expected PnL over the horizon (gains positive).
    std : array_like
        Standard deviation of PnL over the horizon, >= 0.
    confidence : float, optional
        Confidence level ``a`` in (0, 1), default 0.99.

    Returns
    -------
    RiskMeasure
        ``var = -mean + std z_a`` and ``es = -mean + std phi(z_a) / (1 - a)``, ``z_a =
        N^-1(a)``.

    Examples
    --------
    >>> m = normal_var_es(0.0, 1.0, 0.99)
    >>> round(float(m.var), 6), round(float(m.es), 6)
    (2.326348, 2.665214)
    """
    a = confidence_level(confidence)
    mu, sd = broadcast(as_float("mean", mean), non_negative("std", std))
    z = float(ndtri(a))
    var = -mu + sd * z
    es = -mu + sd * (_INV_SQRT_2PI * math.exp(-0.5 * z * z) / (1.0 - a))
    return RiskMeasure(np.asarray(var, dtype=np.float64), np.asarray(es, dtype=np.float64))


def _correlation_factor(corr: ArrayLike | None, n_assets: int) -> FloatArray:
    """A matrix ``A`` with ``A A^T = corr`` (eigen-decomposition: semi-definite is fine)."""
    if corr is None:
        return np.eye(n_assets)
    c = as_float("corr", corr)
    if c.shape != (n_assets, n_assets):
        raise RiskInputError(f"corr must be {n_assets}x{n_assets}, got shape {c.shape}")
    if not np.allclose(c, c.T, rtol=0.0, atol=1e-12) or not np.allclose(np.diag(c), 1.0):
        raise RiskInputError("corr must be symmetric with a unit diagonal")
    w, v = np.linalg.eigh(c)
    if w.min() < -1e-10:
        raise RiskInputError(f"corr is not positive semi-definite (eigenvalue {w.min():.3g})")
    out: FloatArray = v * np.sqrt(np.clip(w, 0.0, None))
    return out


def _horizon_years(horizon_days: float, days_per_year: float) -> float:
    if not (horizon_days > 0 and math.isfinite(horizon_days)):
        raise RiskInputError(f"horizon_days must be > 0, got {horizon_days!r}")
    if not (days_per_year > 0 and math.isfinite(days_per_year)):
        raise RiskInputError(f"days_per_year must be > 0, got {days_per_year!r}")
    return horizon_days / days_per_year


def delta_normal_var_es(
    exposures: ArrayLike,
    vols: ArrayLike,
    corr: ArrayLike | None = None,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    days_per_year: float = 365.0,
) -> RiskMeasure:
    """Parametric (delta-normal) VaR and ES of a linear portfolio.

    PnL ``= sum_i e_i r_i`` with simple returns ``r ~ N(0, Sigma h)``, ``Sigma_ij = rho_ij
    sigma_i sigma_j`` and ``h = horizon_days / days_per_year``.

    Parameters
    ----------
    exposures : array_like, shape (n_assets,)
        Currency exposure per asset (delta x spot; negative for shorts).
    vols : array_like, shape (n_assets,)
        Annualized volatilities, >= 0.
    corr : array_like, shape (n_assets, n_assets), optional
        Correlation matrix (identity if omitted).
    confidence : float, optional
        Confidence level in (0, 1), default 0.99.
    horizon_days : float, optional
        Horizon in days (default 1), scaled by ``sqrt(h)``.
    days_per_year : float, optional
        Days per year for the scaling (default 365).

    Returns
    -------
    RiskMeasure
        0-d VaR and ES.

    Examples
    --------
    >>> m = delta_normal_var_es([1_000_000.0], [0.8], confidence=0.99, horizon_days=1)
    >>> round(float(m.var))  # 1e6 * 0.8 * sqrt(1/365) * 2.3263
    97413
    """
    e = as_float("exposures", exposures).reshape(-1)
    sig = non_negative("vols", vols).reshape(-1)
    if e.shape != sig.shape:
        raise RiskInputError("exposures and vols must have one entry per asset")
    h = _horizon_years(horizon_days, days_per_year)
    factor = _correlation_factor(corr, e.size)
    loading = (e * sig) @ factor  # PnL = loading @ z sqrt(h), z ~ N(0, I)
    std = math.sqrt(h) * float(np.sqrt(loading @ loading))
    return normal_var_es(0.0, std, confidence)


def simulate_log_returns(
    vols: ArrayLike,
    corr: ArrayLike | None,
    n_scenarios: int,
    rng: np.random.Generator,
    horizon_days: float = 1.0,
    days_per_year: float = 365.0,
    model: Literal["gbm", "normal"] = "gbm",
) -> FloatArray:
    """Correlated Monte Carlo returns over the horizon, as log returns.

    Parameters
    ----------
    vols : array_like, shape (n_assets,)
        Annualized volatilities, >= 0.
    corr : array_like or None
        Correlation matrix (identity if None); positive semi-definite.
    n_scenarios : int
        Number of scenarios, >= 1.
    rng : numpy.random.Generator
        Seeded generator (``np.random.default_rng(seed)``) for reproducible runs.
    horizon_days, days_per_year : float, optional
        Horizon ``h = horizon_days / days_per_year`` years (defaults 1 and 365).
    model : {"gbm", "normal"}, optional
        ``"gbm"`` (default): driftless geometric Brownian motion, log return ``sigma sqrt(h) z -
        sigma^2 h / 2`` (so ``E[S_h] = S_0``). ``"normal"``: simple return ``sigma sqrt(h) z``,
        returned as ``log(1 + r)`` (NaN where ``r <= -1``, which only a huge ``sigma sqrt(h)``
        reaches).

    Returns
    -------
    ndarray, shape (n_scenarios, n_assets)
        Log returns; scenario spots are ``spot * exp(returns)``.
    """
    sig = non_negative("vols", vols).reshape(-1)
    if int(n_scenarios) < 1:
        raise RiskInputError(f"n_scenarios must be >= 1, got {n_scenarios!r}")
    if model not in ("gbm", "normal"):
        raise RiskInputError(f"model must be 'gbm' or 'normal', got {model!r}")
    h = _horizon_years(horizon_days, days_per_year)
    factor = _correlation_factor(corr, sig.size)
    z = rng.standard_normal((int(n_scenarios), sig.size)) @ factor.T
    shock = z * (sig * math.sqrt(h))
    if model == "gbm":
        out: FloatArray = shock - 0.5 * sig * sig * h
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.log1p(np.where(shock > -1.0, shock, np.nan)), dtype=np.float64)


def historical_scenarios(prices: ArrayLike, horizon_days: int = 1) -> FloatArray:
    """Overlapping ``horizon_days``-period log returns of a price history.

    Parameters
    ----------
    prices : array_like, shape (n_obs,) or (n_obs, n_assets)
        Positive prices, oldest first, one row per period (day).
    horizon_days : int, optional
        Return horizon in periods, >= 1 (default 1).

    Returns
    -------
    ndarray, shape (n_obs - horizon_days, n_assets)
        ``log(p[t + h] / p[t])``.
    """
    p = positive("prices", prices)
    if p.ndim == 1:
        p = p[:, None]
    h = int(horizon_days)
    if h < 1 or h != horizon_days:
        raise RiskInputError(f"horizon_days must be a whole number >= 1, got {horizon_days!r}")
    if p.ndim != 2 or p.shape[0] <= h:
        raise RiskInputError(f"need more than {h} price rows, got shape {p.shape}")
    out: FloatArray = np.log(p[h:] / p[:-h])
    return out


def historical_var_es(
    prices: ArrayLike,
    pnl_fn: PnlFn,
    confidence: float = 0.99,
    horizon_days: int = 1,
    spot: ArrayLike | None = None,
) -> RiskMeasure:
    """Historical-simulation VaR and ES: past returns applied to today's portfolio.

    Parameters
    ----------
    prices : array_like, shape (n_obs,) or (n_obs, n_assets)
        Price history, oldest first.
    pnl_fn : callable
        ``pnl_fn(spots)`` with ``spots`` of shape ``(n_scenarios, n_assets)`` returning the
        portfolio PnL per scenario, shape ``(n_scenarios,)`` (e.g. :meth:`Portfolio.pnl_fn`).
    confidence : float, optional
        Confidence level in (0, 1), default 0.99.
    horizon_days : int, optional
        Horizon in periods; overlapping ``horizon_days``-period returns are used.
    spot : array_like, optional
        Today's spots (default: the last row of ``prices``).

    Returns
    -------
    RiskMeasure
        Empirical VaR / ES of the scenario PnL (:func:`empirical_var_es` conventions).
    """
    rets = historical_scenarios(prices, horizon_days)
    s0 = positive("spot", np.asarray(prices, dtype=np.float64)[-1] if spot is None else spot)
    scenarios = s0.reshape(1, -1) * np.exp(rets)
    return empirical_var_es(_call_pnl(pnl_fn, scenarios), confidence)


def monte_carlo_var_es(
    spot: ArrayLike,
    pnl_fn: PnlFn,
    vols: ArrayLike,
    corr: ArrayLike | None,
    rng: np.random.Generator,
    confidence: float = 0.99,
    horizon_days: float = 1.0,
    n_scenarios: int = 100_000,
    days_per_year: float = 365.0,
    model: Literal["gbm", "normal"] = "gbm",
) -> RiskMeasure:
    """Monte Carlo VaR and ES: simulated returns (:func:`simulate_log_returns`) revalued.

    Parameters
    ----------
    spot : array_like, shape (n_assets,)
        Today's spot prices, > 0.
    pnl_fn : callable
        Scenario revaluation, as for :func:`historical_var_es`.
    vols, corr, rng, horizon_days, days_per_year, model
        As for :func:`simulate_log_returns`.
    confidence : float, optional
        Confidence level in (0, 1), default 0.99.
    n_scenarios : int, optional
        Number of scenarios (default 100,000). The VaR's sampling error shrinks like
        ``1/sqrt(n_scenarios)``.

    Returns
    -------
    RiskMeasure
        Empirical VaR / ES of the simulated PnL.
    """
    s0 = positive("spot", spot).reshape(1, -1)
    rets = simulate_log_returns(vols, corr, n_scenarios, rng, horizon_days, days_per_year, model)
    if rets.shape[1] != s0.shape[1]:
        raise RiskInputError("spot and vols must have one entry per asset")
    return empirical_var_es(_call_pnl(pnl_fn, s0 * np.exp(rets)), confidence)


def _call_pnl(pnl_fn: PnlFn, scenarios: FloatArray) -> FloatArray:
    pnl = np.asarray(pnl_fn(scenarios), dtype=np.float64)
    if pnl.shape != (scenarios.shape[0],):
        raise RiskInputError(
            f"pnl_fn must return one PnL per scenario, shape ({scenarios.shape[0]},), "
            f"got {pnl.shape}"
        )
    return pnl


@dataclass(frozen=True)
class OptionPositions:
    """European options held in a portfolio (one entry per position; arrays of one length).

    Attributes
    ----------
    underlying : ndarray of int
        Index of each option's underlying in the portfolio's asset list.
    size : ndarray
        Number of options (units of underlying each), negative for written options.
    strike : ndarray
        Strikes, > 0.
    expiry_years : ndarray
        Time to expiry today, in years, >= 0.
    vol : ndarray
        Volatility used to revalue each option (sticky strike: kept fixed in scenarios).
    is_call : ndarray of bool
        ``True`` for calls.
    """

    underlying: NDArray[np.intp]
    size: FloatArray
    strike: FloatArray
    expiry_years: FloatArray
    vol: FloatArray
    is_call: NDArray[np.bool_]

    @classmethod
    def of(
        cls,
        underlying: ArrayLike,
        size: ArrayLike,
        strike: ArrayLike,
        expiry_years: ArrayLike,
        vol: ArrayLike,
        is_call: ArrayLike,
    ) -> OptionPositions:
        """Validated positions from array-likes (broadcast to one length)."""
        und = np.asarray(underlying)
        if und.dtype.kind not in "iu" or np.any(und < 0):
            raise RiskInputError("underlying must hold non-negative integer asset indices")
        u, sz, k, t, v, c = broadcast(
            und.astype(np.intp),
            as_float("size", size),
            positive("strike", strike),
            non_negative("expiry_years", expiry_years),
            non_negative("vol", vol),
            flags("is_call", is_call),
        )
        return cls(
            u.reshape(-1),
            sz.reshape(-1),
            k.reshape(-1),
            t.reshape(-1),
            v.reshape(-1),
            c.reshape(-1),
        )


@dataclass(frozen=True)
class Portfolio:
    """Perpetual futures plus European options on one or more underlyings.

    Attributes
    ----------
    spot : ndarray, shape (n_assets,)
        Today's spot (index) prices.
    perp_size : ndarray, shape (n_assets,)
        Net perp position per asset in units of the underlying (negative = short). Its PnL is
        ``size * (S' - S)``; funding over the horizon is ignored.
    options : OptionPositions or None
        Option positions, revalued with :func:`plimsoll.risk.bs.price` at their own vols.
    rate : float
        Risk-free rate for option revaluation.
    carry_yield : float
        Underlying yield ``q`` for option revaluation.

    Examples
    --------
    >>> pf = Portfolio.of(spot=[100.0], perp_size=[2.0])
    >>> pf.pnl(np.array([[90.0], [110.0]])).tolist()
    [-20.0, 20.0]
    """

    spot: FloatArray
    perp_size: FloatArray
    options: OptionPositions | None = None
    rate: float = 0.0
    carry_yield: float = 0.0

    def __post_init__(self) -> None:
        if self.spot.shape != self.perp_size.shape or self.spot.ndim != 1:
            raise RiskInputError("spot and perp_size must be 1-D with one entry per asset")
        if self.options is not None and self.options.underlying.size:
            if int(self.options.underlying.max()) >= self.spot.size:
                raise RiskInputError("an option's underlying index is out of range")

    @classmethod
    def of(
        cls,
        spot: ArrayLike,
        perp_size: ArrayLike,
        options: OptionPositions | None = None,
        rate: float = 0.0,
        carry_yield: float = 0.0,
    ) -> Portfolio:
        """Validated portfolio from array-likes."""
        return cls(
            positive("spot", spot).reshape(-1),
            as_float("perp_size", perp_size).reshape(-1),
            options,
            float(as_float("rate", rate)),
            float(as_float("carry_yield", carry_yield)),
        )

    def value(self, spots: ArrayLike, elapsed_years: float = 0.0) -> FloatArray:
        """Mark-to-model value per scenario.

        Parameters
        ----------
        spots : array_like, shape (n_scenarios, n_assets)
            Scenario spot prices.
        elapsed_years : float, optional
            Time passed since today: options are valued with ``max(expiry - elapsed, 0)``
            (expired ones at intrinsic).

        Returns
        -------
        ndarray, shape (n_scenarios,)
            ``sum perp_size * S + sum size * option price``.
        """
        s = positive("spots", spots)
        if s.ndim != 2 or s.shape[1] != self.spot.size:
            raise RiskInputError(f"spots must have shape (n, {self.spot.size}), got {s.shape}")
        total: FloatArray = s @ self.perp_size
        o = self.options
        if o is None or o.size.size == 0:
            return total
        tau = np.maximum(o.expiry_years - float(elapsed_years), 0.0)
        rows = max(1, _CELLS_PER_CHUNK // o.size.size)
        for start in range(0, s.shape[0], rows):
            chunk = s[start : start + rows, o.underlying]  # (rows, n_options)
            prices = bs.price(chunk, o.strike, tau, o.vol, self.rate, self.carry_yield, o.is_call)
            total[start : start + rows] += prices @ o.size
        return total

    def pnl(self, spots: ArrayLike, horizon_years: float = 0.0) -> FloatArray:
        """Scenario PnL: ``value(spots, horizon_years) - value(today)`` (theta included)."""
        base = self.value(self.spot.reshape(1, -1), 0.0)[0]
        out: FloatArray = self.value(spots, horizon_years) - base
        return out

    def pnl_fn(self, horizon_days: float = 0.0, days_per_year: float = 365.0) -> PnlFn:
        """A ``pnl_fn`` for the VaR functions, revaluing at ``horizon_days`` ahead."""
        years = horizon_days / days_per_year

        def pnl_fn(spots: FloatArray) -> FloatArray:
            return self.pnl(spots, years)

        return pnl_fn

    def delta_exposures(self) -> FloatArray:
        """Currency delta per asset today (``d value / d S * S``), for delta-normal VaR."""
        exposure = self.perp_size * self.spot
        o = self.options
        if o is not None and o.size.size:
            d = bs.delta(
                self.spot[o.underlying],
                o.strike,
                o.expiry_years,
                o.vol,
                self.rate,
                self.carry_yield,
                o.is_call,
            )
            exposure = exposure + np.bincount(
                o.underlying,
                weights=o.size * d * self.spot[o.underlying],
                minlength=self.spot.size,
            )
        return np.asarray(exposure, dtype=np.float64)
