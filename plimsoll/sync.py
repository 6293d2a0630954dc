"""Chain state sync: discover every Plimsoll account from logs, read them all at one block.

Two parts, usable together (:func:`sync_state`) or apart:

:class:`AccountIndexer`
    Scans the core's account events (``Deposited``, ``Withdrawn``, ``Transferred`` - both
    subaccounts -, ``SubaccountConfigured``, ``Traded``, ``Liquidated`` - the account and the
    keeper's subaccount 0 when it earned a reward -, ``CollateralLiquidated``,
    ``BadDebtSettled``) from the deploy block with chunked ``eth_getLogs``. The chunk adapts:
    it halves when a node refuses a range ("too many results", a timeout, ...) and grows back
    after a few successes. Progress is checkpointed in SQLite (accounts, last scanned block and
    the hashes of the most recent blocks), so a restart continues where it stopped. Every sync
    that sees a new head re-scans the last ``rescan_depth`` blocks and compares the stored
    hash of the last scanned block with the chain's; on a mismatch it finds the fork point
    among the stored hashes, forgets what was first seen after it and re-scans from there.
    An account is only dropped when every block it was seen in was reorged out; if it
    reappears in the new branch, the re-scan adds it again in the same sync.

:class:`StateReader`
    Reads a :class:`~plimsoll.state.MarginState` for a list of accounts at one pinned block
    through the stateless ``PlimsollLens`` contract: one ``eth_call`` for every market,
    asset and oracle price (``OracleRouter.tryPrice``: a stale feed reads as price 0 and is
    flagged, it does not revert), and one ``eth_call`` per ``batch_size`` accounts, sent as
    JSON-RPC batches of ``calls_per_request`` calls.

Both count the JSON-RPC calls and HTTP round trips they make (:class:`RpcClient`) and accept
a progress callback ``progress(phase, done, total)`` for command-line progress bars.

The lens is not part of ``deploy_local`` yet; :func:`deploy_lens` deploys it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from plimsoll.build import compile_contracts
from plimsoll.chain import _abi_type
from plimsoll.errors import PlimsollError
from plimsoll.state import IntArray, MarginState

ProgressCallback = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phase is ``"index"`` (blocks) or ``"read"`` (accounts)."""


# ---------------------------------------------------------------------------------- errors


class SyncError(PlimsollError):
    """State sync failed: the node misbehaved or the checkpoint does not fit the chain."""


class RpcError(SyncError):
    """A JSON-RPC request came back with an error object.

    Attributes
    ----------
    code : int or None
        The JSON-RPC error code.
    method : str
        The method that failed.
    """

    def __init__(self, method: str, code: int | None, message: str) -> None:
        self.method = method
        self.code = code
        super().__init__(f"{method}: [{code}] {message}")


class CheckpointMismatchError(SyncError):
    """The SQLite checkpoint belongs to another chain, core or deploy block."""


class LensError(SyncError):
    """The lens answered nothing (no code at the pinned block) or an unexpected shape."""


# ---------------------------------------------------------------------------------- RPC


class RpcClient:
    """Raw JSON-RPC over a web3 provider that counts what it sends.

    Parameters
    ----------
    w3 : Web3
        Its provider is used directly (no middleware, no result formatting).

    Attributes
    ----------
    requests : int
        JSON-RPC calls made (each call in a batch counts once).
    round_trips : int
        HTTP requests made (a batch is one).
    by_method : dict of str to int
        JSON-RPC calls per method.
    """

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.requests = 0
        self.round_trips = 0
        self.by_method: dict[str, int] = {}

    def _count(self, methods: Iterable[str]) -> None:
        self.round_trips += 1
        for m in methods:
            self.requests += 1
            self.by_method[m] = self.by_method.get(m, 0) + 1

    def reset(self) -> None:
        """Set every counter back to zero."""
        self.requests = 0
        self.round_trips = 0
        self.by_method = {}

    def call(self, method: str, params: list[Any]) -> Any:
        """Send one request and return its ``result``.

        Raises
        ------
        RpcError
            The node answered with an error object.
        """
        self._count([method])
        resp = cast(Any, self.w3.provider).make_request(method, params)
        return _result(method, resp)

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send ``calls`` as one JSON-RPC batch; results in order.

        Raises
        ------
        RpcError
            Any call in the batch failed (the first failure is reported).
        """
        if not calls:
            return []
        if len(calls) == 1:
            return [self.call(*calls[0])]
        self._count(m for m, _ in calls)
        resp = cast(Any, self.w3.provider).make_batch_request(list(calls))
        if not isinstance(resp, list):
            _result(calls[0][0], resp)
            raise RpcError(calls[0][0], None, f"batch answered with {resp!r:.200}")
        if len(resp) != len(calls):
            raise RpcError(calls[0][0], None, f"{len(resp)} answers to {len(calls)} calls")
        return [_result(m, r) for (m, _), r in zip(calls, resp, strict=True)]


def _hex(x: Any) -> str:
    if isinstance(x, (bytes, bytearray)):
        return "0x" + bytes(x).hex()
    return str(x) if not isinstance(x, int) else hex(x)


def _head_tuple(blk: Any) -> tuple[int, str, str]:
    """(number, hash, parent hash) of a block as a node or web3 returns it."""
    n = blk["number"]
    number = n if isinstance(n, int) else int(str(n), 16)
    return number, _hex(blk["hash"]), _hex(blk["parentHash"])


def _result(method: str, resp: Any) -> Any:
    if not isinstance(resp, dict):
        raise RpcError(method, None, f"malformed answer {resp!r:.200}")
    if resp.get("error") is not None:
        err = resp["error"]
        if isinstance(err, dict):
            raise RpcError(method, err.get("code"), str(err.get("message", err)))
        raise RpcError(method, None, str(err))
    return resp.get("result")


# ---------------------------------------------------------------------------------- events


class Account(NamedTuple):
    """A Plimsoll account: an owner's subaccount."""

    owner: str
    subaccount: int


