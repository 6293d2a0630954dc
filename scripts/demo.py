"""The main job, end to end on a local anvil: deploy, trade, crash prices, liquidate, report.

    python scripts/demo.py [--traders 120] [--crash 0.30] [--steps 15] [--seed 7]

Starts anvil, deploys Plimsoll with mock tokens and feeds, opens leveraged perpetual positions
for many traders (random collateral mix, leverage, market and direction; cross and isolated
subaccounts), moves every price down by ``--crash`` over ``--steps`` blocks and, after each
move, liquidates every account the contract reports as liquidatable (this script stands in for
the keeper bot). Prints a summary; its last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from web3.logs import DISCARD

from plimsoll.chain import LocalNode
from plimsoll.deploy import DEFAULT_PRICES, Deployment, deploy_local
from plimsoll.errors import ContractRevert, PlimsollError
from plimsoll.units import WAD, token_units, wad


@dataclass
class Trader:
    addr: str
    sub: int
    market: int
    isolated: bool


def _open_traders(dep: Deployment, addrs: list[str], rng: random.Random) -> list[Trader]:
    core = dep.core
    prices = {m["id"]: DEFAULT_PRICES[m["feed_id"]] for m in dep.markets}
    traders: list[Trader] = []
    for addr in addrs:
        market = rng.choice([0, 0, 0, 1, 1, 2])
        isolated = rng.random() < 0.3
        sub = 1 if isolated else 0
        if isolated:
            dep.send(core.functions.configureSubaccount(sub, market + 1), addr)
        # Collateral: cash always; sometimes WETH or WBTC on top.
        cash_usd = rng.uniform(2_000, 20_000)
        _deposit(dep, addr, sub, 0, token_units(round(cash_usd, 2), 6))
        coll_usd = 0.0
        mix = rng.random()
        if mix < 0.3:
            eth = round(rng.uniform(0.5, 4), 4)
            _deposit(dep, addr, sub, 1, token_units(eth, 18))
            coll_usd = eth * DEFAULT_PRICES[1] * 0.8
        elif mix < 0.5:
            btc = round(rng.uniform(0.01, 0.1), 6)
            _deposit(dep, addr, sub, 2, token_units(btc, 8))
            coll_usd = btc * DEFAULT_PRICES[2] * 0.75
        leverage = rng.uniform(2.0, 8.5)
        notional = (cash_usd + coll_usd) * leverage
        size = notional / prices[market]
        direction = 1 if rng.random() < 0.85 else -1
        try:
            dep.send(core.functions.trade(sub, market, direction * wad(round(size, 6)), 0), addr)
        except ContractRevert as e:  # too much leverage for the size-dependent rate: halve it
            if e.name != "InsufficientMargin":
                raise
            dep.send(
                core.functions.trade(sub, market, direction * wad(round(size / 2, 6)), 0), addr
            )
        traders.append(Trader(addr, sub, market, isolated))
    return traders


def _deposit(dep: Deployment, who: str, sub: int, asset_id: int, amount: int) -> None:
    tok = dep.token(asset_id)
    dep.send(tok.functions.mint(who, amount), who)
    dep.send(tok.functions.approve(dep.core.address, 2**256 - 1), who)
    dep.send(dep.core.functions.deposit(sub, asset_id, amount), who)


def run(n_traders: int, crash: float, steps: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    t0 = time.monotonic()
    with LocalNode(accounts=n_traders + 2) as w3:
        dep = deploy_local(w3)
        core = dep.core
        accts: list[str] = [str(x) for x in w3.eth.accounts]
        keeper = accts[1]
        traders = _open_traders(dep, accts[2 : 2 + n_traders], rng)
        print(f"deployed and opened {len(traders)} positions in {time.monotonic() - t0:.1f}s")
        pool_before = core.functions.poolMargin().call()[0]
        insurance_before = core.functions.insuranceFund().call()

        first_seen: dict[tuple[str, int], int] = {}
        liquidated_at: dict[tuple[str, int], int] = {}
        liquidations = 0
        collateral_liquidations = 0
        bad_debt = 0
        gas: list[int] = []
        for step in range(1, steps + 1):
            for feed_id, p0 in DEFAULT_PRICES.items():
                dep.set_price(feed_id, round(p0 * (1 - crash * step / steps), 6))
            block = w3.eth.block_number
            for t in traders:
                key = (t.addr, t.sub)
                if not core.functions.isLiquidatable(t.addr, t.sub).call():
                    continue
                first_seen.setdefault(key, block)
                acct: Any = core.functions.getAccount(t.addr, t.sub).call()
                try:
                    if acct[2] != 0:  # marketMask: positions open
                        r = dep.send(core.functions.liquidate(t.addr, t.sub), keeper)
                        liquidations += 1
                    else:  # only collateral and cash debt left: buy the collateral
                        r = _buy_collateral(dep, keeper, t)
                        collateral_liquidations += 1
                    gas.append(int(r["gasUsed"]))
                    liquidated_at.setdefault(key, int(r["blockNumber"]))
                    for log in core.events.BadDebtSettled().process_receipt(r, errors=DISCARD):
                        bad_debt += int(log["args"]["deficit"])
                except ContractRevert as e:
                    print(f"  liquidation of {t.addr[:10]}/{t.sub} refused: {e}")
            print(
                f"step {step:2d}: prices -{crash * step / steps:.0%}, "
                f"{len(first_seen)} seen liquidatable, {liquidations} liquidations"
            )

        missed = sum(1 for t in traders if core.functions.isLiquidatable(t.addr, t.sub).call())
        lags = sorted(liquidated_at[k] - first_seen[k] for k in liquidated_at if k in first_seen)
        pool_after = core.functions.poolMargin().call()[0]
        summary = {
            "accounts": len(traders),
            "isolated_accounts": sum(t.isolated for t in traders),
            "liquidatable_seen": len(first_seen),
            "liquidated": len(liquidated_at),
            "liquidations": liquidations,
            "collateral_liquidations": collateral_liquidations,
            "missed": missed,
            "bad_debt": bad_debt / WAD,
            "insurance_fund_change": (core.functions.insuranceFund().call() - insurance_before)
            / WAD,
            "pool_equity_change": (pool_after - pool_before) / WAD,
            "blocks_to_liquidation_p50": lags[len(lags) // 2] if lags else None,
            "blocks_to_liquidation_p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))]
            if lags
            else None,
            "liquidation_gas_mean": round(sum(gas) / len(gas)) if gas else None,
            "seconds": round(time.monotonic() - t0, 1),
        }
    return summary


def _buy_collateral(dep: Deployment, keeper: str, t: Trader) -> Any:
    core = dep.core
    for asset_id in (1, 2):
        if core.functions.collateralBalance(t.addr, t.sub, asset_id).call() > 0:
            debt = -core.functions.getAccount(t.addr, t.sub).call()[0]
            amount = -(-debt // 10**12)
            dep.send(dep.cash.functions.mint(keeper, amount), keeper)
            dep.send(dep.cash.functions.approve(core.address, 2**256 - 1), keeper)
            return dep.send(
                core.functions.liquidateCollateral(t.addr, t.sub, asset_id, amount), keeper
            )
    raise PlimsollError("liquidatable account without positions or collateral")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Plimsoll demo: trade, crash, liquidate")
    ap.add_argument("--traders", type=int, default=120)
    ap.add_argument("--crash", type=float, default=0.30)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    try:
        summary = run(args.traders, args.crash, args.steps, args.seed)
    except PlimsollError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0 if summary["missed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] if len(sys.argv) > 1 and sys.argv[0].endswith("demo.py") else []))
