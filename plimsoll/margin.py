"""Off-chain standard margin: the contract's exact integers for every account at once.

:func:`compute_margin` takes a :class:`~plimsoll.state.MarginState` (every account read at one
pinned block) and returns, for all accounts together, the equity, initial margin (IM),
maintenance margin (MM) and liquidatable flag that ``Plimsoll.accountMargin`` /
``isLiquidatable`` return at that block - the same integers, bit for bit, with the same
rounding (``contracts/core/MarginEngine.sol``):

* per position in market m at price p with volatility scalars sIm, sMm: notional =
  ceil(|size| x p), rate = min(imBase + ceil(|size| x sizeSlope), 1), IM = ceil(notional x
  min(ceil(rate x sIm), 1)), MM = ceil(notional x ceil(min(ceil(rate x sMm), 1) x mmFactor)),
  funding = ceil(size x (index - entryIndex))
  (``smulWadCeil``), uPnL = floor(size x p) - openNotional - funding;
* funding index now = stored index + rate x p x elapsed / (WAD x 1 day), and rate =
  maxFundingRate x clamp(skew / skewScale, -1, 1), each division truncated toward zero;
* per collateral asset: value = floor(floor(toWad(balance) x price) x haircut);
* equity = cash + sum(value) + sum(uPnL); liquidatable iff equity < MM (``liquidatable``;
  the contract also needs every price the account uses graded OK: ``priced``).

Every ``x`` above is a product divided by WAD = 1e18.

Design: fixed-width limb arithmetic in int64 numpy arrays
----------------------------------------------------------
A value is a stack of limbs in base B = 1e9, ``v = sum_k limb[k] * B**k``, stored as an int64
array of shape (L, ...) so one numpy operation acts on one limb of every account and market.
*Normalized* means limbs 0..L-2 lie in [0, B) and the top limb carries the sign. Then:

* a product of two limbs is below B**2 = 1e18 and a product's limb is a sum of at most 5 such
  terms (no operand here has more than 5 limbs: 2**128 < B**5), so it stays below 5e18 < 2**63;
* floor(v / WAD) is the limb stack without its two lowest limbs (WAD = B**2), for either sign,
  because the dropped part lies in [0, B**2); ceil adds one where a dropped limb is non-zero;
* the sign of v is the sign of its top limb.

Inputs arrive as Python ints in object arrays; two object operations per value (``>> 64`` and
``& (2**64 - 1)``) split them into 64-bit words, a view cuts those into 16-bit pieces and one
float64 matrix product maps the pieces to base-1e9 limbs (every partial sum is an integer below
8 x 2**16 x 1e9 < 2**53, hence exact in float64). Results go back to Python ints through pairs
of limbs (base 1e18) and two object operations per value.

Work is cut into chunks of accounts (cache-sized) that run on a small thread pool: numpy
releases the GIL in the integer kernels.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from plimsoll.errors import PlimsollError
from plimsoll.state import IntArray, MarginState

WAD = 10**18
DAY = 86_400  # [s]

_B = 10**9  # limb base; WAD = _B**2
_MASK64 = 2**64 - 1
_MAX_TERMS = 9  # 9 x (B**2) < 2**63: most limb products one output limb may sum

Limbs = npt.NDArray[np.int64]
"""A limb stack: int64 array of shape (L, ...), value = sum_k limbs[k] * 1e9**k."""


class MarginInputError(PlimsollError):
    """The snapshot is malformed or holds a value outside the contract's storage types."""


