"""Roles, pause switches, registries and parameter bounds of the Plimsoll core."""

from __future__ import annotations

import pytest
from helpers import (
    DAY,
    ETH,
    LIQ_KEYS,
    PAUSE_ALL,
    PAUSE_LIQUIDATE,
    WAD,
    WETH,
    b32,
    cash_of,
    current_index,
    deploy,
    deposit,
    events,
    feed_price,
    liq_cfg,
    market_cfg,
    market_tuple,
    reverts,
    set_price,
    trade,
    usdc,
    wad,
    warp,
)
from web3.exceptions import ContractCustomError

from plimsoll.chain import revert_data


def market(**changes):
    base = {
        "feedId": 1,
        "enabled": True,
        "imBaseWad": wad("0.1"),
        "mmFactorWad": wad("0.5"),
        "takerFeeWad": wad("0.0005"),
        "sizeSlopeWad": wad("0.00002"),
        "maxFundingRateWad": wad("0.01"),
        "skewScale": wad(10_000),
        "maxOpenInterest": wad(100_000),
    }
    base.update(changes)
    return market_tuple(base)


# ------------------------------------------------------------------ roles


def test_set_admin_rejects_non_admin(dep, outsider):
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.setAdmin(outsider), outsider)


def test_set_admin_hands_over_the_role(dep, admin, outsider):
    rcpt = dep.send(dep.core.functions.setAdmin(outsider), admin)
    assert events(rcpt, dep.core, "RoleSet") == [{"role": b32("admin"), "account": outsider}]
    assert dep.core.functions.admin().call() == outsider
    with reverts("Unauthorized", caller=admin):
        dep.send(dep.core.functions.setLiquidationConfig(tuple(liq_cfg(dep).values())), admin)
    dep.send(dep.core.functions.setLiquidationConfig(tuple(liq_cfg(dep).values())), outsider)


def test_set_guardian_rejects_non_admin(dep, outsider):
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.setGuardian(outsider), outsider)


def test_guardian_and_admin_can_pause_others_cannot(dep, admin, carol, outsider):
    rcpt = dep.send(dep.core.functions.setGuardian(carol), admin)
    assert events(rcpt, dep.core, "RoleSet") == [{"role": b32("guardian"), "account": carol}]
    rcpt = dep.send(dep.core.functions.setPaused(5), carol)
    assert events(rcpt, dep.core, "PausedSet") == [{"flags": 5}]
    assert dep.core.functions.paused().call() == 5
    dep.send(dep.core.functions.setPaused(0), admin)
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.setPaused(1), outsider)
    with reverts("Unauthorized", caller=carol):  # the guardian cannot do admin things
        dep.send(dep.core.functions.setGuardian(carol), carol)


# ------------------------------------------------------------------ pause switches


@pytest.fixture
def busy(dep, alice, bob, lp):
    """alice: cash and an ETH position, more cash approved; lp: cash approved for the pool;
    bob: a 10 ETH long on 2100 USDC (liquidatable once ETH is at 1880)."""
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(1))
    deposit(dep, bob, 0, 0, usdc(2100))
    trade(dep, bob, 0, ETH, wad(10))
    dep.send(dep.cash.functions.mint(lp, usdc(1000)), lp)
    dep.send(dep.cash.functions.approve(dep.pool.address, 2**256 - 1), lp)
    dep.send(dep.cash.functions.mint(alice, usdc(1000)), alice)
    return alice


def _action(dep, flag, alice, bob, lp):
    core = dep.core
    return {
        1: lambda: dep.send(core.functions.deposit(0, 0, usdc(1)), alice),
        2: lambda: dep.send(core.functions.withdraw(0, 0, usdc(1)), alice),
        4: lambda: dep.send(core.functions.trade(0, ETH, wad("0.1"), 0), alice),
        8: lambda: dep.send(core.functions.transfer(0, 1, 0, usdc(1)), alice),
        16: lambda: dep.send(core.functions.liquidate(bob, 0), alice),
        32: lambda: dep.send(dep.pool.functions.requestDeposit(usdc(100), lp, lp), lp),
    }[flag]


