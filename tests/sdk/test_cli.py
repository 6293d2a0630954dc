"""The CLI as a user runs it: one JSON line on success, one clear line and exit != 0 on error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plimsoll.chain import LocalNode
from plimsoll.deploy import Deployment

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plimsoll.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture
def deployment_file(dep: Deployment, tmp_path: Path) -> Path:
    path = tmp_path / "deployment.json"
    dep.save(path)
    return path


def test_deposit_trade_and_account_round_trip(
    node: LocalNode, dep: Deployment, deployment_file: Path, accounts: list[str]
) -> None:
    trader = accounts[5]
    dep.send(dep.cash.functions.mint(trader, 10_000 * 10**6), trader)
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]
    r = run("deposit", "USDC", "5000", "--from", trader, *common)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["gas"] > 0
    r = run("trade", "ETH-PERP", "2.5", "--from", trader, *common)
    assert r.returncode == 0, r.stderr
    assert "Traded" in json.loads(r.stdout.strip().splitlines()[-1])["events"]
    r = run("account", trader, *common)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["positions"][0]["market"] == "ETH-PERP"
    assert status["positions"][0]["size"] == 2.5
    assert status["equity"] > status["initial_margin"] > status["maintenance_margin"] > 0


@pytest.mark.parametrize(
    ("args", "needle", "code"),
    [
        (["trade", "ETH-PERP", "1000"], "InsufficientMargin", 3),
        (["account", "0x1234"], "not an address", 1),
        (["account", "0x000000000000000000000000000000000000dEaD"], "unknown account", 1),
        (["deposit", "DOGE", "1"], "unknown asset", 1),
        (["trade", "XRP-PERP", "1"], "unknown market", 1),
        (["deposit", "USDC", "-5"], "amount must be positive", 1),
        (["withdraw", "USDC", "1"], "InsufficientBalance", 3),
    ],
)
def test_bad_input_prints_one_line_and_fails(
    node: LocalNode,
    dep: Deployment,
    deployment_file: Path,
    accounts: list[str],
    args: list[str],
    needle: str,
    code: int,
) -> None:
    trader = accounts[6]
    extra = [] if args[0] == "account" else ["--from", trader]
    r = run(*args, "--rpc", node.url, "--deployment", str(deployment_file), *extra)
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_unreachable_rpc_is_one_line(deployment_file: Path) -> None:
    r = run(
        "account",
        "0x000000000000000000000000000000000000dEaD",
        "--rpc",
        "http://127.0.0.1:9",
        "--deployment",
        str(deployment_file),
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "plimsoll: cannot reach RPC http://127.0.0.1:9: ConnectionError"
    ]


def test_sync_indexes_every_account_and_reports_margin(
    node: LocalNode, dep: Deployment, deployment_file: Path, accounts: list[str], tmp_path: Path
) -> None:
    for i, trader in enumerate(accounts[5:8]):
        dep.send(dep.cash.functions.mint(trader, 10_000 * 10**6), trader)
        dep.send(dep.cash.functions.approve(dep.core.address, 2**256 - 1), trader)
        dep.send(dep.core.functions.deposit(i, 0, 5_000 * 10**6), trader)
    r = run(
        "sync",
        "--rpc",
        node.url,
        "--deployment",
        str(deployment_file),
        "--db",
        str(tmp_path / "ix.sqlite"),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["accounts"] >= 3 and out["liquidatable"] == 0
    assert "index" in r.stderr  # the progress bar
