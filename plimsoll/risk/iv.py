"""Implied volatility of European options (Black-Scholes-Merton and Black-76), vectorized.

The solver works on the normalized out-of-the-money price. With forward ``F``, strike ``K``,
``x = -|ln(F/K)|`` and total standard deviation ``s = vol sqrt(tau)``, the undiscounted time
value of either option, divided by ``sqrt(F K)``, is the normalized OTM Black price::

    b(s) = exp(x/2) N(x/s + s/2) - exp(-x/2) N(x/s - s/2),   0 <= b < exp(x/2) = min(F, K)/sqrt(FK)

(put-call parity maps an in-the-money option to the out-of-the-money one, so calls and puts,
in or out of the money, share one solver). ``b`` increases strictly in ``s``, so the root is
unique. It is found by Newton's method on ``h = ln b(s) - ln beta`` (the logarithm straightens
the exponentially flat low-volatility wing), taken in ``u = 1/s^2`` below the inflection point
``s_c = sqrt(2 |x|)`` (where ``ln b ~ -x^2 u / 2`` is nearly linear in ``u``) and in ``s`` above
it; it starts at ``s_c`` (or at the exact at-the-money inverse ``2 N^-1((1 + beta)/2)``), keeps a
bracket ``[lo, hi]`` updated every step and bisects whenever a Newton step would leave it or is
not finite. Typically 5 to 8 iterations; at most 15 on a wide random test grid.
Iteration stops when the step in volatility is below ``tol`` (default 1e-12), or below the
resolution at which ``b(s)`` itself can be evaluated in float64 (8 ulp of its terms divided by
its slope: near the upper bound the price is so flat in ``s`` that rounding alone moves the
root by more than ``tol``), or below 4 ulp of ``s``.

No-arbitrage bounds
-------------------
A price is inside the bounds when ``max(theta_ (F - K), 0) <= price / discount < F`` for a call
or ``< K`` for a put. Outside them (including a negative price), at ``tau = 0``, or for a NaN
price the result is NaN, not an exception. A price at the lower bound gives 0, and so does one
below it by no more than rounding noise, ``16 eps (F + K)`` undiscounted (deep in the money the
time value is lost to the rounding of ``F N(d1) - K N(d2)``; such a price says nothing about
volatility).

Accuracy
--------
The solved ``s`` reproduces the input price to within a few ulp wherever the price is
sensitive to volatility. The volatility itself is only as well-determined as the price allows:
deep in the money (time value far below the price's own rounding) or near the upper bound
(vol above a few hundred % over long expiries), ``d vol = d price / vega`` is large and no
solver can do better than the input's precision.

References
----------
.. [1] P. Jaeckel, "Let's Be Rational", Wilmott 2015(75), pp. 40-53 (normalization and the
   use of ``ln b`` in the lower wing).
.. [2] S. Manaster, G. Koehler, "The Calculation of Implied Variances from the Black-Scholes
   Model: A Note", J. Finance 37(1), 1982 (the inflection-point start).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from plimsoll.errors import RiskInputError
from plimsoll.risk._validate import FloatArray, as_float, broadcast, flags, non_negative, positive

__all__ = ["implied_vol", "implied_vol_black76"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_EPS = float(np.finfo(np.float64).eps)
_ROUNDING = 16.0 * _EPS


def _normalized_otm(x: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Normalized OTM Black price ``b(s)``, ``db/ds`` and the rounding scale of ``b``.

    For ``x <= 0``, ``s > 0``. ``b`` is a difference of two terms; the sum of their sizes times
    a few ulp bounds its rounding error.
    """
    d1 = x / s + 0.5 * s
    d2 = d1 - s
    ex = np.exp(0.5 * x)
    t1 = ex * ndtr(d1)
    t2 = ndtr(d2) / ex
    db = ex * _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    return t1 - t2, db, t1 + t2