FLAGS = [1, 2, 4, 8, 16, 32]


@pytest.mark.parametrize("flag", FLAGS)
def test_paused_action_reverts_action_paused(dep, admin, busy, alice, bob, lp, flag):
    dep.send(dep.core.functions.setPaused(flag), admin)
    if flag == 32:
        # The pool refuses requests while paused: PoolClosed, PAUSED (nothing claimable).
        assert dep.pool.functions.maxDeposit(lp).call() == 0
        with reverts("PoolClosed", reason=1, feedId=0, status=0):
            _action(dep, flag, alice, bob, lp)()
        return
    with reverts("ActionPaused", action=flag):
        _action(dep, flag, alice, bob, lp)()


@pytest.mark.parametrize("flag", FLAGS)
def test_pause_flag_stops_only_its_own_action(dep, admin, busy, alice, bob, lp, flag):
    set_price(dep, 1, 1880)  # bob becomes liquidatable
    dep.send(dep.core.functions.setPaused(PAUSE_ALL & ~flag), admin)
    _action(dep, flag, alice, bob, lp)()


def test_pausing_everything_but_liquidation_leaves_liquidation_working(
    dep, admin, busy, alice, bob, keeper
):
    set_price(dep, 1, 1880)
    dep.send(dep.core.functions.setPaused(PAUSE_ALL & ~PAUSE_LIQUIDATE), admin)
    for flag in (1, 2, 4, 8):
        with reverts("ActionPaused", action=flag):
            _action(dep, flag, alice, bob, None)()
    rcpt = dep.send(dep.core.functions.liquidate(bob, 0), keeper)
    assert events(rcpt, dep.core, "Liquidated")[0]["owner"] == bob
    assert cash_of(dep, keeper) > 0


def test_pausing_everything_stops_liquidation(dep, admin, busy, bob, keeper):
    set_price(dep, 1, 1880)
    dep.send(dep.core.functions.setPaused(PAUSE_ALL), admin)
    with reverts("ActionPaused", action=PAUSE_LIQUIDATE):
        dep.send(dep.core.functions.liquidate(bob, 0), keeper)


# ------------------------------------------------------------------ assets


def test_list_asset_registers_and_configures(dep, admin):
    tok = deploy(dep.w3, "MockERC20", admin, "Link", "LINK", 18)
    rcpt = dep.send(dep.core.functions.listAsset(tok.address, wad("0.6"), 1, wad(1000)), admin)
    assert events(rcpt, dep.core, "AssetListed") == [
        {"assetId": 3, "token": tok.address, "decimals": 18}
    ]
    assert dep.core.functions.assetCount().call() == 3
    cfg = dep.core.functions.assetConfig(3).call()
    assert tuple(cfg) == (tok.address, 18, wad("0.6"), 1, True, wad(1000), 0)
    assert dep.core.functions.isListed(tok.address).call()


def test_list_asset_rejects_non_admin(dep, outsider):
    tok = deploy(dep.w3, "MockERC20", outsider, "Link", "LINK", 18)
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.listAsset(tok.address, wad("0.5"), 1, wad(1)), outsider)


@pytest.mark.parametrize("which", ["collateral", "cash"])
def test_list_asset_rejects_already_listed_token(dep, admin, which):
    token = dep.token(WETH).address if which == "collateral" else dep.cash.address
    with reverts("UnsupportedToken", token=token):
        dep.send(dep.core.functions.listAsset(token, wad("0.5"), 1, wad(1)), admin)


@pytest.mark.parametrize("haircut", [0, WAD + 1])
def test_list_asset_rejects_haircut_out_of_bounds(dep, admin, haircut):
    tok = deploy(dep.w3, "MockERC20", admin, "Link", "LINK", 18)
    with reverts("ParameterOutOfBounds", name=b32("haircut"), value=haircut):
        dep.send(dep.core.functions.listAsset(tok.address, haircut, 1, wad(1)), admin)


def test_list_asset_accepts_full_haircut_weight(dep, admin):
    tok = deploy(dep.w3, "MockERC20", admin, "Link", "LINK", 18)
    dep.send(dep.core.functions.listAsset(tok.address, WAD, 1, wad(1)), admin)