@lru_cache(maxsize=1 << 17)
def checksum(address: str) -> str:
    """EIP-55 checksum of a hex address, cached (an owner is checksummed once per process).

    Raises
    ------
    ValueError
        ``address`` is not 20 bytes of hex, or is mixed-case with a wrong checksum.
    """
    body = address[2:] if address[:2] in ("0x", "0X") else address
    lower = body.lower()
    if len(lower) != 40 or not all(c in "0123456789abcdef" for c in lower):
        raise ValueError(f"not an address: {address!r}")
    digest = keccak(text=lower).hex()
    out = "0x" + "".join(c.upper() if digest[i] in "89abcdef" else c for i, c in enumerate(lower))
    if body != lower and body != body.upper() and out[2:] != body:
        raise ValueError(f"bad checksum: {address!r}")
    return out


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


# Event signature -> (topic index of the owner, topic index of the subaccount or None).
# Transferred carries both subaccounts in its data; Liquidated also names a keeper.
ACCOUNT_EVENTS: dict[str, str] = {
    "Deposited": "Deposited(address,uint256,uint256,uint256)",
    "Withdrawn": "Withdrawn(address,uint256,uint256,uint256)",
    "Transferred": "Transferred(address,uint256,uint256,uint256,uint256)",
    "SubaccountConfigured": "SubaccountConfigured(address,uint256,uint8)",
    "Traded": "Traded(address,uint256,uint256,int256,uint256,uint256,int256)",
    "Liquidated": "Liquidated(address,uint256,address,uint256,uint256,uint256,uint256,uint256)",
    "CollateralLiquidated": "CollateralLiquidated(address,uint256,address,uint256,uint256,uint256)",
    "BadDebtSettled": "BadDebtSettled(address,uint256,uint256,uint256,uint256)",
    "PortfolioMarginSet": "PortfolioMarginSet(address,uint256,bool)",
    "WitnessLiquidation": "WitnessLiquidation(address,uint256,uint256,uint256)",
    "CollateralForfeited": "CollateralForfeited(address,uint256,uint256,uint256)",
}
TOPICS: dict[str, str] = {name: _topic(sig) for name, sig in ACCOUNT_EVENTS.items()}
# The options market's events that change an account's core state (optionsBook moves cash and
# the options flag without a core event): owner and subaccount are topics 1 and 2.
OPTIONS_EVENTS: dict[str, str] = {
    "OptionTraded": "OptionTraded(address,uint256,uint256,int256,uint256,int256,uint256)",
    "OptionSettled": "OptionSettled(address,uint256,uint256,int256,int256)",
    "OptionsLiquidated": "OptionsLiquidated(address,uint256,uint256,int256,uint256)",
}
OPTIONS_TOPICS: dict[str, str] = {name: _topic(sig) for name, sig in OPTIONS_EVENTS.items()}
_TRANSFERRED = TOPICS["Transferred"]
_LIQUIDATED = TOPICS["Liquidated"]


def _word(hexdata: str, i: int) -> int:
    start = 2 + 64 * i
    return int(hexdata[start : start + 64], 16)


def _address(topic: str) -> str:
    return "0x" + topic[-40:]


def accounts_in_log(log: dict[str, Any]) -> list[tuple[str, int]]:
    """The (lower-case owner, subaccount) pairs a raw core log names.

    Parameters
    ----------
    log : dict
        A raw ``eth_getLogs`` entry (hex strings).

    Returns
    -------
    list of (str, int)
        Empty for events that name no account.
    """
    topics: list[str] = log["topics"]
    t0 = topics[0]
    if t0 == _TRANSFERRED:
        owner = _address(topics[1])
        data = log["data"]
        return [(owner, _word(data, 0)), (owner, _word(data, 1))]
    out = [(_address(topics[1]), int(topics[2], 16))]
    if t0 == _LIQUIDATED and _word(log["data"], 3) != 0:
        out.append((_address(topics[3]), 0))  # the keeper's reward goes to its subaccount 0
    return out


