"""The main job, end to end: anvil, deploy, 200+ traders, a crash, the keeper liquidates.

    python scripts/demo.py [--traders 220] [--crash 0.30] [--blocks 30] [--seed 7]

1. starts anvil (automine while setting up), deploys Plimsoll with mock tokens and feeds;
2. opens leveraged perpetual positions for ``--traders`` accounts (random collateral mix of
   USDC/WETH/WBTC, leverage, market and side; cross and isolated subaccounts);
3. starts the liquidation keeper as a separate process (keystore key, metrics/health port),
   switches the chain to one block per second and moves every price down by ``--crash`` in
   equal steps over ``--blocks`` blocks, one feed update per block;
4. waits for the keeper, stops it with SIGTERM and measures, from the chain alone, which
   accounts became liquidatable when (the margin mirror over historical state, block by block)
   and when they were liquidated (events).

The last line printed is one JSON object: ``accounts``, ``liquidatable_seen``, ``liquidated``,
``missed`` (liquidatable accounts still open at the end), ``bad_debt``,
``blocks_to_liquidation_p50`` / ``_p99`` (from the block an account became liquidatable to the
block of its liquidation, per episode), the keeper's own summary (``keeper.succeeded``,
``keeper.nonce_reconciliations``, ``keeper.replaced``, ...), and more.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from web3 import Web3

from keepers.config import keeper_command
from plimsoll.chain import LocalNode, free_port
from plimsoll.deploy import DEFAULT_PRICES, Deployment, deploy_local
from plimsoll.errors import PlimsollError
from plimsoll.margin import compute_margin
from plimsoll.margin_call import in_margin_call
from plimsoll.sync import StateReader
from plimsoll.units import WAD, token_units, wad

ROOT = Path(__file__).resolve().parent.parent
GAS = 900_000


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    return w3.provider.make_request(method, params)  # type: ignore[arg-type]


SETUP_BATCH = 256  # set-up transactions in flight at most (anvil stalls when flooded)


def open_traders(dep: Deployment, addrs: list[str], rng: random.Random) -> list[tuple[str, int]]:
    """Send the set-up transactions in bounded batches: at most ``SETUP_BATCH`` in flight, then
    wait for their receipts (anvil automine keeps per-sender order within a batch)."""
    core, w3 = dep.core, dep.w3
    im_base = {0: 0.1, 1: 0.1, 2: 0.2}
    hashes: list[Any] = []
    accounts: list[tuple[str, int]] = []

    def tx(fn: Any, sender: str) -> None:
        hashes.append(fn.transact({"from": sender, "gas": GAS}))
        if len(hashes) >= SETUP_BATCH:
            for h in hashes:
                w3.eth.wait_for_transaction_receipt(h, timeout=300)
            hashes.clear()

    for addr in addrs:
        market = rng.choice([0, 0, 0, 1, 1, 2])
        isolated = rng.random() < 0.3
        sub = rng.randint(1, 3) if isolated else 0
        if isolated:
            tx(core.functions.configureSubaccount(sub, market + 1), addr)
        cash_usd = round(rng.uniform(1_000, 20_000), 2)
        value = cash_usd
        deposits = [(0, token_units(cash_usd, 6))]
        mix = rng.random()
        if mix < 0.3:
            eth = round(rng.uniform(0.5, 4), 4)
            deposits.append((1, token_units(eth, 18)))
            value += eth * DEFAULT_PRICES[1] * 0.8
        elif mix < 0.5:
            btc = round(rng.uniform(0.01, 0.1), 6)
            deposits.append((2, token_units(btc, 8)))
            value += btc * DEFAULT_PRICES[2] * 0.75
        for asset_id, amount in deposits:
            tok = dep.token(asset_id)
            tx(tok.functions.mint(addr, amount), addr)
            tx(tok.functions.approve(core.address, 2**256 - 1), addr)
            tx(core.functions.deposit(sub, asset_id, amount), addr)
        # leverage up to ~90% of what IM allows (the size-dependent rate takes the rest)
        leverage = rng.uniform(2.0, 0.9 / im_base[market])
        size = value * leverage / DEFAULT_PRICES[dep.markets[market]["feed_id"]]
        side = 1 if rng.random() < 0.85 else -1
        tx(core.functions.trade(sub, market, side * wad(round(size, 6)), 0), addr)
        accounts.append((addr, sub))
    for h in hashes:
        w3.eth.wait_for_transaction_receipt(h, timeout=300)
    return accounts


def start_keeper(
    dep: Deployment, workdir: Path, rpc: str
) -> tuple[subprocess.Popen[str], int, str]:
    w3 = dep.w3
    key = Account.create()
    _rpc(w3, "anvil_setBalance", [key.address, hex(100 * 10**18)])
    # Cash in the keeper's wallet for buying collateral from accounts left with debt.
    dep.send(dep.cash.functions.mint(key.address, token_units(5_000_000, 6)), dep.admin)
    deployment = workdir / "deployment.json"
    dep.save(deployment)
    port = free_port()
    cmd = keeper_command(
        key,
        workdir,
        "keeper",
        rpc,
        deployment,
        port,
        password="demo-password",
        extra=("--poll-interval", "0.05", "--max-per-block", "500", "--log-level", "warning"),
    )
    return _spawn_until_healthy(cmd, port, "keeper"), port, str(key.address)


def start_notifier(workdir: Path, rpc: str) -> tuple[subprocess.Popen[str], Path]:
    """The margin-call notifier as its own process, notices appended to a JSON-lines file."""
    out = workdir / "margin_calls.jsonl"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "keepers.notifier",
        "--rpc",
        rpc,
        "--deployment",
        str(workdir / "deployment.json"),
        "--db",
        str(workdir / "notifier.sqlite"),
        "--episodes",
        str(workdir / "episodes.json"),
        "--out",
        str(out),
        "--port",
        str(port),
        "--poll-interval",
        "0.05",
        "--log-level",
        "warning",
    ]
    return _spawn_until_healthy(cmd, port, "notifier"), out


def _spawn_until_healthy(cmd: list[str], port: int, name: str) -> subprocess.Popen[str]:
    """Starts a keeper-like process and waits (60 s at most) until its /health reports a
    processed block."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PlimsollError(f"{name} exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if json.loads(r.read())["last_block"] >= 0:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise PlimsollError(f"{name} did not become healthy within 60 s")