def _solve_sd(beta: FloatArray, x: FloatArray, tol_s: FloatArray, max_iter: int) -> FloatArray:
    """Total deviation ``s`` with ``b(s) = beta``; inputs already inside the bounds, beta > 0."""
    n = beta.size
    out = np.full(n, np.nan)
    s = np.where(
        x < 0.0, np.sqrt(-2.0 * x), 2.0 * ndtri(np.minimum(0.5 * (1.0 + beta), 1.0 - 1e-16))
    )
    s = np.clip(s, 1e-8, 80.0)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    idx = np.arange(n)
    log_beta = np.log(beta)
    s_inflect = np.sqrt(-2.0 * x)
    for _ in range(max_iter):
        b, db, scale = _normalized_otm(x, s)
        below = b < beta
        lo = np.where(below, s, lo)
        hi = np.where(below, hi, s)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            h = np.log(b) - log_beta
            h_over_slope = h * (b / db)  # h / (dh/ds)
            # Below the inflection ln b ~ -x^2 / (2 s^2): nearly linear in u = 1/s^2, so the
            # Newton step is taken in u there, and in s above it.
            u = 1.0 / (s * s) + 2.0 * h_over_slope / (s * s * s)
            new = np.where(
                s < s_inflect, 1.0 / np.sqrt(np.where(u > 0.0, u, np.nan)), s - h_over_slope
            )
        new = np.where(h == 0.0, s, new)
        # s itself is lo or hi now. A step that leaves the bracket by less than the tolerance
        # (rounding of the u-space step) is clipped back; a larger excursion is refused.
        near = (new >= lo - tol_s) & (new <= hi + tol_s)
        new = np.where(near, np.clip(new, lo, hi), new)
        bad = ~np.isfinite(new) | (new < lo) | (new > hi)
        new = np.where(bad, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * s), new)
        delta = np.abs(new - s)
        with np.errstate(divide="ignore", invalid="ignore"):
            # the s-resolution at which b(s) can be evaluated at all: steps below it are noise
            resolution = 8.0 * _EPS * scale / db
        done = (
            (delta <= tol_s)
            | (delta <= 4.0 * _EPS * s)
            | (hi - lo <= tol_s)
            | (delta <= resolution)
        )
        out[idx[done]] = new[done]
        keep = ~done
        if not keep.any():
            break
        idx, s, lo, hi = idx[keep], new[keep], lo[keep], hi[keep]
        x, beta, log_beta, tol_s = x[keep], beta[keep], log_beta[keep], tol_s[keep]
        s_inflect = s_inflect[keep]
    return out


def _implied_sd_from_forward(
    undiscounted: FloatArray,
    forward: FloatArray,
    strike: FloatArray,
    tau: FloatArray,
    is_call: np.ndarray,
    tol: float,
    max_iter: int,
) -> FloatArray:
    """Implied volatility from an undiscounted price (all arrays of one shape)."""
    if not (tol > 0.0 and math.isfinite(tol)):
        raise RiskInputError(f"tol must be a positive finite number, got {tol!r}")
    if max_iter < 1:
        raise RiskInputError(f"max_iter must be >= 1, got {max_iter!r}")
    sign = np.where(is_call, 1.0, -1.0)
    intrinsic = np.maximum(sign * (forward - strike), 0.0)
    time_value = undiscounted - intrinsic  # = the OTM option's undiscounted price (parity)
    root_fk = np.sqrt(forward) * np.sqrt(strike)
    beta = time_value / root_fk
    x = -np.abs(np.log(forward / strike))
    upper = np.exp(0.5 * x)

    # A price below the lower bound by no more than the rounding of S N(d1) - K N(d2) (terms of
    # size F and K) is taken as at the bound: deep in the money the time value is lost there.
    noise = _ROUNDING * (forward + strike)
    with np.errstate(invalid="ignore"):
        beta = np.where((time_value < 0.0) & (time_value >= -noise), 0.0, beta)
        inside = (tau > 0.0) & (beta >= 0.0) & (beta < upper)  # NaN fails every comparison
    vol = np.full(beta.shape, np.nan)
    vol[inside & (beta == 0.0)] = 0.0
    solve = inside & (beta > 0.0)
    if solve.any():
        sqrt_tau = np.sqrt(tau[solve])
        sd = _solve_sd(beta[solve], x[solve], tol * sqrt_tau, max_iter)
        vol[solve] = sd / sqrt_tau
    return np.asarray(vol, dtype=np.float64)


