"""The liquidation keeper's per-block cycle on event-sourced state (:mod:`plimsoll.book`).

Each block:

1. the indexer scans the new logs (its reorg machinery rolls back first); the logs' accounts
   (this shard's) become dirty, and a reorg makes every account touched after the fork dirty;
2. one JSON-RPC batch at the pinned block reads the market table (prices and grades, funding
   indexes, volatility scalars, configuration) plus the dirty accounts through the lens;
3. the price screen (float64 products with an error bound) clears most accounts; the ones it
   cannot clear and the ones it finds liquidatable go through the exact mirror. That is the
   cycle (``cycle_ms``): the liquidation steps act on its view;
4. flagged (options / portfolio-margin) accounts: their exact rows are built when the options
   pass asks for them (:meth:`BlockView.options`), after the perp liquidations are sent; the
   pass prices on the grid those whose inputs moved (keepers/options_pass.py);
5. reconciliation (:meth:`BookCycle.reconcile`, after the liquidation steps, at the same
   pinned block: an audit, not on the path to a liquidation): rows read for it are compared
   with the book; a mismatch is logged, counted (``plimsoll_reconciliation_mismatches``) and
   repaired (the lens's row is written). The whole shard is reconciled on start (the load)
   and after a reorg, a rotating slice of ``reconcile_slice`` accounts every
   ``reconcile_every`` blocks (default: 100 accounts every block, so the read and the
   comparison cost the same each block).

Persistence: every ``save_every`` blocks, after the reconciliation, the book is saved to
``book_file`` (:meth:`AccountBook.save`, atomic). On start a saved book is used when its block's
hash is still the chain's and the account index is not behind it (the index's checkpoint is
committed before the book is saved, so an index behind the book means a lost or restored
database: the pair is not trusted and the shard is read in full). The logs of (saved block,
head] are fetched (whatever the index's checkpoint) and every account they name in this shard
is read at the head with the market table; then the whole shard is reconciled with the lens,
``RESTART_RECONCILE_CHUNK`` accounts a block, so a stale file cannot hide a change. Any other
case (no file, another version/chain/core/shard, unreadable, a reorg below the saved block)
is today's full read.

``full_reread`` restores the old cycle (every account read and recomputed each block).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from keepers.ops import KeeperMetrics, in_shard, log
from plimsoll.book import AccountBook, BookFileError
from plimsoll.margin import MarginResult, compute_margin
from plimsoll.state import MarginState
from plimsoll.sync import AccountIndexer, StateReader, accounts_in_log, checksum

logger = logging.getLogger("plimsoll.liquidator")

# [accounts] compared with the lens per block after a load from file (~0.3 s of lens reads on
# anvil); a shard this small or smaller is reconciled at once.
RESTART_RECONCILE_CHUNK = 2000


@dataclass
class BlockView:
    """What one block's cycle hands to the liquidation steps.

    ``state``/``result``: the exact rows checked (``order`` indexes into them).
    :meth:`options`: the same rows followed by the flagged (options / portfolio-margin)
    accounts due for the options pass, and the indexes of those.
    """

    block: int
    accounts: int
    state: MarginState
    result: MarginResult
    order: npt.NDArray[np.int64]
    #: accounts whose rows were read this block (logs named them, a reorg, the load); None:
    #: every account (the full re-read)
    changed: frozenset[tuple[str, int]] | None = None
    _options: Callable[[], tuple[MarginState, MarginResult, npt.NDArray[np.int64]]] | None = field(
        default=None, repr=False
    )
    _built: tuple[MarginState, MarginResult, npt.NDArray[np.int64]] | None = field(
        default=None, repr=False
    )

    def options(self) -> tuple[MarginState, MarginResult, npt.NDArray[np.int64]]:
        """(state, result, flagged rows): built once, on the first call."""
        if self._built is None:
            empty = np.zeros(0, dtype=np.int64)
            self._built = self._options() if self._options else (self.state, self.result, empty)
        return self._built


class BookCycle:
    """Keeps the shard's :class:`AccountBook` and runs the screen; one per keeper."""

    def __init__(
        self,
        indexer: AccountIndexer,
        reader: StateReader,
        metrics: KeeperMetrics,
        shard: tuple[int, int],
        reconcile_every: int,
        reconcile_slice: int,
        full_reread: bool = False,
        book_file: Path | None = None,
        save_every: int = 0,
        chain_id: int = 0,
        core: str = "",
    ) -> None:
        self.indexer = indexer
        self.reader = reader
        self.metrics = metrics
        self.shard = shard
        self.reconcile_every = reconcile_every
        self.reconcile_slice = reconcile_slice
        self.full_reread = full_reread
        self.book: AccountBook | None = None
        self._touched: list[tuple[int, tuple[str, int]]] = []
        self._recon_all = True
        self._recon_pos = 0
        self._last_recon = -1
        self.mismatches = 0
        self.reconciled = 0
        self.cycle_ms: deque[float] = deque(maxlen=2000)
        self.reconcile_ms: deque[float] = deque(maxlen=2000)
        self._pinned = -1  # the block of the last cycle (reconcile reads at it)
        self._last_rescan = -1
        # Rows the reconciliation repaired: reported as changed by the next cycle (the options
        # pass reads their positions again).
        self._repaired: set[tuple[str, int]] = set()
        self.book_file = book_file
        self.save_every = max(0, int(save_every))
        self.chain_id = int(chain_id)
        self.core = core
        self.start_path = ""  # "file" or "full read", after the first cycle
        self.load_s = 0.0
        self._load_tried = False
        self._loaded_at = -1  # block of the loaded book until its catch-up is applied
        self._recon_queue: list[tuple[str, int]] | None = None
        self._last_save = -1
        self.saved: list[tuple[int, float, int]] = []  # (block, seconds, bytes)
        indexer.log_sink = self._sink

    def _sink(self, logs: list[dict[str, Any]]) -> None:
        seen = self.book.block if self.book is not None else -1
        rolled = self.indexer.stats.rolled_back_to  # this sync's reorgs, found before the scan
        if rolled:
            seen = min(seen, *rolled)  # the new branch's blocks are not in the book
        for lg in logs:
            bn = int(lg["blockNumber"], 16)
            if bn <= seen:
                continue  # a window re-scan: in the book already
            for owner, sub in accounts_in_log(lg):
                key = (checksum(owner), int(sub))
                if in_shard(key[0], key[1], self.shard):
                    self._touched.append((bn, key))

    def percentile(self, q: float) -> float:
        return float(np.percentile(list(self.cycle_ms), q)) if self.cycle_ms else 0.0

    # ------------------------------------------------------------------ the cycle

    def cycle(self, head: int, head_block: dict[str, Any] | None = None) -> BlockView:
        """Sync, read, screen: the exact rows to act on at the synced block.

        ``head_block``: block ``head`` as the caller fetched it (saves the indexer requests).
        """
        t0 = time.perf_counter()
        self._touched.clear()
        if not self._load_tried and not self.full_reread:
            self._load_tried = True
            self.book = self._try_load()  # before the sync: its sink skips the book's blocks
        block = self.indexer.sync(head, head_block=head_block)
        self._pinned = block
        if self.full_reread:
            return self._full(block, t0)
        rolled = self.indexer.stats.rolled_back_to
        book = self.book
        if book is not None and rolled:
            fork = min(rolled)
            again = book.rollback(fork)
            self._recon_all = True
            log(logger, logging.WARNING, "reorg: book rolled back", fork=fork, accounts=len(again))
        if book is not None and self._loaded_at >= 0:
            # Loaded from file: the logs of (saved block, head], whatever the index's
            # checkpoint (its sync re-scans only from there), name the accounts to read.
            saved, self._loaded_at = self._loaded_at, -1
            if block > saved:
                for logs in self.indexer.logs(saved + 1, block):
                    self._sink(logs)
            state, written = self._apply_logs(book, block)
            self._recon_all = False
            self._recon_queue = []  # built by the next reconcile: the whole shard
            self._last_recon = block
            self._last_save = block
            self.start_path = "file"
            log(
                logger,
                logging.INFO,
                "book loaded from file",
                file=str(self.book_file),
                saved_block=saved,
                block=block,
                accounts=book.n,
                read=state.n_accounts,
                seconds=round(self.load_s + time.perf_counter() - t0, 3),
            )
        elif book is None or book.market is None:
            accounts = self._shard_accounts()
            state = self.reader.read(accounts, block)
            book = AccountBook(state.n_markets, state.n_assets, self.indexer.hash_window)
            book.set_markets(state)  # first: a listing widens the book's columns
            written = book.write(state)
            book.applied(block)
            self.book = book
            self._recon_all = False  # the load is the reconciliation on start
            self._last_recon = block
            self.reconciled += state.n_accounts
            self.metrics.reconciled.inc(state.n_accounts)
            if not self.start_path:
                self.start_path = "full read"
                self.metrics.book_load_seconds.set(0)
                log(
                    logger,
                    logging.INFO,
                    "book read in full from the lens",
                    block=block,
                    accounts=book.n,
                    seconds=round(time.perf_counter() - t0, 3),
                )
        else:
            _, written = self._apply_logs(book, block)
        view = self._screen(book, block, written)
        self.cycle_ms.append((time.perf_counter() - t0) * 1000)
        return view

    def _apply_logs(
        self, book: AccountBook, block: int
    ) -> tuple[MarginState, npt.NDArray[np.int64]]:
        """The accounts the block's logs named read at ``block`` (with the market table) and
        written to the book, which is then at ``block``; returns the read and its rows."""
        book.note_logs(self._touched)
        state = self.reader.read(sorted(book.dirty), block)
        book.set_markets(state)  # first: a listing widens the book's columns
        written = book.write(state)
        book.applied(block)
        return state, written

    def _shard_accounts(self) -> list[tuple[str, int]]:
        """Every indexed account of this keeper's shard."""
        return [
            (a.owner, a.subaccount)
            for a in self.indexer.accounts()
            if in_shard(a.owner, a.subaccount, self.shard)
        ]

    def reconcile(self) -> int:
        """Compare the accounts due (all after a reorg, a chunk of the whole shard after a load
        from file, else the rotating slice when ``reconcile_every`` blocks passed) with the lens
        at the last cycle's block; repair and count mismatches; then save the book when
        ``save_every`` blocks passed. Returns the accounts compared."""
        n = self._reconcile()
        self._maybe_save()
        return n

    def _reconcile(self) -> int:
        book, block = self.book, self._pinned
        if book is None or book.block != block or block < 0:
            return 0
        t0 = time.perf_counter()
        check: list[tuple[str, int]] = []
        if self._recon_queue is not None and not self._recon_all and not self._recon_queue:
            # After a load from file: the whole shard (the book's rows and the index's).
            shard = self._shard_accounts()
            self._recon_queue = list(dict.fromkeys(list(book.keys) + shard))
            self._recon_queue.reverse()  # popped from the end: book order
            if not self._recon_queue:
                self._recon_queue = None
        if self._recon_all:
            check = list(book.keys)
            self._recon_queue = None
        elif self._recon_queue:
            take = min(len(self._recon_queue), max(RESTART_RECONCILE_CHUNK, self.reconcile_slice))
            check = self._recon_queue[-take:][::-1]
            del self._recon_queue[-take:]
            if not self._recon_queue:
                self._recon_queue = None
                log(logger, logging.INFO, "loaded book fully reconciled", block=block)
        elif self.reconcile_every and block - self._last_recon >= self.reconcile_every:
            check = self._next_slice(book, set())
        ix = self.indexer
        if ix.rescan_every == 0 and block - self._last_rescan >= max(1, ix.rescan_depth):
            # The indexer's window re-scan (logs a node served late), off the block's path:
            # every account those logs name is compared, so a late log shows as a mismatch.
            late = [k for k in ix.rescan() if in_shard(k[0], k[1], self.shard)]
            self._last_rescan = block
            check = list(dict.fromkeys(check + late))
        if not check:
            return 0
        state = self.reader.read(check, block)
        bad = book.diff(state, set(check))
        self.reconciled += len(check)
        self.metrics.reconciled.inc(len(check))
        self._last_recon = block
        self._recon_all = False
        if bad:
            book.write(state)
            self._repaired.update(bad)
            self.mismatches += len(bad)
            self.metrics.reconciliation_mismatches.inc(len(bad))
            log(
                logger,
                logging.WARNING,
                "reconciliation mismatch: repaired from the lens",
                block=block,
                accounts=len(bad),
                first=f"{bad[0][0]}:{bad[0][1]}",
            )
        self.reconcile_ms.append((time.perf_counter() - t0) * 1000)
        return len(check)

    # ------------------------------------------------------------------ persistence

    def _maybe_save(self) -> None:
        book, block = self.book, self._pinned
        if (
            self.book_file is None
            or not self.save_every
            or book is None
            or book.block != block
            or block < 0
            or block - self._last_save < self.save_every
        ):
            return
        block_hash = self.indexer.stored_hash(block)
        if block_hash is None:
            return
        t0 = time.perf_counter()
        try:
            size = book.save(
                self.book_file,
                block_hash=block_hash,
                chain_id=self.chain_id,
                core=self.core,
                shard=self.shard,
            )
        except OSError as e:
            log(logger, logging.WARNING, "book save failed", file=str(self.book_file), error=str(e))
            self._last_save = block  # try again in save_every blocks
            return
        self._last_save = block
        self.saved.append((block, time.perf_counter() - t0, size))

    def _try_load(self) -> AccountBook | None:
        """The saved book if it can be used at all (see the module notes), else None."""
        path = self.book_file
        if path is None or not path.exists():
            return None
        t0 = time.perf_counter()
        try:
            book, block_hash = AccountBook.load(
                path,
                chain_id=self.chain_id,
                core=self.core,
                shard=self.shard,
                hash_window=self.indexer.hash_window,
            )
        except BookFileError as e:
            log(logger, logging.WARNING, "saved book not used: full read", error=str(e))
            return None
        last = self.indexer.last_block
        if last is None or last < book.block:
            log(
                logger,
                logging.WARNING,
                "saved book is newer than the account index: full read",
                book_block=book.block,
                index_block=last,
            )
            return None
        chain = self.indexer.chain_hash(book.block)
        if chain is None or chain.lower() != block_hash:
            log(
                logger,
                logging.WARNING,
                "saved book's block is no longer the chain's (a reorg while down): full read",
                book_block=book.block,
            )
            return None
        self.load_s = time.perf_counter() - t0
        self.metrics.book_load_seconds.set(self.load_s)
        self._loaded_at = book.block
        return book

    def _next_slice(self, book: AccountBook, dirty: set[tuple[str, int]]) -> list[tuple[str, int]]:
        n = len(book.keys)
        if n == 0:
            return []
        size = min(n, max(1, self.reconcile_slice))
        lo = self._recon_pos % n
        keys = [book.keys[(lo + j) % n] for j in range(size)]
        self._recon_pos = (lo + size) % n
        return [k for k in keys if k not in dirty]

    def _screen(self, book: AccountBook, block: int, written: npt.NDArray[np.int64]) -> BlockView:
        assert book.market is not None
        sc = book.screen()
        rows, state, result = book.exact_candidates(sc)
        order = liquidatable_order(result, book.flags[rows])
        # Options / portfolio-margin accounts: every one, for the options pass to choose from.
        flagged_all = book.flagged()

        def options() -> tuple[MarginState, MarginResult, npt.NDArray[np.int64]]:
            # The options pass needs every flagged row's exact state: a second, small subset.
            if not len(flagged_all):
                return state, result, np.zeros(0, dtype=np.int64)
            fstate = book.subset(flagged_all)
            fresult = compute_margin(fstate)
            both, both_result, rows_all = _concat(state, result, fstate, fresult)
            return both, both_result, np.arange(len(rows), len(rows_all), dtype=np.int64)

        changed = frozenset({book.keys[int(r)] for r in written} | self._repaired)
        self._repaired.clear()
        return BlockView(block, book.n, state, result, order, changed, options)

    def _full(self, block: int, t0: float) -> BlockView:
        """Today's cycle: every account read and recomputed exactly."""
        accounts = self._shard_accounts()
        state = self.reader.read(accounts, block)
        result = compute_margin(state)
        flags = (
            np.asarray(state.flags)
            if state.flags is not None
            else np.zeros(state.n_accounts, dtype=np.int64)
        )
        order = liquidatable_order(result, flags)
        self.cycle_ms.append((time.perf_counter() - t0) * 1000)
        flagged = np.flatnonzero(flags != 0).astype(np.int64)
        return BlockView(
            block, state.n_accounts, state, result, order, None, lambda: (state, result, flagged)
        )


