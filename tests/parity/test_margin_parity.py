"""Parity of the off-chain margin mirror (plimsoll.margin) with the contract, on anvil.

~1,100 random accounts (19 owners x 58 subaccounts): a random collateral mix of cash, WETH
and WBTC (some without cash, so fees and realized losses leave cash negative), random long and
short positions in the three markets (SOL-PERP reconfigured with a steep size slope so that
large positions hit the 100% IM-rate cap; strong funding in every market), two rounds of
trades with price moves and multi-day time warps in between (feeds re-posted after each warp),
volatility scalars (two rising with MM mid-ramp, one falling), and a final warp that leaves
funding pending in every market. The MarginState is read from the
contract's views at one pinned block; every account's equity, IM, MM and liquidatable flag must
equal ``accountMargin`` / ``isLiquidatable`` at that block, and every market's funding index
``fundingIndex``: 0 mismatches.
"""

from __future__ import annotations

import random
import time

from parity_chain import (
    Rpc,
    Sender,
    Tx,
    answer,
    configure_markets,
    encode,
    fund_owners,
    post_prices,
    random_deposits,
    random_trades,
    read_contract_margins,
    read_state,
    warp,
)
from web3 import Web3

from plimsoll.chain import LocalNode
from plimsoll.deploy import Deployment
from plimsoll.margin import compute_margin, shortfall_ranking

OWNERS = 19
SUBS = 58  # 19 x 58 = 1,102 accounts
WAD = 10**18
DAY = 86_400


def test_margin_parity(dep: Deployment, node: LocalNode, w3: Web3) -> None:
    t0 = time.monotonic()
    rng = random.Random(4_2024)
    rpc = Rpc(node.url)
    sender = Sender(rpc)
    owners = list(w3.eth.accounts)[1 : 1 + OWNERS]
    accounts = [(o, s) for o in owners for s in range(SUBS)]

    configure_markets(
        dep,
        sender,
        {
            0: {"maxFundingRateWad": WAD // 10, "skewScale": 300 * WAD},
            1: {"maxFundingRateWad": WAD // 10, "skewScale": 10 * WAD},
            # imRate = 0.2 + 0.01 x |size|: capped at 100% from 80 SOL.
            2: {
                "sizeSlopeWad": WAD // 100,
                "maxFundingRateWad": WAD // 20,
                "skewScale": 20_000 * WAD,
            },
        },
    )
    prices = {
        0: 2000.0 * rng.uniform(0.97, 1.03),
        1: 60000.0 * rng.uniform(0.97, 1.03),
        2: 150.0 * rng.uniform(0.97, 1.03),
    }
    post_prices(dep, sender, {m + 1: answer(p, rng) for m, p in prices.items()})
    fund_owners(dep, sender, owners)
    deposits, budget = random_deposits(dep, rng, accounts)
    sender.send(deposits)
    sender.send(random_trades(dep, rng, accounts, prices, budget))

    # A day later, prices moved; half the accounts trade again (increase, reduce, close or
    # flip: every change settles PnL and funding to cash).
    warp(rpc, DAY + rng.randint(0, 3600))
    prices = {m: p * rng.uniform(0.88, 1.12) for m, p in prices.items()}
    post_prices(dep, sender, {m + 1: answer(p, rng) for m, p in prices.items()})
    again = [a for a in accounts if rng.random() < 0.5]
    sender.send(random_trades(dep, rng, again, prices, budget))

    # Two more days of funding, a last price move, then some minutes with funding pending.
    warp(rpc, 2 * DAY + rng.randint(0, 3600))
    prices = {m: p * rng.uniform(0.85, 1.15) for m, p in prices.items()}
    post_prices(dep, sender, {m + 1: answer(p, rng) for m, p in prices.items()})
    # Volatility scalars: ETH and SOL rise (MM still ramping when read), BTC falls at once.
    sender.send(
        [
            Tx(dep.admin, dep.core.address, encode(dep.core, "setVolScalar", m, scalar))
            for m, scalar in ((0, WAD * 3 // 2), (1, WAD * 7 // 10), (2, WAD * 13 // 10))
        ]
    )
    warp(rpc, rng.randint(60, 3000))
    block = w3.eth.block_number
    t_fill = time.monotonic() - t0

    state = read_state(dep, rpc, accounts, block)
    margins, liq = read_contract_margins(dep, rpc, accounts, block)
    t_read = time.monotonic() - t0 - t_fill
    index_on_chain = [
        int(dep.core.functions.fundingIndex(m).call(block_identifier=block)) for m in range(3)
    ]

    t1 = time.perf_counter()
    result = compute_margin(state)
    t_mirror = time.perf_counter() - t1

    mismatches = []
    for i, acct in enumerate(accounts):
        got = (
            int(result.equity[i]),
            int(result.im[i]),
            int(result.mm[i]),
            bool(result.liquidatable[i]),
        )
        want = (*margins[i], liq[i])
        if got != want:
            mismatches.append((acct, want, got))
    assert result.funding_index == index_on_chain
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"

    # The random state covers what it is meant to cover.
    n = len(accounts)
    sizes = state.sizes
    stats = {
        "accounts": n,
        "liquidatable": int(result.liquidatable.sum()),
        "negative_cash": sum(1 for c in state.cash if c < 0),
        "negative_equity": sum(1 for e in result.equity if e < 0),
        "with_weth": sum(1 for b in state.balances[:, 0] if b > 0),
        "with_wbtc": sum(1 for b in state.balances[:, 1] if b > 0),
        "longs": sum(1 for s in sizes.ravel() if s > 0),
        "shorts": sum(1 for s in sizes.ravel() if s < 0),
        "sol_capped": sum(1 for s in sizes[:, 2] if abs(s) >= 80 * WAD),
        "pending_funding_markets": sum(
            1 for m in range(3) if index_on_chain[m] != int(state.funding_index[m])
        ),
        "stale_entry_index": sum(
            1
            for m in range(3)
            for i in range(n)
            if sizes[i, m] != 0 and state.entry_funding_index[i, m] != index_on_chain[m]
        ),
    }
    print(
        f"\nparity: {n} accounts, 0 mismatches; fill {t_fill:.1f}s, read {t_read:.1f}s, "
        f"mirror {t_mirror * 1e3:.1f} ms; {stats}"
    )
    assert n >= 1000
    assert stats["liquidatable"] >= 10 and stats["liquidatable"] <= n - 100
    assert stats["negative_cash"] >= 50 and stats["with_weth"] >= 200 and stats["with_wbtc"] >= 200
    assert stats["longs"] >= 300 and stats["shorts"] >= 300 and stats["sol_capped"] >= 1
    assert stats["pending_funding_markets"] == 3 and stats["stale_entry_index"] >= 300
    assert state.mm_scalar is not None and state.im_scalar is not None
    assert WAD < int(state.mm_scalar[0]) < int(state.im_scalar[0]) == WAD * 3 // 2  # mid-ramp
    assert int(state.mm_scalar[1]) == int(state.im_scalar[1]) == WAD * 7 // 10

    # The ranking lists exactly the liquidatable accounts, worst (equity - mm) / mm first.
    ranked = shortfall_ranking(result)
    assert sorted(ranked.tolist()) == [i for i in range(n) if liq[i]]
    ratios = [(margins[i][0] - margins[i][2]) / margins[i][2] for i in ranked if margins[i][2]]
    assert ratios == sorted(ratios)