@dataclass(frozen=True)
class MarginResult:
    """Standard margin of every account of a :class:`~plimsoll.state.MarginState`.

    Attributes
    ----------
    block, timestamp : int
        The pinned block and its timestamp [s].
    equity : ndarray of object, shape (N,)
        [wad USD] Python ints, signed; ``accountMargin(...).equity``.
    im, mm : ndarray of object, shape (N,)
        [wad USD] Python ints >= 0; initial and maintenance margin.
    liquidatable : ndarray of bool, shape (N,)
        equity < mm, decided on the exact integers; ``isLiquidatable``.
    health : ndarray of float64, shape (N,)
        (equity - mm) / mm as a float (the numerator is exact before rounding to float);
        -inf / +inf where mm == 0 and equity < 0 / >= 0. For ranking only.
    priced : ndarray of bool, shape (N,)
        False where the account holds a position or balance whose price reads 0 in the
        snapshot (a failed feed): the contract's views revert for it, and its numbers here
        treat that price as 0.
    funding_index : list of int
        [wad] the current funding index of every market (pending accrual included), as
        ``Plimsoll.fundingIndex``.
    """

    block: int
    timestamp: int
    equity: IntArray
    im: IntArray
    mm: IntArray
    liquidatable: npt.NDArray[np.bool_]
    health: npt.NDArray[np.float64]
    priced: npt.NDArray[np.bool_]
    funding_index: list[int]

    @property
    def n_accounts(self) -> int:
        return int(self.liquidatable.shape[0])


# ---------------------------------------------------------------------------------- scalars


def _tdiv(a: int, b: int) -> int:
    """a / b truncated toward zero (Solidity's signed division)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def funding_rate_per_day(state: MarginState, m: int) -> int:
    """Funding rate of market ``m`` per day [wad of price], as ``_fundingRatePerDay``.

    maxFundingRate x clamp(skew x WAD / skewScale, -WAD, WAD) / WAD, each division truncated
    toward zero; 0 when skewScale is 0.
    """
    scale = int(state.skew_scale[m])
    if scale == 0:
        return 0
    skew = int(state.long_oi[m]) - int(state.short_oi[m])
    prop = max(-WAD, min(WAD, _tdiv(skew * WAD, scale)))
    return _tdiv(prop * int(state.max_funding_rate[m]), WAD)


def current_funding_index(state: MarginState, m: int) -> int:
    """Funding index of market ``m`` at ``state.timestamp`` [wad], as ``_currentIndex``.

    stored index + rate x price x elapsed / (WAD x 1 day), truncated toward zero.
    """
    index = int(state.funding_index[m])
    elapsed = int(state.timestamp) - int(state.last_funding_time[m])
    if elapsed == 0:
        return index
    if elapsed < 0:
        raise MarginInputError(f"market {m}: last funding time after the snapshot's timestamp")
    rate = funding_rate_per_day(state, m)
    return index + _tdiv(rate * int(state.market_price[m]) * elapsed, WAD * DAY)


def account_margin_reference(state: MarginState, i: int) -> tuple[int, int, int]:
    """Equity, IM and MM [wad USD] of account ``i`` with plain Python ints, one at a time.

    The specification :func:`compute_margin` is tested against (and a way to recompute one
    account on demand); it follows ``MarginEngine._snapshot`` line by line.
    """

    def up(x: int, y: int) -> int:  # ceil(x * y / WAD), x, y >= 0
        return -(-x * y // WAD)

    equity = int(state.cash[i])
    for a in range(state.n_assets):
        bal = int(state.balances[i, a])
        if bal == 0:
            continue
        wad_bal = bal * 10 ** (18 - int(state.asset_decimals[a]))
        equity += wad_bal * int(state.asset_price[a]) // WAD * int(state.asset_haircut[a]) // WAD
    im = mm = 0
    s_im, s_mm = _scalars(state)
    for m in range(state.n_markets):
        size = int(state.sizes[i, m])
        if size == 0:
            equity -= int(state.open_notional[i, m])  # 0 for a closed position
            continue
        price = int(state.market_price[m])
        index = current_funding_index(state, m)
        funding = -(-size * (index - int(state.entry_funding_index[i, m])) // WAD)
        equity += size * price // WAD - int(state.open_notional[i, m]) - funding
        notional = up(abs(size), price)
        rate = min(int(state.im_base[m]) + up(abs(size), int(state.size_slope[m])), WAD)
        im += up(notional, min(up(rate, s_im[m]), WAD))
        mm += up(notional, up(min(up(rate, s_mm[m]), WAD), int(state.mm_factor[m])))
    return equity, im, mm


def _scalars(state: MarginState) -> tuple[list[int], list[int]]:
    """The markets' IM and MM volatility scalars [wad] (1 where the snapshot has none)."""
    nm = state.n_markets
    s_im = [WAD] * nm if state.im_scalar is None else [int(v) for v in state.im_scalar]
    s_mm = [WAD] * nm if state.mm_scalar is None else [int(v) for v in state.mm_scalar]
    return s_im, s_mm


