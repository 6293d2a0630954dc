"""LiquidityPool (ERC-4626) and the core's pool hooks: deposit/mint/withdraw/redeem, share price
following trader PnL and fees, the pool's initial margin limiting withdrawals and trades."""

from __future__ import annotations

import pytest
from helpers import (
    ETH,
    MAX_UINT,
    WETH,
    cash_of,
    configure_market,
    deposit,
    events,
    impersonate,
    pool_cash,
    reverts,
    set_price,
    trade,
    usdc,
    wad,
)

from plimsoll.errors import ContractRevert


@pytest.fixture
def lp_funded(dep, lp):
    dep.send(dep.cash.functions.mint(lp, usdc(1_000_000)), lp)
    dep.send(dep.cash.functions.approve(dep.pool.address, MAX_UINT), lp)
    return lp


@pytest.fixture
def small_pool(dep, admin):
    """The seed LP takes all but 5000 USDC out of the pool; ETH funding is off so that the
    pool's equity does not drift between blocks."""
    configure_market(dep, ETH, maxFundingRateWad=0)
    total = dep.pool.functions.totalAssets().call()
    dep.send(dep.pool.functions.withdraw(total - usdc(5000), admin, admin), admin)
    assert dep.pool.functions.totalAssets().call() == usdc(5000)
    return dep.pool


def test_pool_deposit_mints_shares_and_moves_cash_into_core(dep, lp_funded):
    pool, lp = dep.pool, lp_funded
    assets0, cash0 = pool.functions.totalAssets().call(), pool_cash(dep)
    core_usdc0 = dep.cash.functions.balanceOf(dep.core.address).call()
    shares = pool.functions.previewDeposit(usdc(1000)).call()
    rcpt = dep.send(pool.functions.deposit(usdc(1000), lp), lp)
    assert pool.functions.balanceOf(lp).call() == shares > 0
    assert pool.functions.totalAssets().call() == assets0 + usdc(1000)
    assert pool_cash(dep) == cash0 + wad(1000)
    assert dep.cash.functions.balanceOf(dep.core.address).call() == core_usdc0 + usdc(1000)
    assert dep.cash.functions.balanceOf(pool.address).call() == 0
    assert events(rcpt, dep.core, "PoolCashMoved") == [{"amountWad": wad(1000)}]


def test_pool_mint_pulls_the_previewed_assets(dep, lp_funded):
    pool, lp = dep.pool, lp_funded
    shares = 10**15
    assets = pool.functions.previewMint(shares).call()
    bal0 = dep.cash.functions.balanceOf(lp).call()
    dep.send(pool.functions.mint(shares, lp), lp)
    assert pool.functions.balanceOf(lp).call() == shares
    assert dep.cash.functions.balanceOf(lp).call() == bal0 - assets


def test_pool_withdraw_burns_shares_and_pays(dep, lp_funded, carol):
    pool, lp = dep.pool, lp_funded
    dep.send(pool.functions.deposit(usdc(1000), lp), lp)
    shares0, cash0 = pool.functions.balanceOf(lp).call(), pool_cash(dep)
    burn = pool.functions.previewWithdraw(usdc(400)).call()
    dep.send(pool.functions.withdraw(usdc(400), carol, lp), lp)
    assert dep.cash.functions.balanceOf(carol).call() == usdc(400)
    assert pool.functions.balanceOf(lp).call() == shares0 - burn
    assert pool_cash(dep) == cash0 - wad(400)


def test_pool_redeem_pays_previewed_assets(dep, lp_funded):
    pool, lp = dep.pool, lp_funded
    dep.send(pool.functions.deposit(usdc(1000), lp), lp)
    shares = pool.functions.balanceOf(lp).call()
    assets = pool.functions.previewRedeem(shares).call()
    bal0 = dep.cash.functions.balanceOf(lp).call()
    dep.send(pool.functions.redeem(shares, lp, lp), lp)
    assert pool.functions.balanceOf(lp).call() == 0
    assert dep.cash.functions.balanceOf(lp).call() == bal0 + assets
    assert usdc(1000) - 1 <= assets <= usdc(1000)  # rounding favours the vault


