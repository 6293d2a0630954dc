"""Off-chain option marks, standard option margin and portfolio margin (float64 mirror).

The specification is the NatSpec of ``contracts/interfaces/IOptions.sol``; this module follows
its formulas term by term, in float64, vectorized over accounts x positions x scenarios:

* **mark** of a series (market m, strike K, expiry T) at spot S and implied vol sigma of m:
  Black-Scholes with rate 0, ``tau = (T - now) / (365 x 86400)`` years; once ``now >= T`` the
  intrinsic value at the settlement price, or at S while the series is not settled;
* **standard** option margin, per option position q (mark v)::

      value = q > 0 ? q v longHaircut : -|q| v
      OTM   = call: max(K - S, 0) / S,  put: max(S - K, 0) / S
      rate  = max(shortA - OTM, shortB)
      IM    = q < 0 ? |q| S rate : 0,   MM = IM x optionMmFactor

* **portfolio** margin: per underlying u the account holds, ``n = spotPoints x 3`` scenarios
  k (spot index ``i = k % spotPoints``, vol index ``j = k // spotPoints``: 0 none, 1 up,
  2 down)::

      shock_i   = spotShock x sMm x (2 i / (spotPoints - 1) - 1),   S' = S (1 + shock_i)
      scale     = tau >= 30 days ? 1 : min((30 days / tau)^volPow, maxVolScale)
      sigma'    = sigma | sigma (1 + volUp scale) | max(sigma (1 - volDown scale), minVol)
      loss_u(k) = sum_perp size (S - S') + sum_opt q (v(S, sigma) - v(S', sigma'))
      cont_u    = contPerp |perp| S + contOption S max(0, -sum_opt q)
      MM = sum_u max(max_k loss_u(k), 0) + cont_u
      IM = sum_u (max(max_k loss_u(k), 0) + cont_u) x imFactor x sIm_u / sMm_u

* **witness**: one scenario per market, 8 bits per market id in a uint256;
  ``L = sum_u max(loss_u(k_u), 0) + cont_u`` (<= MM, equal at the worst scenarios).

Units
-----
Inputs are the contract's integers: sizes, strikes, prices, vols and config values [wad]
(1e18 = 1.0), times [s]. Every output is a float64 in USD (values, IM, MM, losses) or in
units of the underlying. The contract rounds each wad product up or down (1e-18 relative);
the mirror ignores that rounding and aims at 1e-9 relative parity with the contract.

Readings of the spec that it leaves implicit (documented here, flagged for the contract):

* ``IM = MM x imFactor x sIm / sMm`` is applied per underlying (the scalars are per market).
* An expired series is repriced in a scenario at its intrinsic value at S' while it is not
  settled, and keeps its settlement intrinsic (loss 0) once settled; its vol scale is
  irrelevant (intrinsic values do not depend on vol).
* The largest shock spotShock x sMm is capped at 0.95 (``MAX_SHOCK``), as the draft
  ``contracts/options/OptionsMarket.sol`` does; the NatSpec does not say so, and without a cap
  a shock of 1 or more would make S' <= 0.
* Ties between scenarios report the lowest scenario index as the worst one.
* An underlying is "held" when the account has a non-zero perp or a non-zero option position
  on it; other markets report worst scenario -1 and loss 0 (they add nothing to MM either).

Design
------
Scenario values depend on the series, not on the account: for the S distinct series of a
book the revaluation ``D[s, k] = v(S, sigma) - v(S', sigma')`` costs S x n Black-Scholes
evaluations in one call; an account's option loss is then a gather ``q[a, p] x D[idx[a, p], k]``
over its padded position list (padding: size 0) and a masked sum per market. Accounts are
processed in chunks to bound memory (chunk x positions x scenarios floats).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from plimsoll.errors import PlimsollError, RiskInputError
from plimsoll.risk import bs

__all__ = [
    "WAD",
    "YEAR",
    "VOL_SCALE_HORIZON",
    "MAX_SHOCK",
    "PmInputError",
    "OptionsConfig",
    "PortfolioConfig",
    "Series",
    "OptionBook",
    "MarketData",
    "StandardOptionMargin",
    "PortfolioMargin",
    "ScenarioLosses",
    "ReferenceMargin",
    "option_marks",
    "standard_option_margin",
    "scenario_losses",
    "portfolio_margin",
    "witness_loss",
    "encode_witness",
    "decode_witness",
    "scenario_index",
    "scenario_coords",
    "account_reference",
    "witness_loss_reference",
]

WAD = 10**18
YEAR = 365 * 86_400  # [s] the annualization of tau
VOL_SCALE_HORIZON = 30 * 86_400  # [s] the vol shock scale is 1 at or beyond this tau
MAX_WITNESS_MARKETS = 32  # 8 bits per market id in a uint256
MAX_SHOCK = 0.95  # cap on spotShock x sMm (contracts/options/OptionsMarket.sol, not in the NatSpec)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class PmInputError(PlimsollError, ValueError):
    """An option book, market data or config is malformed or outside the mirror's domain.

    Thrown when, e.g., a shape does not fit, a market id is out of range, a spot, strike or
    volatility scalar is not positive, a config value does not fit its Solidity type, or a
    scenario index is outside the grid.
    """


def _f(x: int) -> float:
    """A wad integer as a float (one correctly rounded conversion, then an exact division)."""
    return float(int(x)) / WAD


def _fa(x: Any) -> FloatArray:
    """Wad integers (any array-like, object arrays included) as float64 USD/units."""
    out: FloatArray = np.asarray(x).astype(np.float64) / WAD  # float(int) per object: rounded
    return out


def _check_uint(name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise PmInputError(f"{name}: integer expected, got {value!r}")
    if not 0 <= int(value) < 2**bits:
        raise PmInputError(f"{name}: {value} does not fit uint{bits}")


# ---------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class OptionsConfig:
    """Mirror of ``IOptions.OptionsConfig`` (standard option margin and trading) [wad].

    Attributes
    ----------
    iv_feed_id : int
        Oracle router feed answering the market's implied vol (uint16).
    enabled : bool
        New risk allowed.
    spread, min_fee : int
        [wad] trade price = mark x (1 +- spread), at least |q| S minFee away from the mark.
    short_a, short_b : int
        [wad] standard short rate = max(shortA - OTM, shortB).
    option_mm_factor : int
        [wad] MM = IM x this.
    long_haircut : int
        [wad] long options count at this share of their mark.
    """

    iv_feed_id: int
    enabled: bool
    spread: int
    min_fee: int
    short_a: int
    short_b: int
    option_mm_factor: int
    long_haircut: int

    def __post_init__(self) -> None:
        _check_uint("iv_feed_id", self.iv_feed_id, 16)
        for f in fields(self)[2:]:
            _check_uint(f.name, getattr(self, f.name), 64)

    @classmethod
    def from_wad_tuple(cls, t: Sequence[Any]) -> OptionsConfig:
        """From the ABI-decoded struct tuple, in Solidity field order."""
        if len(t) != 8:
            raise PmInputError(f"OptionsConfig: 8 fields expected, got {len(t)}")
        return cls(int(t[0]), bool(t[1]), *(int(v) for v in t[2:]))

    def to_wad_tuple(self) -> tuple[int | bool, ...]:
        """The struct tuple in Solidity field order (for ABI encoding)."""
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class PortfolioConfig:
    """Mirror of ``IOptions.PortfolioConfig`` (portfolio margin grid) [wad unless noted].

    Attributes
    ----------
    spot_shock : int
        [wad] largest spot shock (0.18e18), scaled by the market's MM vol scalar.
    spot_points : int
        Spot points of the grid: odd, 3..15 (uint8).
    vol_up, vol_down : int
        [wad] sigma' = sigma (1 + volUp scale) and max(sigma (1 - volDown scale), minVol).
    vol_pow, max_vol_scale : int
        [wad] scale = min((30 days / tau)^volPow, maxVolScale), 1 when tau >= 30 days.
    min_vol : int
        [wad] floor of a shocked-down vol.
    cont_perp, cont_option : int
        [wad] contingency per unit of perp notional / per net short option x spot.
    im_factor : int
        [wad] IM = MM x imFactor (x sIm / sMm); the NatSpec says > 1, the draft contract
        accepts >= 1, and so does the mirror.
    """

    spot_shock: int
    spot_points: int
    vol_up: int
    vol_down: int
    vol_pow: int
    max_vol_scale: int
    min_vol: int
    cont_perp: int
    cont_option: int
    im_factor: int

    def __post_init__(self) -> None:
        _check_uint("spot_points", self.spot_points, 8)
        for f in fields(self):
            if f.name != "spot_points":
                _check_uint(f.name, getattr(self, f.name), 64)
        if not (3 <= self.spot_points <= 15 and self.spot_points % 2 == 1):
            raise PmInputError(f"spot_points: {self.spot_points} is not odd in 3..15")
        if self.im_factor < WAD:
            raise PmInputError(f"im_factor: {self.im_factor} is below 1e18 (IM < MM)")

    @classmethod
    def from_wad_tuple(cls, t: Sequence[Any]) -> PortfolioConfig:
        """From the ABI-decoded struct tuple, in Solidity field order."""
        if len(t) != 10:
            raise PmInputError(f"PortfolioConfig: 10 fields expected, got {len(t)}")
        return cls(*(int(v) for v in t))

    def to_wad_tuple(self) -> tuple[int, ...]:
        """The struct tuple in Solidity field order (for ABI encoding)."""
        return tuple(int(getattr(self, f.name)) for f in fields(self))

    @property
    def n_scenarios(self) -> int:
        """Scenarios per underlying: spotPoints x 3."""
        return 3 * self.spot_points


# ---------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Series:
    """Mirror of ``IOptions.Series``: a European option on a core market's underlying.

    Attributes
    ----------
    market_id : int
        The core market whose spot feed the option is on.
    is_call : bool
        Call (True) or put (False).
    expiry : int
        [s] expiry timestamp.
    strike : int
        [wad USD] strike, > 0.
    settlement_price : int
        [wad USD] 0 until settled.
    """

    market_id: int
    is_call: bool
    expiry: int
    strike: int
    settlement_price: int = 0

    def __post_init__(self) -> None:
        _check_uint("market_id", self.market_id, 16)
        _check_uint("expiry", self.expiry, 40)
        _check_uint("strike", self.strike, 128)
        _check_uint("settlement_price", self.settlement_price, 128)
        if self.strike == 0:
            raise PmInputError("strike: must be > 0")


@dataclass(frozen=True)
class MarketData:
    """Per-market prices at one block [wad] and the block timestamp [s].

    Attributes
    ----------
    spot : tuple of int
        (M,) [wad USD per unit] oracle spot of each market, > 0.
    iv : tuple of int
        (M,) [wad] implied vol of each market (its ``ivFeedId``), >= 0.
    im_scalar, mm_scalar : tuple of int
        (M,) [wad] volatility scalars sIm, sMm (> 0); 1e18 each when not given.
    timestamp : int
        [s] block timestamp ("now").
    size_slope, mm_factor : tuple of int, optional
        (M,) [wad] the perp markets' ``sizeSlopeWad`` and ``mmFactorWad``. When given, the
        core's portfolio-mode requirement is mirrored: the grid's IM and MM plus the size part
        of each perp's rate (``MarginEngine._sizeRequirements``); when not, the options
        market's ``accountRisk`` alone.
    """

    spot: tuple[int, ...]
    iv: tuple[int, ...]
    timestamp: int
    im_scalar: tuple[int, ...] | None = None
    mm_scalar: tuple[int, ...] | None = None
    size_slope: tuple[int, ...] | None = None
    mm_factor: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        spot = tuple(int(v) for v in self.spot)
        m = len(spot)
        iv = tuple(int(v) for v in self.iv)
        s_im = (WAD,) * m if self.im_scalar is None else tuple(int(v) for v in self.im_scalar)
        s_mm = (WAD,) * m if self.mm_scalar is None else tuple(int(v) for v in self.mm_scalar)
        for name, vals in (("iv", iv), ("im_scalar", s_im), ("mm_scalar", s_mm)):
            if len(vals) != m:
                raise PmInputError(f"{name}: {len(vals)} values for {m} markets")
        for name, vals, lo in (
            ("spot", spot, 1),
            ("iv", iv, 0),
            ("im_scalar", s_im, 1),
            ("mm_scalar", s_mm, 1),
        ):
            for v in vals:
                if v < lo:
                    raise PmInputError(f"{name}: {v} must be >= {lo}")
        object.__setattr__(self, "spot", spot)
        object.__setattr__(self, "iv", iv)
        object.__setattr__(self, "im_scalar", s_im)
        object.__setattr__(self, "mm_scalar", s_mm)
        object.__setattr__(self, "timestamp", int(self.timestamp))
        for name in ("size_slope", "mm_factor"):
            vals = getattr(self, name)
            if vals is not None:
                vals = tuple(int(v) for v in vals)
                if len(vals) != m:
                    raise PmInputError(f"{name}: {len(vals)} values for {m} markets")
                object.__setattr__(self, name, vals)

    @property
    def n_markets(self) -> int:
        return len(self.spot)

    def floats(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """spot [USD], iv, sIm, sMm as float64 arrays of shape (M,)."""
        assert self.im_scalar is not None and self.mm_scalar is not None
        return (
            _fa(list(self.spot)),
            _fa(list(self.iv)),
            _fa(list(self.im_scalar)),
            _fa(list(self.mm_scalar)),
        )


@dataclass(frozen=True)
class OptionBook:
    """Option and perp positions of N accounts, in padded arrays over a table of series.

    Build it with :meth:`from_positions` (per-account lists of ``(Series, size)``) or directly
    from arrays.

    Attributes
    ----------
    series : tuple of Series
        (S,) the distinct series the book refers to.
    series_index : ndarray of int64, shape (N, P)
        Index into ``series`` of each account's p-th option position; -1 marks padding.
    sizes : ndarray, shape (N, P)
        [wad] signed option sizes (Python ints in an object array, or int64); 0 at padding.
    perp_sizes : ndarray, shape (N, M)
        [wad] signed perp size per market (Python ints or int64).
    other_equity : ndarray, shape (N,)
        [wad USD] equity from everything but options: cash + collateral value + perp uPnL,
        as :mod:`plimsoll.margin` computes it (standard mode; the same in portfolio mode).
    """

    series: tuple[Series, ...]
    series_index: IntArray
    sizes: npt.NDArray[Any]
    perp_sizes: npt.NDArray[Any]
    other_equity: npt.NDArray[Any]

    def __post_init__(self) -> None:
        idx = np.asarray(self.series_index, dtype=np.int64)
        if idx.ndim != 2:
            raise PmInputError(f"series_index: 2-d (accounts, positions) expected, got {idx.shape}")
        n = idx.shape[0]
        perp = np.asarray(self.perp_sizes)
        if perp.ndim != 2 or perp.shape[0] != n:
            raise PmInputError(f"perp_sizes: shape {perp.shape}, expected ({n}, markets)")
        if np.shape(self.sizes) != idx.shape:
            raise PmInputError(f"sizes: shape {np.shape(self.sizes)}, expected {idx.shape}")
        if np.shape(self.other_equity) != (n,):
            raise PmInputError(f"other_equity: shape {np.shape(self.other_equity)}, want ({n},)")
        if idx.size and (idx.min() < -1 or idx.max() >= len(self.series)):
            raise PmInputError("series_index: an index is outside the series table")
        for s in self.series:
            if s.market_id >= perp.shape[1]:
                raise PmInputError(
                    f"series on market {s.market_id}: the book has {perp.shape[1]} markets"
                )
        object.__setattr__(self, "series", tuple(self.series))
        object.__setattr__(self, "series_index", idx)

    @classmethod
    def from_positions(
        cls,
        accounts: Sequence[Iterable[tuple[Series, int]]],
        perp_sizes: npt.ArrayLike,
        other_equity: npt.ArrayLike,
    ) -> OptionBook:
        """A book from per-account lists of ``(series, size [wad])`` option positions.

        Parameters
        ----------
        accounts : sequence of iterables of (Series, int)
            One list per account; a series may repeat (the positions add up).
        perp_sizes : array_like, shape (N, M)
            [wad] perp sizes.
        other_equity : array_like, shape (N,)
            [wad USD] cash + collateral value + perp uPnL of each account.
        """
        table: dict[Series, int] = {}
        rows: list[list[tuple[int, int]]] = []
        for positions in accounts:
            row = []
            for series, size in positions:
                row.append((table.setdefault(series, len(table)), int(size)))
            rows.append(row)
        width = max((len(r) for r in rows), default=0)
        idx = np.full((len(rows), width), -1, dtype=np.int64)
        sizes = np.zeros((len(rows), width), dtype=object)
        for a, row in enumerate(rows):
            for p, (s, q) in enumerate(row):
                idx[a, p] = s
                sizes[a, p] = q
        perp = np.asarray(perp_sizes, dtype=object)
        return cls(tuple(table), idx, sizes, perp, np.asarray(other_equity, dtype=object))

    @property
    def n_accounts(self) -> int:
        return int(self.series_index.shape[0])

    @property
    def n_markets(self) -> int:
        return int(np.shape(self.perp_sizes)[1])

    def positions(self, account: int) -> list[tuple[Series, int]]:
        """Account ``account``'s option positions as ``(series, size [wad])`` (no padding)."""
        out = []
        for s, q in zip(self.series_index[account], self.sizes[account], strict=True):
            if s >= 0:
                out.append((self.series[int(s)], int(q)))
        return out


