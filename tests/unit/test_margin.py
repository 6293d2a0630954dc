"""Standard margin: the IM gate on every risk-increasing action, reduce-only trades, the size
dependent margin rate, and equity/IM/MM checked against an independent integer model of the
formulas in contracts/core/MarginEngine.sol."""

from __future__ import annotations

import pytest
from helpers import (
    BTC,
    DAY,
    ETH,
    SOL,
    WBTC,
    WETH,
    cash_of,
    deposit,
    margin,
    market_cfg,
    mine,
    model_margin,
    mul_down,
    position_requirements,
    refresh_feeds,
    reverts,
    set_price,
    trade,
    usdc,
    wad,
    warp,
)


def test_open_rejects_below_initial_margin(dep, alice):
    deposit(dep, alice, 0, 0, usdc(200))
    # notional 2000, IM rate 0.1 + 1 x 0.00002, fee 1: equity 199 < IM 200.04
    with reverts(
        "InsufficientMargin",
        owner=alice,
        subaccount=0,
        equity=wad(199),
        initialMargin=wad("200.04"),
    ):
        trade(dep, alice, 0, ETH, wad(1))
    assert cash_of(dep, alice) == wad(200)


def test_open_accepts_exactly_enough_margin(dep, alice):
    deposit(dep, alice, 0, 0, usdc("201.04"))
    trade(dep, alice, 0, ETH, wad(1))
    eq, im, _ = margin(dep, alice)
    assert eq == im == wad("200.04")


def test_increase_rejects_below_initial_margin(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(2))
    # size 5: IM = 10000 x (0.1 + 5 x 0.00002) = 1001 > equity ~ 995
    with reverts("InsufficientMargin", owner=alice, subaccount=0, initialMargin=wad(1001)) as r:
        trade(dep, alice, 0, ETH, wad(3))
    assert wad(994) < r["err"].args_by_name["equity"] <= wad(995)


def test_flip_is_risk_increasing_and_needs_initial_margin(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(4))
    set_price(dep, 1, 1920)
    eq, im, mm = margin(dep, alice)
    assert mm <= eq < im
    # a long 4 -> short 3.9 flip is smaller but is not a reduction: it needs IM
    with reverts("InsufficientMargin", owner=alice, subaccount=0):
        trade(dep, alice, 0, ETH, -wad("7.9"))
    trade(dep, alice, 0, ETH, -wad("0.1"))  # the same size as a reduction passes


def test_withdraw_rejects_below_initial_margin(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(4))  # IM 800.64, equity ~996
    with reverts("InsufficientMargin", owner=alice, subaccount=0, initialMargin=wad("800.64")):
        dep.send(dep.core.functions.withdraw(0, 0, usdc(200)), alice)
    dep.send(dep.core.functions.withdraw(0, 0, usdc(195)), alice)
    eq, im, _ = margin(dep, alice)
    assert im <= eq < im + wad(1)


def test_withdraw_collateral_rejects_below_initial_margin(dep, alice):
    deposit(dep, alice, 0, WETH, wad(1))  # worth 1600 after the 0.8 haircut
    trade(dep, alice, 0, ETH, wad(5))  # IM = 10000 x 0.1001 = 1001
    with reverts("InsufficientMargin", owner=alice, subaccount=0, initialMargin=wad(1001)):
        dep.send(dep.core.functions.withdraw(0, WETH, wad("0.5")), alice)
    dep.send(dep.core.functions.withdraw(0, WETH, wad("0.3")), alice)


def test_withdraw_collateral_rejects_leaving_debt_uncovered(dep, alice):
    # No positions, but cash debt (a fee): the collateral backing it cannot all leave.
    deposit(dep, alice, 0, WETH, wad(1))
    trade(dep, alice, 0, ETH, wad(1))
    trade(dep, alice, 0, ETH, -wad(1))
    assert cash_of(dep, alice) < 0 and dep.core.functions.getAccount(alice, 0).call()[2] == 0
    with reverts("InsufficientMargin", owner=alice, subaccount=0, initialMargin=0) as r:
        dep.send(dep.core.functions.withdraw(0, WETH, wad(1)), alice)
    assert r["err"].args_by_name["equity"] == cash_of(dep, alice)
    dep.send(dep.core.functions.withdraw(0, WETH, wad("0.99")), alice)


def test_transfer_rejects_below_initial_margin(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(4))
    with reverts("InsufficientMargin", owner=alice, subaccount=0, initialMargin=wad("800.64")):
        dep.send(dep.core.functions.transfer(0, 1, 0, usdc(200)), alice)
    dep.send(dep.core.functions.transfer(0, 1, 0, usdc(195)), alice)
    assert cash_of(dep, alice, 1) == wad(195)


def test_transfer_of_collateral_rejects_below_initial_margin(dep, alice):
    deposit(dep, alice, 0, WETH, wad(1))
    trade(dep, alice, 0, ETH, wad(5))
    with reverts("InsufficientMargin", owner=alice, subaccount=0):
        dep.send(dep.core.functions.transfer(0, 1, WETH, wad("0.5")), alice)


def test_reduce_only_trade_is_allowed_below_initial_margin(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(4))
    set_price(dep, 1, 1920)
    eq, im, mm = margin(dep, alice)
    assert mm <= eq < im
    with reverts("InsufficientMargin"):
        trade(dep, alice, 0, ETH, wad("0.1"))
    trade(dep, alice, 0, ETH, -wad("0.1"))
    eq, im, mm = margin(dep, alice)
    assert mm <= eq < im  # still below IM after the reduction: allowed


