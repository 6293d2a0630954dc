"""Benchmark: the fast cascade engine (``plimsoll.sim.engine.simulate``) at full size.

Headline: 1,000 Monte Carlo paths (jump-diffusion, correlated) x 1,000 accounts (the default
population: cross/isolated, collateral mix, options, portfolio margin) x 100 steps, with
feedback (collateral sales and the pool hedger) on, on the machine's cores (2 threads). Then
how the time scales in accounts (paths fixed) and in paths (accounts fixed). The 1-minute
load average before and after each run is recorded: the machine is shared, and a load above
the core count means the figure includes other people's work.

Writes ``bench/results/sim_bench.json``.

Usage: ``.venv/bin/python bench/sim_bench.py [--quick]``
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plimsoll.sim import (  # noqa: E402
    FeedbackSpec,
    PopulationSpec,
    SimConfig,
    draw_population,
    jump_diffusion,
)
from plimsoll.sim.engine import headline, simulate  # noqa: E402


def run(cfg: SimConfig, n_paths: int, n_accounts: int, n_steps: int) -> dict[str, Any]:
    book = draw_population(PopulationSpec(n_accounts=n_accounts), cfg, seed=1)
    paths = jump_diffusion(cfg, n_paths, n_steps, seed=2)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate(cfg, paths, book, seed=3, workers=2)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    h = headline(res)
    return {
        "paths": n_paths,
        "accounts": n_accounts,
        "steps": n_steps,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "account_steps_per_s": round(n_paths * n_accounts * n_steps / wall),
        "load_1min_before": round(load0, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "bad_debt_mean_usd": round(h["bad_debt_mean_usd"], 2),
        "p_insurance_exhausted": h["p_insurance_exhausted"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args()
    cfg = replace(SimConfig(), feedback=FeedbackSpec(sell_collateral=True, hedger=True))
    scale = 10 if args.quick else 1
    head = run(cfg, 1000 // scale, 1000, 100)
    print(f"headline: {head}", flush=True)
    by_accounts = []
    for n in (250, 500, 1000, 2000):
        r = run(cfg, 200 // scale, n, 100)
        print(f"accounts {n}: {r['wall_s']} s", flush=True)
        by_accounts.append(r)
    by_paths = []
    for p in (250, 500, 1000):
        r = head if p == 1000 and not args.quick else run(cfg, p // scale, 1000, 100)
        print(f"paths {p // scale}: {r['wall_s']} s", flush=True)
        by_paths.append(r)
    out = {
        "what": "fast engine, jump-diffusion paths, default population, feedback on",
        "target": "1000 paths x 1000 accounts x 100 steps < 60 s on 2 cores",
        "headline": head,
        "meets_target": head["wall_s"] < 60 and not args.quick,
        "scaling_accounts_200_paths": by_accounts,
        "scaling_paths_1000_accounts": by_paths,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = ROOT / "bench" / "results" / "sim_bench.json"
    if args.quick:
        path = path.with_name("sim_bench_quick.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
