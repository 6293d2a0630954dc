"""The liquidation keeper's confirmation and sending: what goes out, and what came of it.

- :meth:`Sending._confirm`: one JSON-RPC batch of ``eth_estimateGas`` at the latest block, one
  per candidate; an answer is both the confirmation (the liquidation succeeds now) and the gas
  of this account's actual positions (the profit rule's cost); a failure is a lost race or a
  price that moved back: counted, logged, and the account cools down for this block.
- :meth:`Sending._send`: one batch under the nonce manager (:class:`plimsoll.tx.TxSender`),
  ordinary liquidations under ``max_fee_gwei``, urgent ones (underwater, or about to be) under
  ``bad_debt_max_fee_gwei``; nothing goes out while the kill switch is on or the circuit breaker
  is open.
- :meth:`Sending._finish` / :meth:`Sending._on_tx`: outcomes. The succeeded count is what is on
  chain: a liquidation a reorg took back is uncounted; a lost transaction is forgotten and its
  account judged again from the current state at the next block (never re-sent as it was).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from keepers.ops import KeeperMetrics, log
from plimsoll.client import PlimsollClient
from plimsoll.errors import PlimsollError
from plimsoll.tx import GWEI, Outcome, PendingTx, TxSender

if TYPE_CHECKING:
    from keepers.config import KeeperConfig

logger = logging.getLogger("plimsoll.liquidator")

_LIQUIDATED_TOPIC = (
    "0x"
    + keccak(
        text="Liquidated(address,uint256,address,uint256,uint256,uint256,uint256,uint256)"
    ).hex()
)


@dataclass
class Stats:
    blocks: int = 0
    sent: int = 0
    succeeded: int = 0  # liquidations of this keeper on chain now (a reorg can take one back)
    reverted: int = 0
    race_lost: int = 0  # skipped at confirmation or reverted on chain: another keeper was first
    unprofitable: int = 0
    protective: int = 0  # sent at a loss: waiting would have cost the protocol more
    bad_debt_sent: int = 0
    budget_skipped: int = 0
    lost: int = 0  # transactions neither mined nor pending any more (rebuilt from state)
    unmined: int = 0  # liquidations a reorg or a node's older state took off the chain
    refused: int = 0
    rpc_errors: int = 0
    breaker_trips: int = 0
    liquidated_accounts: set[tuple[str, int]] = field(default_factory=set)


def account_of(label: str) -> tuple[str, int] | None:
    """(owner, sub) of a liquidation's label ``"0x...:sub"``; None for other transactions."""
    if not label.startswith("0x") or label.count(":") != 1:
        return None
    owner, sub = label.split(":")
    return owner, int(sub)


