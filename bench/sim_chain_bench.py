"""Benchmark: the chain cascade engine (``plimsoll.sim.chain.run_chain``) - anvil, the real
contracts and the real keeper process - and its agreement with the fast engine at size.

One Black-Thursday-shaped day (``scenario("black_thursday")``) in 48 steps of 30 minutes, 4
blocks per step, keeper latency 1 block, collateral sales and the pool hedger on, a calm gas
market (2 gwei: the keeper's profit rule sends every liquidation in both engines), books of
perps and collateral drawn at a median leverage of 8, for several book sizes. Per size:

* set-up: node start, deployment, the book opened on chain (transactions sent in bounded
  batches), the keeper process started [s] and the set-up transactions per second;
* run: steps, blocks mined (the chain mines only the blocks in which something happens),
  wall time, blocks/s and steps/s, liquidations, bad debt;
* agreement: the fast engine on the same path and book, the accounts liquidated by one engine
  and not the other, and the largest difference of one account's bad debt [USD].

The 1-minute load average before and after each run is recorded (the machine is shared).
Writes ``bench/results/sim_chain.json``.

Usage: ``.venv/bin/python bench/sim_chain_bench.py [--quick] [--accounts 50,200,500]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plimsoll.sim import PopulationSpec, SimConfig, draw_population, scenario  # noqa: E402
from plimsoll.sim.chain import book_specs, comparable_config, run_chain  # noqa: E402
from plimsoll.sim.engine import simulate  # noqa: E402

N_STEPS = 48
BLOCKS_PER_STEP = 4


def world(n_accounts: int) -> tuple[SimConfig, Any, Any]:
    cfg = SimConfig()
    path = scenario("black_thursday", cfg, n_steps=N_STEPS)
    cfg = comparable_config(cfg, path, BLOCKS_PER_STEP)
    cfg = replace(
        cfg,
        keeper=replace(cfg.keeper, max_per_block=500),
        traders=replace(cfg.traders, p_topup=0.0, p_reduce=0.0),
    )
    spec = PopulationSpec(
        n_accounts=n_accounts, p_options=0.0, p_portfolio=0.0, leverage_median=8.0
    )
    return cfg, path, draw_population(spec, cfg, seed=7)


def bench(n_accounts: int) -> dict[str, Any]:
    cfg, path, book = world(n_accounts)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    run = run_chain(cfg, path, book, seed=1)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    fast = simulate(cfg, path, book, seed=1, workers=1)
    fast_s = time.perf_counter() - t1
    assert fast.liquidated_step is not None and fast.account_bad_debt is not None
    fast_liq = set(np.flatnonzero(fast.liquidated_step[0] >= 0).tolist())
    # set-up transactions: mint + approve + deposit per asset, isolation, one trade per market
    setup_txs = sum(
        3 * len(s.deposits) + len(s.trades) + (s.isolated_market is not None)
        for s in book_specs(book, cfg, 5 * 10**14)
    )
    c = run.result
    return {
        "accounts": n_accounts,
        "steps": N_STEPS,
        "model_blocks": N_STEPS * BLOCKS_PER_STEP,
        "blocks_mined": run.blocks,
        "setup_s": round(run.seconds_setup, 2),
        "setup_txs": setup_txs,
        "run_s": round(run.seconds_run, 2),
        "wall_s": round(wall, 2),
        "blocks_per_s": round(run.blocks / run.seconds_run, 2),
        "steps_per_s": round(N_STEPS / run.seconds_run, 2),
        "account_steps_per_s": round(n_accounts * N_STEPS / run.seconds_run),
        "liquidation_events": int(run.series["liquidation_events"].sum()),
        "accounts_liquidated": len(run.liquidated_accounts),
        "collateral_purchases": int((run.collateral_step >= 0).sum()),
        "bad_debt_usd": round(float(c.bad_debt_total[0]), 2),
        "keeper": {k: run.keeper.get(k) for k in ("sent", "succeeded", "reverted", "blocks")},
        "fast_engine_s": round(fast_s, 3),
        "fast_bad_debt_usd": round(float(fast.bad_debt_total[0]), 2),
        "liquidated_only_in_one_engine": len(fast_liq ^ run.liquidated_accounts),
        "max_account_bad_debt_diff_usd": round(
            float(np.abs(fast.account_bad_debt[0] - run.bad_debt).max()), 6
        ),
        "load_1min_before": round(load0, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="50 and 200 accounts only")
    ap.add_argument("--accounts", default=None, help="comma-separated book sizes")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sim_chain.json")
    args = ap.parse_args(argv)
    sizes = (
        [int(x) for x in args.accounts.split(",")]
        if args.accounts
        else ([50, 200] if args.quick else [50, 200, 500, 1000])
    )
    rows = []
    for n in sizes:
        r = bench(n)
        print(json.dumps(r), flush=True)
        rows.append(r)
    result = {
        "bench": "sim_chain",
        "scenario": f"black_thursday, {N_STEPS} steps x {BLOCKS_PER_STEP} blocks",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
