"""Fail unless forge's line coverage of every core contract is at least the floor.

    forge coverage ... --report summary | python scripts/coverage_check.py [--floor 90]

Core contracts: contracts/Plimsoll.sol, contracts/core/*.sol, contracts/oracle/*.sol,
contracts/options/*.sol, contracts/LiquidityPool.sol, contracts/libraries/*.sol (mocks and the
read-only lens are not).
"""

from __future__ import annotations

import argparse
import re
import sys

CORE = re.compile(r"contracts/(Plimsoll\.sol|LiquidityPool\.sol|core/|oracle/|options/|libraries/)")
ROW = re.compile(r"\|\s*(contracts/\S+)\s*\|\s*([\d.]+)% \((\d+)/(\d+)\)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--floor", type=float, default=90.0)
    args = ap.parse_args()
    text = sys.stdin.read()
    rows = [
        (m.group(1), float(m.group(2)), int(m.group(3)), int(m.group(4)))
        for m in ROW.finditer(text)
        if CORE.match(m.group(1))
    ]
    if not rows:
        print("coverage-check: no coverage table on stdin", file=sys.stderr)
        return 1
    hit = sum(r[2] for r in rows)
    total = sum(r[3] for r in rows)
    low = [r for r in rows if r[1] < args.floor]
    for name, pct, h, t in rows:
        print(f"{name:40s} {pct:6.2f}% ({h}/{t}){'  < floor' if pct < args.floor else ''}")
    print(
        f"core contracts: {100 * hit / total:.2f}% of {total} lines (floor {args.floor}% per file)"
    )
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