def test_list_asset_rejects_unknown_feed(dep, admin):
    tok = deploy(dep.w3, "MockERC20", admin, "Link", "LINK", 18)
    with reverts("UnknownFeed", feedId=42):
        dep.send(dep.core.functions.listAsset(tok.address, wad("0.5"), 42, wad(1)), admin)


def test_list_asset_rejects_sixteenth_asset(dep, admin):
    for i in range(3, 16):
        tok = deploy(dep.w3, "MockERC20", admin, f"T{i}", f"T{i}", 18)
        dep.send(dep.core.functions.listAsset(tok.address, wad("0.5"), 1, wad(1)), admin)
    assert dep.core.functions.assetCount().call() == 15
    tok = deploy(dep.w3, "MockERC20", admin, "T16", "T16", 18)
    with reverts("TooMany", limit=15):
        dep.send(dep.core.functions.listAsset(tok.address, wad("0.5"), 1, wad(1)), admin)


def test_configure_asset_updates_config(dep, admin):
    rcpt = dep.send(dep.core.functions.configureAsset(WETH, wad("0.7"), 3, wad(5), False), admin)
    assert events(rcpt, dep.core, "AssetConfigured") == [
        {"assetId": WETH, "haircutWad": wad("0.7"), "feedId": 3, "cap": wad(5), "enabled": False}
    ]
    cfg = dep.core.functions.assetConfig(WETH).call()
    assert (cfg[2], cfg[3], cfg[4], cfg[5]) == (wad("0.7"), 3, False, wad(5))


def test_configure_asset_rejects_non_admin(dep, outsider):
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.configureAsset(WETH, wad("0.7"), 1, wad(5), True), outsider)


@pytest.mark.parametrize("asset_id", [0, 3])
def test_configure_asset_rejects_unknown_asset(dep, admin, asset_id):
    with reverts("UnknownAsset", assetId=asset_id):
        dep.send(dep.core.functions.configureAsset(asset_id, wad("0.7"), 1, wad(5), True), admin)


@pytest.mark.parametrize("haircut", [0, WAD + 1, 2**64 - 1])
def test_configure_asset_rejects_haircut_out_of_bounds(dep, admin, haircut):
    with reverts("ParameterOutOfBounds", name=b32("haircut"), value=haircut):
        dep.send(dep.core.functions.configureAsset(WETH, haircut, 1, wad(5), True), admin)


def test_configure_asset_rejects_unknown_feed(dep, admin):
    with reverts("UnknownFeed", feedId=77):
        dep.send(dep.core.functions.configureAsset(WETH, wad("0.5"), 77, wad(5), True), admin)


# ------------------------------------------------------------------ markets


def test_list_market_registers_market(dep, admin):
    n = dep.core.functions.marketCount().call()
    rcpt = dep.send(dep.core.functions.listMarket(market(feedId=3)), admin)
    assert dep.core.functions.marketCount().call() == n + 1
    assert events(rcpt, dep.core, "MarketConfigured")[0]["marketId"] == n
    assert market_cfg(dep, n)["feedId"] == 3
    ts = dep.w3.eth.get_block(rcpt["blockNumber"])["timestamp"]
    assert dep.core.functions.marketState(n).call()[3] == ts


def test_list_market_rejects_non_admin(dep, outsider):
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.listMarket(market()), outsider)


BOUNDS = [
    ("imBaseWad", wad("0.005") - 1, "imBase"),
    ("imBaseWad", WAD + 1, "imBase"),
    ("mmFactorWad", wad("0.1") - 1, "mmFactor"),
    ("mmFactorWad", wad("0.95") + 1, "mmFactor"),
    ("takerFeeWad", wad("0.01") + 1, "takerFee"),
    ("sizeSlopeWad", WAD + 1, "sizeSlope"),
    ("maxFundingRateWad", wad("0.1") + 1, "maxFundingRate"),
    ("skewScale", 0, "skewScale"),
    ("maxOpenInterest", 0, "maxOpenInterest"),
]


