"""Stress scenarios for the circuit breakers and dynamic margin, on a local anvil chain.

    python scripts/stress.py [--traders 40] [--seed 3]

Prints one JSON object with two parts (the tests in tests/keeper/test_stress.py run the same
functions and assert the figures):

``flash_wick``
    ETH longs from 2x to ~9.5x leverage. The ETH price falls 40% and comes back within three
    blocks (down, down, back), then stays. A perfect liquidator tries every account the core
    reports liquidatable, every block. Run three times on fresh chains: breakers on (jump >15%
    is suspect until 3 agreeing rounds), breakers off, and breakers on with a crash that stays.
    Figures: accounts liquidated, and of those how many were healthy once the price recovered
    (every account was opened healthy at the price it recovers to).

``vol_jump``
    The risk keeper samples the ETH price hourly (EWMA, lambda 0.94) while realized volatility
    runs at 50% a year, then at 150%, and posts volatility scalars within the contract's limits
    (+-50% per update, MM rises ramped over an hour). At every update the set of liquidatable
    accounts is read just before and just after the update lands. Then prices are held while
    the last ramp completes: owners who answer the margin call (top up to IM) and owners who do
    nothing are compared on the same chain (snapshot / revert).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from keepers.risk import RiskConfig, RiskKeeper
from plimsoll.chain import LocalNode
from plimsoll.deploy import BreakerSpec, Deployment, deploy_local
from plimsoll.units import WAD, token_units, wad

ETH_MARKET = 0
ETH_FEED = 1
P0 = 2_000.0
GAS = 1_500_000


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    return w3.provider.make_request(method, params)  # type: ignore[arg-type]


def open_longs(dep: Deployment, n: int, rng: random.Random) -> list[str]:
    """n ETH longs, 5,000-20,000 USDC each, leverage spread over 2x .. 9.5x (IM allows ~10x)."""
    w3, core, usdc = dep.w3, dep.core, dep.cash
    traders = [str(a) for a in w3.eth.accounts[2 : 2 + n]]
    hashes = []
    for i, addr in enumerate(traders):
        cash = round(rng.uniform(5_000, 20_000), 2)
        lev = 2.0 + 7.5 * i / max(1, n - 1)
        size = cash * lev / P0
        for fn in (
            usdc.functions.mint(addr, token_units(cash, 6)),
            usdc.functions.approve(core.address, 2**256 - 1),
            core.functions.deposit(0, 0, token_units(cash, 6)),
            core.functions.trade(0, ETH_MARKET, wad(round(size, 6)), 0),
        ):
            hashes.append(fn.transact({"from": addr, "gas": GAS}))
    for h in hashes:
        if w3.eth.wait_for_transaction_receipt(h, timeout=120)["status"] != 1:
            raise RuntimeError("set-up transaction failed")
    return traders


def _set_prices(dep: Deployment, eth: float) -> None:
    """One round on every feed (ETH at ``eth``, the others unchanged) in one block."""
    _rpc(dep.w3, "evm_setAutomine", [False])
    try:
        for feed_id, feed in dep.feeds.items():
            answer = (
                int(wad(eth) // 10**10)
                if feed_id == ETH_FEED
                else feed.functions.latestAnswer().call()
            )
            feed.functions.updateAnswer(answer).transact({"from": dep.admin, "gas": 200_000})
        _rpc(dep.w3, "evm_mine", [])
    finally:
        _rpc(dep.w3, "evm_setAutomine", [True])


def _liquidatable(dep: Deployment, traders: list[str]) -> set[str]:
    f = dep.core.functions
    return {t for t in traders if f.isLiquidatable(t, 0).call()}


def flash_wick_run(n: int, seed: int, breakers: bool, stays: bool) -> dict[str, Any]:
    """One run of the wick scenario on a fresh chain (see the module notes)."""
    rng = random.Random(seed)
    with LocalNode(accounts=n + 3) as w3:
        dep = deploy_local(w3, breaker=BreakerSpec() if breakers else None)
        traders = open_longs(dep, n, rng)
        keeper = str(list(w3.eth.accounts)[1])
        path = [P0 * 0.6, P0 * 0.6] + ([P0 * 0.6] * 6 if stays else [P0] * 6)
        liquidated: dict[str, int] = {}
        held_blocks = 0
        for step, price in enumerate(path):
            _set_prices(dep, price)
            _, status = dep.oracle.functions.priceInfo(ETH_FEED).call()
            held_blocks += int(status) != 0
            for t in sorted(_liquidatable(dep, traders) - set(liquidated)):
                dep.core.functions.liquidate(t, 0).transact({"from": keeper, "gas": GAS})
                liquidated[t] = step
        # Every account was opened healthy at P0; after a recovery to P0 all would be healthy.
        recovered = not stays
        return {
            "breakers": breakers,
            "crash_stays": stays,
            "accounts": n,
            "liquidated": len(liquidated),
            "liquidated_but_healthy_after_recovery": len(liquidated) if recovered else 0,
            "blocks_price_held": held_blocks,
            "first_liquidation_step": min(liquidated.values()) if liquidated else None,
            "liquidatable_left": len(_liquidatable(dep, traders) - set(liquidated)),
        }


def flash_wick(n: int = 40, seed: int = 3) -> dict[str, Any]:
    return {
        "breakers_on": flash_wick_run(n, seed, breakers=True, stays=False),
        "breakers_off": flash_wick_run(n, seed, breakers=False, stays=False),
        "real_crash_breakers_on": flash_wick_run(n, seed, breakers=True, stays=True),
    }


def vol_jump(
    n: int = 40, seed: int = 3, low: float = 0.5, high: float = 1.5, stop_at: float = 2.5
) -> dict[str, Any]:
    """The volatility-jump scenario (see the module notes): it stops at the first rise of the
    scalar to ``stop_at`` or more once volatility is high, and holds prices through that ramp."""
    rng = random.Random(seed)
    hour = 3_600
    with tempfile.TemporaryDirectory() as tmp, LocalNode(accounts=n + 3) as w3:
        dep = deploy_local(w3)  # risk limits: [0.5, 4], +-50% per update, 60 s apart, 1 h ramp
        traders = open_longs(dep, n, rng)
        path = Path(tmp) / "deployment.json"
        dep.save(path)
        keeper = RiskKeeper(
            RiskConfig(
                rpc="", deployment=path, sender=dep.admin, sample_seconds=hour, base_vol=low
            ),
            w3,
        )
        keeper.markets = [m for m in keeper.markets if m.market_id == ETH_MARKET]
        f = dep.core.functions
        updates: list[dict[str, Any]] = []
        price = P0

        def before_post(market: int, scalar: int) -> None:
            updates.append({"scalar": scalar / WAD, "before": _liquidatable(dep, traders)})

        keeper.before_post = before_post
        for k in range(70):
            vol = low if k < 30 else high
            price *= math.exp(rng.gauss(-0.5 * vol**2 / 8760, vol / math.sqrt(8760)))
            _rpc(w3, "evm_increaseTime", [hour])
            _set_prices(dep, price)
            n_before = len(updates)
            keeper.step()
            if len(updates) > n_before:
                u = updates[-1]
                after = _liquidatable(dep, traders)
                u["newly_liquidatable"] = len(after - u.pop("before"))
                u["im_scalar"], u["mm_scalar"] = (x / WAD for x in f.volScalars(ETH_MARKET).call())
                rose = len(updates) > 1 and u["scalar"] > updates[-2]["scalar"]
                if vol == high and rose and u["scalar"] >= stop_at:
                    break  # well into the jump, right after a rise: hold through its ramp
        # Hold the price through the last ramp: owners who top up vs owners who do nothing.
        margins = {t: f.accountMargin(t, 0).call() for t in traders}
        in_call = [t for t, (e, im, mm) in margins.items() if mm <= e < im]
        liq_now = _liquidatable(dep, traders)
        mm_now = sum(int(m[2]) for m in margins.values())
        im_now = sum(int(m[1]) for m in margins.values())
        snap = _rpc(w3, "evm_snapshot", [])["result"]
        _rpc(w3, "evm_increaseTime", [hour])
        _set_prices(dep, price)
        idle = _liquidatable(dep, traders) - liq_now
        mm_ramped = sum(int(f.accountMargin(t, 0).call()[2]) for t in traders)
        _rpc(w3, "evm_revert", [snap])
        for t in in_call:  # answer the margin call: top up to IM (+1%)
            e, im, _ = margins[t]
            top = token_units((im - e) * 1.01 / WAD, 6) + 1
            dep.cash.functions.mint(t, top).transact({"from": t, "gas": GAS})
            f.deposit(0, 0, top).transact({"from": t, "gas": GAS})
        _rpc(w3, "evm_increaseTime", [hour])
        _set_prices(dep, price)
        responded = _liquidatable(dep, traders) - liq_now
        ests = keeper.markets[0].history
        return {
            "accounts": n,
            "vol_low": low,
            "vol_high": high,
            "ewma_vol_end": round(ests[-1][1], 4) if ests else None,
            "updates": len(updates),
            "scalars": [round(u["scalar"], 4) for u in updates],
            "newly_liquidatable_at_updates": sum(u["newly_liquidatable"] for u in updates),
            "final_scalar": updates[-1]["scalar"] if updates else 1.0,
            "margin_calls_after_last_update": len(in_call),
            "liquidatable_from_price_moves": len(liq_now),
            "im_total_at_last_update": round(im_now / WAD, 2),
            "mm_total_at_last_update": round(mm_now / WAD, 2),
            "mm_total_after_last_ramp": round(mm_ramped / WAD, 2),
            "newly_liquidatable_after_ramp_owners_topped_up": len(responded),
            "newly_liquidatable_after_ramp_owners_idle": len(idle),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Plimsoll breaker and dynamic-margin scenarios")
    ap.add_argument("--traders", type=int, default=40)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    out = {
        "flash_wick": flash_wick(args.traders, args.seed),
        "vol_jump": vol_jump(args.traders, args.seed),
        "seconds": 0.0,
    }
    out["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
