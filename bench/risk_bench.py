"""Benchmark: vectorized risk library vs a per-option Python loop (math.erf), one process.

Writes ``bench/results/risk.json``:

1. ``greeks``: :func:`plimsoll.risk.bs.greeks` (price, delta, gamma, vega, theta, rho) on
   1,000,000 random options (moneyness 0.5-2, 1 day-2 years, vol 10-300 %, calls and puts).
   Baseline: the same formulas per option in a Python loop with ``math.erf``, timed on a
   sample and scaled per option.
2. ``implied_vol``: :func:`plimsoll.risk.iv.implied_vol` on 100,000 of those prices. Baseline:
   a per-option Python Newton-on-vega solver with bisection safeguard (tolerance 1e-12),
   timed on a sample and scaled.
3. The baselines' results are compared with the vectorized ones (max abs differences), so the
   two do the same work.

Usage: ``.venv/bin/python bench/risk_bench.py [--n 1000000] [--n-iv 100000] [--reps 3]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plimsoll.risk import bs, iv  # noqa: E402

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / SQRT2))


def _loop_greeks(
    s: float, k: float, t: float, v: float, r: float, q: float, call: bool
) -> tuple[float, ...]:
    sq = math.sqrt(t)
    sd = v * sq
    d1 = (math.log(s / k) + (r - q) * t) / sd + 0.5 * sd
    d2 = d1 - sd
    sign = 1.0 if call else -1.0
    df, dq = math.exp(-r * t), math.exp(-q * t)
    n1, n2 = _ncdf(sign * d1), _ncdf(sign * d2)
    pdf = INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
    price = sign * (s * dq * n1 - k * df * n2)
    delta = sign * dq * n1
    gamma = dq * pdf / (s * sd)
    vega = s * dq * pdf * sq
    theta = -s * dq * pdf * v / (2 * sq) + sign * (q * s * dq * n1 - r * k * df * n2)
    rho = sign * k * t * df * n2
    return price, delta, gamma, vega, theta, rho


def _loop_iv(price: float, s: float, k: float, t: float, r: float, q: float, call: bool) -> float:
    """Newton on vega with bisection safeguard, per option (a typical hand-rolled solver)."""
    lo, hi, v = 1e-6, 10.0, 0.5
    for _ in range(200):
        p, _, _, vega, _, _ = _loop_greeks(s, k, t, v, r, q, call)
        diff = p - price
        if diff > 0:
            hi = v
        else:
            lo = v
        step = diff / vega if vega > 1e-300 else math.inf
        new = v - step
        if not (lo < new < hi):
            new = 0.5 * (lo + hi)
        if abs(new - v) < 1e-12:
            return new
        v = new
    return math.nan


def _time(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"best_s": min(walls), "median_s": statistics.median(walls), "cpu_best_s": min(cpus)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--n-iv", type=int, default=100_000)
    ap.add_argument("--loop-sample", type=int, default=50_000)
    ap.add_argument("--loop-iv-sample", type=int, default=5_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "risk.json")
    args = ap.parse_args()

    rng = np.random.default_rng(20261125)
    n = args.n
    s = np.full(n, 100.0)
    k = 100.0 * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    t = rng.integers(1, 731, n) / 365.0
    v = np.exp(rng.uniform(math.log(0.1), math.log(3.0), n))
    r = rng.uniform(0.0, 0.1, n)
    q = rng.uniform(0.0, 0.05, n)
    c = rng.random(n) < 0.5

    # 1. greeks
    g = bs.greeks(s, k, t, v, r, q, c)  # warm-up
    vec = _time(lambda: bs.greeks(s, k, t, v, r, q, c), args.reps)
    m = min(args.loop_sample, n)
    rows = list(zip(s[:m].tolist(), k[:m].tolist(), t[:m].tolist(), v[:m].tolist(),
                    r[:m].tolist(), q[:m].tolist(), c[:m].tolist(), strict=True))  # fmt: skip
    w0 = time.perf_counter()
    loop_out = [_loop_greeks(*row) for row in rows]
    loop_s = time.perf_counter() - w0
    loop_arr = np.array(loop_out)
    diffs = {
        name: float(np.max(np.abs(loop_arr[:, i] - getattr(g, name)[:m])))
        for i, name in enumerate(("price", "delta", "gamma", "vega", "theta", "rho"))
    }
    loop_per = loop_s / m
    greeks_res = {
        "options": n,
        "vectorized": vec,
        "vectorized_per_option_ns": vec["best_s"] / n * 1e9,
        "loop_sample": m,
        "loop_sample_s": loop_s,
        "loop_per_option_ns": loop_per * 1e9,
        "loop_scaled_to_n_s": loop_per * n,
        "speedup_vs_loop": loop_per * n / vec["best_s"],
        "max_abs_diff_vs_loop": diffs,
    }

    # 2. implied vol
    ni = min(args.n_iv, n)
    prices = g.price[:ni]
    sl = slice(0, ni)
    out = iv.implied_vol(prices, s[sl], k[sl], t[sl], r[sl], q[sl], c[sl])  # warm-up
    vec_iv = _time(lambda: iv.implied_vol(prices, s[sl], k[sl], t[sl], r[sl], q[sl], c[sl]),
                   args.reps)  # fmt: skip
    mi = min(args.loop_iv_sample, ni)
    w0 = time.perf_counter()
    loop_iv = np.array([
        _loop_iv(float(prices[i]), float(s[i]), float(k[i]), float(t[i]), float(r[i]),
                 float(q[i]), bool(c[i]))
        for i in range(mi)
    ])  # fmt: skip
    loop_iv_s = time.perf_counter() - w0
    vega = g.vega[:ni]
    determined = (prices > 1e-8) & (vega > 1e-2 * prices)
    both = determined[:mi] & ~np.isnan(loop_iv)
    iv_res = {
        "options": ni,
        "vectorized": vec_iv,
        "vectorized_per_option_ns": vec_iv["best_s"] / ni * 1e9,
        "nan_vectorized": int(np.isnan(out).sum()),
        "max_abs_vol_error_vectorized_where_determined": float(
            np.max(np.abs(out - v[sl])[determined])
        ),
        "determined_share": float(determined.mean()),
        "loop_sample": mi,
        "loop_sample_s": loop_iv_s,
        "loop_per_option_us": loop_iv_s / mi * 1e6,
        "loop_scaled_to_n_s": loop_iv_s / mi * ni,
        "speedup_vs_loop": loop_iv_s / mi * ni / vec_iv["best_s"],
        "loop_nan": int(np.isnan(loop_iv).sum()),
        "max_abs_diff_vs_loop_where_determined": float(np.max(np.abs(loop_iv - out[:mi])[both])),
    }

    result = {
        "benchmark": "plimsoll.risk vectorized greeks / implied vol vs per-option Python loop "
        "(math.erf)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "load_avg_1m": os.getloadavg()[0],
        },
        "inputs": "S=100, K/S 0.5-2 (log-uniform), 1-730 days /365, vol 10-300 % (log-uniform), "
        "r 0-10 %, q 0-5 %, calls and puts 50/50",
        "greeks": greeks_res,
        "implied_vol": iv_res,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
