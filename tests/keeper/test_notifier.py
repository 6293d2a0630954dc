"""The margin-call notifier and the SDK's margin_call: one notice per episode, right figures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from keepers.notifier import MarginCallNotifier, NotifierConfig, build_config
from keepers.ops import ConfigError
from plimsoll.chain import LocalNode, free_port
from plimsoll.client import PlimsollClient
from plimsoll.deploy import Deployment, deploy_local
from plimsoll.units import token_units, wad

ETH = 0


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Web3, Deployment, Path]]:
    with LocalNode(accounts=6) as w3:
        dep = deploy_local(w3)
        path = tmp_path_factory.mktemp("notifier") / "deployment.json"
        dep.save(path)
        for who, cash, size in ((2, 10_000, 45), (3, 10_000, 5)):  # A: ~9x, B: 1x
            addr = str(list(w3.eth.accounts)[who])
            amount = token_units(cash, 6)
            dep.send(dep.cash.functions.mint(addr, amount), addr)
            dep.send(dep.cash.functions.approve(dep.core.address, 2**256 - 1), addr)
            dep.send(dep.core.functions.deposit(0, 0, amount), addr)
            dep.send(dep.core.functions.trade(0, ETH, wad(size), 0), addr)
        yield w3, dep, path


def notifier_for(
    w3: Web3, path: Path, tmp: Path, webhook: str | None = None, retry_base: float = 1.0
) -> MarginCallNotifier:
    cfg = NotifierConfig(
        rpc="",
        deployment=path,
        db=tmp / "n.sqlite",
        episodes=tmp / "episodes.json",
        webhook=webhook,
        outbox=tmp / "outbox.sqlite",
        retry_base=retry_base,
    )
    out = open(tmp / "notices.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    return MarginCallNotifier(cfg, w3, out)


def test_one_notice_per_episode_with_contract_figures(chain, tmp_path):
    w3, dep, path = chain
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{server.server_address[1]}/"
    Hook.received.clear()
    alice = str(list(w3.eth.accounts)[2])
    n = notifier_for(w3, path, tmp_path, hook_url)
    assert n.on_block(w3.eth.block_number) == []  # both above IM

    dep.set_price(1, 1_960)  # alice: MM <= equity < IM
    notices = n.on_block(w3.eth.block_number)
    assert [(x.owner, x.subaccount) for x in notices] == [(alice, 0)]
    got = notices[0]
    equity, im, mm = dep.core.functions.accountMargin(alice, 0).call()
    assert (got.equity, got.initial_margin, got.maintenance_margin) == (equity, im, mm)
    assert got.shortfall == im - equity > 0
    assert got.move_to_liquidation is not None and -0.1 < got.move_to_liquidation < 0
    # The move it names is where the contract starts to liquidate (within 0.1%).
    p_liq = got.liquidation_prices[ETH]
    dep.set_price(1, p_liq * 1.001)
    assert dep.core.functions.isLiquidatable(alice, 0).call() is False
    dep.set_price(1, p_liq * 0.999)
    assert dep.core.functions.isLiquidatable(alice, 0).call() is True
    dep.set_price(1, 1_960)

    assert n.on_block(w3.eth.block_number) == []  # same episode: no second notice
    dep.set_price(1, 2_000)
    assert n.on_block(w3.eth.block_number) == []  # back above IM: the episode ends
    dep.set_price(1, 1_955)
    again = n.on_block(w3.eth.block_number)
    assert [(x.owner, x.subaccount) for x in again] == [(alice, 0)]  # a new episode

    # A restart in the middle of an episode does not notify twice.
    n2 = notifier_for(w3, path, tmp_path)
    assert n2.on_block(w3.eth.block_number) == []
    lines = (tmp_path / "notices.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["event"] == "margin_call"
    # Markets by symbol, not id.
    assert set(json.loads(lines[0])["liquidation_prices"]) == {"ETH-PERP"}
    assert n.deliver_due() == 2 and n.deliver_due() == 0
    assert [h["owner"] for h in Hook.received] == [alice, alice]
    assert [h["id"] for h in Hook.received] == [json.loads(x)["id"] for x in lines]
    server.shutdown()

    # The SDK says the same as the notifier.
    client = PlimsollClient.from_file(w3, path)
    sdk = client.margin_call(alice, 0)
    assert sdk is not None and sdk.to_json() == again[0].to_json() | {
        "id": sdk.id,
        "block": sdk.block,
        "timestamp": sdk.timestamp,
    }
    assert client.margin_call(str(list(w3.eth.accounts)[3]), 0) is None
    dep.set_price(1, 2_000)


def test_liquidatable_account_is_not_a_margin_call(chain, tmp_path):
    w3, dep, path = chain
    alice = str(list(w3.eth.accounts)[2])
    n = notifier_for(w3, path, tmp_path)
    dep.set_price(1, 1_800)
    assert dep.core.functions.isLiquidatable(alice, 0).call() is True
    assert n.on_block(w3.eth.block_number) == []
    dep.set_price(1, 2_000)


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="--rpc is required"):
        build_config(["--deployment", str(tmp_path / "d.json")])
    with pytest.raises(ConfigError, match="unknown config keys: bogus"):
        cfg = tmp_path / "c.toml"
        cfg.write_text('rpc = "http://x"\ndeployment = "d.json"\nbogus = 1\n')
        build_config(["--config", str(cfg)])


class FlakyHook(BaseHTTPRequestHandler):
    """A webhook that answers 503 to the first ``fail`` POSTs, then 204."""

    fail = 0
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FlakyHook.calls.append(body)
        ok = len(FlakyHook.calls) > FlakyHook.fail
        self.send_response(204 if ok else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _serve(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_failed_webhook_is_retried_with_backoff_until_delivered(chain, tmp_path):
    w3, dep, path = chain
    FlakyHook.fail, FlakyHook.calls = 2, []
    server = _serve(FlakyHook)
    now = [1_000.0]
    try:
        n = notifier_for(
            w3, path, tmp_path, f"http://127.0.0.1:{server.server_address[1]}/", retry_base=2.0
        )
        n.clock = lambda: now[0]
        dep.set_price(1, 1_960)
        (notice,) = n.on_block(w3.eth.block_number)
        assert n.deliver_due() == 0 and n.outbox is not None  # 503: kept, retry in 2 s
        assert n.outbox.pending()[0] == 1 and len(FlakyHook.calls) == 1
        now[0] += 1.9
        assert n.deliver_due() == 0 and len(FlakyHook.calls) == 1  # not due yet
        now[0] += 0.2
        assert n.deliver_due() == 0 and len(FlakyHook.calls) == 2  # 503 again: retry in 4 s
        now[0] += 3.9
        assert n.deliver_due() == 0 and len(FlakyHook.calls) == 2
        now[0] += 0.2
        assert n.deliver_due() == 1 and n.outbox.pending() == (0, None)
        assert [c["id"] for c in FlakyHook.calls] == [notice.id] * 3
        assert n.summary()["webhook_failures"] == 2 and n.summary()["webhook_delivered"] == 1
    finally:
        server.shutdown()
        server.server_close()
        dep.set_price(1, 2_000)


def test_notice_waiting_in_the_outbox_survives_a_restart(chain, tmp_path):
    """The webhook is down when the notice is emitted and the notifier stops; the next run
    (a new process would do the same: the outbox is on disk) delivers it once."""
    w3, dep, path = chain
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    try:
        n = notifier_for(w3, path, tmp_path, url, retry_base=0.01)
        dep.set_price(1, 1_960)
        (notice,) = n.on_block(w3.eth.block_number)
        assert n.deliver_due() == 0  # connection refused
        assert n.summary()["webhook_failures"] == 1
        n.outbox.close()  # type: ignore[union-attr]
        del n

        FlakyHook.fail, FlakyHook.calls = 0, []
        server = _serve(FlakyHook, port)
        try:
            again = notifier_for(w3, path, tmp_path, url, retry_base=0.01)
            assert again.on_block(w3.eth.block_number) == []  # same episode: no new notice
            assert again.health()["outbox_pending"] == 1
            threading.Event().wait(0.05)
            assert again.deliver_due() == 1
            assert [c["id"] for c in FlakyHook.calls] == [notice.id]
            assert again.health()["outbox_pending"] == 0
        finally:
            server.shutdown()
            server.server_close()
    finally:
        dep.set_price(1, 2_000)