@pytest.mark.parametrize("field,value,name", BOUNDS, ids=[f"{b[0]}={b[1]}" for b in BOUNDS])
def test_list_market_rejects_parameter_out_of_bounds(dep, admin, field, value, name):
    with reverts("ParameterOutOfBounds", name=b32(name), value=value):
        dep.send(dep.core.functions.listMarket(market(**{field: value})), admin)


@pytest.mark.parametrize("field,value,name", BOUNDS, ids=[f"{b[0]}={b[1]}" for b in BOUNDS])
def test_configure_market_rejects_parameter_out_of_bounds(dep, admin, field, value, name):
    with reverts("ParameterOutOfBounds", name=b32(name), value=value):
        dep.send(dep.core.functions.configureMarket(ETH, market(**{field: value})), admin)


def test_market_bounds_are_inclusive(dep, admin):
    lo = market(
        imBaseWad=wad("0.005"),
        mmFactorWad=wad("0.1"),
        takerFeeWad=0,
        sizeSlopeWad=0,
        maxFundingRateWad=0,
        skewScale=1,
        maxOpenInterest=1,
    )
    hi = market(
        imBaseWad=WAD,
        mmFactorWad=wad("0.95"),
        takerFeeWad=wad("0.01"),
        sizeSlopeWad=WAD,
        maxFundingRateWad=wad("0.1"),
    )
    dep.send(dep.core.functions.listMarket(lo), admin)
    dep.send(dep.core.functions.listMarket(hi), admin)


def test_list_market_rejects_unknown_feed(dep, admin):
    with reverts("UnknownFeed", feedId=55):
        dep.send(dep.core.functions.listMarket(market(feedId=55)), admin)


def test_list_market_rejects_seventeenth_market(dep, admin):
    for _ in range(dep.core.functions.marketCount().call(), 16):
        dep.send(dep.core.functions.listMarket(market()), admin)
    with reverts("TooMany", limit=16):
        dep.send(dep.core.functions.listMarket(market()), admin)


def test_configure_market_rejects_unknown_market(dep, admin):
    n = dep.core.functions.marketCount().call()
    with reverts("UnknownMarket", marketId=n):
        dep.send(dep.core.functions.configureMarket(n, market()), admin)


def test_configure_market_rejects_non_admin(dep, outsider):
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.configureMarket(ETH, market()), outsider)


def test_configure_market_accrues_funding_at_old_parameters(dep, w3, admin, alice):
    deposit(dep, alice, 0, 0, usdc(200_000))
    trade(dep, alice, 0, ETH, wad(500))
    old = market_cfg(dep, ETH)
    state = dep.core.functions.marketState(ETH).call()
    warp(w3, DAY // 48)
    rcpt = dep.send(
        dep.core.functions.configureMarket(ETH, market(maxFundingRateWad=wad("0.1"))), admin
    )
    blk = rcpt["blockNumber"]
    ts = w3.eth.get_block(blk)["timestamp"]
    expected = current_index(old, state, feed_price(dep, 1, blk), ts)
    assert expected > 0
    accrued = events(rcpt, dep.core, "FundingAccrued")
    assert accrued[0]["fundingIndex"] == expected
    new_state = dep.core.functions.marketState(ETH).call()
    assert (new_state[2], new_state[3]) == (expected, ts)
    assert market_cfg(dep, ETH)["maxFundingRateWad"] == wad("0.1")


# ------------------------------------------------------------------ liquidation config


def test_set_liquidation_config_updates_config(dep, admin):
    cfg = (wad("0.1"), WAD, WAD, wad("0.2"), wad(5), wad(1), wad(2))
    rcpt = dep.send(dep.core.functions.setLiquidationConfig(cfg), admin)
    assert tuple(dep.core.functions.liquidationConfig().call()) == cfg
    ev = events(rcpt, dep.core, "LiquidationConfigured")[0]["config"]
    assert tuple(ev[k] for k in LIQ_KEYS) == cfg


def test_set_liquidation_config_rejects_non_admin(dep, outsider):
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.setLiquidationConfig(tuple(liq_cfg(dep).values())), outsider)


