"""Sending transactions like a production keeper: one nonce writer, EIP-1559 fees, replacement.

:class:`TxSender` owns one account's nonce (the single writer: nothing else may send from that
account), prices transactions with EIP-1559 fees (``maxFeePerGas = 2 x baseFee + tip``, capped; the
tip from ``eth_feeHistory``), reconciles its nonce with the chain every poll (reorgs, dropped
transactions, a node restarted from an older state), replaces a transaction that cannot be
mined at once and one that stays pending for ``stuck_blocks`` blocks, at +12.5% or more on both
fee fields (the minimum bump nodes accept) up to the cap, and reports outcomes without raising
on the normal surprises (a revert on chain because another keeper got there first is an
outcome, not an error).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from plimsoll.errors import ChainError

GWEI = 10**9
MIN_BUMP_NUM, MIN_BUMP_DEN = 1125, 1000  # +12.5%


_RECEIPT_INTS = (
    "status",
    "blockNumber",
    "gasUsed",
    "effectiveGasPrice",
    "cumulativeGasUsed",
    "transactionIndex",
    "type",
)
_LOG_INTS = ("blockNumber", "logIndex", "transactionIndex")


def _hex_int(v: Any) -> Any:
    return int(v, 16) if isinstance(v, str) else v


def _format_log(raw: dict[str, Any]) -> dict[str, Any]:
    """A raw JSON log as web3 formats it (ints, HexBytes topics/data, checksum address), so
    that ``contract.events.X().process_receipt`` decodes it."""
    out = dict(raw)
    for k in _LOG_INTS:
        if k in out:
            out[k] = _hex_int(out[k])
    for k in ("blockHash", "transactionHash", "data"):
        if isinstance(out.get(k), str):
            out[k] = HexBytes(out[k])
    out["topics"] = [HexBytes(t) for t in out.get("topics", [])]
    if isinstance(out.get("address"), str):
        out["address"] = Web3.to_checksum_address(out["address"])
    return out


def _format_receipt(raw: dict[str, Any]) -> TxReceipt:
    """A raw JSON receipt (from a batch request) formatted as web3 formats
    ``eth_getTransactionReceipt``: quantities as ints, hashes as HexBytes, addresses
    checksummed, and every log formatted too (decodable with ``process_receipt``)."""
    out: dict[str, Any] = dict(raw)
    for k in _RECEIPT_INTS:
        if k in out:
            out[k] = _hex_int(out[k])
    for k in ("transactionHash", "blockHash", "logsBloom"):
        if isinstance(out.get(k), str):
            out[k] = HexBytes(out[k])
    for k in ("from", "to", "contractAddress"):
        if isinstance(out.get(k), str):
            out[k] = Web3.to_checksum_address(out[k])
    out["logs"] = [_format_log(log) for log in out.get("logs") or []]
    return out  # type: ignore[return-value]


class Outcome(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    REVERTED = "reverted"
    LOST = "lost"  # neither on chain nor in the node's pool: the nonce is free again


@dataclass
class PendingTx:
    """A transaction in flight under one nonce; replacements keep the nonce, change the hash.

    ``max_fee_cap`` is the most this transaction may pay per gas (its class's budget: bad-debt
    clearing has a higher one than ordinary liquidations)."""

    nonce: int
    tx: dict[str, Any]
    hashes: list[HexBytes]
    sent_block: int
    label: str
    replacements: int = 0
    outcome: Outcome = Outcome.PENDING
    receipt: TxReceipt | None = None
    sent_at: float = field(default_factory=time.monotonic)
    max_fee_cap: int = 0
    checks: int = 0  # blocks in which a poll found no receipt for it
    seen_head: int = -1

    def __post_init__(self) -> None:
        if self.seen_head < 0:
            self.seen_head = self.sent_block  # blocks without a receipt count from the send

    def to_json(self) -> dict[str, Any]:
        tx = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in self.tx.items()}
        return {
            "nonce": self.nonce,
            "tx": tx,
            "hashes": ["0x" + bytes(h).hex() for h in self.hashes],
            "sent_block": self.sent_block,
            "label": self.label,
            "replacements": self.replacements,
            "max_fee_cap": self.max_fee_cap,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PendingTx:
        return cls(
            nonce=int(d["nonce"]),
            tx=dict(d["tx"]),
            hashes=[HexBytes(h) for h in d["hashes"]],
            sent_block=int(d["sent_block"]),
            label=str(d["label"]),
            replacements=int(d.get("replacements", 0)),
            max_fee_cap=int(d.get("max_fee_cap", 0)),
        )


@dataclass
class FeePolicy:
    """EIP-1559 pricing, all in wei.

    The tip follows the market: the ``tip_percentile`` of the priority fees paid in the last
    ``fee_history_blocks`` blocks (``eth_feeHistory``), plus ``tip_premium_pct``, never under
    ``priority_fee`` (the floor) nor over ``max_tip``. ``max_fee_cap`` bounds what an ordinary
    transaction pays per gas; a caller may pass a higher cap for a class that is worth more
    (bad-debt clearing). Replacements bump both fields by ``bump_num / bump_den`` >= 1.125."""

    priority_fee: int = 1 * GWEI
    max_fee_cap: int = 500 * GWEI
    bump_num: int = MIN_BUMP_NUM
    bump_den: int = MIN_BUMP_DEN
    max_tip: int = 100 * GWEI
    tip_percentile: float = 60.0
    tip_premium_pct: int = 0
    fee_history_blocks: int = 4

    def __post_init__(self) -> None:
        if self.bump_num * MIN_BUMP_DEN < MIN_BUMP_NUM * self.bump_den:
            raise ValueError("replacement bump must be at least +12.5%")

    def tip(self, market_tip: int = 0) -> int:
        """The tip to offer now: the market's, with the premium, between the floor and max_tip."""
        bid = market_tip * (100 + self.tip_premium_pct) // 100
        return min(max(self.priority_fee, bid), max(self.max_tip, self.priority_fee))

    def initial(
        self, base_fee: int, market_tip: int = 0, cap: int | None = None
    ) -> tuple[int, int]:
        cap = self.max_fee_cap if cap is None else cap
        tip = min(self.tip(market_tip), cap)
        return min(2 * base_fee + tip, cap), tip

    def bump(
        self,
        max_fee: int,
        tip: int,
        base_fee: int = 0,
        market_tip: int = 0,
        cap: int | None = None,
    ) -> tuple[int, int] | None:
        """Fees of a replacement: at least +12.5% on both fields and at least what a new
        transaction would pay now; None when the cap forbids a valid replacement."""
        cap = self.max_fee_cap if cap is None else cap
        new_tip = max(-(-tip * self.bump_num // self.bump_den), self.tip(market_tip))
        min_max = -(-max_fee * self.bump_num // self.bump_den)
        new_max = min(max(min_max, 2 * base_fee + new_tip), cap)
        if new_max < min_max:
            return None
        return new_max, min(new_tip, new_max)


@dataclass
class Market:
    """What the chain says fees are now: the head, the next block's base fee (from
    ``eth_feeHistory``, which states it) and the going tip."""

    head: int
    next_base_fee: int
    tip: int


def _block_of(p: PendingTx) -> int:
    return int(p.receipt["blockNumber"]) if p.receipt is not None else -1


class TxSender:
    """The single writer for ``account``'s nonce, reconciled with the chain every poll.

    Every :meth:`poll` compares the nonce the chain has mined (``latest``) and the one the node's
    pool knows (``pending``) with what this sender believes:

    - a transaction seen mined whose nonce the chain no longer counts (a reorg dropped its
      block, or the node came back from an older state) is *unmined*: back to pending when the
      node still holds it, else *lost*;
    - a pending transaction that is neither mined nor in the node's pool (dropped, evicted,
      lost with the node's state) is *lost*;
    - a lost transaction is never re-sent as it was: its nonce becomes free and the caller
      (who knows what the transaction was for) rebuilds what is still needed from the current
      state; the next transactions take free nonces first, and :meth:`fill_gaps` cancels a
      free nonce that holds back later transactions when nothing else needs it;
    - a chain ahead of this sender (another process sent from the key) moves the next nonce up.

    Each correction counts in :attr:`reconciliations`. A transaction that cannot be mined now
    (max fee under the next base fee, or a tip under the market's) is replaced at once, others
    after ``stuck_blocks``; a replacement may go up to the highest cap of the transactions
    waiting behind it. ``state_path`` keeps the in-flight transactions across restarts.

    Parameters
    ----------
    w3 : Web3
    account : LocalAccount
        Signing key (from a keystore; never a raw key in a file).
    fees : FeePolicy
    stuck_blocks : int
        Blocks a mineable transaction may stay pending before it is replaced.
    on_event : callable, optional
        ``on_event(kind, pending)``: kind in {"sent", "replaced", "replace_failed",
        "succeeded", "reverted", "unmined", "lost"}.
    state_path : Path, optional
        JSON file of the in-flight transactions (written after every change).
    send_w3 : Web3, optional
        Where signed transactions are sent (a private relay); ``w3`` by default.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        fees: FeePolicy | None = None,
        stuck_blocks: int = 3,
        on_event: Callable[[str, PendingTx], None] | None = None,
        state_path: Path | None = None,
        keep_mined_blocks: int = 128,
        send_w3: Web3 | None = None,
    ) -> None:
        self.w3 = w3
        # Where signed transactions go: the node itself, or a private relay (a lost race to
        # another keeper then costs no gas: the relay drops a transaction that would revert).
        self.send_w3 = send_w3 or w3
        self.account = account
        self.fees = fees or FeePolicy()
        self.stuck_blocks = stuck_blocks
        self.on_event = on_event or (lambda kind, p: None)
        self._lock = threading.RLock()
        self._next_nonce: int | None = None
        self.pending: dict[int, PendingTx] = {}
        # Mined (succeeded or reverted) in the last keep_mined_blocks blocks: watched for reorgs.
        self.mined: dict[int, PendingTx] = {}
        self.keep_mined_blocks = keep_mined_blocks
        self.free: list[int] = []  # nonces below the next one that no live transaction holds
        self.chain_id = w3.eth.chain_id
        self.last_error: str | None = None
        self.reconciliations = 0
        self.lost = 0
        self.unmined = 0
        self.refused = 0
        self.state_path = state_path
        self._market_cache: Market | None = None
        if state_path is not None and state_path.exists():
            self._load()

    @property
    def address(self) -> ChecksumAddress:
        return Web3.to_checksum_address(self.account.address)

    # ------------------------------------------------------------------ persistence

    def _load(self) -> None:
        assert self.state_path is not None
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as e:
            raise ChainError(f"cannot read nonce state {self.state_path}: {e}") from e
        if str(data.get("address", "")).lower() != self.address.lower() or int(
            data.get("chain_id", -1)
        ) != int(self.chain_id):
            return  # another key or chain: nothing of it applies here
        for d in data.get("pending", []):
            p = PendingTx.from_json(d)
            self.pending[p.nonce] = p
        if self.pending:
            self._next_nonce = max(self.pending) + 1

    def _save(self) -> None:
        if self.state_path is None:
            return
        data = {
            "address": self.address,
            "chain_id": int(self.chain_id),
            "pending": [p.to_json() for _, p in sorted(self.pending.items())],
        }
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_path)

    # ------------------------------------------------------------------ fees

    def market(self, refresh: bool = False) -> Market:
        """Head, next base fee and going tip, from one ``eth_feeHistory`` (cached per head)."""
        head = int(self.w3.eth.block_number)
        if not refresh and self._market_cache is not None and self._market_cache.head == head:
            return self._market_cache
        n = max(1, self.fees.fee_history_blocks)
        provider: Any = self.w3.provider
        resp = provider.make_request(
            "eth_feeHistory", [hex(n), hex(head), [self.fees.tip_percentile]]
        )
        res = resp.get("result") if isinstance(resp, dict) else None
        if not res:
            base = int(self.w3.eth.get_block(head).get("baseFeePerGas", 0) or 0)
            self._market_cache = Market(head, base, 0)
            return self._market_cache
        bases = [int(x, 16) for x in res.get("baseFeePerGas", [])]
        rewards = [int(r[0], 16) for r in (res.get("reward") or []) if r]
        ratios = [float(x) for x in res.get("gasUsedRatio", [])]
        # Empty blocks say nothing about the going tip (they report 0).
        tips = [t for t, u in zip(rewards, ratios, strict=False) if u > 0]
        self._market_cache = Market(head, bases[-1] if bases else 0, max(tips) if tips else 0)
        return self._market_cache

    # ------------------------------------------------------------------ nonces

    def _nonce(self) -> int:
        if self._next_nonce is None:
            self._next_nonce = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        return self._next_nonce

    def _allocate(self, k: int) -> list[int]:
        """k nonces: free ones first (lowest first), then new ones."""
        nxt = self._nonce()
        self.free.sort()
        out = self.free[:k]
        self.free = self.free[k:]
        while len(out) < k:
            out.append(nxt)
            nxt += 1
        self._next_nonce = nxt
        return out

    def _release(self, nonces: list[int]) -> None:
        """Nonces taken but not used (the node refused the transaction)."""
        self.free = sorted(set(self.free) | set(nonces))
        nxt = self._nonce()
        # Free nonces at the top simply lower the next nonce.
        while self.free and self.free[-1] == nxt - 1 and (nxt - 1) not in self.pending:
            self.free.pop()
            nxt -= 1
        self._next_nonce = nxt

    # ------------------------------------------------------------------ sending

    def _full(
        self, to: str, data: Any, value: int, nonce: int, gas: int, fees: tuple[int, int]
    ) -> dict[str, Any]:
        return {
            "from": self.address,
            "to": to,
            "data": data,
            "value": value,
            "nonce": nonce,
            "chainId": self.chain_id,
            "gas": gas,
            "maxFeePerGas": fees[0],
            "maxPriorityFeePerGas": fees[1],
            "type": 2,
        }

    def send(self, tx: TxParams, label: str = "", gas: int | None = None) -> PendingTx:
        """Sign and send ``tx`` (to, data, value) under the next nonce; raises on refusal."""
        with self._lock:
            m = self.market()
            fees = self.fees.initial(m.next_base_fee, m.tip)
            nonce = self._allocate(1)[0]
            full = self._full(
                str(tx["to"]), tx.get("data", b""), int(tx.get("value", 0)), nonce, 0, fees
            )
            try:
                # Estimated without a gas field (a limit of 0 would be the estimate's allowance).
                probe = {k: v for k, v in full.items() if k != "gas"}
                full["gas"] = gas or int(self.w3.eth.estimate_gas(probe) * 12 // 10)  # type: ignore[arg-type]
                h = self._broadcast(full)
            except Exception:
                self._release([nonce])
                raise
            p = PendingTx(nonce, full, [h], m.head, label, max_fee_cap=self.fees.max_fee_cap)
            self.pending[nonce] = p
            self._save()
        self.on_event("sent", p)
        return p

    def send_many(
        self,
        txs: list[tuple[str, bytes | str, str]],
        gas: int | list[int],
        base_fee: int | None = None,
        max_fee_cap: int | None = None,
    ) -> list[PendingTx | None]:
        """Sign ``(to, data, label)`` transactions (free nonces first, then consecutive ones)
        and broadcast them in one JSON-RPC batch. ``gas`` is one limit for all or one per
        transaction; ``max_fee_cap`` (default the policy's) is this class's most per gas.

        Nothing is sent when the cap is under the next block's base fee (the transactions
        could not be mined): every entry is None and :attr:`last_error` says why. A refused
        transaction frees its nonce (taken by the next send, or cancelled by
        :meth:`fill_gaps`); no filler is sent here. Returns one entry per input."""
        if not txs:
            return []
        gases = gas if isinstance(gas, list) else [gas] * len(txs)
        cap = self.fees.max_fee_cap if max_fee_cap is None else max_fee_cap
        with self._lock:
            m = self.market()
            next_base = max(m.next_base_fee, base_fee or 0)
            fees = self.fees.initial(next_base, m.tip, cap)
            if fees[0] < next_base + min(self.fees.priority_fee, fees[1]):
                self.last_error = (
                    f"fee cap {cap / GWEI:g} gwei is under the next base fee "
                    f"{next_base / GWEI:g} gwei: not sent"
                )
                self.refused += len(txs)
                return [None] * len(txs)
            nonces = self._allocate(len(txs))
            signed: list[tuple[dict[str, Any], Any]] = []
            for (to, data, _), nonce, g in zip(txs, nonces, gases, strict=True):
                full = self._full(to, data, 0, nonce, g, fees)
                signed.append((full, self.account.sign_transaction(full)))
            provider: Any = self.send_w3.provider
            answers = provider.make_batch_request(
                [
                    ("eth_sendRawTransaction", ["0x" + bytes(st.raw_transaction).hex()])
                    for _, st in signed
                ]
            )
            if not isinstance(answers, list):
                answers = [answers] * len(signed)
            out: list[PendingTx | None] = []
            refused: list[int] = []
            for (full, st), ans, (_, _, label) in zip(signed, answers, txs, strict=True):
                if isinstance(ans, dict) and ans.get("error") is None:
                    sent = PendingTx(
                        full["nonce"], full, [HexBytes(st.hash)], m.head, label, max_fee_cap=cap
                    )
                    self.pending[sent.nonce] = sent
                    out.append(sent)
                else:
                    self.last_error = str(ans.get("error") if isinstance(ans, dict) else ans)
                    self.refused += 1
                    refused.append(full["nonce"])
                    out.append(None)
            if refused:
                self._release(refused)
            self._save()
        for q in out:
            if q is not None:
                self.on_event("sent", q)
        return out

    def fill_gaps(self) -> list[PendingTx]:
        """Cancel (a zero self-transfer) every free nonce that holds back a later pending
        transaction; call after the caller had its chance to use free nonces. One attempt per
        nonce per call; a refused filler leaves the nonce free for the next call."""
        with self._lock:
            if not self.free or not self.pending:
                return []
            top = max(self.pending)
            gaps = sorted(n for n in self.free if n < top)
            if not gaps:
                return []
            m = self.market()
            cap = max(p.max_fee_cap or self.fees.max_fee_cap for p in self.pending.values())
            fees = self.fees.initial(m.next_base_fee, m.tip, cap)
            out = []
            for n in gaps:
                filler = self._full(self.address, b"", 0, n, 21_000, fees)
                try:
                    h = self._broadcast(filler)
                except (ValueError, Web3RPCError) as e:
                    self.last_error = str(e)
                    continue
                self.free.remove(n)
                p = PendingTx(n, filler, [h], m.head, "gap-filler", max_fee_cap=cap)
                self.pending[n] = p
                out.append(p)
            self._save()
        return out

    def _broadcast(self, tx: dict[str, Any]) -> HexBytes:
        signed = self.account.sign_transaction(tx)
        return HexBytes(self.send_w3.eth.send_raw_transaction(signed.raw_transaction))

    # ------------------------------------------------------------------ polling

    def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if not calls:
            return []
        provider: Any = self.w3.provider
        answers = provider.make_batch_request(calls)
        if not isinstance(answers, list) or len(answers) != len(calls):
            raise ChainError(f"batch request failed: {answers!r:.200}")
        out = []
        for (method, _), ans in zip(calls, answers, strict=True):
            if not isinstance(ans, dict) or "error" in ans and ans["error"] is not None:
                raise ChainError(f"{method} failed: {ans!r:.200}")
            out.append(ans.get("result"))
        return out

    def poll(self) -> list[PendingTx]:
        """Reconcile with the chain, collect receipts, replace what cannot be mined. Returns
        the transactions that finished (succeeded, reverted or lost) since the last poll.

        One batch asks for the latest and pending nonces and every pending hash's receipt;
        a second one (only when the counts disagree with this sender) asks the pool."""
        done: list[PendingTx] = []
        events: list[tuple[str, PendingTx]] = []
        with self._lock:
            m = self.market(refresh=True)
            items = sorted(self.pending.items())
            calls: list[tuple[str, list[Any]]] = [
                ("eth_getTransactionCount", [self.address, "latest"]),
                ("eth_getTransactionCount", [self.address, "pending"]),
            ]
            hashes = [(n, h) for n, p in items for h in p.hashes]
            calls += [("eth_getTransactionReceipt", ["0x" + bytes(h).hex()]) for _, h in hashes]
            res = self._batch(calls)
            latest_n, pool_n = int(res[0], 16), int(res[1], 16)
            receipts: dict[int, TxReceipt] = {}
            for (n, _), r in zip(hashes, res[2:], strict=True):
                if r:
                    receipts[n] = _format_receipt(r)
            # 1. Mined transactions the chain no longer counts: a reorg or an older state.
            unmined = [p for n, p in sorted(self.mined.items()) if n >= latest_n]
            for p in unmined:
                del self.mined[p.nonce]
                self.unmined += 1
                events.append(("unmined", p))
            # 2. Receipts of pending transactions.
            for n, p in items:
                r = receipts.get(n)
                if r is not None:
                    p.receipt = r
                    p.outcome = Outcome.SUCCEEDED if r["status"] == 1 else Outcome.REVERTED
                    del self.pending[n]
                    self.mined[n] = p
                    done.append(p)
            # 3. Which of the others does the node still hold? Asked only when it matters.
            for p in self.pending.values():
                if p.seen_head != m.head:  # one more block without a receipt
                    p.checks, p.seen_head = p.checks + 1, m.head
            suspects = unmined + [
                p for n, p in sorted(self.pending.items()) if n < latest_n or p.checks >= 1
            ]
            known: dict[int, bool] = {}
            if suspects:
                q = [(p.nonce, h) for p in suspects for h in p.hashes]
                found = self._batch(
                    [("eth_getTransactionByHash", ["0x" + bytes(h).hex()]) for _, h in q]
                )
                for (n, _), f in zip(q, found, strict=True):
                    in_pool = bool(f) and f.get("blockNumber") is None and n >= latest_n
                    # Mined, its receipt not served yet (a node under load can show the block
                    # before its receipts): alive; the next poll reads the receipt.
                    mined = bool(f) and f.get("blockNumber") is not None and n < latest_n
                    known[n] = known.get(n, False) or in_pool or mined
            changed = False
            for p in unmined:
                if known.get(p.nonce):
                    p.outcome, p.receipt = Outcome.PENDING, None
                    p.sent_block = p.seen_head = m.head
                    p.checks = 0
                    self.pending[p.nonce] = p
                else:
                    p.outcome, p.receipt = Outcome.LOST, None
                    self.lost += 1
                    done.append(p)
                changed = True
            for p in list(self.pending.values()):
                if p in unmined or p.nonce not in known or known[p.nonce]:
                    continue
                if p.nonce < latest_n and p.checks < 2:
                    # Its nonce is mined but neither its receipt nor the transaction is served
                    # yet (a node under load shows the new head first): one more block.
                    continue
                # Neither mined (no receipt) nor in the pool: lost, its nonce is free.
                del self.pending[p.nonce]
                p.outcome = Outcome.LOST
                self.lost += 1
                done.append(p)
                changed = True
            # 4. The nonces: what the chain mined, what is live, what the pool knows.
            live = set(self.pending)
            old_next, old_free = self._next_nonce, set(self.free)
            nxt = max(latest_n, max(live) + 1 if live else latest_n)
            if not live and pool_n > nxt:
                nxt = pool_n  # transactions from this key that this sender does not know
            self._next_nonce = nxt
            self.free = [n for n in range(latest_n, nxt) if n not in live]
            if changed or (old_next is not None and (old_next, old_free) != (nxt, set(self.free))):
                self.reconciliations += 1
            # 5. Forget mined transactions deep enough not to be reorganized any more.
            deep = m.head - self.keep_mined_blocks
            for n in [n for n, p in self.mined.items() if _block_of(p) < deep]:
                del self.mined[n]
            # 6. Replace what cannot be mined now (at once) or has waited stuck_blocks.
            caps_behind = 0
            for n in sorted(self.pending, reverse=True):
                p = self.pending[n]
                cap = max(p.max_fee_cap or self.fees.max_fee_cap, caps_behind)
                caps_behind = cap
                unmineable = p.tx["maxFeePerGas"] < m.next_base_fee or p.tx[
                    "maxPriorityFeePerGas"
                ] < min(m.tip, self.fees.max_tip)
                if unmineable or m.head - p.sent_block >= self.stuck_blocks:
                    if self._replace(p, m, cap):
                        events.append(("replaced", p))
                    elif unmineable:
                        events.append(("replace_failed", p))
            self._save()
        for kind, p in events:
            self.on_event(kind, p)
        for p in done:
            self.on_event(p.outcome.value, p)
        return done

    def _replace(self, p: PendingTx, m: Market, cap: int) -> bool:
        bumped = self.fees.bump(
            p.tx["maxFeePerGas"], p.tx["maxPriorityFeePerGas"], m.next_base_fee, m.tip, cap
        )
        if bumped is None:
            return False  # at the cap: wait for the market to come back
        tx = dict(p.tx, maxFeePerGas=bumped[0], maxPriorityFeePerGas=bumped[1])
        try:
            h = self._broadcast(tx)
        except (ValueError, Web3RPCError) as e:
            # "nonce too low": the original was mined meanwhile (poll will find its receipt);
            # anything else (underpriced, pool full) is retried at the next poll.
            self.last_error = str(e)
            return False
        p.tx, p.sent_block = tx, m.head
        p.max_fee_cap = max(p.max_fee_cap, cap)
        p.hashes.append(h)
        p.replacements += 1
        return True

    def _receipt(self, p: PendingTx) -> TxReceipt | None:
        for h in reversed(p.hashes):
            try:
                return self.w3.eth.get_transaction_receipt(h)
            except TransactionNotFound:
                continue
        return None

    def wait(self, p: PendingTx, timeout: float = 60.0, poll_interval: float = 0.1) -> PendingTx:
        """Poll until ``p`` finishes (tests and the CLI; the keeper polls once per block)."""
        deadline = time.monotonic() + timeout
        while p.outcome is Outcome.PENDING:
            if time.monotonic() > deadline:
                raise ChainError(f"transaction nonce {p.nonce} still pending after {timeout}s")
            self.poll()
            if p.outcome is Outcome.PENDING:
                time.sleep(poll_interval)
        if p.outcome is Outcome.LOST:
            raise ChainError(f"transaction nonce {p.nonce} was dropped (not mined, not pending)")
        return p
