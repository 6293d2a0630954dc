"""The keeper's gates and routes for sending: the kill switch, the circuit breaker and a private
relay (a local fake relay endpoint in front of anvil)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from eth_utils import keccak

from tests.keeper.conftest import Running, Setup
from tests.keeper.test_liquidator import (
    crash_in_one_block,
    interval_mining,
    liquidatable,
    liquidations,
    wait_until,
)


class FakeRelay:
    """A Flashbots-style private relay: receives ``eth_sendRawTransaction`` (single or in a
    batch) and forwards it to the node, or refuses it (``refuse``); records what it got."""

    def __init__(self, target: str, refuse: bool = False) -> None:
        outer = self
        self.refuse = refuse
        self.raw: list[str] = []
        self.other: list[str] = []
        self.lock = threading.Lock()

        def answer(req: dict[str, Any]) -> dict[str, Any]:
            if req.get("method") != "eth_sendRawTransaction":
                with outer.lock:
                    outer.other.append(str(req.get("method")))
            elif outer.refuse:
                with outer.lock:
                    outer.raw.append(req["params"][0])
                return {
                    "jsonrpc": "2.0",
                    "id": req.get("id"),
                    "error": {"code": -32000, "message": "relay: bundle rejected"},
                }
            else:
                with outer.lock:
                    outer.raw.append(req["params"][0])
            r = requests.post(target, json=req, timeout=30)
            return dict(r.json())

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                out = [answer(b) for b in body] if isinstance(body, list) else answer(body)
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def hashes(self) -> set[str]:
        with self.lock:
            return {"0x" + keccak(hexstr=r).hex() for r in self.raw}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_kill_switch_stops_sending_but_not_watching(setup: Setup, tmp_path: Path) -> None:
    switch = tmp_path / "STOP"
    switch.write_text("maintenance\n")
    keeper = setup.keeper(tmp_path, setup.keeper_key(), "killed", kill_switch_file=switch)
    interval_mining(setup)
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= 0)
        crash_in_one_block(setup)
        n = len(liquidatable(setup))
        assert n >= 5
        b0 = keeper.last_block
        wait_until(lambda: keeper.last_block >= b0 + 3)  # still watching, block after block
        assert keeper.stats.sent == 0 and keeper.sender is not None
        assert not keeper.sender.pending and len(liquidatable(setup)) == n
        assert keeper.metrics.liquidatable._value.get() == n
        h = keeper.health()
        assert not h["ok"] and any("kill switch" in p for p in h["problems"]), h
        switch.unlink()  # back to sending
        start = setup.w3.eth.block_number
        wait_until(lambda: not liquidatable(setup))
    assert keeper.stats.succeeded >= n and len(liquidations(setup, start)) >= n
    assert keeper.health()["sending"] is True


def test_circuit_breaker_stops_sending_after_consecutive_failures_and_says_why(
    setup: Setup, tmp_path: Path
) -> None:
    relay = FakeRelay(setup.node.url, refuse=True)
    try:
        keeper = setup.keeper(
            tmp_path,
            setup.keeper_key(),
            "breaker",
            private_rpc=relay.url,
            breaker_failures=2,
            breaker_reset_seconds=600.0,
            collateral_liquidation=False,  # no approval tx at start (the relay refuses all)
            recovery_purchases=False,
        )
        interval_mining(setup)
        with Running(keeper):
            wait_until(lambda: keeper.last_block >= 0)
            crash_in_one_block(setup)
            wait_until(lambda: keeper.stats.breaker_trips == 1)
            tried = len(relay.raw)
            b0 = keeper.last_block
            wait_until(lambda: keeper.last_block >= b0 + 3)
            # Open: nothing more reaches the relay, the keeper keeps watching.
            assert len(relay.raw) == tried
            h = keeper.health()
        assert keeper.stats.sent == 0 and keeper.stats.refused == tried
        assert keeper.metrics.breaker_open._value.get() == 1
        assert not h["ok"] and h["sending"] is False
        (why,) = [p for p in h["problems"] if "circuit breaker open" in p]
        assert "2 failed transactions in a row" in why and "relay: bundle rejected" in why
        assert liquidatable(setup), "nothing was liquidated"
    finally:
        relay.close()


def test_private_relay_receives_every_signed_tx_and_none_goes_to_the_node(
    setup: Setup, tmp_path: Path
) -> None:
    relay = FakeRelay(setup.node.url)
    try:
        keeper = setup.keeper(tmp_path, setup.keeper_key(), "private", private_rpc=relay.url)
        interval_mining(setup)
        with Running(keeper):
            wait_until(lambda: keeper.last_block >= 0)
            start = crash_in_one_block(setup)
            wait_until(lambda: not liquidatable(setup))
            time.sleep(1.5)
        mined = {e["transactionHash"].to_0x_hex() for e in liquidations(setup, start)}
        assert len(mined) >= 5 and keeper.stats.succeeded == len(mined)
        # Every liquidation mined came in through the relay, and the relay got nothing but
        # signed transactions (reads go to --rpc).
        assert mined <= relay.hashes()
        assert relay.other == []
        assert len(relay.raw) == keeper.stats.sent + 1 + int(
            keeper.metrics.replaced._value.get()
        )  # + the cash approval at start
    finally:
        relay.close()
