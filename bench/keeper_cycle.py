"""Benchmark: the liquidation keeper's per-block cycle on event-sourced state vs today's.

Sizes up to ``--anvil-max`` (default 10,000) run **end to end on anvil**
(``bench/keeper_anvil.py``: a real deployment, the keeper's BookCycle over the real indexer, lens
reads and JSON-RPC, feeds and accounts moving every block; today's full re-read timed on the same
chain; the liquidatable set checked against a full exact read). Larger sizes drive the keeper's
components with synthetic logs and a market-data/lens stub, said so in each result's ``mode``.

Component mode, for 100,000 and 1,000,000 synthetic accounts (3 perps, 2 collateral assets, 5%
holding options: flag set), each size in its own process (so ``rss_mb`` is that size's):

1. sync: the book is built from the accounts' rows as the logs name them (chunks of 50,000,
   the lens rows stubbed by the synthetic generator): ``sync_s``;
2. cycle, ``--blocks`` times: new logs applied (``--touched`` accounts per block name in logs,
   their rows written as a lens read of them would give them), the market data of the block
   (prices move by a random walk of 0.2% per block; funding time moves), the rotating
   reconciliation slice (100 accounts every block, compared with the "lens"), the price
   screen over every account and the exact mirror on the candidates it cannot clear:
   ``cycle_ms_p50`` / ``cycle_ms_p99``. Options accounts: the exact rows handed to the options
   pass (plimsoll.pm) when a price moved are built after the cycle and timed apart
   (``options_rows_per_block``, ``options_rows_ms_p99``); the pm pass itself is not included;
3. baseline, today's cycle on the same book: a full exact recompute (``compute_margin`` on
   every account, measured here; at 1,000,000 on ten slices of 100,000, summed, to stay in
   memory) plus the full re-read through the lens, which cannot be measured without a chain
   of that size: the per-account read time measured end to end on anvil in the same run (the
   10,000-account case) times the accounts.
   ``ratio`` = baseline_ms / cycle_ms_p99; ``ratio_compute_only`` leaves the read out.

In component mode the market reads and the dirty-account reads are stubbed (end to end they
are three JSON-RPC round trips: see the anvil case). Figures are with the machine's load average
recorded (2 cores).

Usage: ``.venv/bin/python bench/keeper_cycle.py [--sizes 10000,100000,1000000] [--blocks 200]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the keeper (keepers/__init__.py)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plimsoll.book import AccountBook  # noqa: E402
from plimsoll.margin import compute_margin  # noqa: E402
from plimsoll.state import MarginState  # noqa: E402

WAD = 10**18
NM, NA = 3, 2
PRICES = [2000 * WAD, 60_000 * WAD, 150 * WAD]


def _obj(values: Any, shape: tuple[int, ...]) -> Any:
    arr = np.empty(int(np.prod(shape)), dtype=object)
    arr[:] = list(values)
    return arr.reshape(shape)


def market(block: int, prices: list[int], timestamp: int) -> MarginState:
    """Market-level data of a block (no account rows)."""
    return MarginState(
        block=block,
        timestamp=timestamp,
        owners=[],
        subaccounts=np.zeros(0, dtype=np.int64),
        cash=_obj([], (0,)),
        balances=_obj([], (0, NA)),
        sizes=_obj([], (0, NM)),
        open_notional=_obj([], (0, NM)),
        entry_funding_index=_obj([], (0, NM)),
        asset_decimals=np.array([18, 8], dtype=np.int64),
        asset_haircut=_obj([9 * 10**17, 85 * 10**16], (NA,)),
        asset_price=_obj([prices[0], prices[1]], (NA,)),
        market_price=_obj(prices, (NM,)),
        im_base=_obj([10**17] * NM, (NM,)),
        mm_factor=_obj([5 * 10**17] * NM, (NM,)),
        size_slope=_obj([10**14, 10**16, 10**12], (NM,)),
        max_funding_rate=_obj([10**17] * NM, (NM,)),
        skew_scale=_obj([10**24] * NM, (NM,)),
        long_oi=_obj([10**23] * NM, (NM,)),
        short_oi=_obj([9 * 10**22] * NM, (NM,)),
        funding_index=_obj([10**15, -(10**15), 0], (NM,)),
        last_funding_time=_obj([1_000_000] * NM, (NM,)),
        im_scalar=_obj([WAD] * NM, (NM,)),
        mm_scalar=_obj([WAD] * NM, (NM,)),
        market_price_ok=np.ones(NM, dtype=bool),
        asset_price_ok=np.ones(NA, dtype=bool),
        flags=np.zeros(0, dtype=np.int64),
    )


def accounts(rng: np.random.Generator, lo: int, hi: int, m: MarginState) -> MarginState:
    """Rows lo..hi of the synthetic book: every account in all 3 markets and 2 assets, cash
    set so that health (equity / MM) is log-normal around 3 (about 0.1% below 1)."""
    n = hi - lo
    units = np.array([10.0, 0.5, 100.0])
    sizes = np.round(rng.normal(0, 1, (n, NM)) * units * 1e6).astype(np.int64)
    sizes_w = sizes.astype(object) * 10**12
    price = [int(p) for p in m.market_price]
    on = _obj([int(s) * price[j] // WAD for row in sizes_w for j, s in enumerate(row)], (n, NM))
    entry = _obj([int(m.funding_index[j]) for _ in range(n) for j in range(NM)], (n, NM))
    bal_f = np.abs(rng.normal(0, 1, (n, NA))) * np.array([1.0, 0.02])
    bal = _obj(
        [
            int(b * 1e6) * 10**12 if j == 0 else int(b * 1e8)
            for row in bal_f
            for j, b in enumerate(row)
        ],
        (n, NA),
    )
    st = replace(
        m,
        owners=[f"0x{(i + 1):040x}" for i in range(lo, hi)],
        subaccounts=np.zeros(n, dtype=np.int64),
        cash=_obj([0] * n, (n,)),
        balances=bal,
        sizes=sizes_w,
        open_notional=on,
        entry_funding_index=entry,
        flags=(rng.random(n) < 0.05).astype(np.int64),
    )
    res = compute_margin(st, threads=1)
    health = np.exp(rng.normal(np.log(3.0), 0.35, n))
    target = [int(h * int(mm)) for h, mm in zip(health, res.mm, strict=True)]
    cash = _obj([t - int(e) for t, e in zip(target, res.equity, strict=True)], (n,))
    return replace(st, cash=cash)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def synthetic_book(rng: np.random.Generator, n: int, m: MarginState) -> AccountBook:
    """A book of ``n`` synthetic accounts at block 1 (rows as :func:`accounts`, 50,000 at a
    time, as the logs of a sync would name them)."""
    book = AccountBook(NM, NA)
    for lo in range(0, n, 50_000):
        book.write(accounts(rng, lo, min(n, lo + 50_000), m))
    book.set_markets(m)
    book.applied(1)
    return book


def run_size(
    n: int, blocks: int, touched: int, seed: int, read_ms_per_account: float
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    prices = list(PRICES)
    ts = 1_000_000
    m = market(1, prices, ts)
    t0 = time.perf_counter()
    book = synthetic_book(rng, n, m)
    sync_s = time.perf_counter() - t0
    times: list[float] = []
    checked: list[int] = []
    liq: list[int] = []
    opt_rows: list[int] = []
    opt_ms: list[float] = []
    mismatches = 0
    pos = 0
    py = random.Random(seed)
    for b in range(2, blocks + 2):
        # the block's inputs, as the chain would give them (not timed: the chain's work)
        prices = [int(p * (1 + rng.normal(0, 0.002))) for p in prices]
        ts += 2
        mk = market(b, prices, ts)
        keys = [book.keys[py.randrange(n)] for _ in range(touched)]
        logs = [(b, k) for k in keys]
        rows_now = book.subset(np.asarray([book.index[k] for k in keys], dtype=np.int64))
        sizes = np.array(rows_now.sizes, dtype=object)
        sizes[:, 0] = sizes[:, 0] + 10**17  # each bought 0.1 of market 0
        lens_rows = replace(rows_now, sizes=sizes, block=b, timestamp=ts)
        t = time.perf_counter()
        book.note_logs(logs)
        book.write(lens_rows)
        # the rotating reconciliation slice (the keeper's default: 100 accounts a block)
        sl = np.arange(pos, min(n, pos + 100), dtype=np.int64)
        pos = (pos + 100) % n
        mismatches += len(book.diff(book.subset(sl)))
        book.set_markets(mk)
        book.applied(b)
        sc = book.screen()
        rows, _state, result = book.exact_candidates(sc)
        times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        fstate = book.subset(book.flagged())
        opt_ms.append((time.perf_counter() - t) * 1000)
        checked.append(len(rows))
        liq.append(int((result.liquidatable & result.priced).sum()))
        opt_rows.append(fstate.n_accounts)
    rss = rss_mb()
    # Baseline: a full exact recompute of the same book (slices of 100,000 at most).
    t = time.perf_counter()
    for lo in range(0, n, 100_000):
        compute_margin(book.subset(np.arange(lo, min(n, lo + 100_000), dtype=np.int64)))
    compute_ms = (time.perf_counter() - t) * 1000
    read_ms = read_ms_per_account * n
    p50, p99 = float(np.percentile(times, 50)), float(np.percentile(times, 99))
    return {
        "accounts": n,
        "mode": "components: synthetic logs, market-data/lens stub; baseline read scaled from "
        "the end-to-end anvil read of this run",
        "blocks": blocks,
        "touched_per_block": touched,
        "cycle_ms_p50": round(p50, 2),
        "cycle_ms_p99": round(p99, 2),
        "cycle_ms_max": round(max(times), 2),
        "baseline_ms": round(compute_ms + read_ms, 1),
        "baseline_compute_ms": round(compute_ms, 1),
        "baseline_read_ms": round(read_ms, 1),
        "ratio": round((compute_ms + read_ms) / p99, 1),
        "ratio_compute_only": round(compute_ms / p99, 1),
        "rss_mb": round(rss, 1),
        "bytes_per_account": round(rss * 2**20 / n),
        "sync_s": round(sync_s, 2),
        "exact_rows_per_block_mean": round(float(np.mean(checked)), 1),
        "liquidatable_per_block_mean": round(float(np.mean(liq)), 1),
        "options_rows_per_block": int(np.mean(opt_rows)),
        "options_rows_ms_p99": round(float(np.percentile(opt_ms, 99)), 2),
        "reconciliation_mismatches": mismatches,
        "load_avg_during": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--touched", type=int, default=20)
    ap.add_argument(
        "--anvil-max", type=int, default=10_000, help="sizes up to this run end to end on anvil"
    )
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--anvil", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--read-ms-per-account", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one and args.anvil:
        from bench.keeper_anvil import run as run_anvil

        res = run_anvil(args.one, args.blocks, args.touched, seed=args.one)
        res["rss_mb"] = round(rss_mb(), 1)  # anvil's own memory not included
        res["load_avg_during"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(res))
        return 0
    if args.one:
        blocks = args.blocks if args.one <= 100_000 else max(50, args.blocks // 4)
        per = args.read_ms_per_account
        print(json.dumps(run_size(args.one, blocks, args.touched, args.one, per)))
        return 0
    out: dict[str, Any] = {
        "benchmark": "keeper per-block cycle: event-sourced book + price screen + exact check",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "mode": f"end to end on anvil up to {args.anvil_max:,} accounts; larger books: "
        "components with synthetic logs and a market-data/lens stub (each result says which)",
        "results": [],
    }
    sizes = sorted(int(x) for x in args.sizes.split(","))
    per_account: float | None = None
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--blocks", str(args.blocks)]
        cmd += ["--touched", str(args.touched)]
        if n <= args.anvil_max:
            cmd.append("--anvil")
        else:
            if per_account is None:
                raise SystemExit("component sizes need an end-to-end size in the same run")
            cmd += ["--read-ms-per-account", str(per_account)]
        got = subprocess.run(cmd, capture_output=True, text=True)
        if got.returncode:
            raise SystemExit(f"size {n} failed: {got.stderr.strip().splitlines()[-1:]}")
        res = json.loads(got.stdout.strip().splitlines()[-1])
        if n <= args.anvil_max:
            per_account = res["baseline_read_ms"] / n
        print(json.dumps(res), flush=True)
        out["results"].append(res)
    out["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    dest = ROOT / "bench" / "results" / "keeper_cycle.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
