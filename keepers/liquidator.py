"""The liquidation keeper: sees every account, computes margin off chain, liquidates fast.

Each new head (or the same height with another hash: a reorg):

1. the nonce manager polls first: receipts of the keeper's transactions, reconciliation of its
   nonce with the chain (reorgs, dropped transactions, a node back from an older state), so an
   account whose liquidation just mined is not held "in flight" for one more block;
2. index new logs (checkpointed; recent blocks re-scanned for reorgs) and keep the shard's
   accounts from them (:mod:`keepers.book_cycle`, :mod:`plimsoll.book`): only the accounts the
   logs name are read again through the lens, with the market data, at that one block;
   reconciliation with the lens on start, after a reorg and for a rotating slice;
3. screen every account at the block's prices (float64, with an error bound) and
4. compute exact equity / MM for the candidates the screen cannot clear (the integer mirror);
5. rank the liquidatable ones, most under-margined first (:mod:`keepers.candidates` builds
   the calls), confirm each with ``eth_estimateGas`` at the latest block, apply the profit
   rule (:mod:`keepers.profit`) and send (:mod:`keepers.sending`);
6. option and portfolio-margin accounts, settlement: :mod:`keepers.options_pass`.
7. pending LP requests of the pool, priced as soon as they can be: :mod:`keepers.pool_pass`;
8. the protocol's recovered collateral, bought when it pays: :mod:`keepers.recovery_pass`.

Losing a race to another keeper is normal: the confirmation sees the account healthy (or the
transaction reverts on chain); it is counted, never retried in a loop. RPC failures are probed
again quickly (``probe_interval`` doubling up to ``max_backoff``) and the loop carries on;
SIGTERM stops it after the current step.

    python -m keepers.liquidator --rpc URL --deployment deployments/local.json \\
        --keystore key.json --password-file pw.txt [--shard 0/2] [--dry-run] [--port 9100]

Exit codes: 0 stopped (SIGTERM/SIGINT or --stop-after-seconds), 2 configuration or start-up
error (one line on stderr), 1 unexpected error at start-up.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

import numpy as np
import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3

from keepers.book_cycle import BookCycle
from keepers.candidates import Action, Candidate, build_candidates
from keepers.config import KeeperConfig, build_config
from keepers.ops import (
    ConfigError,
    KeeperMetrics,
    OpsServer,
    install_signal_handlers,
    log,
)
from keepers.options_pass import OptionsPass, series_to_read
from keepers.pool_pass import PoolPass
from keepers.profit import (
    Decision,
    LiquidationParams,
    LossBudget,
    decide,
    expected_reward,
    gas_cost_usd,
)
from keepers.recovery_pass import RecoveryPass
from keepers.sending import Sending, Stats
from plimsoll import pm
from plimsoll.client import PlimsollClient, load_abi
from plimsoll.errors import ContractRevert, PlimsollError
from plimsoll.keys import load_keystore, read_password
from plimsoll.sync import AccountIndexer, RpcClient, StateReader
from plimsoll.tx import GWEI, FeePolicy, PendingTx, TxSender
from plimsoll.units import WAD

__all__ = ["KeeperConfig", "LiquidationKeeper", "Stats", "build_config", "main", "series_to_read"]

logger = logging.getLogger("plimsoll.liquidator")


class LiquidationKeeper(Sending, OptionsPass, PoolPass, RecoveryPass):
    """One keeper instance (one shard, one signing key)."""

    def __init__(
        self,
        cfg: KeeperConfig,
        w3: Web3,
        account: LocalAccount | None,
        metrics: KeeperMetrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.w3 = w3
        self.metrics = metrics or KeeperMetrics()
        self.stats = Stats()
        self.client = PlimsollClient.from_file(w3, cfg.deployment, account)
        dep = self.client.deployment
        lens = dep["contracts"].get("PlimsollLens")
        if not lens:
            raise ConfigError(f"{cfg.deployment} has no PlimsollLens address")
        self.rpc = RpcClient(w3)
        cfg.db.parent.mkdir(parents=True, exist_ok=True)
        self.indexer = AccountIndexer(
            w3,
            dep["contracts"]["Plimsoll"],
            cfg.db,
            int(dep.get("deploy_block", 0)),
            rpc=self.rpc,
            options=dep["contracts"].get("OptionsMarket"),
            # The cycle scans only new blocks; the 12-block window is re-scanned every 12
            # blocks after the block's transactions are out (BookCycle.reconcile). Reorgs are
            # caught by the hash check of every sync.
            rescan_every=0,
        )
        self.reader = StateReader(w3, dep["contracts"]["Plimsoll"], lens, rpc=self.rpc)
        self.cycle = BookCycle(
            self.indexer,
            self.reader,
            self.metrics,
            cfg.shard,
            cfg.reconcile_every,
            cfg.reconcile_slice,
            cfg.full_reread,
            cfg.book_path(),
            cfg.book_save_every,
            self.indexer.chain_id,
            dep["contracts"]["Plimsoll"],
        )
        self.account = account
        self.fees = FeePolicy(
            priority_fee=int(cfg.priority_fee_gwei * GWEI),
            max_fee_cap=int(cfg.max_fee_gwei * GWEI),
            max_tip=int(cfg.max_tip_gwei * GWEI),
            tip_percentile=cfg.tip_percentile,
            tip_premium_pct=cfg.tip_premium_pct,
        )
        self.sender: TxSender | None = None
        if account is not None and not cfg.dry_run:
            send_w3 = (
                Web3(Web3.HTTPProvider(cfg.private_rpc, request_kwargs={"timeout": 30}))
                if cfg.private_rpc
                else None
            )
            self.sender = TxSender(
                w3,
                account,
                self.fees,
                cfg.stuck_blocks,
                self._on_tx,
                state_path=cfg.nonce_state_path(),
                send_w3=send_w3,
            )
        self.inflight: dict[tuple[str, int], PendingTx] = {}
        if self.sender is not None:  # transactions in flight before a restart
            for p in self.sender.pending.values():
                if p.label.startswith("0x") and p.label.count(":") == 1:
                    owner, sub = p.label.split(":")
                    self.inflight[(owner, int(sub))] = p
        self.cooldown: dict[tuple[str, int], int] = {}
        self.on_chain: dict[int, tuple[str, int]] = {}
        # The call sent for an account in flight ("liquidate", "liquidateCollateral", "writeOff").
        self.actions: dict[tuple[str, int], str] = {}
        self.consecutive_failures = 0
        self.breaker_open_until = 0.0
        self.breaker_reason: str | None = None
        self.budget = LossBudget(int(cfg.loss_budget_usd_per_hour * WAD))
        self.last_block = -1
        self.last_hash = b""
        self.head = -1
        self.last_progress = time.monotonic()
        self.last_rpc_ok = time.monotonic()
        self._kill_logged = False
        opts = dep["contracts"].get("OptionsMarket")
        self.options = (
            w3.eth.contract(address=opts, abi=load_abi("OptionsMarket")) if opts else None
        )
        self.stats_witness = 0
        self.stats_settlements = 0
        # Option series by id: listing data never changes and a settlement price is set once,
        # so a block reads only new series and expired ones still waiting for their price.
        self._series: list[pm.Series] = []
        self._router: Any = None  # the core's oracle router (an immutable of the core)
        # Option positions by account: (block read, (series ids, sizes)); read again when a log
        # named the account (its book row was re-read) or after POSITIONS_MAX_AGE blocks.
        self._positions: dict[tuple[str, int], tuple[int, Any]] = {}
        # The options pass's inputs at its last run (what moved since) and its last candidates.
        self._opt_inputs: tuple[Any, ...] | None = None
        self._opt_cands: set[tuple[str, int]] = set()
        self.options_priced = 0  # option accounts priced on the grid (cumulative)
        # Settlement txs sent: ("series", id) or (owner, sub) -> block (re-sent after 5 blocks).
        self.settling: dict[tuple[str, int], int] = {}
        liq = self.client.core.functions.liquidationConfig().call()
        self.lc = LiquidationParams.from_chain(liq)
        self._approved = False
        self.cash_decimals = int(self.client.cash.functions.decimals().call())
        if self.sender is not None and (cfg.collateral_liquidation or cfg.recovery_purchases):
            self._approve_cash()  # once, before the first block: buying collateral pays cash

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """Healthy while the node answers (``health_max_age``), the keeper is no more than
        ``health_max_lag_blocks`` behind the head it sees, and it can send (key, no kill
        switch, breaker closed). An idle chain (no new blocks) stays healthy."""
        now = time.monotonic()
        silent = now - self.last_rpc_ok
        lag = max(0, self.head - self.last_block) if self.last_block >= 0 else None
        can, why = self.can_send()
        problems = []
        if silent >= self.cfg.health_max_age:
            problems.append(f"node silent for {silent:.1f}s")
        if lag is None or lag > self.cfg.health_max_lag_blocks:
            problems.append(f"behind the head by {lag} blocks")
        if not can and not self.cfg.dry_run:
            problems.append(f"cannot send: {why}")
        return {
            "ok": not problems,
            "problems": problems,
            "last_block": self.last_block,
            "head": self.head,
            "seconds_since_node_answer": round(silent, 3),
            "seconds_since_progress": round(now - self.last_progress, 3),
            "inflight": len(self.inflight),
            "sending": can,
            "shard": f"{self.cfg.shard[0]}/{self.cfg.shard[1]}",
        }

    # ------------------------------------------------------------------ loop

    def run(self, stop: threading.Event) -> Stats:
        backoff = self.cfg.probe_interval
        started = time.monotonic()
        while not stop.is_set():
            if (
                self.cfg.stop_after_seconds
                and time.monotonic() - started > self.cfg.stop_after_seconds
            ):
                break
            try:
                self.step()
                backoff = self.cfg.probe_interval
                stop.wait(self.cfg.poll_interval)
            except (requests.RequestException, OSError, PlimsollError) as e:
                # The RPC went away or answered badly: probe again soon, act on the first
                # good answer.
                self._rpc_error(e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.cfg.max_backoff)
            except Exception as e:  # noqa: BLE001 - a keeper logs and carries on
                self._rpc_error(e, backoff)
                logger.exception("unexpected error in the keeper loop")
                stop.wait(backoff)
                backoff = min(backoff * 2, self.cfg.max_backoff)
        if self.sender is not None:
            try:  # the outcome of what was sent: the last summary counts it
                self._finish(self.sender.poll())
            except Exception as e:  # noqa: BLE001 - stopping anyway
                self._rpc_error(e, 0.0)
        log(logger, logging.INFO, "stopped", **self.summary())
        return self.stats

    def step(self) -> None:
        """One look at the head; a new head (or a reorg at the same height) is processed."""
        latest = self.w3.eth.get_block("latest")
        self.last_rpc_ok = time.monotonic()
        head, head_hash = int(latest["number"]), bytes(latest["hash"])
        self.head = head
        self.metrics.head_block.set(head)
        if head == self.last_block and head_hash == self.last_hash:
            return
        if self.sender is not None:
            # Receipts and nonce reconciliation first: what just mined is not "in flight".
            self._finish(self.sender.poll())
        with self.metrics.block_seconds.time():
            self.on_block(head, latest)
        if self.sender is not None and self.can_send()[0]:
            self.sender.fill_gaps()
        self.last_hash = head_hash

    def _rpc_error(self, e: Exception, backoff: float) -> None:
        self.stats.rpc_errors += 1
        self.metrics.rpc_errors.inc()
        log(logger, logging.WARNING, "rpc error, retrying", error=str(e)[:300], retry_in_s=backoff)

    def on_block(self, head: int, head_block: Any = None) -> None:
        t0 = time.perf_counter()
        view = self.cycle.cycle(head, head_block)
        self.metrics.cycle_seconds.observe(time.perf_counter() - t0)
        block = view.block
        self.metrics.accounts.set(view.accounts)
        if self.kill_switch_on() != self._kill_logged:
            self._kill_logged = not self._kill_logged
            log(
                logger,
                logging.WARNING,
                "kill switch on: watching, not sending"
                if self._kill_logged
                else "kill switch off: sending again",
                file=str(self.cfg.kill_switch_file),
            )
        state, result, order = view.state, view.result, view.order
        # Most under-margined first (the exact mirror decides). Accounts that touch a feed
        # which cannot be trusted (price 0: stale, out of bounds) are left out until a fresh
        # price arrives; the contract would refuse to liquidate them anyway.
        liquidatable = len(order)
        self.metrics.liquidatable.set(len(order))
        if len(order):
            self._liquidate_batch(state, result, order[: self.cfg.max_per_block], block)
        # Option and portfolio-margin accounts: the options pass (plimsoll.pm, witness
        # liquidations) on the rows the book marks due.
        if self.options is not None:
            ostate, oresult, flagged = view.options()
            if len(flagged):
                self._options_pass(ostate, oresult, flagged, block, view.changed)
        accounts = range(view.accounts)
        if not self._kill_logged:
            # Pool duty: price pending LP requests as soon as the pool can (keepers/pool_pass).
            try:
                self._pool_pass(block)
            except Exception as e:  # noqa: BLE001 - a pool read must not stop liquidations
                log(logger, logging.WARNING, "pool pass failed", block=block, error=str(e)[:200])
            try:  # the recovery account's collateral, bought when it pays
                self._recovery_pass(block)
            except Exception as e:  # noqa: BLE001 - nor must a purchase
                log(logger, logging.WARNING, "recovery pass failed", block=block, error=str(e)[:99])
        # The book's audit, after the block's transactions are out (keepers/book_cycle.py).
        try:
            self.cycle.reconcile()
        except (requests.RequestException, OSError, PlimsollError) as e:
            log(logger, logging.WARNING, "reconciliation failed", block=block, error=str(e)[:200])
        if self.last_block < 0:
            log(logger, logging.INFO, "synced", block=block, accounts=len(accounts))
        self.last_block = block
        self.last_progress = time.monotonic()
        self.stats.blocks += 1
        self.metrics.processed_block.set(block)
        self.metrics.head_lag.set(max(0, self.head - block))
        log(
            logger,
            logging.DEBUG,
            "block",
            block=block,
            accounts=len(accounts),
            liquidatable=liquidatable,
            inflight=len(self.inflight),
        )
        if self.account is not None:
            self.metrics.balance.set(int(self.w3.eth.get_balance(self.account.address)))

    # ------------------------------------------------------------------ profit

    def gas_token_price(self) -> int:
        """The gas token's price [wad USD] from the oracle router (feed ``gas_token_feed``);
        ``eth_price_usd`` when no feed is set or its price is not graded OK."""
        if self.cfg.gas_token_feed:
            if self._router is None:
                oracle = self.client.core.functions.oracle().call()
                self._router = self.w3.eth.contract(address=oracle, abi=load_abi("OracleRouter"))
            try:
                price, status = self._router.functions.priceInfo(self.cfg.gas_token_feed).call()
                if int(status) == 0 and int(price) > 0:
                    return int(price)
            except Exception as e:  # noqa: BLE001 - fall back to the configured price
                log(logger, logging.WARNING, "gas token price unreadable", error=str(e)[:200])
        return int(self.cfg.eth_price_usd * WAD)

    def gas_price_wei(self) -> int:
        """What one unit of gas costs in the next block: base fee + the going tip."""
        if self.sender is not None:
            m = self.sender.market()
            return m.next_base_fee + self.fees.tip(m.tip)
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        return base + self.fees.priority_fee

    def _liquidate_batch(self, state: Any, result: Any, rows: np.ndarray, block: int) -> None:
        """Confirm every candidate with one batch of eth_estimateGas at the latest block, apply
        the profit rule, and send the survivors: ordinary and urgent ones in their own batch."""
        cands = build_candidates(
            state,
            result,
            rows,
            block,
            self.inflight,
            self.cooldown,
            self._approved,
            self.lc.collateral_bonus,
            self.cash_decimals,
        )
        if not cands:
            return
        # One batch: each call, and writeOff for each collateral purchase (its fallback).
        est = self._estimate(
            [c.calldata for c in cands] + [c.fallback for c in cands if c.fallback is not None]
        )
        fallbacks = iter(est[len(cands) :])
        confirmed: list[tuple[Candidate, int]] = []
        for c, (g, err) in zip(cands, est[: len(cands)], strict=True):
            fb = next(fallbacks) if c.fallback is not None else None
            if g is None and fb is not None and fb[0] is not None:
                log(
                    logger,
                    logging.INFO,
                    "collateral purchase would fail: writing off instead",
                    owner=c.key[0],
                    sub=c.key[1],
                    error=err,
                )
                c, g = c.as_write_off(), fb[0]
            if g is None:
                self._not_now(c.key[0], c.key[1], block, err)
                continue
            confirmed.append((c, g))
        price = self.gas_price_wei()
        token = self.gas_token_price()
        core = self.client.core.address
        ordinary: list[tuple[Candidate, int]] = []
        urgent: list[tuple[Candidate, int]] = []
        for c, g in confirmed:
            owner, sub = c.key
            gas_usd = gas_cost_usd(g, price, token)
            if c.action is Action.LIQUIDATE:
                reward = expected_reward(c.equity, c.mm, c.notional, self.lc, list(c.legs))
            else:  # the collateral bonus pays a purchase; a write-off pays nothing
                reward = c.bonus
            d = decide(
                reward,
                gas_usd,
                c.equity,
                c.notional,
                int(self.cfg.guard_move * WAD),
                int(self.cfg.min_profit_usd * WAD),
            )
            loss = gas_usd - reward
            if d is Decision.SKIP or (d is not Decision.PROFIT and not self.budget.allows(loss)):
                if d is Decision.SKIP:
                    self.stats.unprofitable += 1
                    self.metrics.unprofitable.inc()
                else:
                    self.stats.budget_skipped += 1
                log(
                    logger,
                    logging.INFO,
                    "skip: unprofitable" if d is Decision.SKIP else "skip: loss budget spent",
                    owner=owner,
                    sub=sub,
                    equity_usd=c.equity / WAD,
                    reward_usd=reward / WAD,
                    gas_usd=gas_usd / WAD,
                    budget_used_usd=self.budget.used() / WAD,
                )
                continue
            if self.sender is None:
                log(
                    logger,
                    logging.INFO,
                    "dry-run: would liquidate",
                    action=c.action.value,
                    owner=owner,
                    sub=sub,
                    equity=c.equity / WAD,
                    decision=d.value,
                    block=block,
                )
                continue
            if d is Decision.PROFIT:
                ordinary.append((c, g))
            else:
                self.budget.spend(loss)
                if d is Decision.PROTECT:
                    self.stats.protective += 1
                else:
                    self.stats.bad_debt_sent += 1
                urgent.append((c, g))
        self.metrics.loss_budget_used.set(self.budget.used() / WAD)
        for c, _ in urgent + ordinary:
            self.actions[c.key] = c.action.value
        for group, is_urgent in ((urgent, True), (ordinary, False)):
            if group and self.sender is not None:
                self._send(
                    [(core, c.calldata, f"{c.key[0]}:{c.key[1]}") for c, _ in group],
                    [g * 13 // 10 + 30_000 for _, g in group],
                    block,
                    urgent=is_urgent,
                )

    # ------------------------------------------------------------------ set-up

    def _approve_cash(self) -> None:
        assert self.sender is not None
        cash = self.client.cash
        if cash.functions.allowance(self.sender.address, self.client.core.address).call() > 2**200:
            self._approved = True
            return
        tx = cash.functions.approve(self.client.core.address, 2**256 - 1).build_transaction(
            {"from": self.sender.address, "gas": 100_000}
        )
        self.sender.wait(
            self.sender.send({"to": tx["to"], "data": tx["data"]}, "approve", gas=100_000)
        )
        self._approved = True

    def summary(self) -> dict[str, Any]:
        s = self.stats
        snd = self.sender
        return {
            "blocks": s.blocks,
            "sent": s.sent,
            "succeeded": s.succeeded,
            "reverted": s.reverted,
            "race_lost": s.race_lost,
            "unprofitable": s.unprofitable,
            "protective": s.protective,
            "bad_debt_sent": s.bad_debt_sent,
            "budget_skipped": s.budget_skipped,
            "rpc_errors": s.rpc_errors,
            "accounts_liquidated": len(s.liquidated_accounts),
            "witness_liquidations_sent": self.stats_witness,
            "options_priced": self.options_priced,
            "settlements_sent": self.stats_settlements,
            "pool_fulfilments_sent": self.stats_fulfilments,
            "recovery_purchases": self.stats_recovery_purchases,
            "recovery_paid_usd": round(self.stats_recovery_paid_usd, 2),
            "nonce_reconciliations": snd.reconciliations if snd else 0,
            "replaced": int(self.metrics.replaced._value.get()),
            "lost_txs": s.lost,
            "unmined": s.unmined,
            "refused": s.refused,
            "breaker_trips": s.breaker_trips,
            "loss_budget_used_usd": round(self.budget.used() / WAD, 2),
            "cycle_ms_p50": round(self.cycle.percentile(50), 2),
            "cycle_ms_p99": round(self.cycle.percentile(99), 2),
            "reconciled": self.cycle.reconciled,
            "reconciliation_mismatches": self.cycle.mismatches,
        }


def main(argv: list[str] | None = None) -> int:
    server: OpsServer | None = None
    try:
        cfg = build_config(sys.argv[1:] if argv is None else argv)
        w3 = Web3(Web3.HTTPProvider(cfg.rpc, request_kwargs={"timeout": 30}))
        if not w3.is_connected():
            raise PlimsollError(f"cannot reach RPC {cfg.rpc}")
        account = None
        if cfg.keystore is not None:
            account = load_keystore(cfg.keystore, read_password(cfg.password_file))
        elif not cfg.dry_run:
            raise ConfigError("--keystore is required unless --dry-run")
        keeper = LiquidationKeeper(cfg, w3, account)
        if cfg.port is not None:
            try:
                server = OpsServer(cfg.port, keeper.metrics, keeper.health).start()
            except OSError as e:
                raise ConfigError(f"--port {cfg.port}: {e.strerror or e}") from e
            log(logger, logging.INFO, "ops server", port=server.port)
    except (PlimsollError, ContractRevert) as e:
        print(f"keeper: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    install_signal_handlers(stop)
    log(
        logger,
        logging.INFO,
        "keeper started",
        address=account.address if account else None,
        shard=f"{cfg.shard[0]}/{cfg.shard[1]}",
        dry_run=cfg.dry_run,
        inflight_from_last_run=len(keeper.inflight),
        gas_token_price_usd=keeper.gas_token_price() / WAD,
        max_fee_gwei=cfg.max_fee_gwei,
        bad_debt_max_fee_gwei=cfg.bad_debt_max_fee_gwei,
        loss_budget_usd_per_hour=cfg.loss_budget_usd_per_hour,
    )
    keeper.run(stop)
    if server is not None:
        server.stop()
    print(json.dumps(keeper.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