LIQ_BOUNDS = [
    ("penaltyWad", wad("0.1") + 1, "penalty"),
    ("keeperShareWad", WAD + 1, "keeperShare"),
    ("bufferWad", WAD + 1, "buffer"),
    ("collateralBonusWad", wad("0.2") + 1, "collateralBonus"),
    ("keeperRewardMin", wad(100) + 1, "keeperRewardMin"),  # above the 100 USD cap
]


@pytest.mark.parametrize("field,value,name", LIQ_BOUNDS, ids=[b[0] for b in LIQ_BOUNDS])
def test_set_liquidation_config_rejects_parameter_out_of_bounds(dep, admin, field, value, name):
    cfg = liq_cfg(dep)
    cfg[field] = value
    with reverts("ParameterOutOfBounds", name=b32(name), value=value):
        dep.send(dep.core.functions.setLiquidationConfig(tuple(cfg[k] for k in LIQ_KEYS)), admin)


# ------------------------------------------------------------------ pool connection


def test_set_pool_only_once(dep, admin, outsider):
    with reverts("Unauthorized", caller=admin):
        dep.send(dep.core.functions.setPool(outsider), admin)
    with reverts("Unauthorized", caller=outsider):
        dep.send(dep.core.functions.setPool(outsider), outsider)


@pytest.fixture
def bare_core(dep, admin):
    """A second core on the same oracle with no pool connected."""
    from plimsoll.build import compile_contracts
    from plimsoll.deploy import deploy_core

    core = deploy_core(
        dep.w3, compile_contracts(), admin, dep.cash.address, dep.oracle.address, admin, admin
    )
    dep.send(core.functions.listMarket(market()), admin)
    return core


def test_trade_rejects_before_pool_is_set(dep, bare_core, alice):
    dep.send(dep.cash.functions.mint(alice, usdc(1000)), alice)
    dep.send(dep.cash.functions.approve(bare_core.address, 2**256 - 1), alice)
    dep.send(bare_core.functions.deposit(0, 0, usdc(1000)), alice)
    with reverts("PoolNotSet"):
        dep.send(bare_core.functions.trade(0, 0, wad(1), 0), alice)


def test_set_pool_rejects_zero_address(dep, bare_core, admin):
    with reverts("Unauthorized", caller=admin):
        dep.send(bare_core.functions.setPool("0x" + "00" * 20), admin)


def test_constructor_rejects_cash_with_more_than_18_decimals(dep, admin):
    high = deploy(dep.w3, "HighDecimalsToken", admin)
    from plimsoll.build import compile_contracts

    art = compile_contracts()["PlimsollPeriphery"]
    factory = dep.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    with pytest.raises(ContractCustomError) as info:
        factory.constructor(high.address, dep.oracle.address).transact({"from": admin})
    err = dep.decoder.decode(revert_data(info.value))
    assert (
        err.name == "UnsupportedToken" and err.args_by_name["token"].lower() == high.address.lower()
    )


def test_deployment_getters(dep, admin):
    core = dep.core
    assert core.functions.cash().call() == dep.cash.address
    assert core.functions.cashDecimals().call() == 6
    assert core.functions.oracle().call() == dep.oracle.address
    assert core.functions.admin().call() == admin
    assert core.functions.guardian().call() == admin
    assert core.functions.pool().call() == dep.pool.address
    assert core.functions.paused().call() == 0
    assert core.functions.insuranceFund().call() == wad(100_000)
    assert core.functions.cashBooked().call() == wad(10_100_000)
    assert core.functions.assetCount().call() == 2
    assert core.functions.marketCount().call() == 3
    assert core.functions.isListed(dep.cash.address).call()
    assert tuple(core.functions.liquidationConfig().call()) == (
        wad("0.01"),
        wad("0.5"),
        wad("0.25"),
        wad("0.05"),
        wad(100),
        wad(1_000),
        wad(5),
    )
    assert dep.pool.functions.core().call() == core.address
    assert dep.pool.functions.asset().call() == dep.cash.address
    assert dep.pool.functions.totalAssets().call() == core.functions.poolAssets().call()
    assert core.functions.poolAssets().call() == 10_000_000 * 10**6