def wait_block(w3: Web3, after: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = int(w3.eth.block_number)
        if b > after:
            return b
        time.sleep(0.02)
    raise PlimsollError(f"no new block after {after} within {timeout}s")


def measure(
    dep: Deployment,
    accounts: list[tuple[str, int]],
    start: int,
    end: int,
    notices: list[dict[str, Any]] | None = None,
    option_keys: list[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """Liquidatable and margin-call sets block by block (mirror over historical state),
    liquidation events, and how the margin-call ``notices`` match the zone's episodes."""
    reader = StateReader(dep.w3, dep.core.address, dep.contracts["PlimsollLens"].address)
    liq_by_block: dict[int, np.ndarray] = {}
    zone_by_block: dict[int, np.ndarray] = {}
    for b in range(start, end + 1):
        result = compute_margin(reader.read(accounts, b))
        liq_by_block[b] = np.asarray(result.liquidatable, dtype=bool)
        zone = in_margin_call(result)
        if option_keys:
            # Option accounts: the contract's own accountMargin (not linear in prices).
            got = [
                dep.core.functions.accountMargin(o, s).call(block_identifier=b)
                for o, s in option_keys
            ]
            extra = np.array([mm <= e < im and im > 0 for e, im, mm in got], dtype=bool)
            zone = np.concatenate([zone, extra])
        zone_by_block[b] = zone
    idx = {(o.lower(), s): i for i, (o, s) in enumerate(accounts)}
    liq_blocks: dict[int, list[int]] = {}
    bad_debt = 0
    for ev_name in ("Liquidated", "CollateralLiquidated", "BadDebtSettled"):
        ev = getattr(dep.core.events, ev_name)
        for log in ev().get_logs(from_block=start, to_block=end):
            a = log["args"]
            i = idx.get((a["owner"].lower(), int(a["subaccount"])))
            if ev_name == "BadDebtSettled":
                bad_debt += int(a["deficit"])
            elif i is not None:
                liq_blocks.setdefault(i, []).append(int(log["blockNumber"]))
    lags: list[int] = []
    seen: set[int] = set()
    for i in range(len(accounts)):
        prev = False
        for b in range(start, end + 1):
            now = bool(liq_by_block[b][i])
            if now and not prev:  # a new episode starts at block b
                seen.add(i)
                later = [x for x in liq_blocks.get(i, []) if x > b]
                if later:
                    lags.append(min(later) - b)
            prev = now
    missed = int(liq_by_block[end].sum())
    lags.sort()
    # Margin-call episodes (entries into MM <= equity < IM) and the notices that cover them.
    for j, (o, s) in enumerate(option_keys or []):
        idx[(o.lower(), s)] = len(accounts) + j
    by_account: dict[int, list[int]] = {}
    for n in notices or []:
        i = idx.get((str(n["owner"]).lower(), int(n["subaccount"])))
        if i is not None:
            by_account.setdefault(i, []).append(int(n["block"]))
    episodes = unnotified = 0
    matched = 0
    for i in range(len(accounts) + len(option_keys or [])):
        b = start
        while b <= end:
            if zone_by_block[b][i]:
                e = b
                while e + 1 <= end and zone_by_block[e + 1][i]:
                    e += 1
                episodes += 1
                hits = [x for x in by_account.get(i, []) if b <= x <= e]
                matched += len(hits)
                unnotified += not hits
                b = e + 1
            else:
                b += 1
    return {
        "margin_call_episodes": episodes,
        "margin_call_notices": len(notices or []),
        "margin_call_unnotified": unnotified,
        "margin_call_notices_outside_episodes": len(notices or []) - matched,
        "liquidatable_seen": len(seen),
        "liquidated": len(liq_blocks),
        "liquidation_txs": sum(len(v) for v in liq_blocks.values()),
        "missed": missed,
        "bad_debt": bad_debt / WAD,
        "episodes": len(lags),
        "blocks_to_liquidation_p50": lags[len(lags) // 2] if lags else None,
        "blocks_to_liquidation_p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        if lags
        else None,
        "blocks_to_liquidation_max": lags[-1] if lags else None,
    }


STRATEGIES = ("naked_short_put", "covered_call", "protective_put", "hedged_short_put", "long_call")


def open_option_traders(
    dep: Deployment, addrs: list[str], rng: random.Random
) -> list[tuple[str, int, str, bool]]:
    """Options traders on ETH (30-day series): naked short puts, covered calls (long perp +
    short call), protective puts, short puts delta-hedged with a short perp, long calls; half
    in portfolio margin. Each opens with ample cash, then keeps IM x (1.05 .. 1.6) and
    withdraws the rest, so the crash reaches some of them. Returns (owner, sub, strategy, pm)."""
    core, opts, w3 = dep.core, dep.contracts["OptionsMarket"], dep.w3
    now = int(w3.eth.get_block("latest")["timestamp"])
    expiry = now + 30 * 86_400
    ids: dict[str, int] = {}
    for name, call, strike in (
        ("call", True, 2_000),
        ("put", False, 2_000),
        ("otm_put", False, 1_800),
    ):
        ids[name] = len(ids)
        dep.admin_send(opts.functions.listSeries(0, call, expiry, wad(strike)))
    out = []
    for i, addr in enumerate(addrs):
        strategy = STRATEGIES[i % len(STRATEGIES)]
        portfolio = (i // len(STRATEGIES)) % 2 == 0
        sub = 7
        q = round(rng.uniform(1, 5), 3)
        dep.send(dep.cash.functions.mint(addr, token_units(1_000_000, 6)), addr)
        dep.send(dep.cash.functions.approve(core.address, 2**256 - 1), addr)
        dep.send(core.functions.deposit(sub, 0, token_units(q * 2_000, 6)), addr)
        if portfolio:
            dep.send(core.functions.setPortfolioMargin(sub, True), addr)
        legs: list[tuple[str, float]] = {
            "naked_short_put": [("put", -q)],
            "covered_call": [("perp", q), ("call", -q)],
            "protective_put": [("perp", q), ("otm_put", q)],
            "hedged_short_put": [("put", -q), ("perp", -q / 2)],
            "long_call": [("call", q)],
        }[strategy]
        for leg, size in legs:
            if leg == "perp":
                dep.send(core.functions.trade(sub, 0, wad(round(size, 6)), 0), addr)
            else:
                dep.send(opts.functions.trade(sub, ids[leg], wad(round(size, 6)), 0), addr)
        equity, im, _ = core.functions.accountMargin(addr, sub).call()
        keep = int(im * rng.uniform(1.05, 1.6))
        cash_wad = int(core.functions.getAccount(addr, sub).call()[0])
        spare = (min(equity - keep, cash_wad) // 10**12) - 1
        if spare > 0:
            dep.send(core.functions.withdraw(sub, 0, spare), addr)
        out.append((addr, sub, strategy, portfolio))
    return out


def run(
    n_traders: int,
    crash: float,
    blocks: int,
    seed: int,
    n_option_traders: int = 40,
    keep: bool = False,
) -> dict[str, Any]:
    rng = random.Random(seed)
    t0 = time.monotonic()
    n_all = n_traders + n_option_traders
    with tempfile.TemporaryDirectory() as tmp, LocalNode(accounts=n_all + 2) as w3:
        node_url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
        # Admin behind a timelock with delay 0, as every local deployment (schedule + execute).
        dep = deploy_local(w3, pool_liquidity=token_units(50_000_000, 6), timelock_delay=0)
        traders = [str(a) for a in w3.eth.accounts[2 : 2 + n_traders]]
        accounts = open_traders(dep, traders, rng)
        option_accounts = open_option_traders(
            dep, [str(a) for a in w3.eth.accounts[2 + n_traders : 2 + n_all]], rng
        )
        opened = sum(1 for o, s in accounts if dep.core.functions.getAccount(o, s).call()[2] != 0)
        print(f"{opened}/{len(accounts)} accounts opened positions in {time.monotonic() - t0:.1f}s")
        keeper, port, keeper_addr = start_keeper(dep, Path(tmp), node_url)
        notifier, notices_file = start_notifier(Path(tmp), node_url)
        try:
            _rpc(w3, "evm_setAutomine", [False])
            _rpc(w3, "evm_setIntervalMining", [1])
            start = int(w3.eth.block_number)
            b = start
            for step in range(1, blocks + 1):
                for feed_id, p0 in DEFAULT_PRICES.items():
                    answer = int(wad(p0 * (1 - crash * step / blocks)) // 10**10)
                    dep.feeds[feed_id].functions.updateAnswer(answer).transact(
                        {"from": dep.admin, "gas": 300_000}
                    )
                b = wait_block(w3, b)
                if step % 5 == 0:
                    print(f"block {b}: prices -{crash * step / blocks:.0%}")
            for _ in range(8):  # let the keeper finish
                b = wait_block(w3, b)
            end = b
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics_text = r.read().decode()
        finally:
            keeper.send_signal(signal.SIGTERM)
            out, err = keeper.communicate(timeout=60)
            notifier.send_signal(signal.SIGTERM)
            _, notifier_err = notifier.communicate(timeout=60)
        _rpc(w3, "evm_setIntervalMining", [0])
        _rpc(w3, "evm_setAutomine", [True])
        keeper_summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        options = _options_summary(dep, option_accounts, start, end)
        notices = [json.loads(x) for x in notices_file.read_text().splitlines() if x.strip()]
        # Notices before the crash window (set-up blocks) are outside the measured range.
        notices = [n for n in notices if start <= int(n["block"]) <= end]
        result = measure(
            dep, accounts, start, end, notices, [(o, s) for o, s, _, _ in option_accounts]
        )
        summary = {
            "accounts": len(accounts),
            "positions_opened": opened,
            **result,
            **options,
            "keeper": keeper_summary,
            "keeper_exit_code": keeper.returncode,
            "notifier_exit_code": notifier.returncode,
            "keeper_metrics_ok": "plimsoll_liquidations_succeeded_total" in metrics_text,
            "insurance_fund": dep.core.functions.insuranceFund().call() / WAD,
            "keeper_address": keeper_addr,
            "crash": crash,
            "crash_blocks": blocks,
            "seconds": round(time.monotonic() - t0, 1),
        }
        if keeper.returncode != 0:
            print(err[-2000:], file=sys.stderr)
        if notifier.returncode != 0:
            print(notifier_err[-2000:], file=sys.stderr)
        # The end state, for the wallet app and the CLI (`--keep` leaves the chain running).
        dep.save(ROOT / "deployments" / "demo.json")
        (ROOT / "deployments" / "demo-notices.jsonl").write_text(notices_file.read_text())
        if keep:
            print(json.dumps(summary), flush=True)
            print(
                f"demo: the chain stays up at {node_url} (Ctrl-C stops it); in another terminal:"
                f" plimsoll app --rpc {node_url} --deployment deployments/demo.json"
                " --notices deployments/demo-notices.jsonl",
                file=sys.stderr,
                flush=True,
            )
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # TERM stops it like ^C
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    return summary


def _options_summary(
    dep: Deployment, option_accounts: list[tuple[str, int, str, bool]], start: int, end: int
) -> dict[str, Any]:
    """Option accounts: liquidations (witness ones among them) and any left liquidatable."""
    core = dep.core
    keys = {(o, s) for o, s, _, _ in option_accounts}
    witness = [
        e
        for e in core.events.WitnessLiquidation().get_logs(from_block=start, to_block=end)
        if (e["args"]["owner"], e["args"]["subaccount"]) in keys
    ]
    liquidated = {
        (e["args"]["owner"], e["args"]["subaccount"])
        for e in core.events.Liquidated().get_logs(from_block=start, to_block=end)
        if (e["args"]["owner"], e["args"]["subaccount"]) in keys
    }
    missed = [k for k in keys if core.functions.isLiquidatable(*k).call(block_identifier=end)]
    by_strategy: dict[str, int] = {}
    for o, s, strategy, pm_mode in option_accounts:
        if (o, s) in liquidated:
            label = f"{strategy}{'_pm' if pm_mode else ''}"
            by_strategy[label] = by_strategy.get(label, 0) + 1
    return {
        "options_accounts": len(option_accounts),
        "options_portfolio_accounts": sum(1 for *_, p in option_accounts if p),
        "witness_liquidations": len(witness),
        "options_accounts_liquidated": len(liquidated),
        "options_liquidated_by_strategy": dict(sorted(by_strategy.items())),
        "options_missed": len(missed),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Plimsoll demo: traders, crash, keeper")
    ap.add_argument("--traders", type=int, default=220)
    ap.add_argument("--crash", type=float, default=0.30)
    ap.add_argument("--blocks", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--option-traders", type=int, default=40)
    ap.add_argument(
        "--keep", action="store_true", help="leave the chain running for `plimsoll app`"
    )
    args = ap.parse_args(argv)
    try:
        summary = run(
            args.traders, args.crash, args.blocks, args.seed, args.option_traders, args.keep
        )
    except PlimsollError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    if not args.keep:
        print(json.dumps(summary))
    return 0 if summary["missed"] == 0 and summary["options_missed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] if len(sys.argv) > 1 and sys.argv[0].endswith("demo.py") else []))