@dataclass(frozen=True)
class _SeriesF:
    """The series table as float64 arrays (S,)."""

    market: IntArray
    is_call: BoolArray
    tau_s: IntArray  # [s] expiry - now, may be <= 0
    strike: FloatArray
    settle: FloatArray  # 0 until settled


def _series_arrays(series: Sequence[Series], now: int) -> _SeriesF:
    return _SeriesF(
        market=np.array([s.market_id for s in series], dtype=np.int64),
        is_call=np.array([s.is_call for s in series], dtype=bool),
        tau_s=np.array([s.expiry - now for s in series], dtype=np.int64),
        strike=_fa([s.strike for s in series]) if series else np.zeros(0),
        settle=_fa([s.settlement_price for s in series]) if series else np.zeros(0),
    )


def _check_markets(book: OptionBook, market: MarketData) -> None:
    if book.n_markets != market.n_markets:
        raise PmInputError(
            f"the book has {book.n_markets} markets, the market data {market.n_markets}"
        )


# ---------------------------------------------------------------------------------- marks


def _intrinsic(price: FloatArray, strike: FloatArray, is_call: BoolArray) -> FloatArray:
    out: FloatArray = np.where(
        is_call, np.maximum(price - strike, 0.0), np.maximum(strike - price, 0.0)
    )
    return out


