"""The fault suite's chain, keeper processes and measurements.

A small book (12 traders, leverage 3.5x to 8x, so that a crash path makes them liquidatable
one after another), blocks mined by the test (``evm_mine``) one price step at a time, and the
liquidation keeper as a separate process (keystore key, metrics/health port). Figures are
measured from the final chain alone: which accounts were liquidatable at which block, when
they were liquidated (events), bad debt (events) by cause.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from keepers.config import keeper_command
from plimsoll.chain import LocalNode, free_port
from plimsoll.deploy import Deployment, deploy_local
from plimsoll.units import WAD, token_units, wad

ROOT = Path(__file__).resolve().parents[2]
N_TRADERS = 12
PRICES = {1: 2000.0, 2: 60000.0, 3: 150.0}


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    resp = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in resp, resp
    return resp.get("result")


@dataclass
class KeeperProc:
    proc: subprocess.Popen[str]
    port: int
    address: str
    out: str = ""
    err: str = ""

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self) -> dict[str, Any]:
        assert self.proc.poll() is None, "the keeper process exited on its own"
        self.proc.send_signal(signal.SIGTERM)
        self.out, self.err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, self.err[-3000:]
        return dict(json.loads(self.out.strip().splitlines()[-1]))


@dataclass
class Chain:
    node: LocalNode
    w3: Web3
    dep: Deployment
    workdir: Path
    traders: list[str]
    start: int = 0
    level: float = 1.0
    keepers: list[KeeperProc] = field(default_factory=list)
    outage_blocks: set[int] = field(default_factory=set)

    # ------------------------------------------------------------------ blocks

    def mine(self, base_fee_gwei: float | None = None) -> int:
        if base_fee_gwei is not None:
            rpc(self.w3, "anvil_setNextBlockBaseFeePerGas", [hex(int(base_fee_gwei * 10**9))])
        rpc(self.w3, "evm_mine", [])
        return int(self.w3.eth.block_number)

    def step(
        self,
        drop: float = 0.01,
        base_fee_gwei: float | None = None,
        wait: float = 0.4,
        tip_gwei: float = 1,
        sync: bool = True,
    ) -> int:
        """One block: every price down by ``drop`` (of the start), mined, then time for the
        keeper to see it and send."""
        self.level -= drop
        for feed_id, p in PRICES.items():
            self.dep.feeds[feed_id].functions.updateAnswer(int(p * self.level * 10**8)).transact(
                {
                    "from": self.dep.admin,
                    "gas": 300_000,
                    # Prices land through a base-fee spike too (else the test makes a gap).
                    "maxFeePerGas": 5_000 * 10**9,
                    "maxPriorityFeePerGas": int(tip_gwei * 10**9),
                }
            )
        b = self.mine(base_fee_gwei)
        time.sleep(wait)
        if sync:
            self.synced(b)
        return b

    def synced(self, block: int, timeout: float = 10.0) -> None:
        """Waits until every keeper has processed ``block`` (its sends for it are out): on a
        loaded machine a keeper may need more than ``wait``, and the next block would then be
        mined before its transactions, a delay of the test's making."""
        deadline = time.monotonic() + timeout
        for k in self.keepers:
            while time.monotonic() < deadline:
                try:
                    if int(k.health()[1].get("last_block", -1)) >= block:
                        break
                except OSError:
                    pass
                time.sleep(0.02)

    def quiet(self, blocks: int, base_fee_gwei: float | None = None, wait: float = 0.4) -> int:
        b = 0
        for _ in range(blocks):
            b = self.mine(base_fee_gwei)
            time.sleep(wait)
        return b

    # ------------------------------------------------------------------ keepers

    def keeper(self, name: str, rpc_url: str | None = None, *extra: str) -> KeeperProc:
        key = Account.create()
        rpc(self.w3, "anvil_setBalance", [key.address, hex(10**21)])
        self.dep.cash.functions.mint(key.address, token_units(1_000_000, 6)).transact(
            {"from": self.dep.admin, "gas": 200_000}
        )
        self.mine()
        port = free_port()
        cmd = keeper_command(
            key,
            self.workdir,
            name,
            rpc_url or self.node.url,
            self.workdir / "deployment.json",
            port,
            password="pw",
            extra=(
                "--poll-interval",
                "0.05",
                "--loss-budget-usd-per-hour",
                "1000000",
                "--log-level",
                "info",
                *extra,
            ),
        )
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        k = KeeperProc(proc, port, key.address)
        self.keepers.append(k)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"keeper exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if k.health()[1].get("last_block", -1) >= 0:
                    return k
            except OSError:
                pass
            self.mine()  # the keeper approves cash at start and waits for the receipt
            time.sleep(0.2)
        raise AssertionError("keeper did not start")

    # ------------------------------------------------------------------ measurement

    def measure(self, end: int | None = None) -> dict[str, Any]:
        """Figures from the final chain: missed, duplicates, blocks to liquidation (episodes
        starting outside ``outage_blocks``), bad debt by cause, liquidations per liquidator."""
        w3, core = self.w3, self.dep.core
        end = int(w3.eth.block_number) if end is None else end
        keys = [(t, 0) for t in self.traders]
        liq = {
            k: [
                bool(core.functions.isLiquidatable(*k).call(block_identifier=b))
                for b in range(self.start, end + 1)
            ]
            for k in keys
        }
        events = list(core.events.Liquidated().get_logs(from_block=self.start, to_block=end))
        by_acct: dict[tuple[str, int], list[int]] = {}
        per_block: dict[tuple[str, int, int], int] = {}
        by_liquidator: dict[str, int] = {}
        for e in events:
            k = (e["args"]["owner"], int(e["args"]["subaccount"]))
            by_acct.setdefault(k, []).append(int(e["blockNumber"]))
            pk = (*k, int(e["blockNumber"]))
            per_block[pk] = per_block.get(pk, 0) + 1
            who = e["args"]["liquidator"]
            by_liquidator[who] = by_liquidator.get(who, 0) + 1
        lags: list[int] = []
        episodes: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for k in keys:
            prev = False
            for i, now in enumerate(liq[k]):
                b = self.start + i
                if now and not prev:
                    eq = int(core.functions.accountMargin(*k).call(block_identifier=b)[0])
                    episodes.setdefault(k, []).append((b, eq))
                    later = [x for x in by_acct.get(k, []) if x > b]
                    if b not in self.outage_blocks:
                        # Not liquidated by the end counts as the longest possible lag.
                        lags.append(min(later) - b if later else end + 1 - b)
                prev = now
        bad = {"solvent_when_liquidatable": 0.0, "underwater_when_liquidatable": 0.0}
        for e in core.events.BadDebtSettled().get_logs(from_block=self.start, to_block=end):
            k = (e["args"]["owner"], int(e["args"]["subaccount"]))
            # The episode the bad debt closed: equity when it became liquidatable that time.
            eps = [eq for b, eq in episodes.get(k, []) if b <= int(e["blockNumber"])]
            cause = (
                "solvent_when_liquidatable"
                if eps and eps[-1] >= 0
                else "underwater_when_liquidatable"
            )
            bad[cause] += int(e["args"]["deficit"]) / WAD
        lags.sort()
        return {
            "liquidatable_accounts": len(episodes),
            "liquidations": len(events),
            "missed": sum(1 for k in keys if liq[k][-1]),
            "duplicates": sum(1 for v in per_block.values() if v > 1),
            "episodes": len(lags),
            "p99_blocks": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None,
            "max_blocks": lags[-1] if lags else None,
            "bad_debt": bad,
            "by_liquidator": by_liquidator,
        }


