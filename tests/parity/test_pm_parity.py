"""Parity of the off-chain option and portfolio margin mirror (plimsoll.pm) with the contract.

~1,000 random portfolios (20 owners x 50 subaccounts) on a fresh anvil: 30 series on three
underlyings (calls and puts, strikes 0.8-1.25 x spot, expiries from 2 days to 90 days, so
both sides of the 30-day vol-shock scaling), 1-4 option positions per account (long and
short), a perp on most accounts, random cash. Then prices and implied vols move and a
volatility scalar ramps, so that some accounts fall below portfolio MM. At one pinned block
every account's ``OptionsMarket.accountRisk`` (standard and portfolio mode, full grid) is
compared with the mirror: option value, IM and MM within 1e-9 relative; the liquidatable
flag in portfolio mode equal away from exact ties. The mirror's worst scenarios, sent back
as witnesses, give the contract's full-grid MM.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import numpy as np
import pytest
from parity_chain import Reader, Rpc, Sender, Tx, encode, fund_owners, post_prices
from web3 import Web3

from plimsoll import pm
from plimsoll.chain import LocalNode
from plimsoll.deploy import Deployment, deploy_local

OWNERS = 20
SUBS = 50
WAD = 10**18
DAY = 86_400
FULL = 2**256 - 1
SPOTS = {0: 2000.0, 1: 60_000.0, 2: 150.0}


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Web3, Deployment, LocalNode]]:
    with LocalNode(accounts=OWNERS + 2) as w3:
        node = w3  # the LocalNode context yields the Web3
        dep = deploy_local(w3, pool_liquidity=10**6 * 10**8)  # 100M USDC: the pool writes a lot
        yield w3, dep, node  # type: ignore[misc]


def _rel_close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), scale)


def test_portfolio_margin_parity(chain) -> None:  # noqa: PLR0915 - one scenario, end to end
    w3, dep, _ = chain
    t0 = time.monotonic()
    rng = random.Random(5_2026)
    rpc = Rpc(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    sender = Sender(rpc)
    opts = dep.contracts["OptionsMarket"]
    now = int(w3.eth.get_block("latest")["timestamp"])

    # 30 series: ETH 12, BTC 10, SOL 8.
    listing = []
    for m, count in ((0, 12), (1, 10), (2, 8)):
        for _ in range(count):
            expiry = now + rng.choice([2, 7, 20, 30, 45, 90]) * DAY + rng.randint(0, 3600)
            strike = int(SPOTS[m] * rng.choice([0.8, 0.9, 1.0, 1.1, 1.25]) * WAD)
            call = encode(opts, "listSeries", m, rng.random() < 0.5, expiry, strike)
            listing.append(Tx(dep.admin, opts.address, call))
    sender.send(listing)
    n_series = int(opts.functions.seriesCount().call())
    assert n_series == 30

    owners = list(w3.eth.accounts)[1 : 1 + OWNERS]
    fund_owners(dep, sender, owners)
    accounts = [(o, s) for o in owners for s in range(SUBS)]
    core = dep.core
    txs = []
    for o, s in accounts:
        txs.append(Tx(o, core.address, encode(core, "deposit", s, 0, rng.randint(3_000, 60_000) * 10**6)))
    sender.send(txs)
    txs = []
    for o, s in accounts:
        if rng.random() < 0.7:
            m = rng.choice([0, 1, 2])
            size = rng.uniform(-1, 1) * 30_000 / SPOTS[m]
            txs.append(Tx(o, core.address, encode(core, "trade", s, m, int(size * WAD), 0)))
        for _ in range(rng.randint(1, 4)):
            sid = rng.randrange(n_series)
            m = int(opts.functions.series(sid).call()[0])
            size = rng.uniform(-1, 1) * 30_000 / SPOTS[m]
            txs.append(Tx(o, opts.address, encode(opts, "trade", s, sid, int(size * WAD), 0)))
    sender.send(txs)

    # Markets move: spot, implied vol, and a volatility scalar starts ramping on ETH.
    moves = {1: 0.9, 2: 1.08, 3: 0.85}
    post_prices(dep, sender, {f: int(SPOTS[f - 1] * k * 10**8) for f, k in moves.items()})
    post_prices(dep, sender, {11: int(1.1 * 10**8), 12: int(0.6 * 10**8), 13: int(1.3 * 10**8)})
    sender.send([Tx(dep.admin, core.address, encode(core, "setVolScalar", 0, WAD * 13 // 10))])
    rpc.call("evm_increaseTime", [900])
    rpc.call("evm_mine", [])
    block = w3.eth.block_number
    t_fill = time.monotonic() - t0

    # --- the contract, at one block
    r = Reader(rpc, block)
    ts = int(w3.eth.get_block(block)["timestamp"])
    series_raw = r.read([(opts, "series", (i,)) for i in range(n_series)])
    series = [pm.Series(int(x[0]), bool(x[1]), int(x[2]), int(x[3]), int(x[4])) for x in series_raw]
    ocfg = pm.OptionsConfig.from_wad_tuple(r.read([(opts, "optionsConfig", (0,))])[0])
    pcfg = pm.PortfolioConfig.from_wad_tuple(r.read([(opts, "portfolioConfig", ())])[0])
    oracle = dep.oracle
    spot = [int(x[0]) for x in r.read([(oracle, "priceInfo", (f,)) for f in (1, 2, 3)])]
    iv = [int(x[0]) for x in r.read([(oracle, "priceInfo", (f,)) for f in (11, 12, 13)])]
    scal = r.read([(core, "volScalars", (m,)) for m in range(3)])
    market = pm.MarketData(
        spot=tuple(spot), iv=tuple(iv), timestamp=ts,
        im_scalar=tuple(int(x[0]) for x in scal), mm_scalar=tuple(int(x[1]) for x in scal),
    )
    held = r.read([(opts, "positions", a) for a in accounts])
    perps = r.read([(core, "getPosition", (o, s, m)) for o, s in accounts for m in range(3)])
    std = r.read([(opts, "accountRisk", (o, s, False, FULL)) for o, s in accounts])
    port = r.read([(opts, "accountRisk", (o, s, True, FULL)) for o, s in accounts])
    margins = r.read([(core, "accountMargin", a) for a in accounts])

    n = len(accounts)
    positions = [[(series[int(i)], int(q)) for i, q in zip(ids, qs, strict=True)] for ids, qs in held]
    perp_sizes = np.array([[int(perps[3 * k + m][0]) for m in range(3)] for k in range(n)], dtype=object)
    # Standard-mode equity without the options' contribution (cash, collateral, perp PnL).
    other = np.array([int(margins[k][0]) - int(std[k][0]) for k in range(n)], dtype=object)
    book = pm.OptionBook.from_positions(positions, perp_sizes, other)

    t1 = time.perf_counter()
    s_mirror = pm.standard_option_margin(book, market, ocfg)
    p_mirror = pm.portfolio_margin(book, market, pcfg)
    t_mirror = time.perf_counter() - t1

    bad = []
    flags = ties = liquidatable = 0
    for k in range(n):
        scale = sum(abs(q) * spot[s.market_id] for s, q in positions[k]) / WAD**2 + 1.0
        for name, got, want in (
            ("std value", s_mirror.value[k], int(std[k][0]) / WAD),
            ("std im", s_mirror.im[k], int(std[k][1]) / WAD),
            ("std mm", s_mirror.mm[k], int(std[k][2]) / WAD),
            ("pm value", p_mirror.value[k], int(port[k][0]) / WAD),
            ("pm im", p_mirror.im[k], int(port[k][1]) / WAD),
            ("pm mm", p_mirror.mm[k], int(port[k][2]) / WAD),
        ):
            if not _rel_close(float(got), want, 1e-6 * scale):
                bad.append((accounts[k], name, float(got), want))
        # Portfolio-mode liquidatable flag: equity (options at full mark) < MM.
        e_c = (int(other[k]) + int(port[k][0])) / WAD
        mm_c = int(port[k][2]) / WAD
        e_m = float(p_mirror.equity[k])
        if abs(e_c - mm_c) <= 1e-9 * max(mm_c, 1.0):
            ties += 1
            continue
        liquidatable += e_c < mm_c
        flags += (e_c < mm_c) != (e_m < float(p_mirror.mm[k]))
    assert not bad, f"{len(bad)} mismatches, first: {bad[:3]}"
    assert flags == 0

    # The mirror's worst scenarios are witnesses whose L is the contract's full MM.
    sample = rng.sample(range(n), 100)
    wit = r.read([(opts, "accountRisk", (*accounts[k], True, p_mirror.witness(k))) for k in sample])
    for k, w in zip(sample, wit, strict=True):
        assert _rel_close(int(w[2]) / WAD, int(port[k][2]) / WAD, 1e-6)

    with_options = sum(1 for p in positions if p)
    shorts = sum(1 for p in positions for _, q in p if q < 0)
    print(
        f"\npm parity: {n} accounts ({with_options} with options, {shorts} short legs, "
        f"{liquidatable} below PM MM, {ties} ties), 0 mismatches; fill {t_fill:.1f}s, "
        f"mirror {t_mirror * 1e3:.1f} ms"
    )
    assert n >= 1000 and with_options >= 900 and shorts >= 500
    assert 5 <= liquidatable <= n - 100