def _value(spot: FloatArray, vol: FloatArray, sf: _SeriesF, shape_extra: int = 0) -> FloatArray:
    """Value per unit of every series at (series-broadcast) spot and vol [USD].

    ``spot`` and ``vol`` have shape (S, ...) with ``shape_extra`` trailing axes. Live series:
    Black-Scholes (rate 0); expired: intrinsic at the settlement price if set, else at spot.
    """
    ext = (slice(None),) + (None,) * shape_extra
    live = sf.tau_s[ext] > 0
    tau = np.where(live, sf.tau_s[ext], 0).astype(np.float64) / YEAR
    try:
        v = bs.price(spot, sf.strike[ext], tau, vol, 0.0, 0.0, sf.is_call[ext])
    except RiskInputError as exc:
        raise PmInputError(f"Black-Scholes input out of domain: {exc}") from None
    settled = sf.settle[ext] > 0
    at = np.where(settled, sf.settle[ext], spot)
    expired = _intrinsic(at, sf.strike[ext], sf.is_call[ext])
    out: FloatArray = np.where(live, v, expired)
    return out


def _marks(sf: _SeriesF, spot: FloatArray, iv: FloatArray) -> FloatArray:
    return _value(spot[sf.market], iv[sf.market], sf)


def option_marks(series: Sequence[Series], market: MarketData) -> FloatArray:
    """Mark of each series at the block [USD per unit].

    Parameters
    ----------
    series : sequence of Series
        The series to mark (their ``market_id`` indexes ``market``).
    market : MarketData
        Spots, implied vols and the block timestamp.

    Returns
    -------
    ndarray of float64, shape (S,)
        Black-Scholes (rate 0, tau = (expiry - now) / 365 days) at the market's spot and IV;
        once ``now >= expiry`` the intrinsic value at the settlement price, or at the spot
        while unsettled.

    Examples
    --------
    >>> mkt = MarketData(spot=(2000 * WAD,), iv=(8 * WAD // 10,), timestamp=0)
    >>> call = Series(0, True, 30 * 86_400, 2000 * WAD)
    >>> round(float(option_marks([call], mkt)[0]), 4)
    182.5968
    >>> float(option_marks([Series(0, False, 0, 2100 * WAD, 1900 * WAD)], mkt)[0])
    200.0
    """
    for s in series:
        if s.market_id >= market.n_markets:
            raise PmInputError(f"series on market {s.market_id}: only {market.n_markets}")
    spot, iv, _, _ = market.floats()
    return _marks(_series_arrays(series, market.timestamp), spot, iv)


