"""Sending transactions like a production keeper: one nonce writer, EIP-1559 fees, replacement.

:class:`TxSender` owns one account's nonce (the single writer: nothing else may send from that
account), prices transactions with EIP-1559 fees (``maxFeePerGas = 2 x baseFee + tip``, capped),
replaces a transaction that stays pending for ``stuck_blocks`` blocks at +12.5% or more on both
fee fields (the minimum bump nodes accept) up to the cap, and reports outcomes without raising on
the normal surprises (a revert on chain because another keeper got there first is an outcome,
not an error).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
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


@dataclass
class PendingTx:
    """A transaction in flight under one nonce; replacements keep the nonce, change the hash."""

    nonce: int
    tx: dict[str, Any]
    hashes: list[HexBytes]
    sent_block: int
    label: str
    replacements: int = 0
    outcome: Outcome = Outcome.PENDING
    receipt: TxReceipt | None = None
    sent_at: float = field(default_factory=time.monotonic)


@dataclass
class FeePolicy:
    """EIP-1559 pricing: tip and cap in wei; bump factor >= 1.125 (numerator/denominator)."""

    priority_fee: int = 1 * GWEI
    max_fee_cap: int = 500 * GWEI
    bump_num: int = MIN_BUMP_NUM
    bump_den: int = MIN_BUMP_DEN

    def __post_init__(self) -> None:
        if self.bump_num * MIN_BUMP_DEN < MIN_BUMP_NUM * self.bump_den:
            raise ValueError("replacement bump must be at least +12.5%")

    def initial(self, base_fee: int) -> tuple[int, int]:
        tip = min(self.priority_fee, self.max_fee_cap)
        return min(2 * base_fee + tip, self.max_fee_cap), tip

    def bump(self, max_fee: int, tip: int, base_fee: int = 0) -> tuple[int, int] | None:
        """Fees of a replacement: at least +12.5% on both fields and at least what a new
        transaction would pay now; None when the cap forbids a valid replacement."""
        new_tip = max(-(-tip * self.bump_num // self.bump_den), self.priority_fee)
        min_max = -(-max_fee * self.bump_num // self.bump_den)
        new_max = min(max(min_max, 2 * base_fee + new_tip), self.max_fee_cap)
        if new_max < min_max:
            return None
        return new_max, min(new_tip, new_max)


class TxSender:
    """The single writer for ``account``'s nonce.

    Parameters
    ----------
    w3 : Web3
    account : LocalAccount
        Signing key (from a keystore; never a raw key in a file).
    fees : FeePolicy
    stuck_blocks : int
        Blocks a transaction may stay pending before it is replaced.
    on_event : callable, optional
        ``on_event(kind, pending)`` for metrics: kind in {"sent", "replaced", "succeeded",
        "reverted", "dropped"}.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        fees: FeePolicy | None = None,
        stuck_blocks: int = 3,
        on_event: Callable[[str, PendingTx], None] | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.fees = fees or FeePolicy()
        self.stuck_blocks = stuck_blocks
        self.on_event = on_event or (lambda kind, p: None)
        self._lock = threading.Lock()
        self._next_nonce: int | None = None
        self.pending: dict[int, PendingTx] = {}
        self.chain_id = w3.eth.chain_id
        self.last_error: str | None = None

    @property
    def address(self) -> ChecksumAddress:
        return Web3.to_checksum_address(self.account.address)

    def _nonce(self) -> int:
        if self._next_nonce is None:
            self._next_nonce = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        return self._next_nonce

    def send(self, tx: TxParams, label: str = "", gas: int | None = None) -> PendingTx:
        """Sign and send ``tx`` (to, data, value) under the next nonce."""
        with self._lock:
            head = self.w3.eth.get_block("latest")
            base_fee = int(head.get("baseFeePerGas", 0) or 0)
            max_fee, tip = self.fees.initial(base_fee)
            nonce = self._nonce()
            full: dict[str, Any] = {
                "from": self.address,
                "to": tx["to"],
                "data": tx.get("data", b""),
                "value": tx.get("value", 0),
                "nonce": nonce,
                "chainId": self.chain_id,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
                "type": 2,
            }
            full["gas"] = gas or int(self.w3.eth.estimate_gas(full) * 12 // 10)  # type: ignore[arg-type]
            h = self._broadcast(full)
            self._next_nonce = nonce + 1
            p = PendingTx(nonce, full, [h], int(head["number"]), label)
            self.pending[nonce] = p
        self.on_event("sent", p)
        return p

    def send_many(
        self, txs: list[tuple[str, bytes | str, str]], gas: int, base_fee: int | None = None
    ) -> list[PendingTx | None]:
        """Sign ``(to, data, label)`` transactions under consecutive nonces and broadcast them
        in one JSON-RPC batch. A refused one leaves a nonce gap, which is filled at once with a
        zero-value self-transfer (so later nonces are not stuck). Returns one entry per input
        (None where the node refused it)."""
        if not txs:
            return []
        with self._lock:
            if base_fee is None:
                base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
            head = int(self.w3.eth.block_number)
            max_fee, tip = self.fees.initial(base_fee)
            start = self._nonce()
            signed: list[tuple[dict[str, Any], Any]] = []
            for k, (to, data, _) in enumerate(txs):
                full: dict[str, Any] = {
                    "from": self.address,
                    "to": to,
                    "data": data,
                    "value": 0,
                    "nonce": start + k,
                    "chainId": self.chain_id,
                    "gas": gas,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                    "type": 2,
                }
                signed.append((full, self.account.sign_transaction(full)))
            provider: Any = self.w3.provider
            answers = provider.make_batch_request(
                [
                    ("eth_sendRawTransaction", ["0x" + bytes(st.raw_transaction).hex()])
                    for _, st in signed
                ]
            )
            if not isinstance(answers, list):
                answers = [answers] * len(signed)
            self._next_nonce = start + len(txs)
            out: list[PendingTx | None] = []
            for (full, st), ans, (_, _, label) in zip(signed, answers, txs, strict=True):
                if isinstance(ans, dict) and ans.get("error") is None:
                    sent = PendingTx(full["nonce"], full, [HexBytes(st.hash)], head, label)
                    self.pending[sent.nonce] = sent
                    out.append(sent)
                else:
                    self.last_error = str(ans.get("error") if isinstance(ans, dict) else ans)
                    out.append(self._fill_gap(full, head))
        for q in out:
            if q is not None and q.label != "gap-filler":
                self.on_event("sent", q)
        return [None if q is None or q.label == "gap-filler" else q for q in out]

    def _fill_gap(self, refused: dict[str, Any], head: int) -> PendingTx | None:
        bumped = self.fees.bump(refused["maxFeePerGas"], refused["maxPriorityFeePerGas"])
        fees = bumped or (refused["maxFeePerGas"], refused["maxPriorityFeePerGas"])
        filler = dict(
            refused,
            to=self.address,
            data=b"",
            gas=21_000,
            maxFeePerGas=fees[0],
            maxPriorityFeePerGas=fees[1],
        )
        try:
            h = self._broadcast(filler)
        except (ValueError, Web3RPCError):
            # Nothing more to do here: re-read the nonce so the next send does not build on
            # the gap.
            self._next_nonce = int(self.w3.eth.get_transaction_count(self.address, "pending"))
            return None
        p = PendingTx(filler["nonce"], filler, [h], head, "gap-filler")
        self.pending[p.nonce] = p
        return p

    def _broadcast(self, tx: dict[str, Any]) -> HexBytes:
        signed = self.account.sign_transaction(tx)
        return HexBytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))

    def poll(self) -> list[PendingTx]:
        """Check every pending transaction; replace stuck ones. Returns the ones that finished.

        All receipts are asked for in one JSON-RPC batch."""
        done: list[PendingTx] = []
        head = int(self.w3.eth.block_number)
        with self._lock:
            items = list(self.pending.items())
            receipts = self._receipts([p for _, p in items])
            for (nonce, p), receipt in zip(items, receipts, strict=True):
                if receipt is not None:
                    p.receipt = receipt
                    p.outcome = Outcome.SUCCEEDED if receipt["status"] == 1 else Outcome.REVERTED
                    del self.pending[nonce]
                    done.append(p)
                    continue
                if head - p.sent_block >= self.stuck_blocks:
                    self._replace(p, head)
        for p in done:
            self.on_event(p.outcome.value, p)
        return done

    def _receipts(self, ps: list[PendingTx]) -> list[TxReceipt | None]:
        calls = [(k, h) for k, p in enumerate(ps) for h in p.hashes]
        if not calls:
            return []
        provider: Any = self.w3.provider
        answers = provider.make_batch_request(
            [("eth_getTransactionReceipt", ["0x" + bytes(h).hex()]) for _, h in calls]
        )
        if not isinstance(answers, list):
            return [self._receipt(p) for p in ps]
        out: list[TxReceipt | None] = [None] * len(ps)
        for (k, _), ans in zip(calls, answers, strict=True):
            r = ans.get("result") if isinstance(ans, dict) else None
            if r:
                out[k] = _format_receipt(r)
        return out

    def _receipt(self, p: PendingTx) -> TxReceipt | None:
        for h in reversed(p.hashes):
            try:
                return self.w3.eth.get_transaction_receipt(h)
            except TransactionNotFound:
                continue
        return None

    def _replace(self, p: PendingTx, head: int) -> None:
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        bumped = self.fees.bump(p.tx["maxFeePerGas"], p.tx["maxPriorityFeePerGas"], base_fee)
        if bumped is None:
            return  # at the cap: wait for the market to come back
        tx = dict(p.tx, maxFeePerGas=bumped[0], maxPriorityFeePerGas=bumped[1])
        try:
            h = self._broadcast(tx)
        except (ValueError, Web3RPCError) as e:
            # "nonce too low": the original was mined meanwhile (poll will find its receipt);
            # anything else (underpriced, pool full) is retried at the next poll.
            self.on_event("replace_failed", p)
            self.last_error = str(e)
            return
        p.tx, p.sent_block = tx, head
        p.hashes.append(h)
        p.replacements += 1
        self.on_event("replaced", p)

    def wait(self, p: PendingTx, timeout: float = 60.0, poll_interval: float = 0.1) -> PendingTx:
        """Poll until ``p`` finishes (tests and the CLI; the keeper polls once per block)."""
        deadline = time.monotonic() + timeout
        while p.outcome is Outcome.PENDING:
            if time.monotonic() > deadline:
                raise ChainError(f"transaction nonce {p.nonce} still pending after {timeout}s")
            self.poll()
            if p.outcome is Outcome.PENDING:
                time.sleep(poll_interval)
        return p
