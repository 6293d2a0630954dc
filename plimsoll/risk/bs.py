"""Black-Scholes-Merton and Black-76 prices and greeks of European options, vectorized.

Every function broadcasts its array arguments against each other with numpy's rules and returns
a float64 array of the broadcast shape (a 0-d array for scalar inputs; ``float(x)`` unwraps it).
No per-element Python loops.

Model
-----
The underlying pays a continuous yield ``q`` (``carry_yield``: dividend yield, foreign rate, or
for a perp-hedged crypto underlying the funding yield), so with risk-free rate ``r`` the forward
is ``F = S exp((r - q) tau)``. With ``sd = vol sqrt(tau)``, ``d1 = ln(F/K)/sd + sd/2``,
``d2 = d1 - sd`` and ``theta_ = +1`` for a call, ``-1`` for a put::

    price = theta_ (S exp(-q tau) N(theta_ d1) - K exp(-r tau) N(theta_ d2))

Units and greek conventions
---------------------------
* ``tau_years`` is in years (e.g. ``days / 365``), ``vol``, ``rate`` and ``carry_yield`` are
  annualized decimals (``0.2`` = 20 %), continuously compounded.
* ``delta``: dV/dS, per 1 unit of spot. ``gamma``: d2V/dS2, per unit of spot squared.
* ``vega``: dV/dvol **per 1.00 of volatility** (divide by 100 for "per vol point").
* ``theta``: dV/dt **per year** of calendar time passing (= -dV/dtau; divide by 365 for a
  per-day figure). Usually negative for a long option.
* ``rho``: dV/dr **per 1.00 of rate** (divide by 100 for "per 1 %"); the yield ``q`` is held
  fixed, so the forward moves with ``r``.

These are QuantLib's ``AnalyticEuropeanEngine`` conventions (``vega``, ``theta``, ``rho``);
vollib reports vega and rho per 1 % and theta per day.

Limits
------
When ``sd = vol sqrt(tau)`` is zero (expiry, or zero volatility) the price is the discounted
intrinsic value on the forward, ``exp(-r tau) max(theta_ (F - K), 0)`` (at ``tau = 0`` simply
``max(theta_ (S - K), 0)``), and the greeks are their ``sd -> 0+`` limits: delta is
``theta_ exp(-q tau)`` in the money, 0 out of the money and ``theta_ exp(-q tau) / 2`` exactly at
the forward; gamma is 0 away from the forward and ``+inf`` exactly at it, and so is the
``-inf`` of theta's diffusion term at ``tau = 0`` with ``vol > 0``. No floating-point warning
is raised on the way.

References
----------
.. [1] F. Black, M. Scholes, "The Pricing of Options and Corporate Liabilities", J. Political
   Economy 81(3), 1973. R. C. Merton, "Theory of Rational Option Pricing", Bell J. Econ. 4(1),
   1973.
.. [2] F. Black, "The pricing of commodity contracts", J. Financial Economics 3, 1976.
.. [3] J. C. Hull, "Options, Futures, and Other Derivatives", 8th ed., ch. 15 and 19.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from plimsoll.risk._validate import (
    BoolArray,
    FloatArray,
    as_float,
    broadcast,
    flags,
    non_negative,
    positive,
)

__all__ = [
    "Greeks",
    "black76_price",
    "delta",
    "gamma",
    "greeks",
    "price",
    "rho",
    "theta",
    "vega",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# |d| beyond this is clipped: N(+-50) is exactly 1 / 0 and phi(50) exactly 0 in float64, so the
# clip changes no result and keeps d**2 from overflowing when sd is tiny.
_D_MAX = 50.0


class Greeks(NamedTuple):
    """Price and first-order greeks of European options (arrays of one broadcast shape).

    Attributes
    ----------
    price : ndarray
        Option value, in the currency of ``spot`` and ``strike``.
    delta : ndarray
        dV/dS.
    gamma : ndarray
        d2V/dS2.
    vega : ndarray
        dV/dvol per 1.00 of volatility.
    theta : ndarray
        dV/dt per year of calendar time (``-dV/dtau``).
    rho : ndarray
        dV/dr per 1.00 of rate (``carry_yield`` held fixed).
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray


