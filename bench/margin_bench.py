"""Benchmark: off-chain margin mirror vs one ``accountMargin`` eth_call per account on anvil.

One run does both and writes ``bench/results/margin.json``:

1. Mirror: ``plimsoll.margin.compute_margin`` on synthetic MarginStates of 10,000 and 100,000
   accounts, each with a position in all 3 markets (long or short) and all 2 collateral
   assets plus cash (the deployment's shape: the same work the contract does per account).
   Best and median wall time of several repetitions, and process CPU time.
2. Baseline: ``deploy_local`` on a fresh anvil, ~2,000 real accounts with the same shape
   (created with batched transactions, see tests/parity/parity_chain.py), then one
   ``core.functions.accountMargin(owner, sub).call(block_identifier=block)`` per account, and
   the same as a raw JSON-RPC ``eth_call`` over a kept-alive HTTP session. The per-account
   time is scaled to 10,000 and 100,000 accounts. The mirror is also run on the sample read
   from the chain and compared with the calls (parity spot check).

Usage: ``.venv/bin/python bench/margin_bench.py [--sample 2000] [--reps 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "parity"))

from parity_chain import (  # noqa: E402
    Rpc,
    Sender,
    encode,
    fund_owners,
    random_deposits,
    random_trades,
    read_contract_margins,
    read_state,
    warp,
)

from plimsoll.chain import LocalNode  # noqa: E402
from plimsoll.deploy import DEFAULT_MARKETS, deploy_local  # noqa: E402
from plimsoll.margin import compute_margin  # noqa: E402
from plimsoll.state import MarginState  # noqa: E402

WAD = 10**18


def _obj(values: list[int], shape: tuple[int, ...]) -> Any:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr.reshape(shape)


def synthetic_state(n: int, seed: int = 7) -> MarginState:
    """n accounts, each long or short in all 3 markets and holding cash, WETH and WBTC;
    magnitudes like the deployment's (non-round wei everywhere)."""
    rng = np.random.default_rng(seed)
    nm, na = 3, 2
    prices = [2013 * WAD + 123_456_789, 61_234 * WAD + 987_654_321, 148 * WAD + 55_555]
    units = np.array([30.0, 1.0, 400.0])  # typical |size| per market [units]

    def wad_ints(x: np.ndarray) -> list[int]:
        # float -> exact int with a random non-round tail below 1e9 wei
        whole = (x * 1e9).astype(np.int64)
        tail = rng.integers(0, 10**9, size=x.shape)
        return [int(a) * 10**9 + int(b) for a, b in zip(whole.ravel(), tail.ravel(), strict=True)]

    size_f = rng.uniform(0.01, 2.0, size=(n, nm)) * units * rng.choice([-1, 1], size=(n, nm))
    sizes = wad_ints(size_f)
    drift = rng.uniform(0.9, 1.1, size=(n, nm))
    on = wad_ints(size_f * np.array([p / WAD for p in prices]) * drift)
    entry = wad_ints(rng.uniform(-50, 50, size=(n, nm)))
    cash = wad_ints(rng.uniform(-20_000, 80_000, size=n))
    weth = [int(v) * 1000 + 7 for v in rng.integers(10**13, 2 * 10**16, size=n)]
    wbtc = [int(v) for v in rng.integers(10**5, 10**8, size=n)]
    bal = [v for pair in zip(weth, wbtc, strict=True) for v in pair]
    ms = DEFAULT_MARKETS
    return MarginState(
        block=1,
        timestamp=1_700_000_000,
        owners=[f"0x{i:040x}" for i in range(n)],
        subaccounts=np.zeros(n, dtype=np.int64),
        cash=_obj(cash, (n,)),
        balances=_obj(bal, (n, na)),
        sizes=_obj(sizes, (n, nm)),
        open_notional=_obj(on, (n, nm)),
        entry_funding_index=_obj(entry, (n, nm)),
        asset_decimals=np.array([18, 8], dtype=np.int64),
        asset_haircut=_obj([WAD * 8 // 10, WAD * 3 // 4], (na,)),
        asset_price=_obj([prices[0], prices[1]], (na,)),
        market_price=_obj(prices, (nm,)),
        im_base=_obj([m.im_base for m in ms], (nm,)),
        mm_factor=_obj([m.mm_factor for m in ms], (nm,)),
        size_slope=_obj([m.size_slope for m in ms], (nm,)),
        max_funding_rate=_obj([m.max_funding_rate for m in ms], (nm,)),
        skew_scale=_obj([m.skew_scale for m in ms], (nm,)),
        long_oi=_obj([5_000 * WAD, 300 * WAD, 90_000 * WAD], (nm,)),
        short_oi=_obj([4_100 * WAD, 340 * WAD, 70_000 * WAD], (nm,)),
        funding_index=_obj([12 * WAD + 345, -7 * WAD - 8, WAD // 3], (nm,)),
        last_funding_time=_obj([1_700_000_000 - 5_000, 1_699_990_000, 1_700_000_000 - 77], (nm,)),
    )


def time_mirror(state: MarginState, reps: int) -> dict[str, float]:
    compute_margin(state)  # warm-up
    walls, cpus = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        compute_margin(state)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "best_s": min(walls),
        "median_s": statistics.median(walls),
        "cpu_best_s": min(cpus),
    }


def baseline(sample: int) -> dict[str, Any]:
    """Per-account accountMargin calls on anvil, plus a mirror parity check on the sample."""
    owners_n = 19
    subs = -(-sample // owners_n)
    with LocalNode(accounts=owners_n + 1) as w3:
        t0 = time.perf_counter()
        dep = deploy_local(w3)
        t_deploy = time.perf_counter() - t0
        rpc = Rpc(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
        sender = Sender(rpc)
        owners = list(w3.eth.accounts)[1 : 1 + owners_n]
        accounts = [(o, s) for o in owners for s in range(subs)][:sample]
        rng = random.Random(11)
        fund_owners(dep, sender, owners)
        deposits, budget = random_deposits(dep, rng, accounts, dense=True)
        sender.send(deposits)
        prices = {0: 2000.0, 1: 60000.0, 2: 150.0}
        budget = {a: v * 0.5 for a, v in budget.items()}  # stay well inside IM
        sender.send(random_trades(dep, rng, accounts, prices, budget, dense=True))
        warp(rpc, 600)  # funding pending in every market (feeds still fresh)
        block = w3.eth.block_number
        t_fill = time.perf_counter() - t0 - t_deploy

        core = dep.core
        for o, s in accounts[:50]:  # warm-up
            core.functions.accountMargin(o, s).call(block_identifier=block)
        t1 = time.perf_counter()
        for o, s in accounts:
            core.functions.accountMargin(o, s).call(block_identifier=block)
        web3_per = (time.perf_counter() - t1) / len(accounts)

        session = requests.Session()
        url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
        bodies = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_call",
                "params": [{"to": core.address, "data": encode(core, "accountMargin", o, s)},
                           hex(block)],
            }
            for i, (o, s) in enumerate(accounts)
        ]
        t2 = time.perf_counter()
        for body in bodies:
            r = session.post(url, json=body, timeout=60).json()
            int(r["result"][2:66], 16)
        raw_per = (time.perf_counter() - t2) / len(accounts)

        state = read_state(dep, rpc, accounts, block)
        margins, liq = read_contract_margins(dep, rpc, accounts, block)
        result = compute_margin(state)
        mismatches = sum(
            1
            for i in range(len(accounts))
            if (result.equity[i], result.im[i], result.mm[i], bool(result.liquidatable[i]))
            != (*margins[i], liq[i])
        )
        positions = int(sum(1 for v in state.sizes.ravel() if v != 0))
    return {
        "accounts": len(accounts),
        "positions": positions,
        "deploy_s": t_deploy,
        "fill_s": t_fill,
        "web3_call_per_account_s": web3_per,
        "raw_eth_call_per_account_s": raw_per,
        "sample_parity_mismatches": mismatches,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "margin.json")
    args = ap.parse_args()

    mirror: dict[str, Any] = {}
    for n in (10_000, 100_000):
        state = synthetic_state(n)
        timing = time_mirror(state, args.reps)
        mirror[str(n)] = {"positions": 3 * n, "collateral_assets": 2 * n, **timing}
        print(f"mirror {n:>7} accounts: best {mirror[str(n)]['best_s'] * 1e3:8.1f} ms, "
              f"median {mirror[str(n)]['median_s'] * 1e3:8.1f} ms, "
              f"cpu {mirror[str(n)]['cpu_best_s'] * 1e3:8.1f} ms", flush=True)

    base = baseline(args.sample)
    print(f"baseline: {base['accounts']} accounts, "
          f"web3 call {base['web3_call_per_account_s'] * 1e3:.2f} ms/account, "
          f"raw eth_call {base['raw_eth_call_per_account_s'] * 1e3:.2f} ms/account, "
          f"sample parity mismatches {base['sample_parity_mismatches']}", flush=True)

    rows = {}
    for n in (10_000, 100_000):
        m = mirror[str(n)]
        web3_total = base["web3_call_per_account_s"] * n
        raw_total = base["raw_eth_call_per_account_s"] * n
        rows[str(n)] = {
            "mirror_best_s": m["best_s"],
            "mirror_median_s": m["median_s"],
            "web3_call_loop_s_scaled": web3_total,
            "raw_eth_call_loop_s_scaled": raw_total,
            "speedup_vs_web3_call": web3_total / m["best_s"],
            "speedup_vs_web3_call_median": web3_total / m["median_s"],
            "speedup_vs_raw_eth_call": raw_total / m["best_s"],
        }
        r = rows[str(n)]
        print(f"{n:>7} accounts: mirror {m['best_s']:.3f} s vs web3 loop {web3_total:.1f} s "
              f"({r['speedup_vs_web3_call']:.0f}x), raw eth_call loop {raw_total:.1f} s "
              f"({r['speedup_vs_raw_eth_call']:.0f}x)")

    out = {
        "benchmark": "off-chain standard margin (plimsoll.margin.compute_margin) vs "
        "accountMargin eth_call per account on anvil",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_avg_1m": os.getloadavg()[0],
        },
        "shape": "per account: 3 positions (ETH/BTC/SOL-PERP, long or short), WETH, WBTC, cash",
        "mirror": mirror,
        "baseline": base,
        "comparison": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