class Sending:
    """Mixin of :class:`keepers.liquidator.LiquidationKeeper`: confirmation and sending."""

    cfg: KeeperConfig
    w3: Web3
    client: PlimsollClient
    account: LocalAccount | None
    sender: TxSender | None
    metrics: KeeperMetrics
    stats: Stats
    inflight: dict[tuple[str, int], PendingTx]
    cooldown: dict[tuple[str, int], int]
    last_block: int
    on_chain: dict[int, tuple[str, int]]
    actions: dict[tuple[str, int], str]
    consecutive_failures: int
    breaker_open_until: float
    breaker_reason: str | None

    # ------------------------------------------------------------------ gates

    def kill_switch_on(self) -> bool:
        return self.cfg.kill_switch_file is not None and self.cfg.kill_switch_file.exists()

    def breaker_open(self) -> bool:
        return time.monotonic() < self.breaker_open_until

    def can_send(self) -> tuple[bool, str | None]:
        """Whether the keeper may send now, and why not."""
        if self.sender is None:
            return False, "dry run or no key"
        if self.kill_switch_on():
            return False, f"kill switch {self.cfg.kill_switch_file} is present"
        if self.breaker_open():
            return False, f"circuit breaker open: {self.breaker_reason}"
        return True, None

    def _failure(self, why: str) -> None:
        self.consecutive_failures += 1
        n = self.cfg.breaker_failures
        if n and self.consecutive_failures >= n and not self.breaker_open():
            self.breaker_open_until = time.monotonic() + self.cfg.breaker_reset_seconds
            self.breaker_reason = (
                f"{self.consecutive_failures} failed transactions in a row, last: {why}"
            )
            self.stats.breaker_trips += 1
            self.metrics.breaker_open.set(1)
            log(
                logger,
                logging.ERROR,
                "circuit breaker open: sending stopped, still watching",
                reason=self.breaker_reason,
                reset_after_s=self.cfg.breaker_reset_seconds,
            )

    def _success(self) -> None:
        self.consecutive_failures = 0
        if self.breaker_open_until and not self.breaker_open():
            self.breaker_open_until = 0.0
            self.breaker_reason = None
            self.metrics.breaker_open.set(0)

    # ------------------------------------------------------------------ confirm

    def _estimate(self, calls: list[str]) -> list[tuple[int | None, str | None]]:
        """One batch of ``eth_estimateGas`` at the latest block of calls to the core (calldata):
        (gas, None) where the call succeeds now, (None, decoded error name) where it fails."""
        core = self.client.core
        me = self.account.address if self.account is not None else core.address
        provider: Any = self.w3.provider
        answers = provider.make_batch_request(
            [
                ("eth_estimateGas", [{"from": me, "to": core.address, "data": data}, "latest"])
                for data in calls
            ]
        )
        if not isinstance(answers, list):
            raise PlimsollError(f"batch eth_estimateGas failed: {answers!r:.200}")
        out: list[tuple[int | None, str | None]] = []
        for ans in answers:
            if isinstance(ans, dict) and ans.get("error") is None and ans.get("result"):
                out.append((int(ans["result"], 16), None))
                continue
            err = ans.get("error", {}) if isinstance(ans, dict) else {}
            name = self.client.decoder.decode(
                err.get("data") if isinstance(err, dict) else None
            ).name
            out.append((None, name))
        return out

    def _confirm(self, cands: list[tuple[tuple[str, int], str]], block: int) -> list[int | None]:
        """One batch of ``eth_estimateGas`` at the latest block: the gas of each liquidation
        where it succeeds now, None where it fails (counted as a lost race, cooled down)."""
        out: list[int | None] = []
        for ((owner, sub), _), (gas, name) in zip(
            cands, self._estimate([data for _, data in cands]), strict=True
        ):
            out.append(gas)
            if gas is None:
                self._not_now(owner, sub, block, name)
        return out

    def _not_now(self, owner: str, sub: int, block: int, error: str | None) -> None:
        """A call that would fail at the latest block: counted as a lost race, cooled down."""
        self.stats.race_lost += 1
        self.metrics.race_lost.inc()
        self.cooldown[(owner, sub)] = block
        log(
            logger,
            logging.INFO,
            "skip: not liquidatable at latest",
            owner=owner,
            sub=sub,
            error=error,
        )

    # ------------------------------------------------------------------ send

    def _send(
        self,
        to_send: list[tuple[str, bytes | str, str]],
        gas: list[int],
        block: int,
        urgent: bool = False,
    ) -> list[PendingTx | None]:
        """Sends liquidations (label "owner:sub") in one batch and tracks the accepted ones as
        in flight. ``urgent`` ones may pay up to ``bad_debt_max_fee_gwei``."""
        ok, why = self.can_send()
        if not ok or self.sender is None:
            log(logger, logging.WARNING, "not sending", reason=why, count=len(to_send))
            return [None] * len(to_send)
        cap_gwei = self.cfg.bad_debt_max_fee_gwei if urgent else self.cfg.max_fee_gwei
        sent = self.sender.send_many(to_send, gas=gas, max_fee_cap=int(cap_gwei * GWEI))
        for (_, _, label), p in zip(to_send, sent, strict=True):
            key = account_of(label)
            if key is None:
                continue
            if p is None:
                self.stats.refused += 1
                log(
                    logger,
                    logging.WARNING,
                    "send refused",
                    owner=key[0],
                    sub=key[1],
                    error=self.sender.last_error,
                )
                continue
            self.inflight[key] = p
            self.stats.sent += 1
            log(
                logger,
                logging.DEBUG,
                "liquidation sent",
                owner=key[0],
                sub=key[1],
                nonce=p.nonce,
                block=block,
                urgent=urgent,
                max_fee_gwei=p.tx["maxFeePerGas"] / GWEI,
            )
        if any(p is None for p in sent):
            self._failure(f"send refused: {self.sender.last_error}")
        return sent

    # ------------------------------------------------------------------ outcomes

    def _on_tx(self, kind: str, p: PendingTx) -> None:
        if kind == "sent":
            self.metrics.sent.inc()
        elif kind == "replaced":
            self.metrics.replaced.inc()
            log(
                logger,
                logging.INFO,
                "replaced tx",
                nonce=p.nonce,
                label=p.label,
                max_fee_gwei=p.tx["maxFeePerGas"] / GWEI,
                tip_gwei=p.tx["maxPriorityFeePerGas"] / GWEI,
                replacements=p.replacements,
            )
        elif kind == "unmined":
            # A reorg (or a node back from an older state) took this transaction's block away.
            self.stats.unmined += 1
            self.metrics.unmined.inc()
            key = self.on_chain.pop(p.nonce, None)
            if key is not None:
                self.stats.succeeded -= 1
                self.stats.liquidated_accounts.discard(key)
            acct = account_of(p.label)
            if acct is not None:
                self.inflight[acct] = p  # until the sender says where it is now
            log(logger, logging.WARNING, "tx no longer on chain", nonce=p.nonce, label=p.label)
        if self.sender is not None:
            self.metrics.nonce_reconciliations.set(self.sender.reconciliations)
        self.metrics.on_chain.set(self.stats.succeeded)

    def _finish(self, done: list[PendingTx]) -> None:
        for p in done:
            key = account_of(p.label)
            if key is not None and self.inflight.get(key) is p:
                self.inflight.pop(key, None)
            if p.outcome is Outcome.LOST:
                self.stats.lost += 1
                self.metrics.lost.inc()
                log(
                    logger,
                    logging.WARNING,
                    "tx lost (not mined, not pending): judged again from the chain",
                    nonce=p.nonce,
                    label=p.label,
                )
                continue
            if p.receipt is not None:
                fee = int(p.receipt["gasUsed"]) * int(p.receipt.get("effectiveGasPrice", 0))
                self.metrics.gas_spent.inc(fee)
            if key is None:
                continue
            owner, sub = key
            action = self.actions.pop(key, "liquidate")
            if p.outcome is Outcome.SUCCEEDED:
                self._success()
                self.stats.succeeded += 1
                self.metrics.succeeded.inc()
                self.on_chain[p.nonce] = key
                self.stats.liquidated_accounts.add(key)
                assert p.receipt is not None
                reward, bad_debt = self._reward_of(p.receipt)
                log(
                    logger,
                    logging.INFO,
                    {"liquidate": "liquidated", "liquidateCollateral": "collateral bought"}.get(
                        action, "debt written off"
                    ),
                    action=action,
                    owner=owner,
                    sub=sub,
                    tx=p.receipt["transactionHash"].to_0x_hex()
                    if hasattr(p.receipt["transactionHash"], "to_0x_hex")
                    else str(p.receipt["transactionHash"]),
                    block=p.receipt["blockNumber"],
                    reward_usd=reward,
                    bad_debt_usd=bad_debt,
                    gas_used=int(p.receipt["gasUsed"]),
                    fee_eth=int(p.receipt["gasUsed"])
                    * int(p.receipt.get("effectiveGasPrice", 0))
                    / 10**18,
                )
            else:
                self.stats.reverted += 1
                self.metrics.reverted.inc()
                block = int(p.receipt["blockNumber"]) if p.receipt else self.last_block
                self.cooldown[key] = block
                raced = self._race_lost(owner, sub)
                if raced:
                    self.stats.race_lost += 1
                    self.metrics.race_lost.inc()
                else:
                    self._failure(f"liquidation of {owner}:{sub} reverted on chain")
                log(
                    logger,
                    logging.INFO,
                    "liquidation reverted" + (" (race lost)" if raced else ""),
                    owner=owner,
                    sub=sub,
                    block=block,
                )
        self.metrics.on_chain.set(self.stats.succeeded)

    def _race_lost(self, owner: str, sub: int) -> bool:
        """A revert is a lost race when the account is no longer liquidatable (another keeper
        liquidated it first); otherwise it is this keeper's failure."""
        try:
            return not bool(self.client.core.functions.isLiquidatable(owner, sub).call())
        except Exception:  # noqa: BLE001 - the answer only classifies a revert
            return True

    def _reward_of(self, receipt: Any) -> tuple[float | None, float | None]:
        """(reward, bad debt) in USD from the receipt's Liquidated event."""
        for lg in receipt.get("logs", []):
            topics = [t if isinstance(t, str) else "0x" + bytes(t).hex() for t in lg["topics"]]
            if topics and topics[0] == _LIQUIDATED_TOPIC:
                data = lg["data"]
                raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
                words = [int.from_bytes(raw[i : i + 32], "big") for i in range(0, len(raw), 32)]
                if len(words) >= 5:
                    return words[3] / 1e18, words[4] / 1e18
        return None, None