def test_reduce_rejects_leaving_account_liquidatable(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(4))
    set_price(dep, 1, 1840)
    eq, _, mm = margin(dep, alice)
    assert eq < mm
    cfg = market_cfg(dep, ETH)
    _, _, mm_after = position_requirements(cfg, wad("3.9"), wad(1840))
    with reverts("BelowMaintenance", owner=alice, subaccount=0, maintenanceMargin=mm_after):
        trade(dep, alice, 0, ETH, -wad("0.1"))
    trade(dep, alice, 0, ETH, -wad(2))  # enough of a reduction to clear MM
    eq, _, mm = margin(dep, alice)
    assert eq >= mm


def test_margin_rate_grows_with_size(dep, alice):
    deposit(dep, alice, 1, 0, usdc(100_000))
    deposit(dep, alice, 2, 0, usdc(100_000))
    trade(dep, alice, 1, BTC, wad(1))
    trade(dep, alice, 2, BTC, wad(2))
    _, im1, mm1 = margin(dep, alice, 1)
    _, im2, mm2 = margin(dep, alice, 2)
    assert im2 > 2 * im1 and mm2 > 2 * mm1
    assert (im1, im2) == (wad(6030), wad(12_120))  # 60000 x 0.1005, 120000 x 0.101


def test_margin_rate_is_capped_at_one(dep):
    cfg = market_cfg(dep, BTC)
    notional, im, mm = position_requirements(cfg, wad(5000), wad(60_000))
    assert im == notional  # 0.1 + 5000 x 0.0005 > 1: capped
    assert mm == notional // 2


def test_collateral_counts_at_haircut_value(dep, alice):
    deposit(dep, alice, 0, WETH, wad(1))
    deposit(dep, alice, 0, WBTC, 10**7)  # 0.1 BTC
    eq, im, mm = margin(dep, alice)
    assert eq == wad(1600) + wad(4500)  # 2000 x 0.8 + 6000 x 0.75
    assert im == mm == 0


def _scenario(dep, w3, name, alice, bob):
    """Builds an account; returns (owner, sub)."""
    if name == "collateral_only":
        deposit(dep, alice, 0, 0, usdc("123.456789"))
        deposit(dep, alice, 0, WETH, wad("1.5") + 7)
        deposit(dep, alice, 0, WBTC, 37_000_001)
    elif name == "cross_long_short_with_funding":
        deposit(dep, alice, 0, 0, usdc(50_000))
        deposit(dep, alice, 0, WETH, wad("2.25"))
        trade(dep, alice, 0, ETH, wad("3.3333"))
        trade(dep, alice, 0, BTC, -wad("0.2718"))
        deposit(dep, bob, 0, 0, usdc(1_000_000))
        trade(dep, bob, 0, BTC, -wad(40))
        warp(w3, DAY // 4 + 17)
        refresh_feeds(dep)
        set_price(dep, 1, "2013.37")
        set_price(dep, 2, "59111.11")
    elif name == "debt_backed_by_collateral":
        deposit(dep, alice, 0, WBTC, 5 * 10**7)
        trade(dep, alice, 0, SOL, wad("77.7"))
        trade(dep, alice, 0, ETH, -wad("1.01"))
        warp(w3, 3000)
        refresh_feeds(dep)
        set_price(dep, 3, "141.5")
        set_price(dep, 2, "61000.5")
    elif name == "three_markets_odd_sizes":
        deposit(dep, alice, 0, 0, usdc(30_000))
        trade(dep, alice, 0, ETH, -wad("7.123456789012345678"))
        trade(dep, alice, 0, BTC, wad("0.123456789"))
        trade(dep, alice, 0, SOL, -wad("33.333333333333333333"))
        set_price(dep, 1, "1999.99999999")
        set_price(dep, 3, "150.00000001")
    return alice, 0


@pytest.mark.parametrize(
    "name",
    [
        "collateral_only",
        "cross_long_short_with_funding",
        "debt_backed_by_collateral",
        "three_markets_odd_sizes",
    ],
)
def test_margin_matches_independent_model(dep, w3, alice, bob, name):
    owner, sub = _scenario(dep, w3, name, alice, bob)
    blk = mine(w3)
    model = model_margin(dep, owner, sub, blk)
    assert margin(dep, owner, sub, blk) == (model.equity, model.im, model.mm)
    liq = dep.core.functions.isLiquidatable(owner, sub).call(block_identifier=blk)
    assert liq == (model.equity < model.mm)
    if name == "debt_backed_by_collateral":
        assert cash_of(dep, alice) < 0


def test_collateral_value_rounds_down(dep, alice):
    # 1 wei of WETH at 2000 is 2000 wei of USD, x 0.8 = 1600 wei; 1 sat of WBTC is 1e10 wei
    # of BTC at 60000 = 6e14 wei of USD x 0.75.
    deposit(dep, alice, 0, WETH, 3)
    deposit(dep, alice, 0, WBTC, 1)
    eq, _, _ = margin(dep, alice)
    assert eq == mul_down(mul_down(3, wad(2000)), wad("0.8")) + mul_down(
        mul_down(10**10, wad(60_000)), wad("0.75")
    )


def test_is_liquidatable_flips_at_maintenance(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(4))
    set_price(dep, 1, 1850)
    assert not dep.core.functions.isLiquidatable(alice, 0).call()
    set_price(dep, 1, 1840)
    assert dep.core.functions.isLiquidatable(alice, 0).call()