def open_book(dep: Deployment, traders: list[str]) -> None:
    core = dep.core
    for i, t in enumerate(traders):
        dep.send(dep.cash.functions.mint(t, token_units(100_000, 6)), t)
        dep.send(dep.cash.functions.approve(core.address, 2**256 - 1), t)
        deposit = 2_000 + 150 * i
        dep.send(core.functions.deposit(0, 0, token_units(deposit, 6)), t)
        leverage = 3.0 + 3.5 * i / (len(traders) - 1)
        market = 0
        size = deposit * leverage / PRICES[market + 1]
        dep.send(core.functions.trade(0, market, wad(round(size, 6)), 0), t)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    node = LocalNode(accounts=N_TRADERS + 2)
    w3 = node.start()
    c: Chain | None = None
    try:
        dep = deploy_local(w3)
        traders = [str(a) for a in w3.eth.accounts[2 : 2 + N_TRADERS]]
        open_book(dep, traders)
        dep.save(tmp_path / "deployment.json")
        rpc(w3, "evm_setAutomine", [False])
        c = Chain(node, w3, dep, tmp_path, traders)
        c.start = int(w3.eth.block_number)
        yield c
    finally:
        if c is not None:
            for k in c.keepers:
                if k.proc.poll() is None:
                    k.proc.kill()
                    k.proc.communicate(timeout=10)
        node.stop()


def report(name: str, figures: dict[str, Any], keepers: list[dict[str, Any]]) -> None:
    """Each test prints its figures (pytest -s shows them; the suite's summary collects them)."""
    line = {"fault": name, **figures, "keepers": keepers}
    print("FAULT " + json.dumps(line, default=str))
    out = os.environ.get("PLIMSOLL_FAULT_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(line, default=str) + "\n")


def assert_sound(
    c: Chain,
    name: str,
    summaries: list[dict[str, Any]],
    metrics: list[dict[str, float]],
    max_p99: int = 2,
    extra: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The suite's common bar: 0 missed, no duplicate in one block, p99 <= 2 blocks outside
    the outage, each keeper's count equal to its liquidations on the final chain."""
    fig = c.measure()
    report(name, fig, summaries)
    assert fig["liquidatable_accounts"] >= 4, fig
    assert fig["missed"] == 0, fig
    assert fig["duplicates"] == 0, fig
    assert fig["p99_blocks"] is not None and fig["p99_blocks"] <= max_p99, fig
    for k, s, m in zip(c.keepers, summaries, metrics, strict=True):
        on_chain = fig["by_liquidator"].get(Web3.to_checksum_address(k.address), 0)
        assert s["succeeded"] == on_chain, (s, fig)
        assert m["plimsoll_liquidations_on_chain"] == on_chain, (m, fig)
        # The event-sourced book never drifted from the lens (reconciled on start, after each
        # reorg and in rotating slices).
        assert m["plimsoll_reconciliation_mismatches_total"] == 0, m
        assert m["plimsoll_reconciled_accounts_total"] > 0, m
    if extra:
        extra(fig)
    return fig