# ---------------------------------------------------------------------------------- limbs


def _normalize(x: Limbs) -> Limbs:
    """Carry every limb into [0, B) from the bottom up; the top limb keeps the sign. In place."""
    for k in range(x.shape[0] - 1):
        c = x[k] // _B  # floor division: correct carries for negative limbs too
        x[k] -= c * _B
        x[k + 1] += c
    return x


def _trim(x: Limbs) -> Limbs:
    """Drop top limbs that are 0 everywhere, or fold a top limb of only 0 / -1 into the one
    below (which then lies in [-B, B)); keeps at least 3 limbs. ``x`` must be normalized."""
    n = x.shape[0]
    while n > 3:
        top = x[n - 1]
        if not top.any():
            n -= 1
        elif (top >= -1).all() and (top <= 0).all():
            x[n - 2] += top * _B
            n -= 1
        else:
            break
    return x[:n]


def _pad(x: Limbs, n: int) -> Limbs:
    """``x`` with at least ``n`` limbs, normalized (the old top limb's sign is carried up)."""
    if x.shape[0] >= n:
        return x
    out = np.zeros((n, *x.shape[1:]), dtype=np.int64)
    out[: x.shape[0]] = x
    return _normalize(out)


def _mul(x: Limbs, y: Limbs) -> Limbs:
    """x * y, normalized and trimmed. Operands: normalized, every limb in [-B, B]."""
    if x.shape[0] < y.shape[0]:
        x, y = y, x
    lx, ly = x.shape[0], y.shape[0]
    if ly > _MAX_TERMS:
        raise MarginInputError("operand too wide for exact int64 limb products")
    shape = np.broadcast_shapes(x.shape[1:], y.shape[1:])
    out = np.zeros((lx + ly + 1, *shape), dtype=np.int64)
    for j in range(ly):
        out[j : j + lx] += x * y[j]
    return _trim(_normalize(out))


def _div_wad(x: Limbs, ceil: bool) -> tuple[Limbs, npt.NDArray[np.bool_]]:
    """floor or ceil of x / WAD (normalized, trimmed) and where the remainder is non-zero."""
    x = _pad(x, 4)
    rem = (x[0] != 0) | (x[1] != 0)
    q = x[2:].copy()
    if ceil:
        q[0] += rem
        if (q[0] == _B).any():
            _normalize(q)
    return _trim(_pad(q, 3)), rem


def _add(*terms: Limbs) -> Limbs:
    """Sum of normalized limb stacks (broadcast), normalized and trimmed."""
    n = max(t.shape[0] for t in terms) + 1
    shape = np.broadcast_shapes(*(t.shape[1:] for t in terms))
    out = np.zeros((n, *shape), dtype=np.int64)
    for t in terms:
        out[: t.shape[0]] += t
    return _trim(_normalize(out))


