"""The brownie developer workflow on the real contracts: deploy, deposit, trade, liquidate."""

import brownie

WAD = 10**18


def _fund(system, who, amount):
    system["usdc"].mint(who, amount, {"from": who})
    system["usdc"].approve(system["core"], 2**256 - 1, {"from": who})


def test_deposit_trade_and_margin_views(system, accounts):
    core, trader = system["core"], accounts[1]
    _fund(system, trader, 5_000 * 10**6)
    core.deposit(0, 0, 5_000 * 10**6, {"from": trader})
    core.trade(0, 0, 10 * WAD, 0, {"from": trader})
    equity, im, mm = core.accountMargin(trader, 0)
    # 10 ETH at 2000: notional 20,000; IM rate 10% + 10 x 0.002% = 10.02%; MM half of it.
    assert im == 20_000 * WAD * 1002 // 10_000
    assert mm == 20_000 * WAD * 501 // 10_000
    assert equity == 5_000 * WAD - 10 * WAD  # the 0.05% taker fee on 20,000
    assert core.getPosition(trader, 0, 0)[0] == 10 * WAD


def test_withdraw_below_initial_margin_reverts(system, accounts):
    core, trader = system["core"], accounts[1]
    _fund(system, trader, 3_000 * 10**6)
    core.deposit(0, 0, 3_000 * 10**6, {"from": trader})
    core.trade(0, 0, 10 * WAD, 0, {"from": trader})
    with brownie.reverts():
        core.withdraw(0, 0, 1_500 * 10**6, {"from": trader})


def test_crash_then_liquidation_pays_keeper(system, accounts):
    core, trader, keeper = system["core"], accounts[1], accounts[2]
    _fund(system, trader, 2_100 * 10**6)
    core.deposit(0, 0, 2_100 * 10**6, {"from": trader})
    core.trade(0, 0, 10 * WAD, 0, {"from": trader})
    assert not core.isLiquidatable(trader, 0)
    system["feed"].updateAnswer(1_850 * 10**8, {"from": accounts[0]})
    assert core.isLiquidatable(trader, 0)
    tx = core.liquidate(trader, 0, {"from": keeper})
    event = tx.events["Liquidated"]
    assert event["keeperReward"] > 0
    assert core.getAccount(keeper, 0)[0] == event["keeperReward"]
    equity, _, mm = core.accountMargin(trader, 0)
    assert core.getPosition(trader, 0, 0)[0] == 0 or equity >= mm
