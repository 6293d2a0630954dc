"""Gas of the on-chain Black-Scholes library (contracts/libraries/BlackScholes.sol).

Deploys ``BlackScholesHarness`` (compiled like the protocol: solc 0.8.28, optimizer 200 runs,
via-IR, shanghai) on a fresh anvil and reads its ``gas*`` views, which return the gas between
two ``gasleft()`` calls around one library call: the library's own cost, without the external
call, ABI decoding or calldata. Figures are deterministic for fixed inputs.

Measured:

* ``cdf``: N(x) on 201 points of [-10, 10], per approximation range;
* ``prepare``: the per-option precomputation (ln K, sqrt T, K e^{-rT});
* ``price``: plain call/put pair (prepare + lnWad(spot) + the formula);
* ``priceAt`` / ``priceAtLn``: one scenario of the fast path, with or without lnWad(spot);
* ``scenario_grid_27``: a whole 9 spot shocks x 3 vol shocks grid for one option, prepare,
  ln of the spot and of each shock, loop and result writes included; also per scenario.

Options: S/K in {0.5, 0.8, 1, 1.25, 2}, tau in {1 d, 30 d, 1 y, 2 y}, vol in {10%, 50%, 100%,
300%}, rate in {0, 5%} (160 options). Writes ``bench/results/bs_gas.json``.

Usage: ``.venv/bin/python bench/bs_gas.py [--out PATH]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plimsoll.build import SETTINGS, compile_contracts  # noqa: E402
from plimsoll.chain import LocalNode  # noqa: E402
from plimsoll.risk_fixed import ln_wad  # noqa: E402

WAD = 10**18
YEAR = 365 * 86400
ROOT32 = 5_656_854_248_000_000_000  # sqrt(32) as rounded in Cody's ANORM [wad]
MONEYNESS = [0.5, 0.8, 1.0, 1.25, 2.0]
TAUS = [86400, 30 * 86400, YEAR, 2 * YEAR]
VOLS = [0.1, 0.5, 1.0, 3.0]
RATES = [0.0, 0.05]
SPOT_SHOCKS = [0.7, 0.8, 0.85, 0.9, 1.0, 1.1, 1.15, 1.2, 1.3]
VOL_SHOCKS = [0.7, 1.0, 1.3]


def _wad(x: float) -> int:
    return round(x * WAD)


def _stats(xs: list[int]) -> dict[str, float]:
    return {"n": len(xs), "min": min(xs), "median": statistics.median(xs), "max": max(xs)}


def measure() -> dict[str, Any]:
    art = compile_contracts()["BlackScholesHarness"]
    with LocalNode(accounts=1) as w3:
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor().transact({"from": w3.eth.accounts[0]})
        h = w3.eth.contract(
            address=w3.eth.wait_for_transaction_receipt(tx)["contractAddress"], abi=art.abi
        )
        f = h.functions

        xs = [(i - 100) * WAD // 10 for i in range(201)]
        cdf_gas = {x: f.gasCdf(x).call()[1] for x in xs}
        ranges = {
            "|x| <= 0.66291": [g for x, g in cdf_gas.items() if abs(x) <= 662_910_000_000_000_000],
            "0.66291 < |x| <= sqrt(32)": [
                g for x, g in cdf_gas.items() if 662_910_000_000_000_000 < abs(x) <= ROOT32
            ],
            "sqrt(32) < |x| < 9": [g for x, g in cdf_gas.items() if ROOT32 < abs(x) < 9 * WAD],
            "|x| >= 9": [g for x, g in cdf_gas.items() if abs(x) >= 9 * WAD],
        }

        plain, prep, at, at_ln, grid = [], [], [], [], []
        strike = _wad(2000)
        for m, tau, vol, rate in itertools.product(MONEYNESS, TAUS, VOLS, RATES):
            spot, v, r = strike * _wad(m) // WAD, _wad(vol), _wad(rate)
            plain.append(f.gasPrice(spot, strike, v, tau, r).call()[2])
            prep.append(f.gasPrepare(strike, tau, r).call())
            p = f.prepare(strike, tau, r).call()
            at.append(f.gasPriceAt(p, spot, v).call()[2])
            ln_spot = ln_wad(spot)  # bit-exact solady lnWad, as a caller would pass it
            at_ln.append(f.gasPriceAtLn(p, spot, ln_spot, v).call()[2])
            if m == 1.0:
                shocks = [_wad(s) for s in SPOT_SHOCKS]
                vols = [_wad(vol * s) for s in VOL_SHOCKS]
                grid.append(f.gasScenarioGrid(spot, strike, tau, r, shocks, vols).call())

    n_sc = len(SPOT_SHOCKS) * len(VOL_SHOCKS)
    return {
        "cdf": {"all": _stats(list(cdf_gas.values()))}
        | {k: _stats(v) for k, v in ranges.items() if v},
        "prepare": _stats(prep),
        "price_plain_pair": _stats(plain),
        "priceAt_pair_fast_path": _stats(at),
        "priceAtLn_pair_fast_path": _stats(at_ln),
        f"scenario_grid_{n_sc}": {
            "total": _stats(grid),
            "per_scenario_all_in": {
                k: v / n_sc if k != "n" else v for k, v in _stats(grid).items()
            },
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bs_gas.json")
    args = ap.parse_args()
    gas = measure()
    out = {
        "benchmark": "gas of BlackScholes library calls (gasleft() window inside the harness)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "compiler": {
            "solc": "0.8.28 (npm solcjs)",
            **{k: SETTINGS[k] for k in ("optimizer", "viaIR", "evmVersion")},
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "inputs": {
            "moneyness": MONEYNESS,
            "tau_s": TAUS,
            "vol": VOLS,
            "rate": RATES,
            "spot_shocks": SPOT_SHOCKS,
            "vol_shocks": VOL_SHOCKS,
        },
        "gas": gas,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for k, v in gas.items():
        print(f"{k:28s} {json.dumps(v)}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