# ---------------------------------------------------------------------------------- standard


@dataclass(frozen=True)
class StandardOptionMargin:
    """Standard margin of the options of every account [USD], shape (N,) each.

    Attributes
    ----------
    value : ndarray
        Options' contribution to equity: longs at mark x longHaircut, shorts at -mark.
    equity : ndarray
        other_equity + value.
    im, mm : ndarray
        The options' initial and maintenance margin (perps' margin not included).
    """

    value: FloatArray
    equity: FloatArray
    im: FloatArray
    mm: FloatArray


def _gather(book: OptionBook, lo: int, hi: int) -> tuple[IntArray, FloatArray]:
    """Series index (padding -> 0) and float size (padding -> 0) of accounts [lo, hi)."""
    idx = book.series_index[lo:hi]
    q = _fa(book.sizes[lo:hi])
    return np.where(idx >= 0, idx, 0), np.where(idx >= 0, q, 0.0)


def standard_option_margin(
    book: OptionBook, market: MarketData, config: OptionsConfig
) -> StandardOptionMargin:
    """Standard margin of every account's options, per the IOptions NatSpec.

    Parameters
    ----------
    book : OptionBook
        Positions and other equity of N accounts.
    market : MarketData
        Spots, implied vols and the block timestamp.
    config : OptionsConfig
        shortA, shortB, optionMmFactor and longHaircut are used.

    Returns
    -------
    StandardOptionMargin
        Per account: option value contribution, equity, IM and MM [USD].

    Notes
    -----
    Per position q with mark v, spot S, strike K: value = q v longHaircut (q > 0) or q v
    (q < 0); OTM = max(K - S, 0) / S for a call, max(S - K, 0) / S for a put; IM = |q| S
    max(shortA - OTM, shortB) for a short, 0 for a long; MM = IM x optionMmFactor. The spec
    applies no volatility scalar to options and treats expired series like live ones (S is
    the spot).
    """
    _check_markets(book, market)
    spot, iv, _, _ = market.floats()
    sf = _series_arrays(book.series, market.timestamp)
    v = _marks(sf, spot, iv)
    s = spot[sf.market]
    otm = np.where(sf.is_call, np.maximum(sf.strike - s, 0.0), np.maximum(s - sf.strike, 0.0)) / s
    rate = np.maximum(_f(config.short_a) - otm, _f(config.short_b))
    im_unit = s * rate  # per unit short
    idx, q = _gather(book, 0, book.n_accounts)
    h = _f(config.long_haircut)
    value = np.where(q > 0, q * v[idx] * h, q * v[idx]).sum(axis=1)
    im_pos = np.maximum(-q, 0.0) * im_unit[idx]
    im = im_pos.sum(axis=1)
    mm = (im_pos * _f(config.option_mm_factor)).sum(axis=1)
    equity = _fa(book.other_equity) + value
    return StandardOptionMargin(value=value, equity=equity, im=im, mm=mm)