class _Terms(NamedTuple):
    """The shared intermediate quantities of one broadcast batch."""

    spot: FloatArray
    strike: FloatArray
    tau: FloatArray
    vol: FloatArray
    rate: FloatArray
    carry: FloatArray
    sign: FloatArray  # +1 call, -1 put
    sqrt_tau: FloatArray
    sd: FloatArray
    at_forward: BoolArray  # ln(F/K) == 0
    d1: FloatArray
    d2: FloatArray
    df: FloatArray  # exp(-r tau)
    dq: FloatArray  # exp(-q tau)


def _d1_d2(log_fk: FloatArray, sd: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``d1`` and ``d2``, clipped to +-_D_MAX, with their ``sd -> 0+`` limits at sd = 0."""
    pos = sd > 0.0
    sd_safe = np.where(pos, sd, 1.0)
    with np.errstate(over="ignore"):
        x = log_fk / sd_safe
    half = 0.5 * sd
    limit = np.sign(log_fk) * _D_MAX  # sd -> 0+: +-inf away from the forward, 0 at it
    d1 = np.clip(np.where(pos, x + half, limit), -_D_MAX, _D_MAX)
    d2 = np.clip(np.where(pos, x - half, limit), -_D_MAX, _D_MAX)
    return d1, d2


def _terms(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike,
    carry_yield: ArrayLike,
    is_call: ArrayLike,
) -> _Terms:
    s, k, t, v, r, q, c = broadcast(
        positive("spot", spot),
        positive("strike", strike),
        non_negative("tau_years", tau_years),
        non_negative("vol", vol),
        as_float("rate", rate),
        as_float("carry_yield", carry_yield),
        flags("is_call", is_call),
    )
    sign = np.where(c, 1.0, -1.0)
    sqrt_tau = np.sqrt(t)
    sd = v * sqrt_tau
    log_fk = np.log(s / k) + (r - q) * t
    d1, d2 = _d1_d2(log_fk, sd)
    return _Terms(
        spot=s,
        strike=k,
        tau=t,
        vol=v,
        rate=r,
        carry=q,
        sign=sign,
        sqrt_tau=sqrt_tau,
        sd=sd,
        at_forward=log_fk == 0.0,
        d1=d1,
        d2=d2,
        df=np.exp(-r * t),
        dq=np.exp(-q * t),
    )


def _out(x: FloatArray) -> FloatArray:
    """Ufuncs turn 0-d results into numpy scalars; keep the documented 0-d array."""
    return np.asarray(x, dtype=np.float64)


def _pdf(d: FloatArray) -> FloatArray:
    out: FloatArray = _INV_SQRT_2PI * np.exp(-0.5 * d * d)
    return out


def _cdfs(m: _Terms) -> tuple[FloatArray, FloatArray]:
    """``N(theta_ d1)`` and ``N(theta_ d2)``."""
    return ndtr(m.sign * m.d1), ndtr(m.sign * m.d2)


def _price(m: _Terms, nd1: FloatArray, nd2: FloatArray) -> FloatArray:
    value = m.sign * (m.spot * m.dq * nd1 - m.strike * m.df * nd2)
    out: FloatArray = np.maximum(value, 0.0)  # rounding can leave -1e-17 on a worthless option
    return out


def _delta(m: _Terms, nd1: FloatArray) -> FloatArray:
    out: FloatArray = m.sign * m.dq * nd1
    return out


def _gamma(m: _Terms, pdf_d1: FloatArray) -> FloatArray:
    pos = m.sd > 0.0
    denom = m.spot * np.where(pos, m.sd, 1.0)
    out: FloatArray = np.where(pos, m.dq * pdf_d1 / denom, np.where(m.at_forward, np.inf, 0.0))
    return out


def _vega(m: _Terms, pdf_d1: FloatArray) -> FloatArray:
    out: FloatArray = m.spot * m.dq * pdf_d1 * m.sqrt_tau
    return out


def _theta(m: _Terms, pdf_d1: FloatArray, nd1: FloatArray, nd2: FloatArray) -> FloatArray:
    live = m.tau > 0.0
    diffusion = -m.spot * m.dq * pdf_d1 * m.vol / (2.0 * np.where(live, m.sqrt_tau, 1.0))
    at_expiry = np.where(m.at_forward & (m.vol > 0.0), -np.inf, 0.0)
    carry = m.sign * (m.carry * m.spot * m.dq * nd1 - m.rate * m.strike * m.df * nd2)
    out: FloatArray = np.where(live, diffusion, at_expiry) + carry
    return out


def _rho(m: _Terms, nd2: FloatArray) -> FloatArray:
    out: FloatArray = m.sign * m.strike * m.tau * m.df * nd2
    return out


def price(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Black-Scholes-Merton price of European options.

    Parameters
    ----------
    spot : array_like
        Price of the underlying, > 0.
    strike : array_like
        Strike, > 0, same currency as ``spot``.
    tau_years : array_like
        Time to expiry in years, >= 0 (``days / 365`` for an Actual/365 clock).
    vol : array_like
        Annualized volatility, >= 0 (``0.2`` = 20 %).
    rate : array_like, optional
        Continuously compounded risk-free rate per year (default 0).
    carry_yield : array_like, optional
        Continuous yield of the underlying per year, ``q`` (default 0).
    is_call : array_like of bool, optional
        ``True`` for a call, ``False`` for a put (default call).

    Returns
    -------
    ndarray
        Prices, shape of the broadcast inputs (0-d for scalars). At ``vol sqrt(tau) = 0`` the
        discounted intrinsic value on the forward.

    Raises
    ------
    plimsoll.errors.RiskInputError
        If ``spot`` or ``strike`` <= 0, ``tau_years`` or ``vol`` < 0, any input is NaN or
        infinite, or the inputs do not broadcast.

    Examples
    --------
    Hull (8th ed.), Example 15.6: S=42, K=40, r=10 %, sigma=20 %, T=0.5.

    >>> round(float(price(42.0, 40.0, 0.5, 0.2, rate=0.1)), 4)
    4.7594
    >>> round(float(price(42.0, 40.0, 0.5, 0.2, rate=0.1, is_call=False)), 4)
    0.8086
    >>> price(100.0, [90.0, 110.0], 0.0, 0.5).tolist()  # at expiry: intrinsic
    [10.0, 0.0]
    """
    m = _terms(spot, strike, tau_years, vol, rate, carry_yield, is_call)
    return _out(_price(m, *_cdfs(m)))


def delta(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Delta, dV/dS: ``exp(-q tau) N(d1)`` for a call, ``-exp(-q tau) N(-d1)`` for a put.

    Parameters and errors as for :func:`price`.

    Examples
    --------
    >>> round(float(delta(49.0, 50.0, 0.3846, 0.2, rate=0.05)), 3)  # Hull Example 19.1
    0.522
    """
    m = _terms(spot, strike, tau_years, vol, rate, carry_yield, is_call)
    return _out(_delta(m, ndtr(m.sign * m.d1)))


def gamma(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Gamma, d2V/dS2: ``exp(-q tau) phi(d1) / (S vol sqrt(tau))`` (same for calls and puts).

    Parameters and errors as for :func:`price`. ``+inf`` at ``vol sqrt(tau) = 0`` exactly at
    the forward, 0 elsewhere at that limit.

    Examples
    --------
    >>> round(float(gamma(49.0, 50.0, 0.3846, 0.2, rate=0.05)), 3)  # Hull Example 19.4
    0.066
    """
    m = _terms(spot, strike, tau_years, vol, rate, carry_yield, is_call)
    return _out(_gamma(m, _pdf(m.d1)))


def vega(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Vega, dV/dvol **per 1.00 of volatility**: ``S exp(-q tau) phi(d1) sqrt(tau)``.

    Parameters and errors as for :func:`price`. Divide by 100 for the change per vol point.

    Examples
    --------
    >>> round(float(vega(49.0, 50.0, 0.3846, 0.2, rate=0.05)), 1)  # Hull Example 19.6
    12.1
    """
    m = _terms(spot, strike, tau_years, vol, rate, carry_yield, is_call)
    return _out(_vega(m, _pdf(m.d1)))


def theta(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Theta, dV/dt **per year** of calendar time (``-dV/dtau``).

    ``-S exp(-q tau) phi(d1) vol / (2 sqrt(tau)) + theta_ (q S exp(-q tau) N(theta_ d1)
    - r K exp(-r tau) N(theta_ d2))``. Parameters and errors as for :func:`price`. Divide by
    365 for a per-day figure.

    Examples
    --------
    >>> round(float(theta(49.0, 50.0, 0.3846, 0.2, rate=0.05)), 2)  # Hull Example 19.2
    -4.31
    """
    m = _terms(spot, strike, tau_years, vol, rate, carry_yield, is_call)
    return _out(_theta(m, _pdf(m.d1), *_cdfs(m)))


def rho(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Rho, dV/dr **per 1.00 of rate** with ``carry_yield`` fixed: ``theta_ K tau
    exp(-r tau) N(theta_ d2)``.

    Parameters and errors as for :func:`price`. Divide by 100 for the change per 1 %.

    Examples
    --------
    >>> round(float(rho(49.0, 50.0, 0.3846, 0.2, rate=0.05)), 2)  # Hull Example 19.7
    8.91
    """
    m = _terms(spot, strike, tau_years, vol, rate, carry_yield, is_call)
    return _out(_rho(m, ndtr(m.sign * m.d2)))


def greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    carry_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> Greeks:
    """Price, delta, gamma, vega, theta and rho in one pass (``d1``, ``d2``, ``N`` shared).

    Parameters and errors as for :func:`price`; conventions in the module docstring (vega per
    1.00 vol, theta per year, rho per 1.00 rate).

    Returns
    -------
    Greeks
        Named tuple of arrays, all of the broadcast shape.

    Examples
    --------
    >>> g = greeks(49.0, 50.0, 0.3846, 0.2, rate=0.05)
    >>> [round(float(x), 4) for x in g]
    [2.4005, 0.5216, 0.0655, 12.1052, -4.3054, 8.9066]
    """
    m = _terms(spot, strike, tau_years, vol, rate, carry_yield, is_call)
    pdf_d1 = _pdf(m.d1)
    nd1, nd2 = _cdfs(m)
    return Greeks(
        price=_out(_price(m, nd1, nd2)),
        delta=_out(_delta(m, nd1)),
        gamma=_out(_gamma(m, pdf_d1)),
        vega=_out(_vega(m, pdf_d1)),
        theta=_out(_theta(m, pdf_d1, nd1, nd2)),
        rho=_out(_rho(m, nd2)),
    )


def black76_price(
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    vol: ArrayLike,
    discount: ArrayLike,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Black-76 price of European options on a forward (or future).

    ``discount * theta_ (F N(theta_ d1) - K N(theta_ d2))`` with ``d1 = ln(F/K)/sd + sd/2``,
    ``sd = vol sqrt(tau)``.

    Parameters
    ----------
    forward : array_like
        Forward price for the option's expiry, > 0.
    strike : array_like
        Strike, > 0.
    tau : array_like
        Time to expiry in years, >= 0.
    vol : array_like
        Annualized volatility of the forward, >= 0.
    discount : array_like
        Discount factor from the payment date to today, > 0 (``exp(-r tau)`` for a flat rate).
    is_call : array_like of bool, optional
        ``True`` for a call (default), ``False`` for a put.

    Returns
    -------
    ndarray
        Prices; ``discount * max(theta_ (F - K), 0)`` where ``vol sqrt(tau) = 0``.

    Raises
    ------
    plimsoll.errors.RiskInputError
        For a non-positive forward, strike or discount, a negative tau or vol, or non-finite
        input.

    Notes
    -----
    ``price(S, K, tau, vol, r, q)`` equals ``black76_price(S exp((r - q) tau), K, tau, vol,
    exp(-r tau))``.

    Examples
    --------
    >>> round(float(black76_price(100.0, 100.0, 1.0, 0.2, 1.0)), 6)  # = 100 (2 N(0.1) - 1)
    7.965567
    """
    f, k, t, v, d, c = broadcast(
        positive("forward", forward),
        positive("strike", strike),
        non_negative("tau", tau),
        non_negative("vol", vol),
        positive("discount", discount),
        flags("is_call", is_call),
    )
    sign = np.where(c, 1.0, -1.0)
    d1, d2 = _d1_d2(np.log(f / k), v * np.sqrt(t))
    value = d * sign * (f * ndtr(sign * d1) - k * ndtr(sign * d2))
    return _out(np.maximum(value, 0.0))