def liquidatable_order(result: MarginResult, flags: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Rows the perp steps liquidate: priced, under MM, not option / portfolio-margin
    accounts (``flags`` 0; those go to the options pass); most under-margined first."""
    keep = result.priced & result.liquidatable & (np.asarray(flags) == 0)
    idx = np.flatnonzero(keep)
    return idx[np.argsort(result.health[idx], kind="stable")].astype(np.int64)


def _concat(
    a: MarginState, ra: MarginResult, b: MarginState, rb: MarginResult
) -> tuple[MarginState, MarginResult, npt.NDArray[np.int64]]:
    """Rows of ``a`` then rows of ``b`` (same block and market data)."""
    rows = {}
    for name in ("cash", "balances", "sizes", "open_notional", "entry_funding_index", "flags"):
        x, y = getattr(a, name), getattr(b, name)
        rows[name] = np.concatenate([np.asarray(x), np.asarray(y)])
    subs = np.concatenate([np.asarray(a.subaccounts), np.asarray(b.subaccounts)])
    state = MarginState(
        **{
            **a.__dict__,
            **rows,
            "owners": list(a.owners) + list(b.owners),
            "subaccounts": subs,
        }
    )
    result = MarginResult(
        block=ra.block,
        timestamp=ra.timestamp,
        equity=np.concatenate([ra.equity, rb.equity]),
        im=np.concatenate([ra.im, rb.im]),
        mm=np.concatenate([ra.mm, rb.mm]),
        liquidatable=np.concatenate([ra.liquidatable, rb.liquidatable]),
        health=np.concatenate([ra.health, rb.health]),
        priced=np.concatenate([ra.priced, rb.priced]),
        funding_index=ra.funding_index,
    )
    return state, result, np.arange(state.n_accounts, dtype=np.int64)
