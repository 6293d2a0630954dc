"""The risk keeper as an operator runs it: keystore signing, the risk role checked at start, a
poke only when a feed's grade changes, posts after the warm-up, /metrics and /health, --config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from keepers.risk import RiskConfig, RiskKeeper, main
from plimsoll.chain import LocalNode, free_port
from plimsoll.deploy import Deployment, deploy_local
from plimsoll.keys import write_keystore
from plimsoll.units import WAD
from tests.keeper.conftest import rpc

ROOT = Path(__file__).resolve().parents[2]
PRICES = {1: 2000.0, 2: 60000.0, 3: 150.0}


@dataclass
class Chain:
    w3: Web3
    url: str
    dep: Deployment
    path: Path
    key: LocalAccount
    keystore: Path
    password_file: Path


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    node = LocalNode(accounts=4)
    w3 = node.start()
    try:
        dep = deploy_local(w3)
        path = tmp_path / "deployment.json"
        dep.save(path)
        key: LocalAccount = Account.create()
        rpc(w3, "anvil_setBalance", [key.address, hex(10**21)])
        dep.admin_send(dep.core.functions.setRiskKeeper(key.address))
        pw = tmp_path / "pw.txt"
        pw.write_text("pw\n")
        os.chmod(pw, 0o600)
        ks = write_keystore(key, tmp_path / "risk.json", "pw")
        yield Chain(w3, node.url, dep, path, key, ks, pw)
    finally:
        node.stop()


def sent_by(w3: Web3, who: str) -> int:
    return int(w3.eth.get_transaction_count(who))


def test_pokes_only_when_a_grade_changes(chain: Chain) -> None:
    w3, dep = chain.w3, chain.dep
    keeper = RiskKeeper(
        RiskConfig(rpc=chain.url, deployment=chain.path, sample_seconds=3600.0), w3, chain.key
    )
    assert keeper.role() == "riskKeeper"
    for _ in range(5):  # every grade OK and recorded OK: no transaction at all
        keeper.step()
        rpc(w3, "evm_mine", [])
    assert sent_by(w3, chain.key.address) == 0 and keeper.pokes == []
    # The SOL feed answers 0: INVALID. One poke, then nothing while it stays so.
    dep.feeds[3].functions.updateAnswer(0).transact({"from": dep.admin, "gas": 300_000})
    start = w3.eth.block_number
    for _ in range(4):
        keeper.step()
        rpc(w3, "evm_mine", [])
    assert sent_by(w3, chain.key.address) == 1
    assert keeper.pokes == [{"feed": 3, "from": 0, "to": 4}]
    (ev,) = keeper.oracle.events.FeedStatusChanged().get_logs(from_block=start)
    assert (int(ev["args"]["feedId"]), int(ev["args"]["status"])) == (3, 4)
    # Back to a good price: one more poke records OK again.
    dep.set_price(3, 150)
    for _ in range(3):
        keeper.step()
        rpc(w3, "evm_mine", [])
    assert sent_by(w3, chain.key.address) == 2 and keeper.pokes[-1] == {
        "feed": 3,
        "from": 4,
        "to": 0,
    }
    assert keeper.metrics.pokes._value.get() == 2


def test_posts_a_scalar_signed_by_the_keystore_key_after_the_warmup(chain: Chain) -> None:
    w3, dep = chain.w3, chain.dep
    cfg = RiskConfig(
        rpc=chain.url, deployment=chain.path, sample_seconds=3600.0, seed_returns=3, poke=False
    )
    keeper = RiskKeeper(cfg, w3, chain.key)
    keeper.markets = [m for m in keeper.markets if m.market_id == 0]  # ETH-PERP
    assert keeper.warmup_seconds() == 3 * 3600.0
    # Hourly moves of +-4%: about 190% a year, far above the 50% base: the scalar rises.
    swing = [1.0, 1.04, 0.99, 1.03, 0.98, 1.02]
    posted = []
    for i, f in enumerate(swing):
        for feed, p in PRICES.items():
            dep.set_price(feed, p * f)
        posted += keeper.step()
        if i < 3:
            assert posted == [], "nothing before seed_returns returns"
        rpc(w3, "evm_increaseTime", [3600])
        rpc(w3, "evm_mine", [])
    assert posted, keeper.markets[0].history
    scalar = int(dep.core.functions.volScalar(0).call()[1])
    assert scalar == int(posted[-1]["scalar"] * WAD) and scalar > WAD
    # Signed by the keystore key (not an unlocked account), through its nonce manager.
    assert sent_by(w3, chain.key.address) == len(posted)


def test_address_without_the_risk_role_is_refused_at_start(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other: LocalAccount = Account.create()
    ks = write_keystore(other, tmp_path / "other.json", "pw")
    rc = main(
        [
            "--rpc",
            chain.url,
            "--deployment",
            str(chain.path),
            "--keystore",
            str(ks),
            "--password-file",
            str(chain.password_file),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith(f"risk keeper: {other.address} does not hold the risk role")
    assert "setRiskKeeper" in err[-1]


def test_process_with_config_says_role_and_warmup_serves_health_and_metrics(
    chain: Chain, tmp_path: Path
) -> None:
    port = free_port()
    cfg = tmp_path / "risk.toml"
    cfg.write_text(
        f'rpc = "{chain.url}"\ndeployment = "{chain.path}"\nkeystore = "{chain.keystore}"\n'
        f'password-file = "{chain.password_file}"\nport = {port}\nsample-seconds = 60.0\n'
        "seed-returns = 10\npoll-interval = 0.1\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "keepers.risk", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health: dict[str, object] = {}
        while time.monotonic() < deadline and not health.get("ok"):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        assert health.get("ok"), health
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            metrics = r.read().decode()
        assert "plimsoll_oracle_pokes_total 0.0" in metrics
        assert "plimsoll_vol_scalar_updates_total 0.0" in metrics
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    (started,) = [x for x in lines if x["msg"] == "risk keeper started"]
    assert started["role"] == "riskKeeper" and started["address"] == chain.key.address
    assert started["first_post_after_s"] == 600.0
    assert any(x["msg"].startswith("first scalar post possible after 600 s") for x in lines)
    sampled = [x for x in lines if x["msg"] == "sampled"]
    assert {x["market"] for x in sampled} >= {"ETH-PERP", "BTC-PERP"}
    assert all("price_usd" in x and "warmup_left" in x for x in sampled)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["pokes"] == [] and summary["posted"] == []