def _first_seen(rows: dict[tuple[str, int], int], log: dict[str, Any], block: int) -> None:
    """Record ``block`` as the first block of every account ``log`` names, unless an earlier
    one is recorded."""
    for key in accounts_in_log(log):
        if rows.get(key, block + 1) > block:
            rows[key] = block


def _is_range_error(exc: Exception) -> bool:
    """Whether a failed ``eth_getLogs`` should be retried over a smaller block range."""
    if isinstance(exc, requests.Timeout | TimeoutError):
        return True
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status in (408, 413, 429, 502, 503, 504)
    if isinstance(exc, RpcError):
        if exc.code in (-32005, -32602, -32614):
            return True
        text = str(exc).lower()
        return any(
            k in text
            for k in (
                "too many",
                "more than",
                "limit",
                "range",
                "exceed",
                "timeout",
                "timed out",
                "response size",
                "too large",
            )
        )
    return False


# ---------------------------------------------------------------------------------- indexer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    subaccount TEXT NOT NULL,
    first_block INTEGER NOT NULL,
    UNIQUE (owner, subaccount)
);
CREATE INDEX IF NOT EXISTS accounts_first_block ON accounts (first_block);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
"""


@dataclass
class IndexStats:
    """What the last :meth:`AccountIndexer.sync` did."""

    from_block: int = 0
    to_block: int = 0
    get_logs: int = 0
    logs: int = 0
    new_accounts: int = 0
    reorgs: int = 0
    rolled_back_to: list[int] = field(default_factory=list)
    chunk_halvings: int = 0
    restarts: int = 0  # scans abandoned because the chain reorganized under them


class AccountIndexer:
    """Discovers every account of one Plimsoll core from its logs; checkpointed in SQLite.

    Parameters
    ----------
    w3 : Web3
        Connection to the chain.
    core : str
        The core's address.
    db_path : str or Path
        SQLite file (created if missing); ``":memory:"`` keeps nothing.
    deploy_block : int
        First block to scan (the core's deployment block or earlier).
    chunk_size : int
        Largest block range per ``eth_getLogs`` (halved on refusals, grown back up to this).
    rescan_depth : int
        Blocks re-scanned below the checkpoint (on start, and see ``rescan_every``): logs a
        node served late (a load-balanced provider's log index lagging its head) are found.
    rescan_every : int
        Re-scan that window when the head has moved this many blocks since the last re-scan;
        in between only the new blocks are scanned (1: every new head, the default). 0: only on
        the first sync; the caller re-scans with :meth:`rescan` when it has time (the keeper:
        after a block's transactions are out). Reorgs do not depend on it: the checkpoint's
        hash is checked on every sync.
    hash_window : int
        Recent block hashes kept for reorg detection (>= ``rescan_depth``); a reorg deeper
        than this falls back to a full re-scan.
    rpc : RpcClient, optional
        Shared request counter; a new one by default.
    progress : callable, optional
        ``progress("index", blocks_done, blocks_total)`` after every chunk.

    Notes
    -----
    The liquidity pool's own account (pool, 0) is booked by ``PoolCashMoved``, which names no
    owner; it is not an account of the margin mirror (the pool is margined on the market
    aggregates) and is not listed.
    """

    def __init__(
        self,
        w3: Web3,
        core: str,
        db_path: str | Path,
        deploy_block: int,
        *,
        chunk_size: int = 10_000,
        rescan_depth: int = 12,
        rescan_every: int = 1,
        hash_window: int = 128,
        rpc: RpcClient | None = None,
        progress: ProgressCallback | None = None,
        options: str | None = None,
        log_sink: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.w3 = w3
        self.core = to_checksum_address(core)
        self.deploy_block = int(deploy_block)
        self.max_chunk = int(chunk_size)
        self.chunk = int(chunk_size)
        self.rescan_depth = max(0, int(rescan_depth))
        self.rescan_every = max(0, int(rescan_every))
        self._rescanned = -(2**62)  # head of the last window re-scan
        self.hash_window = max(int(hash_window), self.rescan_depth + 1, 2)
        self.rpc = rpc or RpcClient(w3)
        self.progress = progress
        # The options market's account events are scanned too when its address is given.
        self.options = to_checksum_address(options) if options else None
        # Called with every chunk of (not removed) logs in block order, before its checkpoint
        # is committed: an event-sourced consumer (plimsoll.book) learns what changed.
        self.log_sink = log_sink
        self.stats = IndexStats()
        self._ok_streak = 0
        self._started = False  # the first sync of an instance always re-scans
        # Serialized SQLite (threadsafety 3): a keeper may be built in one thread and run in
        # another, and health/metrics threads may read while it writes.
        self.db = sqlite3.connect(str(db_path), check_same_thread=False)
        # WAL without a sync per commit: a crash may lose the last checkpoints, which the next
        # sync scans again (the index is a cache of the chain); a commit costs ~0.1 ms, not 2.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._check_meta()

    # ------------------------------------------------------------------ checkpoint

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _check_meta(self) -> None:
        chain_id = str(int(self.rpc.call("eth_chainId", []), 16))
        want = {"chain_id": chain_id, "core": self.core, "deploy_block": str(self.deploy_block)}
        with self.db:
            for key, value in want.items():
                have = self._meta(key)
                if have is None:
                    self._set_meta(key, value)
                elif have != value:
                    raise CheckpointMismatchError(
                        f"checkpoint {key} is {have}, this indexer's is {value}"
                    )

    @property
    def last_block(self) -> int | None:
        """The last block scanned (None before the first sync)."""
        v = self._meta("last_block")
        return None if v is None else int(v)

    @property
    def last_hash(self) -> str | None:
        """The stored hash of :attr:`last_block`."""
        last = self.last_block
        return None if last is None else self._stored_hash(last)

    def _stored_hash(self, number: int) -> str | None:
        row = self.db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def accounts(self) -> list[Account]:
        """Every known account, in discovery order."""
        rows = self.db.execute("SELECT owner, subaccount FROM accounts ORDER BY id").fetchall()
        return [Account(str(o), int(s)) for o, s in rows]

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0])

    def close(self) -> None:
        """Close the SQLite connection."""
        self.db.close()

    def __enter__(self) -> AccountIndexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ chain access

    def _block_hashes(self, numbers: Sequence[int]) -> dict[int, str | None]:
        """Chain hashes of ``numbers`` (None where the chain has no such block), one batch."""
        out: dict[int, str | None] = {}
        step = 200
        for i in range(0, len(numbers), step):
            part = numbers[i : i + step]
            blocks = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part])
            for n, b in zip(part, blocks, strict=True):
                out[n] = None if b is None else str(b["hash"])
        return out

    def _get_logs(self, start: int, end: int) -> list[dict[str, Any]]:
        topics = list(TOPICS.values())
        address: str | list[str] = self.core
        if self.options is not None:
            address = [self.core, self.options]
            topics += list(OPTIONS_TOPICS.values())
        params = {
            "address": address,
            "fromBlock": hex(start),
            "toBlock": hex(end),
            "topics": [topics],
        }
        self.stats.get_logs += 1
        return cast(list[dict[str, Any]], self.rpc.call("eth_getLogs", [params]))

    def _logs_adaptive(self, start: int, end: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """Yield (chunk end, logs) over [start, end], halving the chunk on refusals."""
        pos = start
        while pos <= end:
            stop = min(end, pos + self.chunk - 1)
            try:
                logs = self._get_logs(pos, stop)
            except (RpcError, requests.RequestException, TimeoutError) as exc:
                if not _is_range_error(exc) or stop == pos:
                    raise SyncError(f"eth_getLogs [{pos}, {stop}] failed: {exc}") from exc
                self.chunk = max(1, (stop - pos + 1) // 2)
                self.stats.chunk_halvings += 1
                self._ok_streak = 0
                continue
            self._ok_streak += 1
            if self._ok_streak >= 3 and self.chunk < self.max_chunk:
                self.chunk = min(self.max_chunk, self.chunk * 2)
                self._ok_streak = 0
            yield stop, logs
            pos = stop + 1

    # ------------------------------------------------------------------ reorgs

    def _find_fork(self, head: int) -> int:
        """The highest stored block whose hash the chain still has (deploy - 1 if none)."""
        rows = self.db.execute(
            "SELECT number, hash FROM blocks WHERE number <= ? ORDER BY number DESC", (head,)
        ).fetchall()
        if rows:
            chain = self._block_hashes([int(n) for n, _ in rows])
            for n, h in rows:
                if chain.get(int(n)) == h:
                    return int(n)
        return self.deploy_block - 1  # deeper than the window: start over

    def _rollback(self, fork: int) -> None:
        """Forget everything first seen after block ``fork``; continue scanning from it."""
        with self.db:
            self.db.execute("DELETE FROM accounts WHERE first_block > ?", (fork,))
            self.db.execute("DELETE FROM blocks WHERE number > ?", (fork,))
            if fork < self.deploy_block:
                self.db.execute("DELETE FROM meta WHERE key = 'last_block'")
            else:
                self._set_meta("last_block", str(fork))
        self.stats.reorgs += 1
        self.stats.rolled_back_to.append(fork)

    def check_reorg(
        self,
        head: int | None = None,
        head_hash: str | None = None,
        parent_hash: str | None = None,
    ) -> int | None:
        """Compare the stored hash of the last scanned block with the chain's.

        Parameters
        ----------
        head : int, optional
            The chain's head number (asked for when omitted).
        head_hash : str, optional
            The head's hash, if known: saves a request when the head has not moved.
        parent_hash : str, optional
            The head's parent hash, if known: saves a request when the head moved by one.

        Returns
        -------
        int or None
            The fork point rolled back to, or None when the checkpoint is on the chain.
        """
        last = self.last_block
        if last is None:
            return None
        if head is None:
            head = int(self.rpc.call("eth_blockNumber", []), 16)
        stored = self._stored_hash(last)
        if last == head and head_hash is not None:
            chain: str | None = head_hash
        elif last == head - 1 and parent_hash is not None:
            chain = parent_hash
        else:
            chain = self._block_hashes([last])[last] if last <= head else None
        if stored is not None and chain == stored:
            return None
        fork = self._find_fork(min(head, last))
        self._rollback(fork)
        return fork

    # ------------------------------------------------------------------ sync

    def sync(
        self,
        to_block: int | None = None,
        max_attempts: int = 5,
        head_block: dict[str, Any] | None = None,
    ) -> int:
        """Index up to ``to_block`` (default: the head); returns the block indexed to.

        Re-scans the last ``rescan_depth`` blocks below the checkpoint on the first sync of this
        instance and every ``rescan_every`` blocks, after rolling back any reorg.
        ``head_block``: the block ``to_block`` as the caller just fetched it (``number``,
        ``hash``, ``parentHash``; ints, hex strings or bytes): saves the requests for its hash
        and for the checkpoint's when the head moved by one.

        Raises
        ------
        SyncError
            The node keeps refusing, or the chain keeps reorganizing under the scan.
        """
        self.stats = IndexStats()
        given = _head_tuple(head_block) if head_block is not None else None
        if given is not None and to_block is not None and given[0] != to_block:
            given = None
        for _ in range(max_attempts):
            if self._sync_once(to_block, given):
                self._started = True
                last = self.last_block
                return self.deploy_block - 1 if last is None else last
            self.stats.restarts += 1
            given = None  # the chain moved under us: ask again
        raise SyncError(f"the chain reorganized during {max_attempts} sync attempts")

    def _head(self, to_block: int | None) -> tuple[int, str, str] | None:
        tag = "latest" if to_block is None else hex(to_block)
        blk = self.rpc.call("eth_getBlockByNumber", [tag, False])
        return None if blk is None else _head_tuple(blk)

    def _sync_once(self, to_block: int | None, given: tuple[int, str, str] | None) -> bool:
        got = given or self._head(to_block)
        if got is None:
            raise SyncError(f"the chain has no block {to_block}")
        head, head_hash, parent_hash = got
        fork = self.check_reorg(head, head_hash, parent_hash)
        last = self.last_block
        if last is not None and last == head and fork is None and self._started:
            return True  # same head, same hash: nothing new
        if head < self.deploy_block:
            return True
        rescan = not self._started or (
            self.rescan_every > 0 and head - self._rescanned >= self.rescan_every
        )
        if last is None:
            start = self.deploy_block
        elif rescan:
            start = max(self.deploy_block, last - self.rescan_depth + 1)
        else:
            start = last + 1
        if start > head:
            return True
        if rescan:
            self._rescanned = head
        self.stats.from_block, self.stats.to_block = start, head
        # Hashes of the recent window: stored ones up to the (verified) checkpoint are kept,
        # newer ones are fetched in one batch. Logs in the window must carry these hashes.
        window_lo = max(start, head - self.hash_window + 1)
        hashes: dict[int, str | None] = {}
        if last is not None:
            rows = self.db.execute(
                "SELECT number, hash FROM blocks WHERE number BETWEEN ? AND ?",
                (window_lo, min(last, head)),
            ).fetchall()
            hashes = {int(n): str(h) for n, h in rows}
        missing = [n for n in range(window_lo, head + 1) if n not in hashes and n != head]
        hashes.update(self._block_hashes(missing))
        hashes[head] = head_hash
        if any(h is None for h in hashes.values()):
            return False  # the head went backwards while we looked
        total = head - start + 1
        for stop, logs in self._logs_adaptive(start, head):
            rows_: dict[tuple[str, int], int] = {}
            for log in logs:
                bn = int(log["blockNumber"], 16)
                if bn >= window_lo and log.get("blockHash") != hashes[bn]:
                    return False  # a reorg under the scan: start over (rolls back first)
                if log.get("removed"):
                    continue
                _first_seen(rows_, log, bn)
            if self.log_sink is not None:
                self.log_sink([lg for lg in logs if not lg.get("removed")])
            self._commit_chunk(stop, rows_, hashes)
            self.stats.logs += len(logs)
            if self.progress is not None:
                self.progress("index", stop - start + 1, total)
        return True

    # ------------------------------------------------------------------ for consumers

    @property
    def chain_id(self) -> int:
        """The chain id of the node the index was built from (recorded on first use)."""
        return int(self._meta("chain_id") or 0)

    def stored_hash(self, number: int) -> str | None:
        """The hash indexed for block ``number`` (within the hash window), or None."""
        return self._stored_hash(number)

    def chain_hash(self, number: int) -> str | None:
        """The chain's hash of block ``number`` now (None: the chain has no such block)."""
        return self._block_hashes([number])[number]

    def logs(self, start: int, end: int) -> Iterator[list[dict[str, Any]]]:
        """The account logs of blocks [start, end] (the scan's filter, chunked as the scan;
        removed ones left out), without indexing them."""
        for _stop, logs in self._logs_adaptive(start, end):
            yield [lg for lg in logs if not lg.get("removed")]

    def rescan(self) -> list[tuple[str, int]]:
        """Fetch the logs of the indexed blocks since the last re-scan again (at least the last
        ``rescan_depth``, at most the hash window): logs a node served late. Returns every
        account they name, to be compared with the chain by the caller; new accounts are
        indexed. Nothing is returned when a log's block hash is not the one indexed: the chain
        reorganized, and the next :meth:`sync` rolls back."""
        last = self.last_block
        if last is None:
            return []
        since = min(last - self.rescan_depth + 1, self._rescanned + 1)
        start = max(self.deploy_block, last - self.hash_window + 1, since)
        stored = dict(
            self.db.execute(
                "SELECT number, hash FROM blocks WHERE number BETWEEN ? AND ?", (start, last)
            ).fetchall()
        )
        rows: dict[tuple[str, int], int] = {}
        for _stop, logs in self._logs_adaptive(start, last):
            for log in logs:
                bn = int(log["blockNumber"], 16)
                if bn > last or log.get("removed"):
                    continue
                if stored.get(bn) not in (None, log.get("blockHash")):
                    return []
                _first_seen(rows, log, bn)
        with self.db:
            self.stats.new_accounts += self._upsert_accounts(rows)
        self._rescanned = last
        return [(checksum(o), int(s)) for o, s in rows]

    def _upsert_accounts(self, rows: dict[tuple[str, int], int]) -> int:
        """Index accounts (first block seen); returns how many were new. In a transaction."""
        before = self.db.total_changes
        self.db.executemany(
            "INSERT INTO accounts (owner, subaccount, first_block) VALUES (?, ?, ?) "
            "ON CONFLICT (owner, subaccount) DO UPDATE "
            "SET first_block = min(first_block, excluded.first_block) "
            "WHERE excluded.first_block < first_block",
            [(checksum(o), str(s), b) for (o, s), b in rows.items()],
        )
        return self.db.total_changes - before

    def _commit_chunk(
        self, stop: int, rows: dict[tuple[str, int], int], hashes: dict[int, str | None]
    ) -> None:
        with self.db:
            new = self._upsert_accounts(rows)
            self.db.executemany(
                "INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)",
                [(n, h) for n, h in hashes.items() if n <= stop and h is not None],
            )
            self.db.execute("DELETE FROM blocks WHERE number <= ?", (stop - self.hash_window,))
            self._set_meta("last_block", str(stop))
        self.stats.new_accounts += new


# ---------------------------------------------------------------------------------- lens


def deploy_lens(w3: Web3, sender: str) -> Contract:
    """Deploy ``PlimsollLens`` from the unlocked ``sender``.

    Returns
    -------
    Contract
        The deployed lens.

    Raises
    ------
    SyncError
        The deployment transaction failed.
    """
    art = compile_contracts()["PlimsollLens"]
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx_hash = factory.constructor().transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise SyncError("deploying PlimsollLens failed")
    return w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)


_READ_ACCOUNTS = keccak(text="readAccounts(address,address[],uint256[])")[:4]
_READ_MARKETS = keccak(text="readMarkets(address)")[:4]


def encode_accounts_args(core: str, owners: Sequence[bytes], subs: Sequence[int]) -> bytes:
    """ABI encoding of ``(address core, address[] owners, uint256[] subs)``, as
    ``eth_abi.encode`` gives it (a test checks), written out: the keeper encodes these every
    block and eth_abi's generic encoder cost ~0.1 ms per account."""
    n = len(owners)
    if len(subs) != n:
        raise ValueError("owners and subs differ in length")
    if any(len(o) != 20 for o in owners):
        raise ValueError("an owner is not a 20-byte address")
    if any(not 0 <= s < 2**256 for s in subs):
        raise ValueError("a subaccount is outside uint256")
    head = bytes(12) + bytes.fromhex(core[2:])
    head += (96).to_bytes(32, "big") + (96 + 32 + 32 * n).to_bytes(32, "big")
    body = [n.to_bytes(32, "big")]
    body += [bytes(12) + o for o in owners]
    body.append(n.to_bytes(32, "big"))
    body += [int(s).to_bytes(32, "big") for s in subs]
    return head + b"".join(body)


_MARKETS_TYPE: str | None = None


def _markets_type() -> str:
    """The ABI type of ``readMarkets``'s return tuple, from the compiled lens."""
    global _MARKETS_TYPE
    if _MARKETS_TYPE is None:
        abi = compile_contracts()["PlimsollLens"].abi
        fn = next(i for i in abi if i.get("name") == "readMarkets")
        _MARKETS_TYPE = _abi_type(fn["outputs"][0])
    return _MARKETS_TYPE


def _decode_int_arrays(raw: bytes, signed: Sequence[bool]) -> list[list[int]]:
    """Decode a return tuple of one-dimensional integer arrays, one word at a time."""
    out: list[list[int]] = []
    for i, s in enumerate(signed):
        offset = int.from_bytes(raw[32 * i : 32 * i + 32], "big")
        n = int.from_bytes(raw[offset : offset + 32], "big")
        base = offset + 32
        if base + 32 * n > len(raw):
            raise LensError("readAccounts answer is truncated")
        out.append(
            [
                int.from_bytes(raw[base + 32 * j : base + 32 * j + 32], "big", signed=s)
                for j in range(n)
            ]
        )
    return out


@dataclass
class MarketTable:
    """Every market, asset and oracle price at one block, as the lens reports them.

    ``market_price_ok`` / ``asset_price_ok`` are False unless the oracle grades the price OK.
    A market price is the latest answer when readable (``OracleRouter.tryPrice``: also when
    suspect or stale) and 0 for an out-of-bounds, non-positive or missing feed; an asset price
    is what the core values collateral at (``OracleRouter.collateralPrice``: 0 while stale or
    invalid, the lower of the answer and the pre-jump price while suspect).
    ``im_scalars`` / ``mm_scalars`` are the markets' volatility scalars at the block [wad].
    """

    block: int
    timestamp: int
    market_configs: list[tuple[Any, ...]]
    market_states: list[tuple[Any, ...]]
    market_price_ok: list[bool]
    market_prices: list[int]
    im_scalars: list[int]
    mm_scalars: list[int]
    asset_configs: list[tuple[Any, ...]]
    asset_price_ok: list[bool]
    asset_prices: list[int]


class StateReader:
    """Reads :class:`~plimsoll.state.MarginState` snapshots through ``PlimsollLens``.

    Parameters
    ----------
    w3 : Web3
        Connection to the chain.
    core, lens : str
        Addresses of the core and of the deployed lens (it must exist at the blocks read).
    batch_size : int
        Accounts per ``eth_call`` (gas grows linearly; ~13M gas for 500 accounts with 3
        markets and 2 assets).
    calls_per_request : int
        ``eth_call`` s per JSON-RPC batch (one HTTP round trip).
    rpc : RpcClient, optional
        Shared request counter; a new one by default.
    progress : callable, optional
        ``progress("read", accounts_done, accounts_total)`` after every HTTP round trip.
    """

    def __init__(
        self,
        w3: Web3,
        core: str,
        lens: str,
        *,
        batch_size: int = 500,
        calls_per_request: int = 4,
        rpc: RpcClient | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        if batch_size < 1 or calls_per_request < 1:
            raise ValueError("batch_size and calls_per_request must be >= 1")
        self.w3 = w3
        self.core = to_checksum_address(core)
        self.lens = to_checksum_address(lens)
        self.batch_size = int(batch_size)
        self.calls_per_request = int(calls_per_request)
        self.rpc = rpc or RpcClient(w3)
        self.progress = progress
        self.last_markets: MarketTable | None = None

    def _eth_call(self, data: bytes, block: int) -> tuple[str, list[Any]]:
        return ("eth_call", [{"to": self.lens, "data": "0x" + data.hex()}, hex(block)])

    def _markets_call(self, block: int) -> tuple[str, list[Any]]:
        return self._eth_call(_READ_MARKETS + abi_encode(["address"], [self.core]), block)

    def _decode_markets(self, result: str, block: int) -> MarketTable:
        raw = bytes.fromhex(result[2:])
        if not raw:
            raise LensError(f"no lens code at {self.lens} in block {block}")
        (m,) = abi_decode([_markets_type()], raw)
        table = MarketTable(
            block=int(m[0]),
            timestamp=int(m[1]),
            market_configs=list(m[2]),
            market_states=list(m[3]),
            market_price_ok=[bool(x) for x in m[4]],
            market_prices=[int(x) for x in m[5]],
            im_scalars=[int(x) for x in m[6]],
            mm_scalars=[int(x) for x in m[7]],
            asset_configs=list(m[8]),
            asset_price_ok=[bool(x) for x in m[9]],
            asset_prices=[int(x) for x in m[10]],
        )
        if table.block != block:
            raise LensError(f"lens read block {table.block}, asked for {block}")
        return table

    def read_markets(self, block: int | None = None) -> MarketTable:
        """Every market, asset and oracle price at ``block`` (default: the head), one call."""
        if block is None:
            block = int(self.rpc.call("eth_blockNumber", []), 16)
        table = self._decode_markets(self.rpc.call(*self._markets_call(block)), block)
        self.last_markets = table
        return table

    def read(self, accounts: Sequence[tuple[str, int]], block: int | None = None) -> MarginState:
        """Read ``accounts`` and every market at one block (default: the head).

        Parameters
        ----------
        accounts : sequence of (owner, subaccount)
        block : int, optional
            The pinned block: every ``eth_call`` names it.

        Returns
        -------
        MarginState
            Rows in the order of ``accounts``. A price whose feed failed reads 0; see
            :attr:`last_markets` for the flags.

        Raises
        ------
        LensError, RpcError
        """
        if block is None:
            block = int(self.rpc.call("eth_blockNumber", []), 16)
        owners = [checksum(o) for o, _ in accounts]
        raw_owners = [bytes.fromhex(o[2:]) for o in owners]  # no second checksum validation
        subs = [int(s) for _, s in accounts]
        calls = [self._markets_call(block)]
        for i in range(0, len(owners), self.batch_size):
            data = _READ_ACCOUNTS + encode_accounts_args(
                self.core, raw_owners[i : i + self.batch_size], subs[i : i + self.batch_size]
            )
            calls.append(self._eth_call(data, block))
        results: list[Any] = []
        done = 0
        for i in range(0, len(calls), self.calls_per_request):
            part = calls[i : i + self.calls_per_request]
            results.extend(self.rpc.batch(part))
            done = min(len(owners), (i + len(part) - 1) * self.batch_size)
            if self.progress is not None:
                self.progress("read", done, len(owners))
        table = self._decode_markets(results[0], block)
        self.last_markets = table
        nm, na = len(table.market_configs), len(table.asset_configs)
        cols: list[list[int]] = [[], [], [], [], [], [], []]
        signed = (True, False, False, False, True, False, False)
        for res in results[1:]:
            raw = bytes.fromhex(res[2:])
            if not raw:
                raise LensError(f"no lens code at {self.lens} in block {block}")
            for acc, got in zip(cols, _decode_int_arrays(raw, signed), strict=True):
                acc.extend(got)
        cash, _amask, _mmask, _iso, positions, balances, flags = cols
        n = len(owners)
        if len(cash) != n or len(positions) != 3 * n * nm or len(balances) != n * na:
            raise LensError("readAccounts answered an unexpected shape")
        state = _margin_state(table, owners, subs, cash, positions, balances)
        state.flags = np.array(flags, dtype=np.int64).reshape(n)
        return state


def _obj(values: Sequence[int], shape: tuple[int, ...]) -> IntArray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr.reshape(shape)


def _margin_state(
    t: MarketTable,
    owners: list[str],
    subs: list[int],
    cash: list[int],
    positions: list[int],
    balances: list[int],
) -> MarginState:
    n, nm, na = len(owners), len(t.market_configs), len(t.asset_configs)
    pos = _obj(positions, (n, nm, 3))
    # Subaccount ids are uint256 on chain; MarginState keeps int64 unless one does not fit.
    if all(0 <= s < 2**63 for s in subs):
        sub_arr = np.array(subs, dtype=np.int64)
    else:
        sub_arr = cast(Any, _obj(subs, (n,)))
    mc, ms = t.market_configs, t.market_states
    return MarginState(
        block=t.block,
        timestamp=t.timestamp,
        owners=owners,
        subaccounts=sub_arr,
        cash=_obj(cash, (n,)),
        balances=_obj(balances, (n, na)),
        sizes=pos[:, :, 0].copy(),
        open_notional=pos[:, :, 1].copy(),
        entry_funding_index=pos[:, :, 2].copy(),
        asset_decimals=np.array([int(a[1]) for a in t.asset_configs], dtype=np.int64),
        asset_haircut=_obj([int(a[2]) for a in t.asset_configs], (na,)),
        asset_price=_obj(t.asset_prices, (na,)),
        market_price=_obj(t.market_prices, (nm,)),
        im_base=_obj([int(c[2]) for c in mc], (nm,)),
        mm_factor=_obj([int(c[3]) for c in mc], (nm,)),
        size_slope=_obj([int(c[5]) for c in mc], (nm,)),
        max_funding_rate=_obj([int(c[6]) for c in mc], (nm,)),
        skew_scale=_obj([int(c[7]) for c in mc], (nm,)),
        long_oi=_obj([int(s[0]) for s in ms], (nm,)),
        short_oi=_obj([int(s[1]) for s in ms], (nm,)),
        funding_index=_obj([int(s[2]) for s in ms], (nm,)),
        last_funding_time=_obj([int(s[3]) for s in ms], (nm,)),
        im_scalar=_obj(t.im_scalars, (nm,)),
        mm_scalar=_obj(t.mm_scalars, (nm,)),
        market_price_ok=np.array(t.market_price_ok, dtype=bool).reshape(nm),
        asset_price_ok=np.array(t.asset_price_ok, dtype=bool).reshape(na),
    )


# ---------------------------------------------------------------------------------- together


@dataclass
class SyncResult:
    """A full sync: the snapshot, how long it took and what it cost in requests."""

    state: MarginState
    index_seconds: float
    read_seconds: float
    rpc_requests: int
    http_round_trips: int
    by_method: dict[str, int]


def sync_state(
    indexer: AccountIndexer,
    reader: StateReader,
    to_block: int | None = None,
) -> SyncResult:
    """Index up to ``to_block`` (default: the head), then read every account at that block.

    The two should share one :class:`RpcClient` for the request counts to cover both.
    """
    t0 = time.perf_counter()
    block = indexer.sync(to_block)
    t1 = time.perf_counter()
    state = reader.read(indexer.accounts(), block)
    t2 = time.perf_counter()
    rpc = reader.rpc
    return SyncResult(state, t1 - t0, t2 - t1, rpc.requests, rpc.round_trips, dict(rpc.by_method))