# ---------------------------------------------------------------------------------- portfolio


def scenario_coords(k: int, spot_points: int) -> tuple[int, int]:
    """(spot index i, vol index j) of scenario ``k``: i = k % spotPoints, j = k // spotPoints."""
    return k % spot_points, k // spot_points


def scenario_index(i: int, j: int, spot_points: int) -> int:
    """Scenario k of spot index ``i`` and vol index ``j`` (0 none, 1 up, 2 down)."""
    return j * spot_points + i


def _spot_shocks(config: PortfolioConfig, s_mm: FloatArray) -> FloatArray:
    """(M, spotPoints) shock_i = min(spotShock x sMm, MAX_SHOCK) x (2 i / (spotPoints - 1) - 1)."""
    p = config.spot_points
    grid = 2.0 * np.arange(p) / (p - 1) - 1.0
    largest = np.minimum(_f(config.spot_shock) * s_mm, MAX_SHOCK)
    out: FloatArray = largest[:, None] * grid[None, :]
    return out


def _vol_scale(config: PortfolioConfig, tau_s: IntArray) -> FloatArray:
    """Per series: 1 when tau >= 30 days, else min((30 days / tau)^volPow, maxVolScale)."""
    cap = _f(config.max_vol_scale)
    safe = np.where(tau_s > 0, tau_s, 1).astype(np.float64)
    with np.errstate(over="ignore"):
        raw = (VOL_SCALE_HORIZON / safe) ** _f(config.vol_pow)
    out: FloatArray = np.where(
        tau_s >= VOL_SCALE_HORIZON, 1.0, np.where(tau_s > 0, np.minimum(raw, cap), cap)
    )
    return out


