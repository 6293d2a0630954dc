"""Liquidation: partial and full position liquidation, penalty split, reward cap, the bad-debt
waterfall (insurance fund, then pool LPs), collateral liquidation, multi-position accounts.

Funding is switched off (maxFundingRate = 0) so that every amount is exact and time-free."""

from __future__ import annotations

import pytest
from helpers import (
    BTC,
    ETH,
    SOL,
    WAD,
    WBTC,
    WETH,
    cash_of,
    configure_market,
    deposit,
    events,
    fund,
    insurance,
    liq_cfg,
    margin,
    mine,
    model_margin,
    mul_down,
    mul_up,
    pool_cash,
    position,
    reverts,
    set_liq,
    set_price,
    smul_ceil,
    trade,
    usdc,
    wad,
)


@pytest.fixture(autouse=True)
def no_funding(dep):
    configure_market(dep, ETH, maxFundingRateWad=0)


def expected_fraction(e: int, mm: int, notional: int, lc: dict[str, int]) -> int:
    target = mul_up(mm, WAD + lc["bufferWad"])
    cost = mul_up(notional, lc["penaltyWad"])
    r_min = lc["keeperRewardMin"]
    if e <= r_min or target <= cost:
        return WAD
    f = -(-(target - e) * WAD // (target - cost))
    f = max(f, -(-(target - (e - r_min)) * WAD // target))
    if f >= WAD or mul_down(notional, WAD - f) < lc["dustNotional"]:
        return WAD
    return f


def penalty_split(closed_notional: int, equity: int, lc: dict[str, int]) -> tuple[int, int]:
    """(penalty, keeper reward): the keeper's share of closedNotional x penaltyRate (at least
    the minimum, at most the cap) paid out of the account's equity only (none when equity <=
    0); the insurance fund's cut from the equity left after the reward."""
    full = mul_up(closed_notional, lc["penaltyWad"])
    reward = min(
        max(mul_down(full, lc["keeperShareWad"]), lc["keeperRewardMin"]), lc["keeperRewardCap"]
    )
    left = max(equity, 0)
    reward = min(reward, left)
    left -= reward
    return reward + min(max(full - reward, 0), left), reward


def close_size(size: int, f: int) -> int:
    if f == WAD:
        return size
    return smul_ceil(size, f) if size > 0 else -smul_ceil(-size, f)


@pytest.fixture
def underwater_long(dep, alice):
    """alice: 2100 USDC, long 10 ETH at 2000, marked at 1880: equity 890 < MM 941.88."""
    deposit(dep, alice, 0, 0, usdc(2100))
    trade(dep, alice, 0, ETH, wad(10))
    set_price(dep, 1, 1880)
    assert margin(dep, alice) == (wad(890), wad("1883.76"), wad("941.88"))
    return alice


# ------------------------------------------------------------------ liquidate


def test_liquidate_rejects_healthy_account(dep, alice, keeper):
    deposit(dep, alice, 0, 0, usdc(2100))
    trade(dep, alice, 0, ETH, wad(10))
    eq, _, mm = margin(dep, alice)
    with reverts("AccountHealthy", owner=alice, subaccount=0, equity=eq, maintenanceMargin=mm):
        dep.send(dep.core.functions.liquidate(alice, 0), keeper)


def test_liquidate_rejects_empty_account(dep, alice, keeper):
    with reverts("AccountHealthy", owner=alice, subaccount=0, equity=0, maintenanceMargin=0):
        dep.send(dep.core.functions.liquidate(alice, 0), keeper)


def test_partial_liquidation_restores_equity_above_maintenance(dep, underwater_long, keeper):
    alice, core = underwater_long, dep.core
    lc = liq_cfg(dep)
    blk = mine(dep.w3)
    snap = model_margin(dep, alice, 0, blk)
    f = expected_fraction(snap.equity, snap.mm, snap.notional, lc)
    assert 0 < f < WAD
    closed = close_size(wad(10), f)
    closed_notional = mul_up(closed, wad(1880))
    penalty, reward = penalty_split(closed_notional, snap.equity, lc)
    assert penalty == mul_up(closed_notional, lc["penaltyWad"])  # equity covers all of it
    ins0, pool0, cash0 = insurance(dep), pool_cash(dep), cash_of(dep, alice)

    rcpt = dep.send(core.functions.liquidate(alice, 0), keeper)

    ev = events(rcpt, core, "Liquidated")[0]
    assert (
        ev["fraction"],
        ev["closedNotional"],
        ev["penalty"],
        ev["keeperReward"],
        ev["badDebt"],
    ) == (f, closed_notional, penalty, reward, 0)
    assert ev["liquidator"] == keeper
    assert position(dep, alice, 0, ETH)[:2] == (
        wad(10) - closed,
        mul_down(wad(10) - closed, wad(1880)),
    )
    realized = -wad(1200)  # the whole position is settled to the mark
    assert cash_of(dep, alice) == cash0 + realized - penalty
    assert pool_cash(dep) == pool0 - realized
    assert insurance(dep) == ins0 + penalty - reward
    assert cash_of(dep, keeper) == reward
    eq, _, mm = margin(dep, alice)
    assert eq == wad(890) - penalty
    # target: equity >= MM x (1 + buffer), and not much more than that
    assert eq >= mul_up(mm, WAD + lc["bufferWad"])
    assert eq <= mul_up(mm, WAD + lc["bufferWad"]) * 1005 // 1000
    assert not core.functions.isLiquidatable(alice, 0).call()


def test_liquidation_closes_fully_when_rest_would_be_dust(dep, underwater_long, keeper):
    alice = underwater_long
    set_liq(dep, dustNotional=wad(20_000))  # the ~13.3k left would be dust
    rcpt = dep.send(dep.core.functions.liquidate(alice, 0), keeper)
    ev = events(rcpt, dep.core, "Liquidated")[0]
    assert ev["fraction"] == WAD
    assert ev["closedNotional"] == wad(18_800)
    assert ev["penalty"] == wad(188) and ev["keeperReward"] == wad(94)
    assert position(dep, alice, 0, ETH) == (0, 0, 0)
    acct = dep.core.functions.getAccount(alice, 0).call()
    assert acct[2] == 0 and acct[0] == wad(2090 - 1200 - 188)
    st = dep.core.functions.marketState(ETH).call()
    assert (st[0], st[1], st[4]) == (0, 0, 0)


def test_small_position_closes_fully_below_dust(dep, alice, keeper):
    # notional ~9.45: any partial liquidation would leave less than the 10 USD dust default
    deposit(dep, alice, 0, 0, usdc("1.01"))
    trade(dep, alice, 0, ETH, wad("0.005"))
    set_price(dep, 1, 1890)
    blk = mine(dep.w3)
    snap = model_margin(dep, alice, 0, blk)
    assert 0 < snap.equity < snap.mm
    lc = liq_cfg(dep)
    target = mul_up(snap.mm, WAD + lc["bufferWad"])
    f = -(-(target - snap.equity) * WAD // (target - mul_up(snap.notional, lc["penaltyWad"])))
    assert f < WAD // 2  # the margin alone asks for a small partial close ...
    assert mul_down(snap.notional, WAD - f) < lc["dustNotional"]  # ... that would leave dust
    rcpt = dep.send(dep.core.functions.liquidate(alice, 0), keeper)
    ev = events(rcpt, dep.core, "Liquidated")[0]
    assert ev["fraction"] == WAD and ev["closedNotional"] == snap.notional
    assert position(dep, alice, 0, ETH) == (0, 0, 0)
    assert dep.core.functions.getAccount(alice, 0).call()[2] == 0


def test_penalty_splits_between_keeper_and_insurance(dep, underwater_long, keeper):
    set_liq(dep, dustNotional=wad(20_000), keeperShareWad=wad("0.3"))
    ins0 = insurance(dep)
    deposit(dep, keeper, 0, 0, usdc(7))  # the reward lands on top of the keeper's own cash
    rcpt = dep.send(dep.core.functions.liquidate(underwater_long, 0), keeper)
    ev = events(rcpt, dep.core, "Liquidated")[0]
    assert ev["penalty"] == wad(188)
    assert ev["keeperReward"] == wad("56.4")
    assert cash_of(dep, keeper, 0) == wad(7) + wad("56.4")
    assert cash_of(dep, keeper, 1) == 0
    assert insurance(dep) == ins0 + wad(188) - wad("56.4")


def test_keeper_reward_is_capped(dep, underwater_long, keeper):
    set_liq(dep, dustNotional=wad(20_000), keeperRewardCap=wad(25))
    ins0 = insurance(dep)
    rcpt = dep.send(dep.core.functions.liquidate(underwater_long, 0), keeper)
    ev = events(rcpt, dep.core, "Liquidated")[0]
    assert (ev["penalty"], ev["keeperReward"]) == (wad(188), wad(25))
    assert cash_of(dep, keeper) == wad(25)
    assert insurance(dep) == ins0 + wad(163)


def test_penalty_never_exceeds_remaining_equity(dep, underwater_long, keeper):
    # 10% of 18800 = 1880 > equity 890: the penalty is the equity, the reward hits the 100 cap
    set_liq(dep, dustNotional=wad(20_000), penaltyWad=wad("0.1"))
    rcpt = dep.send(dep.core.functions.liquidate(underwater_long, 0), keeper)
    ev = events(rcpt, dep.core, "Liquidated")[0]
    assert (ev["penalty"], ev["keeperReward"], ev["badDebt"]) == (wad(890), wad(100), 0)
    assert cash_of(dep, underwater_long) == 0


def test_bad_debt_is_covered_by_insurance_first(dep, alice, keeper):
    deposit(dep, alice, 0, 0, usdc(2100))
    trade(dep, alice, 0, ETH, wad(10))
    set_price(dep, 1, 1700)  # equity 2090 - 3000 = -910
    ins0, pool0 = insurance(dep), pool_cash(dep)
    rcpt = dep.send(dep.core.functions.liquidate(alice, 0), keeper)
    ev = events(rcpt, dep.core, "Liquidated")[0]
    # underwater: no penalty and no reward (they come out of equity only): the deficit is
    # exactly the negative equity
    penalty, reward = penalty_split(wad(17_000), -wad(910), liq_cfg(dep))
    assert penalty == reward == 0
    deficit = wad(910)
    assert (ev["fraction"], ev["penalty"], ev["keeperReward"], ev["badDebt"]) == (
        WAD,
        penalty,
        reward,
        deficit,
    )
    bad = events(rcpt, dep.core, "BadDebtSettled")
    assert bad == [
        {
            "owner": alice,
            "subaccount": 0,
            "deficit": deficit,
            "fromInsurance": deficit,
            "socialized": 0,
        }
    ]
    assert insurance(dep) == ins0 - deficit
    assert pool_cash(dep) == pool0 + wad(3000)
    assert cash_of(dep, keeper) == reward
    assert list(dep.core.functions.getAccount(alice, 0).call())[:3] == [0, 0, 0]


def test_bad_debt_beyond_insurance_is_socialized_to_the_pool(dep, alice, keeper):
    ins0 = insurance(dep)
    assert ins0 == wad(100_000)
    deposit(dep, alice, 0, 0, usdc(25_000))
    trade(dep, alice, 0, ETH, wad(100))  # fee 100
    set_price(dep, 1, 700)  # loss 130000: equity 24900 - 130000 = -105100
    pool0 = pool_cash(dep)
    assets0 = dep.pool.functions.totalAssets().call()
    rcpt = dep.send(dep.core.functions.liquidate(alice, 0), keeper)
    _, reward = penalty_split(wad(70_000), -wad(105_100), liq_cfg(dep))
    assert reward == 0  # 1% x 70000 x 50% = 350, capped at 100, then at the equity: none
    deficit = wad(105_100)
    bad = events(rcpt, dep.core, "BadDebtSettled")[0]
    assert (bad["deficit"], bad["fromInsurance"], bad["socialized"]) == (
        deficit,
        wad(100_000),
        deficit - wad(100_000),
    )
    assert events(rcpt, dep.core, "Liquidated")[0]["badDebt"] == deficit
    assert insurance(dep) == 0
    socialized = deficit - wad(100_000)
    assert pool_cash(dep) == pool0 + wad(130_000) - socialized
    # LPs were already carrying the 130000 as unrealized gain; they lose the socialized part
    assert dep.pool.functions.totalAssets().call() == assets0 - socialized // 10**12


def test_liquidate_rejects_account_without_positions(dep, collateral_debt, keeper):
    alice = collateral_debt
    set_price(dep, 1, 1300)
    with reverts("NoPositions", owner=alice, subaccount=0):
        dep.send(dep.core.functions.liquidate(alice, 0), keeper)


def test_liquidates_three_positions_by_the_same_fraction(dep, alice, keeper):
    configure_market(dep, BTC, maxFundingRateWad=0)
    configure_market(dep, SOL, maxFundingRateWad=0)
    deposit(dep, alice, 0, 0, usdc(3200))
    trade(dep, alice, 0, ETH, wad(5))
    trade(dep, alice, 0, BTC, -wad("0.1"))
    trade(dep, alice, 0, SOL, wad(50))
    set_price(dep, 1, 1750)
    set_price(dep, 3, 135)
    blk = mine(dep.w3)
    snap = model_margin(dep, alice, 0, blk)
    assert snap.equity < snap.mm
    lc = liq_cfg(dep)
    f = expected_fraction(snap.equity, snap.mm, snap.notional, lc)
    assert 0 < f < WAD
    sizes = {ETH: wad(5), BTC: -wad("0.1"), SOL: wad(50)}
    prices = {ETH: wad(1750), BTC: wad(60_000), SOL: wad(135)}
    closed = {m: close_size(s, f) for m, s in sizes.items()}
    closed_notional = sum(mul_up(abs(closed[m]), prices[m]) for m in sizes)

    rcpt = dep.send(dep.core.functions.liquidate(alice, 0), keeper)

    ev = events(rcpt, dep.core, "Liquidated")[0]
    assert (ev["fraction"], ev["closedNotional"]) == (f, closed_notional)
    for m, s in sizes.items():
        assert position(dep, alice, 0, m)[0] == s - closed[m]
    assert dep.core.functions.getAccount(alice, 0).call()[2] == (1 << ETH) | (1 << BTC) | (1 << SOL)
    eq, _, mm = margin(dep, alice)
    assert eq >= mm and eq == snap.equity - ev["penalty"]
    assert eq >= mul_up(mm, WAD + lc["bufferWad"])


def test_liquidation_rejected_when_paused(dep, underwater_long, admin, keeper):
    dep.send(dep.core.functions.setPaused(16), admin)
    with reverts("ActionPaused", action=16):
        dep.send(dep.core.functions.liquidate(underwater_long, 0), keeper)


# ------------------------------------------------------------------ liquidateCollateral


@pytest.fixture
def collateral_debt(dep, alice, keeper):
    """alice: 1 WETH and a cash debt of 1095 USD, no positions (at ETH = 1800, healthy)."""
    deposit(dep, alice, 0, WETH, wad(1))
    trade(dep, alice, 0, ETH, wad(5))  # fee 5
    set_price(dep, 1, 1800)  # equity 1440 - 1005 = 435 < MM 450.45
    set_liq(dep, dustNotional=wad(10**9))
    dep.send(dep.core.functions.liquidate(alice, 0), keeper)  # penalty 90
    assert cash_of(dep, alice) == -wad(1095)
    assert margin(dep, alice) == (wad(345), 0, 0)
    fund(dep, keeper, 0, usdc(5000))
    return alice


def test_liquidate_collateral_rejects_healthy_account(dep, collateral_debt, keeper):
    with reverts(
        "AccountHealthy", owner=collateral_debt, subaccount=0, equity=wad(345), maintenanceMargin=0
    ):
        dep.send(
            dep.core.functions.liquidateCollateral(collateral_debt, 0, WETH, usdc(100)), keeper
        )


def test_liquidate_collateral_seizes_with_bonus(dep, collateral_debt, keeper):
    alice, core = collateral_debt, dep.core
    set_price(dep, 1, 1300)  # equity 1040 - 1095 < 0
    seized = mul_down(wad(500), wad("1.05")) * WAD // wad(1300)
    assert seized == 403_846_153_846_153_846
    keeper_usdc = dep.cash.functions.balanceOf(keeper).call()
    booked = core.functions.cashBooked().call()
    rcpt = dep.send(core.functions.liquidateCollateral(alice, 0, WETH, usdc(500)), keeper)
    assert events(rcpt, core, "CollateralLiquidated") == [
        {
            "owner": alice,
            "subaccount": 0,
            "liquidator": keeper,
            "assetId": WETH,
            "repaidWad": wad(500),
            "seized": seized,
        }
    ]
    assert events(rcpt, core, "BadDebtSettled") == []
    assert dep.token(WETH).functions.balanceOf(keeper).call() == seized
    assert dep.cash.functions.balanceOf(keeper).call() == keeper_usdc - usdc(500)
    assert cash_of(dep, alice) == -wad(595)
    assert core.functions.collateralBalance(alice, 0, WETH).call() == wad(1) - seized
    assert core.functions.assetConfig(WETH).call()[6] == wad(1) - seized
    assert core.functions.cashBooked().call() == booked + wad(500)


def test_liquidate_collateral_repays_at_most_the_debt(dep, collateral_debt, keeper):
    set_price(dep, 1, 1300)
    rcpt = dep.send(
        dep.core.functions.liquidateCollateral(collateral_debt, 0, WETH, usdc(4000)), keeper
    )
    ev = events(rcpt, dep.core, "CollateralLiquidated")[0]
    assert ev["repaidWad"] == wad(1095)
    assert ev["seized"] == mul_down(wad(1095), wad("1.05")) * WAD // wad(1300)
    assert cash_of(dep, collateral_debt) == 0


def test_liquidate_collateral_settles_bad_debt_when_collateral_runs_out(
    dep, collateral_debt, keeper
):
    alice, core = collateral_debt, dep.core
    set_price(dep, 1, 1000)  # 1 WETH buys 1000 / 1.05 of debt: 952.380953 (rounded up)
    ins0 = insurance(dep)
    keeper_usdc = dep.cash.functions.balanceOf(keeper).call()
    rcpt = dep.send(core.functions.liquidateCollateral(alice, 0, WETH, usdc(2000)), keeper)
    ev = events(rcpt, core, "CollateralLiquidated")[0]
    assert (ev["repaidWad"], ev["seized"]) == (wad("952.380953"), wad(1))
    assert dep.cash.functions.balanceOf(keeper).call() == keeper_usdc - usdc("952.380953")
    deficit = wad(1095) - wad("952.380953")
    assert events(rcpt, core, "BadDebtSettled") == [
        {
            "owner": alice,
            "subaccount": 0,
            "deficit": deficit,
            "fromInsurance": deficit,
            "socialized": 0,
        }
    ]
    assert insurance(dep) == ins0 - deficit
    assert list(core.functions.getAccount(alice, 0).call())[:3] == [0, 0, 0]


def test_liquidate_collateral_rejects_account_with_positions(dep, alice, keeper):
    deposit(dep, alice, 0, WETH, wad(1))
    trade(dep, alice, 0, ETH, wad(5))
    set_price(dep, 1, 1000)
    assert cash_of(dep, alice) < 0 and dep.core.functions.isLiquidatable(alice, 0).call()
    with reverts("CollateralNotSeizable", owner=alice, subaccount=0):
        dep.send(dep.core.functions.liquidateCollateral(alice, 0, WETH, usdc(10)), keeper)


def test_liquidate_collateral_rejects_account_without_debt(dep, alice, keeper):
    deposit(dep, alice, 0, WETH, wad(1))
    set_price(dep, 1, 1)
    with reverts("CollateralNotSeizable", owner=alice, subaccount=0):
        dep.send(dep.core.functions.liquidateCollateral(alice, 0, WETH, usdc(10)), keeper)


def test_liquidate_collateral_rejects_zero_repay(dep, collateral_debt, keeper):
    set_price(dep, 1, 1300)
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.liquidateCollateral(collateral_debt, 0, WETH, 0), keeper)


def test_liquidate_collateral_rejects_unknown_asset(dep, collateral_debt, keeper):
    set_price(dep, 1, 1300)
    with reverts("UnknownAsset", assetId=9):
        dep.send(dep.core.functions.liquidateCollateral(collateral_debt, 0, 9, usdc(10)), keeper)


def test_liquidate_collateral_rejects_asset_the_account_lacks(dep, collateral_debt, keeper):
    set_price(dep, 1, 1300)
    with reverts("InsufficientBalance", assetId=WBTC, balance=0, requested=1):
        dep.send(dep.core.functions.liquidateCollateral(collateral_debt, 0, WBTC, usdc(10)), keeper)


def test_liquidate_collateral_rejected_when_paused(dep, collateral_debt, admin, keeper):
    set_price(dep, 1, 1300)
    dep.send(dep.core.functions.setPaused(16), admin)
    with reverts("ActionPaused", action=16):
        dep.send(dep.core.functions.liquidateCollateral(collateral_debt, 0, WETH, usdc(10)), keeper)