def test_pool_withdraw_by_spender_needs_share_allowance(dep, lp_funded, carol):
    pool, lp = dep.pool, lp_funded
    dep.send(pool.functions.deposit(usdc(1000), lp), lp)
    with reverts("ERC20InsufficientAllowance"):
        dep.send(pool.functions.withdraw(usdc(10), carol, lp), carol)
    dep.send(pool.functions.approve(carol, MAX_UINT), lp)
    dep.send(pool.functions.withdraw(usdc(10), carol, lp), carol)
    assert dep.cash.functions.balanceOf(carol).call() == usdc(10)


def test_share_price_falls_when_traders_win(dep, alice):
    pool = dep.pool
    configure_market(dep, ETH, maxFundingRateWad=0)
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(10))
    assets0 = pool.functions.totalAssets().call()
    per_share0 = pool.functions.convertToAssets(10**18).call()
    set_price(dep, 1, 2100)
    assert pool.functions.totalAssets().call() == assets0 - usdc(1000)
    assert pool.functions.convertToAssets(10**18).call() < per_share0
    set_price(dep, 1, 1900)
    assert pool.functions.totalAssets().call() == assets0 + usdc(1000)
    assert pool.functions.convertToAssets(10**18).call() > per_share0


def test_share_price_rises_with_fees(dep, alice):
    pool = dep.pool
    configure_market(dep, ETH, maxFundingRateWad=0)
    deposit(dep, alice, 0, 0, usdc(10_000))
    assets0 = pool.functions.totalAssets().call()
    rcpt = trade(dep, alice, 0, ETH, wad(10))
    trade(dep, alice, 0, ETH, -wad(10))
    fee = events(rcpt, dep.core, "Traded")[0]["fee"]
    assert fee == wad(10)
    assert pool.functions.totalAssets().call() == assets0 + usdc(20)


def test_pool_margin_view_counts_counter_positions(dep, alice):
    configure_market(dep, ETH, maxFundingRateWad=0)
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(10))
    set_price(dep, 1, 2050)
    eq, im = dep.core.functions.poolMargin().call()
    assert eq == pool_cash(dep) - wad(500)
    assert im == wad(20_500) * 1002 // 10_000  # |skew| 10 at 2050, IM rate 0.1002


def test_max_withdraw_is_limited_by_pool_initial_margin(dep, small_pool, admin, alice):
    pool = small_pool
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(10))  # pool IM = 20000 x 0.1002 = 2004
    eq, im = dep.core.functions.poolMargin().call()
    assert im == wad(2004)
    free = (eq - im) // 10**12
    assert dep.core.functions.poolFreeCash().call() == free
    max_assets = pool.functions.maxWithdraw(admin).call()
    assert free - 1 <= max_assets <= free  # shares round down on the way
    assert free < pool.functions.convertToAssets(pool.functions.balanceOf(admin).call()).call()
    with reverts("ERC4626ExceededMaxWithdraw", assets=free + 1, max=max_assets):
        dep.send(pool.functions.withdraw(free + 1, admin, admin), admin)
    max_redeem = pool.functions.maxRedeem(admin).call()
    assert pool.functions.previewRedeem(max_redeem).call() <= free
    dep.send(pool.functions.withdraw(max_assets, admin, admin), admin)
    eq, im = dep.core.functions.poolMargin().call()
    assert eq >= im


def test_core_pool_withdraw_rejects_breaking_pool_margin(dep, w3, small_pool, alice, carol):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(10))
    eq, im = dep.core.functions.poolMargin().call()
    free = (eq - im) // 10**12
    pool_addr = small_pool.address
    impersonate(w3, pool_addr)
    with reverts("PoolUndercollateralized", equity=eq - (free + 1) * 10**12, initialMargin=im):
        dep.send(dep.core.functions.poolWithdraw(free + 1, carol), pool_addr)
    dep.send(dep.core.functions.poolWithdraw(free, carol), pool_addr)
    assert dep.cash.functions.balanceOf(carol).call() == free


