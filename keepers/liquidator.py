"""The liquidation keeper: sees every account, computes margin off chain, liquidates fast.

Each new block:

1. index new accounts from logs (checkpointed; recent blocks re-scanned for reorgs);
2. read every account of this shard at that one block through the lens;
3. compute equity / MM for all of them at once (numpy mirror of the contract);
4. rank the liquidatable ones, most under-margined first;
5. confirm each with an ``eth_call`` at the latest block, check profit (reward vs gas, with an
   override that always clears underwater accounts), and send through the nonce-managed,
   fee-bumping :class:`~plimsoll.tx.TxSender`.

Losing a race to another keeper is normal: the confirmation call sees the account healthy (or
the transaction reverts on chain); it is counted, never retried in a loop. RPC failures back off
exponentially and the loop carries on; SIGTERM stops it after the current step.

    python -m keepers.liquidator --rpc URL --deployment deployments/local.json \
        --keystore key.json --password-file pw.txt [--shard 0/2] [--dry-run] [--port 9100]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from keepers.ops import (
    ConfigError,
    KeeperMetrics,
    OpsServer,
    in_shard,
    install_signal_handlers,
    log,
    merge_config,
    parse_shard,
    setup_logging,
)
from plimsoll import pm
from plimsoll.client import PlimsollClient, load_abi
from plimsoll.errors import ContractRevert, PlimsollError
from plimsoll.keys import load_keystore, read_password
from plimsoll.margin import compute_margin, shortfall_ranking
from plimsoll.sync import AccountIndexer, RpcClient, StateReader
from plimsoll.tx import GWEI, FeePolicy, Outcome, PendingTx, TxSender
from plimsoll.units import WAD

logger = logging.getLogger("plimsoll.liquidator")

_SEL_LIQUIDATE = keccak(text="liquidate(address,uint256)")[:4]
_SEL_LIQ_COLLATERAL = keccak(text="liquidateCollateral(address,uint256,uint256,uint256)")[:4]
LIQUIDATE_GAS = 400_000  # conservative per-call estimate for the profit check [gas]
OPTIONS_LIQUIDATE_GAS = 3_000_000  # gas limit of liquidations of option accounts [gas]
_SEL_WITNESS = keccak(text="liquidateWitness(address,uint256,uint256)")[:4]


def series_to_read(known: list[pm.Series], n_series: int, now: int) -> list[int]:
    """Series ids a block must read, given the series already known (by id): expired ones still
    without a settlement price (it is set once, by `settleSeries`) and those listed since."""
    waiting = [i for i, s in enumerate(known) if s.settlement_price == 0 and s.expiry <= now]
    return waiting + list(range(len(known), n_series))


def _tuple_type(o: dict[str, Any]) -> str:
    """The eth_abi type string of an ABI output that is a tuple (struct)."""
    inner = ",".join(
        _tuple_type(c) if c["type"].startswith("tuple") else c["type"] for c in o["components"]
    )
    return f"({inner})" + str(o["type"])[len("tuple") :]


@dataclass
class KeeperConfig:
    rpc: str
    deployment: Path
    db: Path = Path(".state/liquidator.sqlite")
    keystore: Path | None = None
    password_file: Path | None = None
    dry_run: bool = False
    shard: tuple[int, int] = (0, 1)
    port: int | None = None
    poll_interval: float = 0.1
    max_per_block: int = 50
    priority_fee_gwei: float = 1.0
    max_fee_gwei: float = 500.0
    stuck_blocks: int = 3
    min_profit_usd: float = 0.0
    eth_price_usd: float = 2000.0  # to price gas in USD for the profit check
    collateral_liquidation: bool = True
    health_max_age: float = 30.0
    stop_after_seconds: float | None = None


@dataclass
class Stats:
    blocks: int = 0
    sent: int = 0
    succeeded: int = 0
    reverted: int = 0
    race_lost: int = 0
    unprofitable: int = 0
    rpc_errors: int = 0
    liquidated_accounts: set[tuple[str, int]] = field(default_factory=set)


class LiquidationKeeper:
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
            w3, dep["contracts"]["Plimsoll"], cfg.db, int(dep.get("deploy_block", 0)), rpc=self.rpc
        )
        self.reader = StateReader(w3, dep["contracts"]["Plimsoll"], lens, rpc=self.rpc)
        self.account = account
        self.sender: TxSender | None = None
        if account is not None and not cfg.dry_run:
            fees = FeePolicy(
                priority_fee=int(cfg.priority_fee_gwei * GWEI),
                max_fee_cap=int(cfg.max_fee_gwei * GWEI),
            )
            self.sender = TxSender(w3, account, fees, cfg.stuck_blocks, self._on_tx)
        self.inflight: dict[tuple[str, int], PendingTx] = {}
        self.cooldown: dict[tuple[str, int], int] = {}
        self.last_block = -1
        self.last_hash = b""
        self.last_progress = time.monotonic()
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
        # Settlement txs sent: ("series", id) or (owner, sub) -> block (re-sent after 5 blocks).
        self.settling: dict[tuple[str, int], int] = {}
        liq = self.client.core.functions.liquidationConfig().call()
        self.penalty, self.keeper_share, self.reward_cap = int(liq[0]), int(liq[1]), int(liq[4])
        self._approved = False
        if self.sender is not None and cfg.collateral_liquidation:
            self._approve_cash()  # once, before the first block: buying collateral pays cash

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        age = time.monotonic() - self.last_progress
        return {
            "ok": age < self.cfg.health_max_age,
            "last_block": self.last_block,
            "seconds_since_progress": round(age, 3),
            "inflight": len(self.inflight),
            "shard": f"{self.cfg.shard[0]}/{self.cfg.shard[1]}",
        }

    # ------------------------------------------------------------------ loop

    def run(self, stop: threading.Event) -> Stats:
        backoff = 0.5
        started = time.monotonic()
        while not stop.is_set():
            if (
                self.cfg.stop_after_seconds
                and time.monotonic() - started > self.cfg.stop_after_seconds
            ):
                break
            try:
                latest = self.w3.eth.get_block("latest")
                head, head_hash = int(latest["number"]), bytes(latest["hash"])
                self.metrics.head_block.set(head)
                # A new head, or the same height with another hash (a reorg that kept the
                # height): either way the view is refreshed.
                if head != self.last_block or head_hash != self.last_hash:
                    with self.metrics.block_seconds.time():
                        self.on_block(head)
                    self.last_hash = head_hash
                if self.sender is not None:
                    self._finish(self.sender.poll())
                backoff = 0.5
                stop.wait(self.cfg.poll_interval)
            except (requests.RequestException, OSError, PlimsollError) as e:
                # The RPC went away or answered badly: back off exponentially and carry on.
                self._rpc_error(e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as e:  # noqa: BLE001 - a keeper logs and carries on
                self._rpc_error(e, backoff)
                logger.exception("unexpected error in the keeper loop")
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        log(logger, logging.INFO, "stopped", **self.summary())
        return self.stats

    def _rpc_error(self, e: Exception, backoff: float) -> None:
        self.stats.rpc_errors += 1
        self.metrics.rpc_errors.inc()
        log(
            logger, logging.WARNING, "rpc error, backing off", error=str(e)[:300], backoff_s=backoff
        )

    def on_block(self, head: int) -> None:
        block = self.indexer.sync(head)
        accounts = [
            (a.owner, a.subaccount)
            for a in self.indexer.accounts()
            if in_shard(a.owner, a.subaccount, self.cfg.shard)
        ]
        self.metrics.accounts.set(len(accounts))
        if accounts:
            state = self.reader.read(accounts, block)
            result = compute_margin(state)
            # Most under-margined first. Accounts that touch a feed which cannot be trusted
            # (it reads as price 0: stale, out of bounds) are left out until a fresh price
            # arrives; the contract would refuse to liquidate them anyway.
            # Accounts holding options or in portfolio margin: the perps mirror does not cover
            # them; the options pass (plimsoll.pm, witness liquidations) does.
            flagged = (
                np.asarray(state.flags) != 0
                if state.flags is not None
                else np.zeros(state.n_accounts, dtype=bool)
            )
            order = np.asarray(
                [i for i in shortfall_ranking(result) if not flagged[i]], dtype=np.int64
            )
            if flagged.any() and self.options is not None:
                self._options_pass(state, result, np.flatnonzero(flagged), block)
            unpriced = int((~result.priced).sum())
            if unpriced:
                log(logger, logging.WARNING, "untrusted prices", block=block, accounts=unpriced)
            self.metrics.liquidatable.set(len(order))
            if len(order):
                order = order[: self.cfg.max_per_block]
                self._liquidate_batch(state, order, [int(result.equity[i]) for i in order], block)
        self.last_block = block
        self.last_progress = time.monotonic()
        self.stats.blocks += 1
        self.metrics.processed_block.set(block)
        self.metrics.head_lag.set(max(0, int(self.metrics.head_block._value.get()) - block))
        if self.account is not None:
            self.metrics.balance.set(int(self.w3.eth.get_balance(self.account.address)))

    @staticmethod
    def _notional(state: Any, rows: np.ndarray) -> list[int]:
        sizes = state.sizes[rows]
        prices = state.market_price
        return [
            int(sum(abs(int(s)) * int(p) // WAD for s, p in zip(r, prices, strict=True)))
            for r in sizes
        ]

    def _liquidate_batch(
        self, state: Any, rows: np.ndarray, equities: list[int], block: int
    ) -> None:
        """Confirm every candidate with one batch of eth_calls at the latest block, check
        profit, and send the survivors in one batch under consecutive nonces."""
        core = self.client.core
        notionals = self._notional(state, rows)
        cands: list[tuple[tuple[str, int], str, int, int, bool]] = []
        for row, equity, notional in zip(rows, equities, notionals, strict=True):
            key = (state.owners[row], int(state.subaccounts[row]))
            if key in self.inflight or self.cooldown.get(key, -1) >= block:
                continue
            has_positions = any(int(x) != 0 for x in state.sizes[row])
            if has_positions:
                data = _SEL_LIQUIDATE + abi_encode(["address", "uint256"], [key[0], key[1]])
            elif self.cfg.collateral_liquidation:
                args = self._collateral_args(state, int(row))
                if args is None:
                    continue
                data = _SEL_LIQ_COLLATERAL + abi_encode(
                    ["address", "uint256", "uint256", "uint256"], [key[0], key[1], *args]
                )
            else:
                continue
            cands.append((key, "0x" + data.hex(), equity, notional, has_positions))
        if not cands:
            return
        ok = self._confirm([(key, calldata) for key, calldata, _, _, _ in cands], block)
        head = self.w3.eth.get_block("latest")
        base_fee = int(head.get("baseFeePerGas", 0) or 0)
        gas_price = 2 * base_fee + int(self.cfg.priority_fee_gwei * GWEI)
        gas_usd = LIQUIDATE_GAS * gas_price * int(self.cfg.eth_price_usd * 1e6) // 10**6
        to_send: list[tuple[str, bytes | str, str]] = []
        for (key, calldata, equity, notional, has_positions), good in zip(cands, ok, strict=True):
            owner, sub = key
            if not good:
                continue
            reward = min(notional * self.penalty // WAD * self.keeper_share // WAD, self.reward_cap)
            bad_debt = equity < 0
            # The profit check; underwater accounts are always cleared (bad-debt override).
            if (
                has_positions
                and not bad_debt
                and reward - gas_usd < int(self.cfg.min_profit_usd * WAD)
            ):
                self.stats.unprofitable += 1
                self.metrics.unprofitable.inc()
                log(
                    logger,
                    logging.INFO,
                    "skip: unprofitable",
                    owner=owner,
                    sub=sub,
                    reward_usd=reward / WAD,
                    gas_usd=gas_usd / WAD,
                )
                continue
            if self.sender is None:
                log(
                    logger,
                    logging.INFO,
                    "dry-run: would liquidate",
                    owner=owner,
                    sub=sub,
                    equity=equity / WAD,
                    block=block,
                )
                continue
            to_send.append((core.address, calldata, f"{owner}:{sub}"))
        if self.sender is None or not to_send:
            return
        self._send(to_send, LIQUIDATE_GAS, base_fee, block)

    def _confirm(self, cands: list[tuple[tuple[str, int], str]], block: int) -> list[bool]:
        """One batch of eth_calls at the latest block, one per (account, calldata): True where
        the liquidation succeeds now. A failure is a lost race or a price that moved back:
        counted, logged, and the account cools down for this block (no retry storm)."""
        core = self.client.core
        me = self.account.address if self.account is not None else core.address
        provider: Any = self.w3.provider
        answers = provider.make_batch_request(
            [
                ("eth_call", [{"from": me, "to": core.address, "data": data}, "latest"])
                for _, data in cands
            ]
        )
        if not isinstance(answers, list):
            raise PlimsollError(f"batch eth_call failed: {answers!r:.200}")
        ok = []
        for ((owner, sub), _), ans in zip(cands, answers, strict=True):
            good = isinstance(ans, dict) and ans.get("error") is None
            ok.append(good)
            if good:
                continue
            err = ans.get("error", {}) if isinstance(ans, dict) else {}
            name = self.client.decoder.decode(
                err.get("data") if isinstance(err, dict) else None
            ).name
            self.stats.race_lost += 1
            self.metrics.race_lost.inc()
            self.cooldown[(owner, sub)] = block
            log(
                logger,
                logging.INFO,
                "skip: not liquidatable at latest",
                owner=owner,
                sub=sub,
                error=name,
            )
        return ok

    def _send(
        self, to_send: list[tuple[str, bytes | str, str]], gas: int, base_fee: int, block: int
    ) -> list[PendingTx | None]:
        """Sends liquidations (label "owner:sub") in one batch under consecutive nonces and
        tracks the accepted ones as in flight."""
        assert self.sender is not None
        sent = self.sender.send_many(to_send, gas=gas, base_fee=base_fee)
        for (_, _, label), p in zip(to_send, sent, strict=True):
            owner, sub_s = label.split(":")
            if p is None:
                log(
                    logger,
                    logging.WARNING,
                    "send refused",
                    owner=owner,
                    sub=int(sub_s),
                    error=self.sender.last_error,
                )
                continue
            self.inflight[(owner, int(sub_s))] = p
            self.stats.sent += 1
            log(
                logger,
                logging.INFO,
                "liquidation sent",
                owner=owner,
                sub=int(sub_s),
                nonce=p.nonce,
                block=block,
            )
        return sent

    # ------------------------------------------------------------------ options accounts

    def _calls(self, calls: list[tuple[Any, str, tuple[Any, ...]]], block: int) -> list[Any]:
        """One JSON-RPC batch of eth_calls at ``block``, decoded."""
        provider: Any = self.w3.provider
        answers = provider.make_batch_request(
            [
                (
                    "eth_call",
                    [{"to": c.address, "data": c.encode_abi(name, args=list(a))}, hex(block)],
                )
                for c, name, a in calls
            ]
        )
        if not isinstance(answers, list):
            raise PlimsollError(f"batch eth_call failed: {answers!r:.200}")
        out = []
        for (c, name, _), ans in zip(calls, answers, strict=True):
            if not isinstance(ans, dict) or "result" not in ans:
                raise PlimsollError(f"{name} failed: {ans!r:.200}")
            fn = c.get_function_by_name(name)
            types = [
                o["type"] if o["type"] != "tuple" else _tuple_type(o) for o in fn.abi["outputs"]
            ]
            vals = self.w3.codec.decode(types, bytes.fromhex(ans["result"][2:]))
            out.append(vals[0] if len(vals) == 1 else vals)
        return out

    def _options_pass(self, state: Any, result: Any, rows: np.ndarray, block: int) -> None:
        """Option and portfolio-margin accounts: the whole grid for all of them at once
        (plimsoll.pm), then `liquidate` (standard mode) or `liquidateWitness` on each
        account's worst scenarios (portfolio mode), confirmed and sent like the others."""
        assert self.options is not None
        opts = self.options
        if self._router is None:
            oracle = self.client.core.functions.oracle().call()
            self._router = self.w3.eth.contract(address=oracle, abi=load_abi("OracleRouter"))
        router = self._router
        keys = [(state.owners[r], int(state.subaccounts[r])) for r in rows]
        n_series = int(self._calls([(opts, "seriesCount", ())], block)[0])
        if n_series < len(self._series):  # a listing was rolled back by a reorg: start over
            self._series = []
        fetch = series_to_read(self._series, n_series, int(state.timestamp))
        nm = state.n_markets
        head = self._calls(
            [(opts, "series", (i,)) for i in fetch]
            + [(opts, "optionsConfig", (m,)) for m in range(nm)]
            + [(opts, "portfolioConfig", ())]
            + [(opts, "positions", k) for k in keys],
            block,
        )
        for i, x in zip(fetch, head[: len(fetch)], strict=True):
            s = pm.Series(int(x[0]), bool(x[1]), int(x[2]), int(x[3]), int(x[4]))
            if i < len(self._series):
                self._series[i] = s
            else:
                self._series.append(s)
        series = self._series
        cfgs = head[len(fetch) : len(fetch) + nm]
        pcfg = pm.PortfolioConfig.from_wad_tuple(head[len(fetch) + nm])
        held = head[len(fetch) + nm + 1 :]
        ivs = self._calls([(router, "priceInfo", (int(c[0]) or 1,)) for c in cfgs], block)
        iv_ok = [int(c[0]) != 0 and int(v[1]) == 0 for c, v in zip(cfgs, ivs, strict=True)]
        market = pm.MarketData(
            spot=tuple(max(1, int(p)) for p in state.market_price),
            iv=tuple(int(v[0]) for v in ivs),
            timestamp=int(state.timestamp),
            im_scalar=None if state.im_scalar is None else tuple(int(x) for x in state.im_scalar),
            mm_scalar=None if state.mm_scalar is None else tuple(int(x) for x in state.mm_scalar),
        )
        positions = [
            [(series[int(i)], int(q)) for i, q in zip(ids, qs, strict=True)] for ids, qs in held
        ]
        book = pm.OptionBook.from_positions(
            positions, state.sizes[rows], np.asarray(result.equity)[rows]
        )
        self._settle(series, positions, keys, state, block)
        pmr = pm.portfolio_margin(book, market, pcfg)
        smr = pm.standard_option_margin(book, market, pm.OptionsConfig.from_wad_tuple(cfgs[0]))
        cands: list[tuple[str, int, str, int]] = []
        for j, row in enumerate(rows):
            owner, sub = keys[j]
            used = {s.market_id for s, _ in positions[j]}
            if not result.priced[row] or not all(iv_ok[m] for m in used):
                continue  # a price not graded OK: the contract would refuse too
            if (owner, sub) in self.inflight or self.cooldown.get((owner, sub), -1) >= block:
                continue
            if int(state.flags[row]) & 2:
                if pmr.equity[j] >= pmr.mm[j]:
                    continue
                fn = self.client.core.functions.liquidateWitness(owner, sub, pmr.witness(j))
                equity = int(pmr.equity[j] * WAD)
            else:
                equity = int(result.equity[row]) + int(smr.value[j] * WAD)
                if equity >= int(result.mm[row]) + int(smr.mm[j] * WAD):
                    continue
                fn = self.client.core.functions.liquidate(owner, sub)
            cands.append((owner, sub, fn._encode_transaction_data(), equity))
        if not cands:
            return
        ok = self._confirm([((owner, sub), data) for owner, sub, data, _ in cands], block)
        core = self.client.core.address
        to_send: list[tuple[str, bytes | str, str]] = [
            (core, data, f"{owner}:{sub}")
            for (owner, sub, data, _), good in zip(cands, ok, strict=True)
            if good
        ]
        if self.sender is None or not to_send:
            for _, _, label in to_send:
                log(logger, logging.INFO, "dry-run: would liquidate (options)", account=label)
            return
        head_block = self.w3.eth.get_block("latest")
        base_fee = int(head_block.get("baseFeePerGas", 0) or 0)
        sent = self._send(to_send, OPTIONS_LIQUIDATE_GAS, base_fee, block)
        self.stats_witness += sum(
            1
            for (_, payload, _), p in zip(to_send, sent, strict=True)
            if p is not None and str(payload).startswith("0x" + _SEL_WITNESS.hex())
        )

    def _settle(
        self,
        series: list[pm.Series],
        positions: list[list[tuple[pm.Series, int]]],
        keys: list[tuple[str, int]],
        state: Any,
        block: int,
    ) -> None:
        """Settlement duty: fix the price of every expired series that holders still carry
        (once the spot is graded OK) and pay out accounts holding settled series."""
        assert self.options is not None
        if self.sender is None:
            return
        opts = self.options
        held_ids = {s for p in positions for s, _ in p}
        txs: list[tuple[str, bytes | str, str]] = []
        for i, s in enumerate(series):
            if (
                s in held_ids
                and s.settlement_price == 0
                and int(state.timestamp) >= s.expiry
                and self.settling.get(("series", i), -10) < block - 5
            ):
                m = s.market_id
                self.settling[("series", i)] = block
                if state.market_price_ok is None or bool(state.market_price_ok[m]):
                    # Round 0: the router finds the first round at or after expiry.
                    data = opts.functions.settleSeries(i, 0)._encode_transaction_data()
                    txs.append((opts.address, data, f"settle-series:{i}"))
        for (owner, sub), p in zip(keys, positions, strict=True):
            if (
                any(s.settlement_price != 0 for s, _ in p)
                and self.settling.get((owner, sub), -10) < block - 5
            ):
                data = opts.functions.settleAccount(owner, sub)._encode_transaction_data()
                txs.append((opts.address, data, f"settle-account:{owner}:{sub}"))
                self.settling[(owner, sub)] = block
        if txs:
            self.sender.send_many(txs, gas=1_500_000)
            self.stats_settlements += len(txs)
            log(logger, logging.INFO, "settlements sent", count=len(txs), block=block)

    def _collateral_args(self, state: Any, row: int) -> tuple[int, int] | None:
        """(asset id, repay amount) for liquidateCollateral of an account with cash debt and
        only collateral left; None when there is nothing to buy or no key to pay with."""
        cash = int(state.cash[row])
        if cash >= 0 or self.account is None:
            return None
        for col, bal in enumerate(state.balances[row]):
            if int(bal) > 0:
                debt = -cash
                return col + 1, (debt + 10**12 - 1) // 10**12  # debt in USDC units, rounded up
        return None

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

    def _on_tx(self, kind: str, p: PendingTx) -> None:
        if kind == "sent":
            self.metrics.sent.inc()
        elif kind == "replaced":
            self.metrics.replaced.inc()
            log(
                logger,
                logging.INFO,
                "replaced stuck tx",
                nonce=p.nonce,
                max_fee=p.tx["maxFeePerGas"],
                replacements=p.replacements,
            )

    def _finish(self, done: list[PendingTx]) -> None:
        for p in done:
            owner, sub_s = p.label.split(":") if ":" in p.label else (p.label, "-1")
            key = (owner, int(sub_s))
            self.inflight.pop(key, None)
            if p.receipt is not None:
                fee = int(p.receipt["gasUsed"]) * int(p.receipt.get("effectiveGasPrice", 0))
                self.metrics.gas_spent.inc(fee)
            if p.outcome is Outcome.SUCCEEDED:
                self.stats.succeeded += 1
                self.metrics.succeeded.inc()
                self.stats.liquidated_accounts.add(key)
                log(
                    logger,
                    logging.INFO,
                    "liquidated",
                    owner=owner,
                    sub=key[1],
                    block=p.receipt["blockNumber"] if p.receipt else None,
                )
            else:
                self.stats.reverted += 1
                self.metrics.reverted.inc()
                self.cooldown[key] = int(p.receipt["blockNumber"]) if p.receipt else self.last_block
                log(
                    logger,
                    logging.INFO,
                    "liquidation reverted (race lost)",
                    owner=owner,
                    sub=key[1],
                )

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {
            "blocks": s.blocks,
            "sent": s.sent,
            "succeeded": s.succeeded,
            "reverted": s.reverted,
            "race_lost": s.race_lost,
            "unprofitable": s.unprofitable,
            "rpc_errors": s.rpc_errors,
            "accounts_liquidated": len(s.liquidated_accounts),
            "witness_liquidations_sent": self.stats_witness,
            "settlements_sent": self.stats_settlements,
        }


