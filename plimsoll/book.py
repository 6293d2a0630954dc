"""An in-memory book of every account's margin inputs, kept from events, and a price screen.

The liquidation keeper used to re-read every account through the lens and recompute exact
margins for all of them each block. :class:`AccountBook` keeps the account-level inputs
(cash, collateral balances, position size / open notional / entry funding index, flags) in
fixed-width columns and learns from the chain's logs *which* accounts changed in which block:

* every log that names an account (the core's account events, the options market's
  ``OptionTraded`` / ``OptionSettled`` / ``OptionsLiquidated``, the liquidator of
  ``Liquidated`` / ``CollateralLiquidated``) marks that account dirty for the block it is in
  (:meth:`AccountBook.note_logs`); only dirty accounts are read again, through the lens, at
  the block being processed, in the same JSON-RPC batch as the market-level data (prices and
  grades, funding indexes, volatility scalars, configuration). Per block the keeper reads the
  market table plus the few accounts its logs name;
* a per-block journal of the accounts each block touched (``hash_window`` blocks) rolls a
  reorg back: when the indexer reports a fork point, every account touched after it is read
  again at the new head;
* a reconciliation compares rows with the lens at the pinned block (:meth:`AccountBook.diff`):
  on start (the load), after a reorg (the whole book), and every few blocks for a rotating
  slice. A mismatch is logged and counted by the caller and repaired by writing the lens's row.

:class:`PriceScreen` then evaluates every account at the block's prices with a few float64
products: for fixed positions, equity and maintenance margin are linear in the prices (rates
depend on size, not price). With per-account coefficients

    equity = K + sum_m s_m (p_m - I_m) + sum_a b_a q_a
    MM     = sum_m |s_m| r_m p_m

(K = cash - sum(openNotional) + sum(size x entryIndex), s size [units], I the current funding
index, b balance [tokens], q = price x haircut, r the account's MM rate in market m) the gap
``equity - MM`` and a rigorous bound on its error are computed for all accounts at once
(:func:`screen_bound`). An account whose gap is beyond the bound on either side is decided by
the screen; the others, and every account the screen finds liquidatable, go to the exact
integer mirror (:func:`plimsoll.margin.compute_margin`) on just those rows. The liquidatable
set is therefore the exact mirror's (tests/property/test_screen.py checks it over random books
and price moves, accounts exactly at the threshold included).

Error bound (:func:`screen_bound`). Write the gap as a sum of n <= 2M + A + 1 terms t_k, each
the float product of at most three inputs rounded once each (relative error <= u = 2**-53).
Every term carries a relative error <= 3u + 3u**2 and the float sum adds <= (n - 1)u sum|t|
(Higham, Accuracy and Stability, (4.4)); with n <= 64 the float error is below 80u sum|t| <
1e-14 sum|t|. The contract's own integer roundings differ from the real-number formula by at
most a few wei per step: ceil(|size| x slope), ceil(rate x scalar), ceil(x mmFactor) each move
the MM rate by <= 1e-18 (so MM by <= 3e-18 x notional), ceil(|size| x p) and the final ceil
move MM by <= 2 wei per market, floor(size x p) and ceil(funding) equity by <= 2 wei per market,
each collateral value by <= 2 wei. The bound used, ``1e-12 x (sum|t| + notional) + 1e-12 USD``,
is over 100 times all of that together for any account of up to 64 terms.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from plimsoll.errors import PlimsollError
from plimsoll.margin import MarginResult, compute_margin, current_funding_index
from plimsoll.state import IntArray, MarginState

WAD = 10**18
_MASK64 = 2**64 - 1
REL_BOUND = 1e-12  # relative error bound of the screen (see the module notes)
ABS_BOUND = 1e-12  # [USD] absolute part: the contract's wei roundings, many times over

F64 = npt.NDArray[np.float64]

BOOK_FORMAT = "plimsoll-book"
BOOK_VERSION = 1
_COLUMNS = ("cash", "bal", "size", "on", "entry")


class BookFileError(PlimsollError):
    """A saved book cannot be used: unreadable, of another format version, chain or core."""


class _I128:
    """Signed 128-bit integers as (hi int64, lo uint64) column pairs: 16 bytes a value."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.hi = np.zeros(shape, dtype=np.int64)
        self.lo = np.zeros(shape, dtype=np.uint64)

    def grow(self, n: int) -> None:
        for name in ("hi", "lo"):
            old = getattr(self, name)
            new = np.zeros((n, *old.shape[1:]), dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def set(self, rows: npt.NDArray[np.int64], values: Any) -> None:
        v = np.asarray(values, dtype=object)
        self.lo[rows] = (v & _MASK64).astype(np.uint64)
        self.hi[rows] = (v >> 64).astype(np.int64)

    def get(self, rows: Any) -> IntArray:
        hi_i = self.hi[rows]
        lo_u = self.lo[rows]
        small = lo_u.view(np.int64)
        if (hi_i == (small >> 63)).all():  # every value fits in int64: one conversion
            return cast(IntArray, small.astype(object))
        hi = hi_i.astype(object)
        lo = lo_u.astype(object)
        return cast(IntArray, (hi << 64) | lo)

    def floats(self, rows: Any) -> F64:
        """The values as float64 (hi x 2**64 + lo; relative error <= 2u)."""
        return cast(
            F64, self.hi[rows].astype(np.float64) * 2.0**64 + self.lo[rows].astype(np.float64)
        )


@dataclass
class ScreenResult:
    """What the screen decided at one block.

    Attributes
    ----------
    gap, bound : ndarray of float64
        [USD] screened equity - MM of every row, and its error bound.
    sure : ndarray of bool
        gap < -bound: liquidatable whatever the rounding.
    ambiguous : ndarray of bool
        |gap| <= bound: only the exact mirror can tell.
    priced : ndarray of bool
        Every position's market price reads above 0 and is graded OK.
    """

    gap: F64
    bound: F64
    sure: npt.NDArray[np.bool_]
    ambiguous: npt.NDArray[np.bool_]
    priced: npt.NDArray[np.bool_]

    def to_check(self) -> npt.NDArray[np.int64]:
        """Rows the exact mirror must see: the sure and the ambiguous ones, priced."""
        return np.flatnonzero((self.sure | self.ambiguous) & self.priced).astype(np.int64)


def screen_bound(magnitude: F64) -> F64:
    """The screen's error bound [USD] for accounts whose terms sum to ``magnitude`` in
    absolute value (notional included), see the module notes."""
    out: F64 = REL_BOUND * magnitude + ABS_BOUND
    return out


class AccountBook:
    """Every account of one keeper shard, kept from events; see the module notes.

    Parameters
    ----------
    n_markets, n_assets : int
        Columns of the book (a listing grows them: :meth:`set_markets`).
    hash_window : int
        Blocks of journal kept for reorgs (the indexer's window).
    """

    def __init__(self, n_markets: int, n_assets: int, hash_window: int = 128) -> None:
        self.nm, self.na = n_markets, n_assets
        self.n = 0
        self.cap = 0
        self.keys: list[tuple[str, int]] = []
        self.index: dict[tuple[str, int], int] = {}
        self.hash_window = hash_window
        self.cash = _I128((0,))
        self.bal = _I128((0, n_assets))
        self.size = _I128((0, n_markets))
        self.on = _I128((0, n_markets))
        self.entry = _I128((0, n_markets))
        self.flags = np.zeros(0, dtype=np.int64)
        # Screen coefficients (float64), refreshed with a row.
        # Screen coefficients, one float64 row per account (one matrix product a block):
        # k [USD] cash - sum(on) + sum(size x entry), kmag [USD] |cash| + sum|on| +
        # sum|size x entry|, fsize [units], absz = |fsize|, mmc [units] |size| x MM rate
        # (MM = mmc @ prices), fbal [tokens]. See the properties below.
        self.X = np.zeros((0, self._width()))
        self.market: MarginState | None = None  # market-level columns of the last block
        self.block = -1  # last block applied
        self.journal: dict[int, set[tuple[str, int]]] = {}
        self.dirty: set[tuple[str, int]] = set()
        self._rate_key: tuple[Any, ...] | None = None

    # ------------------------------------------------------------------ rows

    def __len__(self) -> int:
        return self.n

    def _width(self) -> int:
        return 2 + 3 * self.nm + self.na

    @property
    def k(self) -> F64:
        out: F64 = self.X[:, 0]
        return out

    @property
    def kmag(self) -> F64:
        out: F64 = self.X[:, 1]
        return out

    @property
    def fsize(self) -> F64:
        out: F64 = self.X[:, 2 : 2 + self.nm]
        return out

    @property
    def absz(self) -> F64:
        out: F64 = self.X[:, 2 + self.nm : 2 + 2 * self.nm]
        return out

    @property
    def mmc(self) -> F64:
        out: F64 = self.X[:, 2 + 2 * self.nm : 2 + 3 * self.nm]
        return out

    @property
    def fbal(self) -> F64:
        out: F64 = self.X[:, 2 + 3 * self.nm :]
        return out

    def _grow(self, need: int) -> None:
        if need <= self.cap:
            return
        cap = max(need, 2 * self.cap, 1024)
        for col in (self.cash, self.bal, self.size, self.on, self.entry):
            col.grow(cap)
        for name in ("flags", "X"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        self.cap = cap

    def rows_of(self, keys: Iterable[tuple[str, int]]) -> npt.NDArray[np.int64]:
        """Rows of ``keys`` (checksummed owner, sub); new keys get new rows (all zero)."""
        out: list[int] = []
        new: list[tuple[str, int]] = []
        for key in keys:
            r = self.index.get(key)
            if r is None:
                r = self.n + len(new)
                new.append(key)
                self.index[key] = r
            out.append(r)
        if new:
            self._grow(self.n + len(new))
            self.keys.extend(new)
            self.n += len(new)
        return np.asarray(out, dtype=np.int64)

    def write(self, state: MarginState) -> npt.NDArray[np.int64]:
        """Store every account row of ``state`` (a lens read); returns their rows."""
        keys = [(o, int(s)) for o, s in zip(state.owners, state.subaccounts, strict=True)]
        rows = self.rows_of(keys)
        if not len(rows):
            return rows
        self.cash.set(rows, state.cash)
        self.bal.set(rows, state.balances)
        self.size.set(rows, state.sizes)
        self.on.set(rows, state.open_notional)
        self.entry.set(rows, state.entry_funding_index)
        self.flags[rows] = (
            np.zeros(len(rows), dtype=np.int64) if state.flags is None else np.asarray(state.flags)
        )
        self._coefficients(rows, state)
        return rows

    def _coefficients(self, rows: npt.NDArray[np.int64], state: MarginState) -> None:
        sizes = np.asarray(state.sizes, dtype=object)
        on = np.asarray(state.open_notional, dtype=object)
        entry = np.asarray(state.entry_funding_index, dtype=object)
        cash = np.asarray(state.cash, dtype=object)
        # K x WAD**2 exactly in Python ints, rounded to float once.
        se = (sizes * entry).sum(axis=1)
        k_num = cash * WAD - on.sum(axis=1) * WAD + se  # [USD x WAD**2]
        self.k[rows] = [int(v) / WAD**2 for v in k_num]
        mag = np.abs(cash) * WAD + np.abs(on).sum(axis=1) * WAD + np.abs(sizes * entry).sum(axis=1)
        self.kmag[rows] = [int(v) / WAD**2 for v in mag]
        self.fsize[rows] = self.size.floats(rows) / WAD
        self.absz[rows] = np.abs(self.fsize[rows])
        dec = np.asarray(state.asset_decimals, dtype=np.int64)
        self.fbal[rows] = self.bal.floats(rows) / (10.0 ** dec.astype(np.float64))
        if self.market is not None and self._rate_key is not None:
            self.mmc[rows] = self.absz[rows] * self._rates(self.market, self.absz[rows])

    def diff(
        self, state: MarginState, only: set[tuple[str, int]] | None = None
    ) -> list[tuple[str, int]]:
        """Accounts of ``state`` (a lens read; those in ``only`` if given) whose stored row
        differs from it (accounts not in the book count as different)."""
        out: list[tuple[str, int]] = []
        if state.n_accounts == 0:
            return out
        keys = [(o, int(s)) for o, s in zip(state.owners, state.subaccounts, strict=True)]
        want = [i for i, k in enumerate(keys) if only is None or k in only]
        known = [i for i in want if keys[i] in self.index]
        out.extend(keys[i] for i in want if keys[i] not in self.index)
        if not known:
            return out
        idx = np.asarray(known, dtype=np.int64)
        rows = np.asarray([self.index[keys[i]] for i in known], dtype=np.int64)
        bad = np.zeros(len(idx), dtype=bool)
        for col, have in (
            (self.cash, state.cash),
            (self.bal, state.balances),
            (self.size, state.sizes),
            (self.on, state.open_notional),
            (self.entry, state.entry_funding_index),
        ):
            expect = np.asarray(have, dtype=object)[idx]
            got = col.get(rows)
            ne = np.asarray(expect != got, dtype=bool)
            bad |= ne.reshape(len(idx), -1).any(axis=1)
        if state.flags is not None:
            bad |= np.asarray(state.flags)[idx] != self.flags[rows]
        out.extend(keys[known[j]] for j in np.flatnonzero(bad))
        return out

    # ------------------------------------------------------------------ file

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        block_hash: str,
        chain_id: int,
        core: str,
        shard: tuple[int, int] = (0, 1),
    ) -> int:
        """Write the book (every column, the keys, the block it is at and that block's hash)
        to ``path`` atomically: a temp file beside it, fsynced, then ``os.replace``. numpy's
        own format (``np.savez``, no pickle). Returns the bytes written.

        Keys are stored as checksummed owners (fixed-width ASCII) and subaccounts as four
        uint64 limbs (uint256 exactly). The market table and the journal are not stored: the
        market table is read again on load and a reorg below the saved block is caught by the
        block hash."""
        n = self.n
        header = {
            "format": BOOK_FORMAT,
            "version": BOOK_VERSION,
            "chain_id": int(chain_id),
            "core": str(core).lower(),
            "shard": [int(shard[0]), int(shard[1])],
            "block": int(self.block),
            "block_hash": str(block_hash).lower(),
            "n_markets": self.nm,
            "n_assets": self.na,
            "accounts": n,
        }
        subs = [k[1] for k in self.keys[:n]]
        limbs = np.zeros((n, 4), dtype=np.uint64)
        if all(0 <= s < 2**63 for s in subs):
            limbs[:, 0] = np.asarray(subs, dtype=np.int64).astype(np.uint64)
        else:
            for j in range(4):
                limbs[:, j] = np.array([(s >> (64 * j)) & _MASK64 for s in subs], dtype=np.uint64)
        arrays: dict[str, Any] = {
            "header": np.array(json.dumps(header, sort_keys=True)),
            "owners": np.array([k[0] for k in self.keys[:n]], dtype="S42"),
            "subs": limbs,
            "flags": self.flags[:n],
            "X": self.X[:n],
        }
        for name in _COLUMNS:
            col = getattr(self, name)
            arrays[f"{name}_hi"] = col.hi[:n]
            arrays[f"{name}_lo"] = col.lo[:n]
        target = os.fspath(path)
        tmp = f"{target}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
                size = f.tell()
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return size

    @staticmethod
    def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
        """The header of a saved book (raises :class:`BookFileError` if unreadable)."""
        try:
            with np.load(os.fspath(path), allow_pickle=False) as z:
                header = json.loads(str(z["header"][()]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise BookFileError(f"book file {path} is unreadable ({e}): delete it") from e
        if not isinstance(header, dict) or header.get("format") != BOOK_FORMAT:
            raise BookFileError(f"book file {path} is not a Plimsoll book: delete it")
        return header

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        chain_id: int,
        core: str,
        shard: tuple[int, int] = (0, 1),
        hash_window: int = 128,
    ) -> tuple[AccountBook, str]:
        """A book saved by :meth:`save`, and the hash of the block it is at.

        Raises
        ------
        BookFileError
            The file is unreadable, truncated, of another version, chain or core.
        """
        header = cls.read_header(path)
        want = {
            "version": BOOK_VERSION,
            "chain_id": int(chain_id),
            "core": str(core).lower(),
            "shard": [int(shard[0]), int(shard[1])],
        }
        for key, value in want.items():
            if header.get(key) != value:
                raise BookFileError(
                    f"book file {path} has {key} {header.get(key)}, this keeper's is {value}"
                )
        try:
            with np.load(os.fspath(path), allow_pickle=False) as z:
                a = {name: z[name] for name in z.files if name != "header"}
            nm, na, n = int(header["n_markets"]), int(header["n_assets"]), int(header["accounts"])
            book = cls(nm, na, hash_window)
            book._grow(n)
            book.n = n
            shapes = {
                "cash": (n,),
                "bal": (n, na),
                "size": (n, nm),
                "on": (n, nm),
                "entry": (n, nm),
            }
            for name in _COLUMNS:
                col = getattr(book, name)
                hi, lo = a[f"{name}_hi"], a[f"{name}_lo"]
                if hi.shape != shapes[name] or lo.shape != shapes[name]:
                    raise ValueError(f"column {name} has shape {hi.shape}")
                col.hi[:n] = hi.astype(np.int64, copy=False)
                col.lo[:n] = lo.astype(np.uint64, copy=False)
            if a["X"].shape != (n, book._width()) or a["flags"].shape != (n,):
                raise ValueError("coefficient or flag columns have the wrong shape")
            book.X[:n] = a["X"]
            book.flags[:n] = a["flags"]
            limbs = a["subs"].astype(np.uint64, copy=False)
            owners = a["owners"].astype("U42").tolist()
            if limbs.shape != (n, 4) or len(owners) != n:
                raise ValueError("key columns have the wrong shape")
            if not limbs[:, 1:].any() and not (limbs[:, 0] >> np.uint64(63)).any():
                subs: list[int] = limbs[:, 0].astype(np.int64).tolist()
            else:
                subs = [sum(int(limbs[i, j]) << (64 * j) for j in range(4)) for i in range(n)]
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as e:
            raise BookFileError(f"book file {path} is damaged ({e}): delete it") from e
        book.keys = list(zip(owners, subs, strict=True))
        book.index = {k: i for i, k in enumerate(book.keys)}
        if len(book.index) != n:
            raise BookFileError(f"book file {path} has duplicate accounts: delete it")
        book.block = int(header["block"])
        return book, str(header["block_hash"])

    # ------------------------------------------------------------------ events

    def note_logs(self, touched: Iterable[tuple[int, tuple[str, int]]]) -> None:
        """Accounts named by logs, as (block, key): dirty (read again) and journaled. Logs at
        or below the last applied block were seen before (the indexer re-scans a window)."""
        for bn, key in touched:
            if bn > self.block:
                self.dirty.add(key)
                self.journal.setdefault(bn, set()).add(key)

    def rollback(self, fork: int) -> set[tuple[str, int]]:
        """A reorg back to block ``fork``: every account touched after it becomes dirty;
        returns them."""
        out: set[tuple[str, int]] = set()
        for bn in [b for b in self.journal if b > fork]:
            out |= self.journal.pop(bn)
        self.dirty |= out
        self.block = min(self.block, fork)
        return out

    def applied(self, block: int) -> None:
        """Block ``block`` is in the book: forget the dirty set and old journal entries."""
        self.block = block
        self.dirty.clear()
        for bn in [b for b in self.journal if b <= block - self.hash_window]:
            del self.journal[bn]

    # ------------------------------------------------------------------ markets

    def set_markets(self, state: MarginState) -> None:
        """Market-level data of the block (any lens read: its account rows are ignored)."""
        if state.n_markets != self.nm or state.n_assets != self.na:
            self._widen(state.n_markets, state.n_assets)
        self.market = state

    def _widen(self, nm: int, na: int) -> None:
        """A market or asset was listed: new zero columns."""
        cap = self.cap

        def widen(a: npt.NDArray[Any], cols: int) -> npt.NDArray[Any]:
            out = np.zeros((cap, cols), dtype=a.dtype)
            out[:, : a.shape[1]] = a
            return out

        for col, cols in ((self.bal, na), (self.size, nm), (self.on, nm), (self.entry, nm)):
            col.hi, col.lo = widen(col.hi, cols), widen(col.lo, cols)
        old = (self.k, self.kmag, self.fsize, self.absz, self.mmc, self.fbal)
        self.nm, self.na = nm, na
        self.X = np.zeros((cap, self._width()))
        new = (self.k, self.kmag, self.fsize, self.absz, self.mmc, self.fbal)
        for o, w in zip(old, new, strict=True):
            if o.ndim == 1:
                w[:] = o
            else:
                w[:, : o.shape[1]] = o
        self._rate_key = None

    def subset(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> MarginState:
        """The exact :class:`MarginState` of ``rows`` at the last block's market data."""
        m = self.market
        assert m is not None, "set_markets first"
        r = np.asarray(rows, dtype=np.int64)
        subs = [self.keys[i][1] for i in r]
        sub_arr: Any = (
            np.array(subs, dtype=np.int64)
            if all(0 <= s < 2**63 for s in subs)
            else np.array(subs, dtype=object)
        )
        return MarginState(
            block=m.block,
            timestamp=m.timestamp,
            owners=[self.keys[i][0] for i in r],
            subaccounts=sub_arr,
            cash=self.cash.get(r),
            balances=self.bal.get(r).reshape(len(r), self.na),
            sizes=self.size.get(r).reshape(len(r), self.nm),
            open_notional=self.on.get(r).reshape(len(r), self.nm),
            entry_funding_index=self.entry.get(r).reshape(len(r), self.nm),
            asset_decimals=m.asset_decimals,
            asset_haircut=m.asset_haircut,
            asset_price=m.asset_price,
            market_price=m.market_price,
            im_base=m.im_base,
            mm_factor=m.mm_factor,
            size_slope=m.size_slope,
            max_funding_rate=m.max_funding_rate,
            skew_scale=m.skew_scale,
            long_oi=m.long_oi,
            short_oi=m.short_oi,
            funding_index=m.funding_index,
            last_funding_time=m.last_funding_time,
            im_scalar=m.im_scalar,
            mm_scalar=m.mm_scalar,
            market_price_ok=m.market_price_ok,
            asset_price_ok=m.asset_price_ok,
            flags=self.flags[r].copy(),
        )

    # ------------------------------------------------------------------ screen

    @staticmethod
    def _rate_params(m: MarginState) -> tuple[Any, ...]:
        nm = m.n_markets
        s_mm = [WAD] * nm if m.mm_scalar is None else [int(x) for x in m.mm_scalar]
        return (
            tuple(int(x) for x in m.im_base),
            tuple(int(x) for x in m.size_slope),
            tuple(int(x) for x in m.mm_factor),
            tuple(s_mm),
        )

    @staticmethod
    def _rates(m: MarginState, absz: F64) -> F64:
        """MM rate [fraction] of positions of sizes ``absz`` [units] (rows x markets), float:
        min(min(imBase + |size| x slope, 1) x mmScalar, 1) x mmFactor."""
        base_, slope_, mmf_, smm_ = AccountBook._rate_params(m)
        base = np.array([x / WAD for x in base_])
        slope = np.array([x / WAD for x in slope_])
        mmf = np.array([x / WAD for x in mmf_])
        smm = np.array([x / WAD for x in smm_])
        rate = np.minimum(base + absz * slope, 1.0)
        out: F64 = np.minimum(rate * smm, 1.0) * mmf
        return out

    def _mm_coefficients(self) -> F64:
        """|size| x MM rate of every (row, market), kept while the market parameters hold."""
        m = self.market
        assert m is not None
        key = self._rate_params(m)
        if key != self._rate_key:
            n = self.n
            self.mmc[:n] = self.absz[:n] * self._rates(m, self.absz[:n])
            self._rate_key = key
        mmc: F64 = self.mmc[: self.n]
        return mmc

    def screen(self, rows: npt.NDArray[np.int64] | None = None) -> ScreenResult:
        """Screened gap (equity - MM) and its bound for every row (or ``rows``)."""
        m = self.market
        assert m is not None, "set_markets first"
        self._mm_coefficients()
        sel: Any = slice(0, self.n) if rows is None else rows
        nm = self.nm
        index = [current_funding_index(m, j) for j in range(nm)]
        price_i = [int(x) for x in m.market_price]
        p = np.array([x / WAD for x in price_i])
        dp = np.array([(x - i) / WAD for x, i in zip(price_i, index, strict=True)])
        absidx = np.array([abs(i) / WAD for i in index])
        q = np.array(
            [int(x) * int(h) / WAD**2 for x, h in zip(m.asset_price, m.asset_haircut, strict=True)]
        )
        # One product: [gap, magnitude] = X @ W.
        w = np.zeros((self._width(), 2))
        w[0, 0] = 1.0
        w[1, 1] = 1.0
        fs, az, mc = (slice(2 + j * nm, 2 + (j + 1) * nm) for j in range(3))
        fb = slice(2 + 3 * nm, None)
        w[fs, 0] = dp
        w[az, 1] = 2 * p + absidx
        w[mc, 0] = -p
        w[mc, 1] = p
        w[fb, 0] = q
        w[fb, 1] = q
        x = self.X[sel]
        out = np.empty((x.shape[0], 2))
        # Chunks of 8,192 rows: small products run on one BLAS thread (a multi-threaded
        # OpenBLAS spins for tens of ms on a loaded machine) and stay in cache.
        for lo in range(0, x.shape[0], 8192):
            np.matmul(x[lo : lo + 8192], w, out=out[lo : lo + 8192])
        gap, mag = out[:, 0], out[:, 1]
        absz = self.absz[sel]
        bound = screen_bound(mag)
        ambiguous = np.abs(gap) <= bound
        sure = gap < -bound
        zero = np.array([x == 0 for x in price_i], dtype=bool)
        if m.market_price_ok is not None:
            zero |= ~np.asarray(m.market_price_ok, dtype=bool)
        if zero.any():
            priced = ~(absz[:, zero] > 0).any(axis=1)
        else:
            priced = np.ones(len(gap), dtype=bool)
        return ScreenResult(gap, bound, sure, ambiguous, priced)

    def flagged(self) -> npt.NDArray[np.int64]:
        """Rows of option / portfolio-margin accounts (the options pass chooses among them)."""
        return np.flatnonzero(self.flags[: self.n] != 0).astype(np.int64)

    def exact_candidates(
        self, screen: ScreenResult
    ) -> tuple[npt.NDArray[np.int64], MarginState, MarginResult]:
        """The rows the screen cannot clear, their exact state and the mirror's result."""
        rows = screen.to_check()
        state = self.subset(rows)
        return rows, state, compute_margin(state)