def test_trade_rejects_growing_skew_past_pool_margin(dep, small_pool, alice, bob):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(20))  # pool IM 4016 < ~5020
    with reverts("PoolUndercollateralized", initialMargin=wad(60_000) * 1006 // 10_000) as r:
        trade(dep, alice, 0, ETH, wad(10))  # |skew| 30: IM 6036
    assert r["err"].args_by_name["equity"] < wad(6036)
    # trades that shrink the pool's exposure pass whatever its margin
    deposit(dep, bob, 0, 0, usdc(10_000))
    trade(dep, bob, 0, ETH, -wad(5))
    trade(dep, alice, 0, ETH, -wad(5))


def test_pool_hooks_reject_other_callers(dep, alice):
    with reverts("NotPool", caller=alice):
        dep.send(dep.core.functions.poolDeposit(usdc(1)), alice)
    with reverts("NotPool", caller=alice):
        dep.send(dep.core.functions.poolWithdraw(usdc(1), alice), alice)


def test_core_pool_withdraw_rejects_zero_amount(dep, w3):
    impersonate(w3, dep.pool.address)
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.poolWithdraw(0, dep.pool.address), dep.pool.address)


def test_core_pool_deposit_rejects_zero_amount(dep, w3):
    # Every other amount-taking entry point answers a zero amount with ZeroAmount.
    impersonate(w3, dep.pool.address)
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.poolDeposit(0), dep.pool.address)


@pytest.mark.parametrize("action", ["deposit", "withdraw"])
def test_pool_actions_rejected_when_paused(dep, admin, lp_funded, action):
    pool, lp = dep.pool, lp_funded
    dep.send(pool.functions.deposit(usdc(100), lp), lp)
    dep.send(dep.core.functions.setPaused(32), admin)
    # ERC-4626: every max* is 0 while the pool is paused, and the pool says why (PAUSED = 1).
    for view in ("maxDeposit", "maxMint", "maxWithdraw", "maxRedeem"):
        assert pool.functions[view](lp).call() == 0, view
    with reverts("PoolClosed", reason=1, feedId=0, status=0):
        if action == "deposit":
            dep.send(pool.functions.deposit(usdc(100), lp), lp)
        else:
            dep.send(pool.functions.withdraw(usdc(50), lp, lp), lp)


def test_max_withdraw_never_exceeds_withdrawable_liquidity(dep, admin, alice):
    # A trader's loss paid from cash debt (collateral-backed) is booked to the pool without
    # tokens arriving. ERC-4626: maxWithdraw MUST NOT exceed what withdraw accepts.
    configure_market(dep, ETH, maxFundingRateWad=0)
    deposit(dep, alice, 0, WETH, wad(400))
    trade(dep, alice, 0, ETH, wad(100))
    set_price(dep, 1, 500)
    trade(dep, alice, 0, ETH, -wad(100))
    assert cash_of(dep, alice) < -wad(150_000)
    pool = dep.pool
    max_assets = pool.functions.maxWithdraw(admin).call()
    held = dep.cash.functions.balanceOf(dep.core.address).call()
    try:
        dep.send(pool.functions.withdraw(max_assets, admin, admin), admin)
    except ContractRevert as err:
        pytest.fail(
            f"withdraw(maxWithdraw = {max_assets}) reverted with {err}; the core holds {held}"
        )


def test_deposits_refused_while_pool_equity_is_gone(dep, small_pool, alice, lp_funded):
    # alice's long wins more than the 5000 USDC the pool holds: its equity is gone.
    deposit(dep, alice, 0, 0, usdc(20_000))
    trade(dep, alice, 0, ETH, wad(10))
    set_price(dep, 1, 2600)
    assert dep.core.functions.poolMargin().call()[0] < 0
    assert small_pool.functions.totalAssets().call() == 0
    assert small_pool.functions.maxDeposit(lp_funded).call() == 0
    assert small_pool.functions.maxMint(lp_funded).call() == 0
    with reverts("ERC4626ExceededMaxDeposit"):
        dep.send(small_pool.functions.deposit(usdc(1000), lp_funded), lp_funded)
    # Back above water, deposits are open again.
    set_price(dep, 1, 2000)
    assert small_pool.functions.maxDeposit(lp_funded).call() > 0
    dep.send(small_pool.functions.deposit(usdc(1000), lp_funded), lp_funded)