def _const(values: list[int], shape: tuple[int, ...]) -> Limbs:
    """Python ints (one per market or asset) as a normalized limb stack of shape (L, *shape)."""
    n = 3
    for v in values:
        while abs(v) >= _B ** (n - 1) // 2:
            n += 1
    out = np.zeros((n, len(values)), dtype=np.int64)
    for j, v in enumerate(values):
        for k in range(n - 1):
            out[k, j] = (v // _B**k) % _B
        out[n - 1, j] = v // _B ** (n - 1)
    return out.reshape((n, *shape))


def _limbs_of(v: int) -> list[int]:
    return [(v // _B**k) % _B for k in range(4)]


_C64 = _limbs_of(2**64)  # 2**64 in base-1e9 limbs (3 non-zero)
_C96 = _limbs_of(2**96)  # (4 non-zero)


def _to_limbs(x: npt.NDArray[Any], signed: bool, name: str) -> Limbs:
    """Integers (int128 if ``signed``, else uint128) as a normalized limb stack (L, *x.shape).

    Object arrays cost two object operations per value (``& (2**64 - 1)`` and ``>> 64``); the
    two 64-bit words then become base-1e9 limbs with int64 arithmetic: the low word through
    two divisions by 1e9, the high word cut in 32-bit halves h0 (unsigned) and h1 (signed
    when ``signed``) times the limbs of 2**64 and 2**96. Each limb sums at most three terms
    below 4.3e18 + 2.2e18 + 1e9 (unsigned: 4.3e18 + 4.3e18 + 1e9), so below 2**63.
    """
    flat = x.reshape(-1)
    try:
        if flat.dtype == object:
            lo = (flat & _MASK64).astype(np.uint64)
            hi_obj = flat >> 64
            hi = hi_obj.astype(np.int64) if signed else hi_obj.astype(np.uint64).view(np.int64)
        elif flat.dtype.kind in "iu":
            v = flat.astype(np.int64)
            if not signed and (v < 0).any():
                raise OverflowError
            lo, hi = v.view(np.uint64), v >> 63
        else:
            raise MarginInputError(f"{name}: integer array expected, got {flat.dtype}")
    except (OverflowError, TypeError) as exc:
        kind = "int128" if signed else "uint128"
        raise MarginInputError(f"{name}: a value is not an {kind} integer") from exc
    out = np.zeros((5, flat.shape[0]), dtype=np.int64)
    q = lo // np.uint64(_B)
    out[0] = (lo - q * np.uint64(_B)).view(np.int64)
    q2 = q // np.uint64(_B)
    out[1] = (q - q2 * np.uint64(_B)).view(np.int64)
    out[2] = q2.view(np.int64)
    h0 = hi & 0xFFFFFFFF
    h1 = (hi >> 32) if signed else ((hi >> 32) & 0xFFFFFFFF)
    for k in range(3):
        out[k] += h0 * _C64[k]
    for k in range(4):
        out[k] += h1 * _C96[k]
    out = _trim(_normalize(out))
    return out.reshape((out.shape[0], *x.shape))


def _to_float(x: Limbs) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = x[-1].astype(np.float64)
    for k in range(x.shape[0] - 2, -1, -1):
        out = out * float(_B) + x[k]
    return out


def _to_ints(x: Limbs) -> IntArray:
    """Normalized limbs (L, n) as an object array of Python ints, through base-1e18 digits."""
    n = x.shape[0]
    digits = [x[k] + (x[k + 1] * _B if k + 1 < n else 0) for k in range(0, n, 2)]
    out: IntArray = digits[-1].astype(object)
    for d in reversed(digits[:-1]):
        out = out * WAD + d.astype(object)
    return out


# ---------------------------------------------------------------------------------- engine


@dataclass
class _Params:
    """Per-market and per-asset constants as broadcastable limb stacks (L, 1, M or A)."""

    price: Limbs
    slope: Limbs
    im_base: Limbs
    mm_factor: Limbs
    im_scalar: Limbs
    mm_scalar: Limbs
    index: Limbs
    unit: Limbs  # WAD
    asset_scale: Limbs  # 10**(18 - decimals) x price: toWad and the price in one exact product
    haircut: Limbs
    market_zero: npt.NDArray[np.bool_]  # (M,) price reads 0 or is not graded OK


def _params(state: MarginState, index: list[int]) -> _Params:
    nm, na = state.n_markets, state.n_assets
    m_shape, a_shape = (1, nm), (1, na)

    def ints(a: npt.NDArray[Any], n: int, name: str, lo: int, hi: int) -> list[int]:
        vals = [int(v) for v in np.asarray(a).reshape(-1)]
        if len(vals) != n:
            raise MarginInputError(f"{name}: {len(vals)} values, expected {n}")
        for v in vals:
            if not lo <= v <= hi:
                raise MarginInputError(f"{name}: {v} outside [{lo}, {hi}]")
        return vals

    u64, u128 = 2**64 - 1, 2**128 - 1
    price = ints(state.market_price, nm, "market_price", 0, u128)
    dec = ints(state.asset_decimals, na, "asset_decimals", 0, 18)
    aprice = ints(state.asset_price, na, "asset_price", 0, u128)
    s_im, s_mm = _scalars(state)
    m_ok = np.ones(nm, dtype=bool) if state.market_price_ok is None else state.market_price_ok
    return _Params(
        price=_const(price, m_shape),
        slope=_const(ints(state.size_slope, nm, "size_slope", 0, u64), m_shape),
        im_base=_const(ints(state.im_base, nm, "im_base", 0, u64), m_shape),
        mm_factor=_const(ints(state.mm_factor, nm, "mm_factor", 0, u64), m_shape),
        im_scalar=_const(ints(np.array(s_im, dtype=object), nm, "im_scalar", 0, u64), m_shape),
        mm_scalar=_const(ints(np.array(s_mm, dtype=object), nm, "mm_scalar", 0, u64), m_shape),
        index=_const(index, m_shape),
        unit=_const([WAD], (1, 1)),
        asset_scale=_const([10 ** (18 - d) * p for d, p in zip(dec, aprice, strict=True)], a_shape),
        haircut=_const(ints(state.asset_haircut, na, "asset_haircut", 0, u64), a_shape),
        market_zero=np.array([p == 0 for p in price], dtype=bool) | ~np.asarray(m_ok, dtype=bool),
    )


def _wide_to_limbs(x: npt.NDArray[Any]) -> Limbs:
    """Any Python ints as a normalized limb stack, with object arithmetic (slow, rare path)."""
    flat = np.asarray(x, dtype=object).reshape(-1)
    width = max((abs(int(v)).bit_length() for v in flat), default=0)
    n = max(3, width // 29 + 2)  # 1e9 > 2**29
    out = np.zeros((n, flat.shape[0]), dtype=np.int64)
    rest = flat
    for k in range(n - 1):
        out[k] = (rest % _B).astype(np.int64)
        rest = rest // _B
    out[n - 1] = rest.astype(np.int64)
    out = _trim(out)
    return out.reshape((out.shape[0], *x.shape))


def _sum_limbs(shape: tuple[int, ...], *terms: tuple[int, Limbs]) -> Limbs:
    """sum(sign x stack) over (sign, stack) terms of shape (L, *shape), normalized, trimmed.

    Terms need not be normalized; each limb must stay below B in magnitude (a spare top limb
    takes the carries)."""
    n = max(t.shape[0] for _, t in terms) + 1
    out = np.zeros((n, *shape), dtype=np.int64)
    for sign, t in terms:
        if sign > 0:
            out[: t.shape[0]] += t
        else:
            out[: t.shape[0]] -= t
    return _trim(_normalize(out))


def _chunk(state: MarginState, p: _Params, lo: int, hi: int) -> tuple[npt.NDArray[Any], ...]:
    """Margin of accounts [lo, hi): equity, im, mm (object), liquidatable, health, priced."""
    sl = slice(lo, hi)
    n = hi - lo
    size = _to_limbs(state.sizes[sl], True, "sizes")  # (L, n, M) [wad]
    neg = size[-1] < 0
    absz = np.where(neg, -size, size)  # not normalized: limbs in (-B, B), fine for products

    # notional = ceil(|size| x p); floor(size x p) from the same product and its remainder.
    notional, rem = _div_wad(_mul(absz, p.price), ceil=True)
    price_pnl = np.where(neg, -notional, notional)  # not normalized; summed below
    price_pnl[0] -= ~neg & rem

    # imRate = min(imBase + ceil(|size| x slope), WAD): r >= WAD iff a limb above 1 is set.
    rate = _add(_div_wad(_mul(absz, p.slope), ceil=True)[0], p.im_base)
    capped = (rate[2:] != 0).any(axis=0)
    rate = np.where(capped, p.unit[:3], rate[:3])
    im_rate = _scaled(rate, p.im_scalar, p.unit)
    im = _div_wad(_mul(notional, im_rate), ceil=True)[0]
    mm_rate = _div_wad(_mul(_scaled(rate, p.mm_scalar, p.unit), p.mm_factor), ceil=True)[0]
    mm = _div_wad(_mul(notional, mm_rate), ceil=True)[0]

    # funding owed = ceil(size x (index - entry index)) (smulWadCeil).
    entry = _to_limbs(state.entry_funding_index[sl], True, "entry_funding_index")
    delta = _sum_limbs(entry.shape[1:], (1, p.index), (-1, entry))
    funding = _div_wad(_mul(size, delta), ceil=True)[0]

    # collateral value = floor(floor(balance x 10**(18-dec) x price) x haircut).
    bal = _to_limbs(state.balances[sl], False, "balances")  # (L, n, A) [token units]
    value = _div_wad(_mul(_div_wad(_mul(bal, p.asset_scale), ceil=False)[0], p.haircut), False)[0]

    # cash - sum(openNotional) is added up with Python ints: one conversion per account.
    on = np.asarray(state.open_notional[sl]).astype(object)
    base_obj = np.asarray(state.cash[sl]).astype(object) - on.sum(axis=1)
    try:
        base = _to_limbs(base_obj, True, "cash - open_notional")  # (L, n) [wad]
    except MarginInputError:
        base = _wide_to_limbs(base_obj)

    equity = _sum_limbs(
        (n,),
        (1, base),
        (1, value.sum(axis=2)),
        (1, price_pnl.sum(axis=2)),
        (-1, funding.sum(axis=2)),
    )
    im_sum = _sum_limbs((n,), (1, im.sum(axis=2)))
    mm_sum = _sum_limbs((n,), (1, mm.sum(axis=2)))
    diff = _sum_limbs((n,), (1, equity), (-1, mm_sum))
    liquidatable = diff[-1] < 0
    mm_f = _to_float(mm_sum)
    with np.errstate(divide="ignore", invalid="ignore"):
        health = np.where(mm_f > 0, _to_float(diff) / mm_f, np.where(liquidatable, -np.inf, np.inf))
    # Only the prices of positions gate a liquidation; collateral counts at its collateral
    # price (0 when untrusted), as in MarginEngine._collateralValue.
    unpriced = ((size != 0).any(axis=0) & p.market_zero).any(axis=1)
    return (
        _to_ints(equity),
        _to_ints(im_sum),
        _to_ints(mm_sum),
        liquidatable,
        health,
        ~unpriced,
    )


def _scaled(rate: Limbs, scalar: Limbs, unit: Limbs) -> Limbs:
    """min(ceil(rate x scalar), WAD) for a rate <= WAD: >= WAD iff a limb above 1 is set."""
    r = _div_wad(_mul(rate, scalar), ceil=True)[0]
    if r.shape[0] < 3:
        r = _pad(r, 3)
    capped = (r[2:] != 0).any(axis=0)
    return np.where(capped, unit[:3], r[:3])


def _check_shapes(state: MarginState) -> None:
    n, nm, na = state.n_accounts, state.n_markets, state.n_assets
    want = {
        "cash": (n,),
        "balances": (n, na),
        "sizes": (n, nm),
        "open_notional": (n, nm),
        "entry_funding_index": (n, nm),
    }
    for name, shape in want.items():
        got = np.shape(getattr(state, name))
        if got != shape:
            raise MarginInputError(f"{name}: shape {got}, expected {shape}")


def compute_margin(
    state: MarginState, *, chunk_size: int = 8192, threads: int | None = None
) -> MarginResult:
    """Equity, IM, MM and liquidatable flag of every account in ``state``, exactly.

    Parameters
    ----------
    state : MarginState
        Every account at one pinned block; units as in :mod:`plimsoll.state` (cash, sizes,
        open notional, funding indexes, prices and rates [wad]; balances [token units]).
    chunk_size : int
        Accounts per chunk (each chunk's arrays stay cache-sized).
    threads : int, optional
        Worker threads (default: min(2, CPU count)).

    Returns
    -------
    MarginResult
        equity [wad USD, signed], im and mm [wad USD] as Python ints, liquidatable (equity <
        mm), a float health ratio for ranking and the current funding indexes [wad].

    Raises
    ------
    MarginInputError
        Shapes do not fit, or a value is outside its contract storage type (sizes, open
        notional, funding indexes and cash int128; balances and prices uint128; rates
        uint64; decimals <= 18).

    Notes
    -----
    Exactness. Every rounding step of the contract is a floor or ceil of a product divided
    by WAD (or, for the per-market funding index, a truncated division done with Python ints
    in :func:`current_funding_index`). On normalized base-1e9 limbs (low limbs in [0, 1e9),
    signed top limb) floor(v / 1e18) is the stack without its two lowest limbs for either
    sign and ceil adds 1 where they are not both 0, so each step gives the contract's
    integer. Limb products are exact in int64: no operand is wider than 5 limbs (2**128 <
    1e45), so an output limb sums at most 5 products below 1e18. Additions have a spare top
    limb. Inputs are bounded by the contract's storage types (checked on conversion), so
    every intermediate value of the contract is representable. Where the contract computes
    floor(size x p) and ceil(|size| x p) separately, one product serves both:
    floor(s x p) = -ceil(|s| x p) for s < 0 and ceil - [remainder != 0] for s >= 0. The
    collateral step floor(toWad(b) x p) is computed as floor(b x (10**(18-dec) x p)): toWad
    is exact, so the product is the same integer. A closed position (size 0) contributes
    -openNotional, which is 0 on chain.

    Cost. About a dozen limb operations per product on (n, markets) int64 arrays, plus two
    object operations per input integer and two per output integer; no Python loop runs per
    account or per position (loops run over chunks, limbs, markets and assets).
    """
    _check_shapes(state)
    index = [current_funding_index(state, m) for m in range(state.n_markets)]
    params = _params(state, index)
    n = state.n_accounts
    if n == 0:
        empty = np.empty(0, dtype=object)
        return MarginResult(
            state.block,
            state.timestamp,
            empty,
            empty.copy(),
            empty.copy(),
            np.zeros(0, dtype=bool),
            np.zeros(0),
            np.ones(0, dtype=bool),
            index,
        )
    bounds = [(lo, min(n, lo + chunk_size)) for lo in range(0, n, max(1, chunk_size))]
    workers = threads if threads is not None else min(2, os.cpu_count() or 1)
    if workers <= 1 or len(bounds) == 1:
        parts = [_chunk(state, params, lo, hi) for lo, hi in bounds]
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda b: _chunk(state, params, *b), bounds))
    cols = [np.concatenate([part[k] for part in parts]) for k in range(6)]
    return MarginResult(
        block=int(state.block),
        timestamp=int(state.timestamp),
        equity=cols[0],
        im=cols[1],
        mm=cols[2],
        liquidatable=cols[3].astype(bool),
        health=cols[4].astype(np.float64),
        priced=cols[5].astype(bool),
        funding_index=index,
    )


def shortfall_ranking(
    result: MarginResult, *, liquidatable_only: bool = True
) -> npt.NDArray[np.int64]:
    """Account indexes, most under-margined first: ascending (equity - mm) / mm.

    Parameters
    ----------
    result : MarginResult
    liquidatable_only : bool
        Keep only accounts with equity < mm (default) - a keeper's work list.

    Returns
    -------
    ndarray of int64
        Row indexes into the snapshot. Accounts without a usable price (``priced`` False)
        are left out. Ties keep snapshot order.
    """
    keep = result.priced & (result.liquidatable if liquidatable_only else True)
    idx = np.flatnonzero(keep)
    order = np.argsort(result.health[idx], kind="stable")
    return idx[order].astype(np.int64)