def _series_deltas(
    sf: _SeriesF, spot: FloatArray, iv: FloatArray, s_mm: FloatArray, config: PortfolioConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Marks (S,), D[s, k] = v(S, sigma) - v(S', sigma') (S, n) and S' per market (M, n)."""
    p = config.spot_points
    shocked = spot[:, None] * (1.0 + _spot_shocks(config, s_mm))  # (M, p)
    s_prime = np.tile(shocked, (1, 3))  # (M, 3p): k = j p + i
    v0 = _marks(sf, spot, iv)
    if not len(sf.market):
        return v0, np.zeros((0, 3 * p)), s_prime
    sigma = iv[sf.market][:, None]  # (S, 1)
    scale = _vol_scale(config, sf.tau_s)[:, None]
    up = sigma * (1.0 + _f(config.vol_up) * scale)
    down = np.maximum(sigma * (1.0 - _f(config.vol_down) * scale), _f(config.min_vol))
    vols = np.repeat(
        np.concatenate([np.broadcast_to(sigma, up.shape), up, down], axis=1), p, axis=1
    )  # (S, 3p), vol index j = k // p
    v1 = _value(s_prime[sf.market], vols, sf, shape_extra=1)
    return v0, v0[:, None] - v1, s_prime


@dataclass(frozen=True)
class ScenarioLosses:
    """Every scenario's loss of every account and underlying.

    Attributes
    ----------
    losses : ndarray, shape (N, M, n)
        [USD] loss_u(k) (positive = the account loses); 0 for markets not held.
    contingency : ndarray, shape (N, M)
        [USD] contPerp |perp| S + contOption S max(0, -sum_opt q).
    held : ndarray of bool, shape (N, M)
        The account has a non-zero perp or option position on the market.
    value : ndarray, shape (N,)
        [USD] options at full mark, sum q v (portfolio-mode equity contribution).
    """

    losses: FloatArray
    contingency: FloatArray
    held: BoolArray
    value: FloatArray


def scenario_losses(
    book: OptionBook, market: MarketData, config: PortfolioConfig, *, chunk_size: int = 4096
) -> ScenarioLosses:
    """The portfolio-margin scenario grid of every account, all scenarios at once.

    Parameters
    ----------
    book : OptionBook
        Positions of N accounts over M markets.
    market : MarketData
        Spots, implied vols, volatility scalars and the block timestamp.
    config : PortfolioConfig
        The grid.
    chunk_size : int
        Accounts per chunk (memory ~ chunk x positions x n x 8 bytes a few times).

    Returns
    -------
    ScenarioLosses
        losses (N, M, n), contingency (N, M), held (N, M), option value at mark (N,).
    """
    _check_markets(book, market)
    if chunk_size < 1:
        raise PmInputError("chunk_size must be >= 1")
    spot, iv, _, s_mm = market.floats()
    sf = _series_arrays(book.series, market.timestamp)
    v0, dv, s_prime = _series_deltas(sf, spot, iv, s_mm, config)
    n_acc, n_mkt, n_sc = book.n_accounts, book.n_markets, config.n_scenarios
    perp = _fa(book.perp_sizes)  # (N, M)
    losses = perp[:, :, None] * (spot[:, None] - s_prime)[None, :, :]  # (N, M, n)
    net_short = np.zeros((n_acc, n_mkt))
    held = perp != 0
    value = np.zeros(n_acc)
    c_opt = _f(config.cont_option)
    for lo in range(0, n_acc, chunk_size):
        hi = min(n_acc, lo + chunk_size)
        idx, q = _gather(book, lo, hi)
        if idx.shape[1] == 0:
            continue
        value[lo:hi] = (q * v0[idx]).sum(axis=1)
        pos_market = sf.market[idx]  # (n, P)
        g = dv[idx]  # (n, P, k)
        for m in range(n_mkt):
            w = np.where(pos_market == m, q, 0.0)
            if not w.any():
                continue
            losses[lo:hi, m, :] += np.einsum("np,npk->nk", w, g)
            net_short[lo:hi, m] = np.maximum(-w.sum(axis=1), 0.0)
            held[lo:hi, m] |= (w != 0).any(axis=1)
    contingency = (
        _f(config.cont_perp) * np.abs(perp) * spot[None, :] + c_opt * spot[None, :] * net_short
    )
    losses = np.where(held[:, :, None], losses, 0.0)
    assert losses.shape == (n_acc, n_mkt, n_sc)
    return ScenarioLosses(losses=losses, contingency=contingency, held=held, value=value)


@dataclass(frozen=True)
class PortfolioMargin:
    """Portfolio margin of every account [USD].

    Attributes
    ----------
    value : ndarray, shape (N,)
        Options' contribution to equity at full mark (no haircut), sum q v.
    equity : ndarray, shape (N,)
        other_equity + value.
    im, mm : ndarray, shape (N,)
        Initial and maintenance margin of the whole account (perps included).
    worst : ndarray of int64, shape (N, M)
        Worst scenario index per (account, market), the lowest among ties; -1 where the
        account holds nothing on the market.
    worst_loss : ndarray, shape (N, M)
        max_k loss_u(k) (may be negative: every scenario gains); 0 where not held.
    contingency : ndarray, shape (N, M)
        contingency_u.
    grid : ScenarioLosses
        The full scenario grid the figures come from.
    """

    value: FloatArray
    equity: FloatArray
    im: FloatArray
    mm: FloatArray
    worst: IntArray
    worst_loss: FloatArray
    contingency: FloatArray
    grid: ScenarioLosses

    @property
    def liquidatable(self) -> BoolArray:
        """equity < MM."""
        out: BoolArray = self.equity < self.mm
        return out

    def witness(self, account: int) -> int:
        """The witness naming account ``account``'s worst scenario of every held market."""
        return encode_witness({m: int(k) for m, k in enumerate(self.worst[account]) if k >= 0})


def portfolio_margin(
    book: OptionBook, market: MarketData, config: PortfolioConfig, *, chunk_size: int = 4096
) -> PortfolioMargin:
    """Portfolio margin of every account, every scenario of every market at once.

    Parameters
    ----------
    book : OptionBook
        Positions and other equity of N accounts over M markets.
    market : MarketData
        Spots, implied vols, volatility scalars sIm / sMm and the block timestamp.
    config : PortfolioConfig
        The scenario grid and factors.
    chunk_size : int
        Accounts per chunk.

    Returns
    -------
    PortfolioMargin
        value, equity, IM, MM (N,), worst scenario and its loss per (account, market).

    Notes
    -----
    MM = sum_u max(max_k loss_u(k), 0) + cont_u and IM = sum_u (max(max_k loss_u(k), 0) +
    cont_u) x imFactor x sIm_u / sMm_u (see the module docstring for the grid and for the
    readings of the spec this mirror takes).

    Examples
    --------
    A covered call needs less than the naked short call:

    >>> mkt = MarketData(spot=(2000 * WAD,), iv=(8 * WAD // 10,), timestamp=0)
    >>> cfg = PortfolioConfig(18 * WAD // 100, 9, 3 * WAD // 10, 3 * WAD // 10, WAD // 2,
    ...                       2 * WAD, WAD // 20, WAD // 200, WAD // 100, 12 * WAD // 10)
    >>> call = Series(0, True, 30 * 86_400, 2000 * WAD)
    >>> book = OptionBook.from_positions([[(call, -WAD)], [(call, -WAD)]],
    ...                                  [[0], [WAD]], [0, 0])
    >>> pm = portfolio_margin(book, mkt, cfg)
    >>> bool(pm.mm[1] < pm.mm[0])
    True
    """
    grid = scenario_losses(book, market, config, chunk_size=chunk_size)
    _, _, s_im, s_mm = market.floats()
    worst = np.argmax(grid.losses, axis=2)  # first maximum: the lowest index among ties
    worst_loss = np.take_along_axis(grid.losses, worst[:, :, None], axis=2)[:, :, 0]
    per_market = np.maximum(worst_loss, 0.0) + grid.contingency
    mm = per_market.sum(axis=1)
    im = (per_market * (_f(config.im_factor) * s_im / s_mm)[None, :]).sum(axis=1)
    if market.size_slope is not None and market.mm_factor is not None:
        size_im, size_mm = perp_size_margin(book, market)
        im = im + size_im
        mm = mm + size_mm
    return PortfolioMargin(
        value=grid.value,
        equity=_fa(book.other_equity) + grid.value,
        im=im,
        mm=mm,
        worst=np.where(grid.held, worst, -1).astype(np.int64),
        worst_loss=np.where(grid.held, worst_loss, 0.0),
        contingency=grid.contingency,
        grid=grid,
    )


def perp_size_margin(book: OptionBook, market: MarketData) -> tuple[FloatArray, FloatArray]:
    """The size-dependent part of every perp's IM and MM, summed per account [USD].

    For a perp of |size| q at spot S in a market with slope k, factor f and scalars sIm, sMm:
    IM += q S min(min(q k, 1) sIm, 1) and MM += q S min(min(q k, 1) sMm, 1) f, which the core
    adds to a portfolio-margin subaccount's grid requirement (``MarginEngine``), so that a
    large position never gets cheaper by switching mode. ``market.size_slope`` and
    ``market.mm_factor`` must be given.
    """
    if market.size_slope is None or market.mm_factor is None:
        raise PmInputError("perp_size_margin needs market.size_slope and market.mm_factor")
    spot, _, s_im, s_mm = market.floats()
    q = np.abs(np.asarray(book.perp_sizes, dtype=np.float64)) / WAD  # (N, M)
    # _fa scales wad ints to floats itself (scaling _f's floats again made the size part 1e-18
    # of the contract's)
    slope = _fa(list(market.size_slope))
    factor = _fa(list(market.mm_factor))
    rate = np.minimum(q * slope[None, :], 1.0)
    notional = q * spot[None, :]
    im = (notional * np.minimum(rate * s_im[None, :], 1.0)).sum(axis=1)
    mm = (notional * np.minimum(rate * s_mm[None, :], 1.0) * factor[None, :]).sum(axis=1)
    return im, mm


def _scenarios(scenarios: npt.ArrayLike, held: BoolArray, n_sc: int) -> IntArray:
    """Scenario indexes broadcast to (N, M), checked where the market is held (0 elsewhere:
    a market the account does not hold adds nothing, whatever its witness bits say)."""
    k = np.asarray(scenarios)
    if k.dtype.kind not in "iu":
        raise PmInputError(f"scenarios: integers expected, got {k.dtype}")
    try:
        out = np.broadcast_to(k.astype(np.int64), held.shape)
    except ValueError:
        raise PmInputError(f"scenarios: shape {k.shape} does not fit {held.shape}") from None
    if ((out < 0) | (out >= n_sc))[held].any():
        raise PmInputError(f"scenarios: an index of a held market is outside 0..{n_sc - 1}")
    return np.where(held, out, 0)


def witness_loss(
    book: OptionBook,
    market: MarketData,
    config: PortfolioConfig,
    scenarios: npt.ArrayLike,
    *,
    chunk_size: int = 4096,
) -> FloatArray:
    """The witness liquidation's L of every account for named scenarios [USD].

    Parameters
    ----------
    book, market, config
        As for :func:`portfolio_margin`.
    scenarios : array_like of int, broadcastable to (N, M)
        The scenario of each market (per account, or one row for all); decode witness ints
        with :func:`decode_witness`.

    Returns
    -------
    ndarray, shape (N,)
        L = sum_u max(loss_u(k_u), 0) + contingency_u; <= MM, equal at the worst scenarios.
    """
    grid = scenario_losses(book, market, config, chunk_size=chunk_size)
    k = _scenarios(scenarios, grid.held, config.n_scenarios)
    at = np.take_along_axis(grid.losses, k[:, :, None], axis=2)[:, :, 0]
    out: FloatArray = (np.maximum(at, 0.0) + grid.contingency).sum(axis=1)
    return out


# ---------------------------------------------------------------------------------- witness


def encode_witness(scenarios: Mapping[int, int]) -> int:
    """Pack one scenario per market id into the contract's ``witness`` (8 bits per market).

    >>> hex(encode_witness({0: 4, 2: 26}))
    '0x1a0004'
    """
    out = 0
    for m, k in scenarios.items():
        if not 0 <= int(m) < MAX_WITNESS_MARKETS:
            raise PmInputError(f"witness: market id {m} outside 0..{MAX_WITNESS_MARKETS - 1}")
        if not 0 <= int(k) <= 0xFF:
            raise PmInputError(f"witness: scenario {k} of market {m} outside 0..255")
        out |= int(k) << (8 * int(m))
    return out


def decode_witness(witness: int, n_markets: int = MAX_WITNESS_MARKETS) -> dict[int, int]:
    """Scenario of each market id 0..n_markets-1: ``(witness >> (8 m)) & 0xff``.

    >>> decode_witness(0x1a0004, 3)
    {0: 4, 1: 0, 2: 26}
    """
    if not 0 <= witness < 2**256:
        raise PmInputError("witness: not a uint256")
    if not 0 <= n_markets <= MAX_WITNESS_MARKETS:
        raise PmInputError(f"n_markets: {n_markets} outside 0..{MAX_WITNESS_MARKETS}")
    return {m: (witness >> (8 * m)) & 0xFF for m in range(n_markets)}


# ---------------------------------------------------------------------------------- reference


def _bs_ref(s: float, k: float, tau: float, vol: float, call: bool) -> float:
    """Black-Scholes with rate 0 from math.erfc (independent of plimsoll.risk)."""
    sd = vol * math.sqrt(tau)
    if sd == 0.0:
        return max(s - k, 0.0) if call else max(k - s, 0.0)
    d1 = math.log(s / k) / sd + sd / 2
    d2 = d1 - sd

    def n(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    v = s * n(d1) - k * n(d2) if call else k * n(-d2) - s * n(-d1)
    return max(v, 0.0)


def _value_ref(series: Series, s: float, vol: float, now: int) -> float:
    k = _f(series.strike)
    if series.expiry > now:
        return _bs_ref(s, k, (series.expiry - now) / YEAR, vol, series.is_call)
    at = _f(series.settlement_price) if series.settlement_price else s
    return max(at - k, 0.0) if series.is_call else max(k - at, 0.0)


@dataclass(frozen=True)
class ReferenceMargin:
    """Scalar-reference figures of one account [USD] (see :func:`account_reference`)."""

    std_value: float
    std_im: float
    std_mm: float
    pm_value: float
    pm_im: float
    pm_mm: float
    worst: dict[int, int]
    worst_loss: dict[int, float]
    losses: dict[int, list[float]]
    contingency: dict[int, float]


def _losses_ref(
    positions: Sequence[tuple[Series, int]],
    perp_sizes: Sequence[int],
    market: MarketData,
    config: PortfolioConfig,
) -> tuple[dict[int, list[float]], dict[int, float]]:
    now = market.timestamp
    assert market.mm_scalar is not None
    p = config.spot_points
    losses: dict[int, list[float]] = {}
    cont: dict[int, float] = {}
    for m in range(market.n_markets):
        opts = [(s, _f(q)) for s, q in positions if s.market_id == m and q != 0]
        perp = _f(perp_sizes[m])
        if perp == 0 and not opts:
            continue
        spot, sigma, s_mm = _f(market.spot[m]), _f(market.iv[m]), _f(market.mm_scalar[m])
        row = []
        for k in range(3 * p):
            i, j = scenario_coords(k, p)
            largest = min(_f(config.spot_shock) * s_mm, MAX_SHOCK)
            shock = largest * (2.0 * i / (p - 1) - 1.0)
            s1 = spot * (1.0 + shock)
            loss = perp * (spot - s1)
            for series, q in opts:
                tau_s = series.expiry - now
                if tau_s >= VOL_SCALE_HORIZON:
                    scale = 1.0
                elif tau_s > 0:
                    scale = min(
                        (VOL_SCALE_HORIZON / tau_s) ** _f(config.vol_pow), _f(config.max_vol_scale)
                    )
                else:
                    scale = _f(config.max_vol_scale)
                if j == 0:
                    vol = sigma
                elif j == 1:
                    vol = sigma * (1.0 + _f(config.vol_up) * scale)
                else:
                    vol = max(sigma * (1.0 - _f(config.vol_down) * scale), _f(config.min_vol))
                v0 = _value_ref(series, spot, sigma, now)
                loss += q * (v0 - _value_ref(series, s1, vol, now))
            row.append(loss)
        losses[m] = row
        net = sum(q for _, q in opts)
        cont[m] = _f(config.cont_perp) * abs(perp) * spot + _f(config.cont_option) * spot * max(
            0.0, -net
        )
    return losses, cont


def account_reference(
    positions: Sequence[tuple[Series, int]],
    perp_sizes: Sequence[int],
    market: MarketData,
    options_config: OptionsConfig,
    portfolio_config: PortfolioConfig,
) -> ReferenceMargin:
    """Standard and portfolio margin of ONE account, with plain Python loops.

    The specification the vectorized functions are tested against: it follows the IOptions
    NatSpec formula by formula, with its own Black-Scholes (``math.erfc``).

    Parameters
    ----------
    positions : sequence of (Series, int)
        Option positions, sizes [wad].
    perp_sizes : sequence of int
        [wad] perp size per market (length M).
    market : MarketData
    options_config, portfolio_config
        The configs.
    """
    now = market.timestamp
    assert market.im_scalar is not None and market.mm_scalar is not None
    std_value = std_im = std_mm = pm_value = 0.0
    for series, q_wad in positions:
        q = _f(q_wad)
        spot, sigma = _f(market.spot[series.market_id]), _f(market.iv[series.market_id])
        v = _value_ref(series, spot, sigma, now)
        pm_value += q * v
        k = _f(series.strike)
        if q > 0:
            std_value += q * v * _f(options_config.long_haircut)
        else:
            std_value += q * v
            otm = (max(k - spot, 0.0) if series.is_call else max(spot - k, 0.0)) / spot
            rate = max(_f(options_config.short_a) - otm, _f(options_config.short_b))
            im = -q * spot * rate
            std_im += im
            std_mm += im * _f(options_config.option_mm_factor)
    losses, cont = _losses_ref(positions, perp_sizes, market, portfolio_config)
    worst: dict[int, int] = {}
    worst_loss: dict[int, float] = {}
    pm_im = pm_mm = 0.0
    for m, row in losses.items():
        k_best = 0
        for k in range(1, len(row)):
            if row[k] > row[k_best]:
                k_best = k
        worst[m], worst_loss[m] = k_best, row[k_best]
        mm_u = max(row[k_best], 0.0) + cont[m]
        pm_mm += mm_u
        pm_im += (
            mm_u
            * _f(portfolio_config.im_factor)
            * _f(market.im_scalar[m])
            / _f(market.mm_scalar[m])
        )
    return ReferenceMargin(
        std_value, std_im, std_mm, pm_value, pm_im, pm_mm, worst, worst_loss, losses, cont
    )


def witness_loss_reference(
    positions: Sequence[tuple[Series, int]],
    perp_sizes: Sequence[int],
    market: MarketData,
    config: PortfolioConfig,
    witness: int,
) -> float:
    """L of ONE account for a witness int, with plain Python loops [USD]."""
    losses, cont = _losses_ref(positions, perp_sizes, market, config)
    ks = decode_witness(witness, market.n_markets)
    total = 0.0
    for m, row in losses.items():
        if ks[m] >= len(row):
            raise PmInputError(f"witness: scenario {ks[m]} of market {m} outside the grid")
        total += max(row[ks[m]], 0.0) + cont[m]
    return total