def build_config(argv: list[str]) -> KeeperConfig:
    ap = argparse.ArgumentParser(prog="plimsoll keeper run", description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, help="TOML file with the same keys as these flags")
    ap.add_argument("--rpc")
    ap.add_argument("--deployment", type=Path)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--keystore", type=Path)
    ap.add_argument("--password-file", type=Path)
    ap.add_argument("--dry-run", action="store_true", default=None)
    ap.add_argument("--shard")
    ap.add_argument("--port", type=int, help="metrics + health port (0 = any free port)")
    ap.add_argument("--poll-interval", type=float)
    ap.add_argument("--max-per-block", type=int)
    ap.add_argument("--priority-fee-gwei", type=float)
    ap.add_argument("--max-fee-gwei", type=float)
    ap.add_argument("--stuck-blocks", type=int)
    ap.add_argument("--min-profit-usd", type=float)
    ap.add_argument("--stop-after-seconds", type=float)
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    merged = merge_config(
        args, KeeperConfig.__dataclass_fields__, ("deployment", "db", "keystore", "password_file")
    )
    if "shard" in merged:
        merged["shard"] = parse_shard(str(merged["shard"]))
    return KeeperConfig(**merged)


def main(argv: list[str] | None = None) -> int:
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
        stop = threading.Event()
        install_signal_handlers(stop)
        server = (
            OpsServer(cfg.port, keeper.metrics, keeper.health).start()
            if cfg.port is not None
            else None
        )
        if server is not None:
            log(logger, logging.INFO, "ops server", port=server.port)
        log(
            logger,
            logging.INFO,
            "keeper started",
            address=account.address if account else None,
            shard=f"{cfg.shard[0]}/{cfg.shard[1]}",
            dry_run=cfg.dry_run,
        )
        keeper.run(stop)
        if server is not None:
            server.stop()
        print(json.dumps(keeper.summary()), flush=True)
        return 0
    except (PlimsollError, ContractRevert) as e:
        print(f"keeper: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
