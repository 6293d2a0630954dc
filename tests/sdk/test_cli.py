"""The CLI as a user runs it: one JSON line on success, one clear line and exit != 0 on error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    assert status["positions"][0]["size"] == "2.50 ETH"
    assert status["positions"][0]["entry_price"] == "2,000.00 USD"
    usd = {k: float(status[k].removesuffix(" USD").replace(",", "")) for k in _USD_FIELDS}
    assert usd["equity"] > usd["initial_margin"] > usd["maintenance_margin"] > 0
    assert usd["free_collateral"] == pytest.approx(usd["equity"] - usd["initial_margin"], abs=0.02)


_USD_FIELDS = ("equity", "initial_margin", "maintenance_margin", "free_collateral")


def test_every_amount_the_account_command_prints_has_its_unit(
    node: LocalNode, dep: Deployment, deployment_file: Path, accounts: list[str]
) -> None:
    trader = accounts[7]
    common = ["--rpc", node.url, "--deployment", str(deployment_file), "--from", trader]
    assert run("faucet", "WETH", "2", *common).returncode == 0
    assert run("faucet", "USDC", "1000", *common).returncode == 0
    assert run("deposit", "WETH", "1.5", *common).returncode == 0
    assert run("deposit", "USDC", "1000", *common).returncode == 0
    assert run("trade", "ETH", "-3", *common).returncode == 0
    r = run("account", trader, *common[:4])
    out = json.loads(r.stdout)
    assert out["collateral"] == {"WETH": "1.50 WETH"}
    for k in (*_USD_FIELDS, "cash"):
        assert out[k].endswith(" USD"), (k, out[k])
    for k in ("entry_price", "mark_price", "unrealized_pnl", "funding_owed", "liquidation_price"):
        assert out["positions"][0][k].endswith(" USD"), (k, out["positions"][0])
    assert out["positions"][0]["size"] == "-3.00 ETH"


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
        (["withdraw", "USDC", "max"], "holds no USDC", 1),
        (["deposit", "USDC", "100"], "holds 0.00 USDC, deposit needs 100.00 USDC", 1),
        (["deposit", "USDC", "0.0000015"], "more than 6 decimals", 1),
        (["deposit", "USDC", "ten"], "'ten' is not a number", 1),
        (["trade", "ETH-PERP", "1e-30"], "more than 18 decimals", 1),
        (["trade", "ETH-PERP", "1", "--sub", "-1"], "--sub: must be >= 0", 2),
        (["trade", "ETH-PERP", "1", "--sub", "x"], "--sub: not a whole number", 2),
        (["trade", "ETH-PERP"], "the following arguments are required: size", 2),
        (["close", "ETH-PERP"], "no open position in ETH-PERP", 1),
        (["option-trade", "99", "1"], "unknown option series", 1),
        (["frobnicate"], "invalid choice", 2),
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


def test_insufficient_margin_is_a_sentence_with_usdc(
    node: LocalNode, dep: Deployment, deployment_file: Path, accounts: list[str]
) -> None:
    trader = accounts[8]
    common = ["--rpc", node.url, "--deployment", str(deployment_file), "--from", trader]
    assert run("faucet", "USDC", "5000", *common).returncode == 0
    assert run("deposit", "USDC", "5000", *common).returncode == 0
    r = run("trade", "ETH-PERP", "100", *common)
    assert r.returncode == 3
    (line,) = r.stderr.strip().splitlines()
    assert re.fullmatch(
        r"plimsoll: reverted: needs [\d,]+\.\d\d USDC more margin, or a smaller size "
        r"\(equity [\d,]+\.\d\d USD, initial margin [\d,]+\.\d\d USD\) \(InsufficientMargin\)",
        line,
    ), line


def test_keystore_signed_trade_reports_success_once(
    node: LocalNode,
    dep: Deployment,
    deployment_file: Path,
    keystore: tuple[Path, Path],
    key: Any,
) -> None:
    ks, pw = keystore
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]
    signer = ["--keystore", str(ks), "--password-file", str(pw)]
    assert run("faucet", "USDC", "5000", *common, *signer).returncode == 0
    r = run("deposit", "USDC", "5000", *common, *signer)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"][0].startswith("approved exactly 5,000.00 USDC")
    r = run("trade", "ETH-PERP", "1", *common, *signer)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "Traded" in out["events"] and out["tx"].startswith("0x")
    assert dep.core.functions.getPosition(key.address, 0, 0).call()[0] == 10**18


def test_capital_efficiency_bad_png_path_is_one_line() -> None:
    r = run("capital-efficiency", "--png", "x.txt")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "plimsoll: --png needs a file name ending in .png, got x.txt"
    ]
    r = run("capital-efficiency", "--png", "/nonexistent-dir/x.png")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_missing_deployment_file_says_to_deploy(tmp_path: Path) -> None:
    r = run(
        "account",
        "0x000000000000000000000000000000000000dEaD",
        "--deployment",
        str(tmp_path / "none.json"),
    )
    assert r.returncode == 1
    assert "run `plimsoll deploy` first" in r.stderr and len(r.stderr.splitlines()) == 1


def test_keystore_new_writes_an_encrypted_key(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    out = tmp_path / "k.json"
    r = run("keystore", "new", "--out", str(out), "--password-file", str(pw))
    assert r.returncode == 0, r.stderr
    address = json.loads(r.stdout)["address"]
    from plimsoll.keys import load_keystore

    assert load_keystore(out, "secret").address == address
    r = run("keystore", "new", "--out", str(out), "--password-file", str(pw))
    assert r.returncode == 1 and "not overwriting" in r.stderr


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
        "plimsoll: cannot reach RPC http://127.0.0.1:9: ConnectionError (start a chain: "
        "`anvil`, see README)"
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


def test_new_user_path_keystore_gas_tokens_deposit(
    node: LocalNode, dep: Deployment, deployment_file: Path, tmp_path: Path
) -> None:
    """The README's path for a fresh key: keystore, gas from the faucet, test tokens, deposit."""
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    ks = tmp_path / "me.json"
    r = run("keystore", "new", "--out", str(ks), "--password-file", str(pw))
    me = json.loads(r.stdout)["address"]
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]
    signer = ["--keystore", str(ks), "--password-file", str(pw)]
    r = run("faucet", "ETH", "1", "--to", me, *common)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == [f"added 1.00 ETH of gas money to {me}"]
    assert run("faucet", "USDC", "2500", *common, *signer).returncode == 0
    r = run("deposit", "USDC", "2500", *common, *signer)
    assert r.returncode == 0, r.stderr
    assert dep.core.functions.getAccount(me, 0).call()[0] == 2500 * 10**18


def test_brownie_deployment_file_is_found_when_local_json_is_missing(
    node: LocalNode, dep: Deployment, tmp_path: Path
) -> None:
    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / "development.json").write_text(json.dumps(dep.to_json()))
    r = subprocess.run(
        [sys.executable, "-m", "plimsoll.cli", "options", "--rpc", node.url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []  # the test deployment lists no series