def implied_vol(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> FloatArray:
    """Black-Scholes-Merton implied volatility of European option prices.

    Parameters
    ----------
    price : array_like
        Option prices (same currency as ``spot``). May be NaN or outside the no-arbitrage
        bounds: those entries give NaN.
    spot, strike, tau_years, rate, carry_yield, is_call : array_like
        As for :func:`plimsoll.risk.bs.price` (spot, strike > 0; tau >= 0; years, annualized,
        continuously compounded).
    tol : float, optional
        Absolute tolerance on the annualized volatility (default 1e-12).
    max_iter : int, optional
        Iteration cap (default 100; typical convergence takes under 10). Entries still
        unconverged after it are NaN.

    Returns
    -------
    ndarray
        Annualized implied volatility, broadcast shape of the inputs; NaN where ``price`` is
        outside ``[discounted intrinsic on the forward, S exp(-q tau))`` for a call (``K
        exp(-r tau)`` for a put), NaN, or ``tau_years == 0``; 0 at the lower bound (within
        rounding, see the module docstring).

    Raises
    ------
    plimsoll.errors.RiskInputError
        For invalid ``spot``, ``strike``, ``tau_years``, ``rate`` or ``carry_yield`` (see
        :func:`plimsoll.risk.bs.price`), or a bad ``tol`` / ``max_iter``.

    Notes
    -----
    See the module docstring for the method, the bounds and the attainable accuracy.

    Examples
    --------
    >>> from plimsoll.risk import bs
    >>> p = bs.price(42.0, 40.0, 0.5, 0.2, rate=0.1)
    >>> round(float(implied_vol(p, 42.0, 40.0, 0.5, rate=0.1)), 12)
    0.2
    >>> implied_vol([150.0, -1.0], 100.0, 100.0, 1.0).tolist()  # above S, negative
    [nan, nan]
    """
    p = np.asarray(price, dtype=np.float64)
    s, k, t, r, q, c, p = broadcast(
        positive("spot", spot),
        positive("strike", strike),
        non_negative("tau_years", tau_years),
        as_float("rate", rate),
        as_float("carry_yield", carry_yield),
        flags("is_call", is_call),
        p,
    )
    forward = s * np.exp((r - q) * t)
    undiscounted = p * np.exp(r * t)
    return _implied_sd_from_forward(undiscounted, forward, k, t, c, tol, max_iter)


def implied_vol_black76(
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    discount: ArrayLike,
    is_call: ArrayLike = True,
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> FloatArray:
    """Black-76 implied volatility (inverse of :func:`plimsoll.risk.bs.black76_price`).

    Parameters
    ----------
    price : array_like
        Option prices; NaN or outside the bounds ``[discount max(theta_ (F - K), 0),
        discount F)`` (``discount K`` for puts) give NaN.
    forward, strike, tau, discount, is_call : array_like
        As for :func:`plimsoll.risk.bs.black76_price`.
    tol, max_iter
        As for :func:`implied_vol`.

    Returns
    -------
    ndarray
        Annualized implied volatility of the forward, NaN outside the bounds or at ``tau = 0``.

    Examples
    --------
    >>> round(float(implied_vol_black76(7.965567455405798, 100.0, 100.0, 1.0, 1.0)), 12)
    0.2
    """
    p = np.asarray(price, dtype=np.float64)
    f, k, t, d, c, p = broadcast(
        positive("forward", forward),
        positive("strike", strike),
        non_negative("tau", tau),
        positive("discount", discount),
        flags("is_call", is_call),
        p,
    )
    return _implied_sd_from_forward(p / d, f, k, t, c, tol, max_iter)
