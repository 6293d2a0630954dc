"""The liquidation keeper against a real anvil: speed, races, reorgs, shards, failures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from keepers.config import keeper_command
from keepers.ops import KeeperMetrics, OpsServer, in_shard
from plimsoll.chain import free_port
from plimsoll.sync import AccountIndexer
from plimsoll.units import WAD
from tests.keeper.conftest import Running, Setup, rpc

ROOT = Path(__file__).resolve().parents[2]


def wait_until(pred: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def interval_mining(s: Setup) -> None:
    rpc(s.w3, "evm_setAutomine", [False])
    rpc(s.w3, "evm_setIntervalMining", [1])


def crash_in_one_block(s: Setup, factor: float = 0.85) -> int:
    """Post every price in the same block; returns that block."""
    hashes = []
    for feed_id, p in ((1, 2000), (2, 60000), (3, 150)):
        answer = int(p * factor * 10**8)
        hashes.append(
            s.dep.feeds[feed_id]
            .functions.updateAnswer(answer)
            .transact({"from": s.dep.admin, "gas": 300_000})
        )
    blocks = {s.w3.eth.wait_for_transaction_receipt(h, timeout=30)["blockNumber"] for h in hashes}
    return max(blocks)


def liquidatable(s: Setup) -> list[str]:
    return [t for t in s.traders if s.dep.core.functions.isLiquidatable(t, 0).call()]


def liquidations(s: Setup, from_block: int) -> list[Any]:
    return list(s.dep.core.events.Liquidated().get_logs(from_block=from_block))


def test_keeper_liquidates_every_crashed_account_within_two_blocks(
    setup: Setup, tmp_path: Path
) -> None:
    keeper = setup.keeper(tmp_path, setup.keeper_key(), "solo")
    interval_mining(setup)
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= 0)
        crash_block = crash_in_one_block(setup)
        assert len(liquidatable(setup)) >= 5
        wait_until(lambda: not liquidatable(setup))
    events = liquidations(setup, crash_block)
    assert {e["args"]["owner"] for e in events} >= set(setup.traders[:5])
    assert max(e["blockNumber"] for e in events) - crash_block <= 2
    assert keeper.stats.reverted == 0 and keeper.stats.rpc_errors == 0
    assert keeper.stats.succeeded == len(events)


def test_two_keepers_liquidate_each_account_once_and_count_lost_races(
    setup: Setup, tmp_path: Path
) -> None:
    a = setup.keeper(tmp_path, setup.keeper_key(), "a")
    b = setup.keeper(tmp_path, setup.keeper_key(), "b")
    interval_mining(setup)
    with Running(a), Running(b):
        wait_until(lambda: a.last_block >= 0 and b.last_block >= 0)
        crash_block = crash_in_one_block(setup)
        targets = liquidatable(setup)
        wait_until(lambda: not liquidatable(setup))
        time.sleep(2.5)  # let both see the outcome of everything they sent
    events = liquidations(setup, crash_block)
    # Every account was liquidated once: the loser's transactions reverted or were skipped.
    assert sorted(e["args"]["owner"] for e in events) == sorted(targets)
    assert a.stats.succeeded + b.stats.succeeded == len(events)
    lost = a.stats.reverted + b.stats.reverted + a.stats.race_lost + b.stats.race_lost
    assert a.stats.sent + b.stats.sent == len(events) + a.stats.reverted + b.stats.reverted
    # No retry storm: at most one attempt per keeper and account.
    assert a.stats.sent <= len(targets) and b.stats.sent <= len(targets)
    # Both saw the same blocks: the race was real, and the loser counted it.
    assert lost >= 1, (a.summary(), b.summary())
    assert a.stats.rpc_errors == 0 and b.stats.rpc_errors == 0
    assert not a.inflight and not b.inflight


def test_reorg_of_three_blocks_leaves_the_keeper_view_equal_to_the_chain(
    setup: Setup, tmp_path: Path
) -> None:
    keeper = setup.keeper(tmp_path, setup.keeper_key(), "reorg")
    w3, core = setup.w3, setup.dep.core
    alice, bob = str(w3.eth.accounts[10]), str(w3.eth.accounts[11])
    for who in (alice, bob):
        setup.dep.send(setup.dep.cash.functions.mint(who, 10**12), who)
        setup.dep.send(setup.dep.cash.functions.approve(core.address, 2**256 - 1), who)
    with Running(keeper):
        for sub in (40, 41, 42):  # three blocks the reorg will replace
            setup.dep.send(core.functions.deposit(sub, 0, 10**6), alice)
        wait_until(lambda: (alice, 42) in {tuple(x) for x in keeper.indexer.accounts()})
        data = core.functions.deposit(77, 0, 10**6)._encode_transaction_data()
        resp = rpc(
            w3,
            "anvil_reorg",
            [3, [[{"from": bob, "to": core.address, "data": data, "gas": 300_000}, 1]]],
        )
        assert "error" not in resp, resp
        head = w3.eth.get_block("latest")
        wait_until(
            lambda: (
                keeper.last_block == head["number"]
                and keeper.indexer.last_hash == head["hash"].to_0x_hex()
            )
        )
        view = {tuple(x) for x in keeper.indexer.accounts()}
    fresh = AccountIndexer(w3, core.address, ":memory:", setup.dep.block)
    fresh.sync()
    assert view == {tuple(x) for x in fresh.accounts()}
    assert (bob, 77) in view and (alice, 40) not in view


def test_shards_split_accounts_without_overlap(setup: Setup) -> None:
    accounts = [(t, s) for t in setup.traders for s in range(8)]
    shards = [{a for a in accounts if in_shard(a[0], a[1], (i, 3))} for i in range(3)]
    assert set().union(*shards) == set(accounts)
    assert sum(len(x) for x in shards) == len(accounts)
    assert all(shards)


def test_dry_run_sends_nothing(setup: Setup, tmp_path: Path) -> None:
    keeper = setup.keeper(tmp_path, None, "dry", dry_run=True)
    crash_in_one_block(setup)
    before = liquidatable(setup)
    keeper.on_block(setup.w3.eth.block_number)
    assert keeper.stats.sent == 0 and liquidatable(setup) == before and before


class FlakyProxy:
    """An HTTP JSON-RPC proxy in front of anvil that can be switched off and on."""

    def __init__(self, target: str) -> None:
        outer = self
        self.up = True

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not outer.up:
                    self.send_response(502)
                    self.end_headers()
                    return
                r = requests.post(
                    target, data=body, headers={"Content-Type": "application/json"}, timeout=30
                )
                self.send_response(r.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_keeper_backs_off_while_rpc_is_down_and_recovers(setup: Setup, tmp_path: Path) -> None:
    proxy = FlakyProxy(setup.node.url)
    try:
        keeper = setup.keeper(tmp_path, setup.keeper_key(), "flaky", url=proxy.url)
        with Running(keeper):
            wait_until(lambda: keeper.last_block >= 0)
            proxy.up = False
            wait_until(lambda: keeper.stats.rpc_errors >= 2, timeout=30)
            first = keeper.stats.rpc_errors
            time.sleep(3.0)
            # Exponential back-off (0.5 s, 1 s, 2 s, ...), not a hot loop.
            assert keeper.stats.rpc_errors - first <= 3
            proxy.up = True
            crash_in_one_block(setup)
            wait_until(lambda: not liquidatable(setup))
        assert keeper.stats.succeeded >= 5
    finally:
        proxy.close()


def test_metrics_and_health_endpoint() -> None:
    m = KeeperMetrics()
    healthy = {"ok": True, "last_block": 7}
    server = OpsServer(0, m, lambda: healthy).start()
    try:
        m.sent.inc(3)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
            text = r.read().decode()
        assert "plimsoll_liquidations_sent_total 3.0" in text
        for name in (
            "plimsoll_head_lag_blocks",
            "plimsoll_accounts_tracked",
            "plimsoll_accounts_liquidatable",
            "plimsoll_liquidations_reverted_total",
            "plimsoll_tx_replaced_total",
            "plimsoll_gas_spent_wei_total",
            "plimsoll_keeper_balance_wei",
            "plimsoll_rpc_errors_total",
        ):
            assert name in text
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health") as r:
            assert json.loads(r.read()) == healthy
        healthy["ok"] = False
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health")
            raise AssertionError("unhealthy must answer 503")
        except urllib.error.HTTPError as e:
            assert e.code == 503
    finally:
        server.stop()


def test_keeper_process_stops_cleanly_on_sigterm(setup: Setup, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        keeper_command(
            setup.keeper_key(), tmp_path, "k", setup.node.url, setup.deployment_file, port
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    return bool(json.loads(r.read())["ok"])
            except OSError:
                return False

        wait_until(healthy, timeout=60)
        crash_in_one_block(setup)
        wait_until(lambda: not liquidatable(setup))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["succeeded"] >= 5
    logs = [json.loads(line) for line in err.strip().splitlines() if line.startswith("{")]
    assert any(rec["msg"] == "liquidated" for rec in logs)
    assert all({"ts", "level", "msg"} <= rec.keys() for rec in logs)


def test_keeper_refuses_to_start_without_a_key(setup: Setup, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "keepers.liquidator",
            "--rpc",
            setup.node.url,
            "--deployment",
            str(setup.deployment_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("keeper: --keystore is required")


def _equity(s: Setup, who: str) -> float:
    return int(s.dep.core.functions.accountMargin(who, 0).call()[0]) / WAD
