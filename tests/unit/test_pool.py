"""LiquidityPool (ERC-7540: requests priced after the next price round, then claimed) and the
core's pool hooks: share price following trader PnL and fees, the pool's initial margin
limiting redemptions and trades."""

from __future__ import annotations

import pytest
from helpers import (
    ETH,
    call,
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
    """The seed LP redeems all but 1 USDC worth of its shares: the 0.05% exit fee (5000 USDC of
    the 10,000,000) stays in the pool, so about 5001 USDC are left, all the LP's. ETH funding is
    off so that the pool's equity does not drift between blocks."""
    configure_market(dep, ETH, maxFundingRateWad=0)
    pool = dep.pool
    dep.lp_redeem(admin, pool.functions.balanceOf(admin).call() - 10**12)
    assert usdc(5000) <= pool.functions.totalAssets().call() <= usdc(5002)
    return pool


def test_pool_deposit_request_fulfil_claim_moves_cash_into_core(dep, lp_funded, keeper):
    pool, lp = dep.pool, lp_funded
    assets0, cash0 = pool.functions.totalAssets().call(), pool_cash(dep)
    core_usdc0 = dep.cash.functions.balanceOf(dep.core.address).call()
    rcpt = dep.send(pool.functions.requestDeposit(usdc(1000), lp, lp), lp)
    assert events(rcpt, pool, "DepositRequest")[0]["assets"] == usdc(1000)
    # Pending: held by the pool contract, not in totalAssets, no shares yet.
    assert pool.functions.pendingDepositRequest(0, lp).call() == usdc(1000)
    assert pool.functions.totalAssets().call() == assets0
    assert dep.cash.functions.balanceOf(pool.address).call() == usdc(1000)
    ta, ts = pool.functions.totalAssets().call(), pool.functions.totalSupply().call()
    rcpt = dep.send(pool.functions.fulfilDeposit(lp), keeper)  # anyone fulfils
    fee = usdc(1000) * 5 // 10_000
    shares = (usdc(1000) - fee) * (ts + 10**6) // (ta + 1)
    assert events(rcpt, pool, "DepositFulfilled")[0]["shares"] == shares
    assert pool.functions.claimableDepositRequest(0, lp).call() == usdc(1000)
    assert pool.functions.totalAssets().call() == assets0 + usdc(1000)
    assert pool_cash(dep) == cash0 + wad(1000)
    assert dep.cash.functions.balanceOf(dep.core.address).call() == core_usdc0 + usdc(1000)
    assert dep.cash.functions.balanceOf(pool.address).call() == 0
    dep.send(pool.functions.deposit(usdc(1000), lp, lp), lp)
    assert pool.functions.balanceOf(lp).call() == shares > 0


def test_pool_redeem_request_fulfil_claim_pays(dep, lp_funded, carol, keeper):
    pool, lp = dep.pool, lp_funded
    shares = dep.lp_deposit(lp, usdc(1000))
    cash0 = pool_cash(dep)
    dep.send(pool.functions.requestRedeem(shares, lp, lp), lp)
    assert pool.functions.balanceOf(lp).call() == 0
    assert pool.functions.pendingRedeemRequest(0, lp).call() == shares
    ta, ts = pool.functions.totalAssets().call(), pool.functions.totalSupply().call()
    dep.send(pool.functions.fulfilRedeem(lp), keeper)
    gross = shares * (ta + 1) // (ts + 10**6)
    net = gross - (gross * 5 + 9_999) // 10_000
    assert pool.functions.maxWithdraw(lp).call() == net
    assert pool_cash(dep) == cash0 - net * 10**12
    with reverts("NotOperator"):
        dep.send(pool.functions.withdraw(net, carol, lp), carol)
    dep.send(pool.functions.withdraw(net, carol, lp), lp)
    assert dep.cash.functions.balanceOf(carol).call() == net
    # 1000 in, both 0.05% fees paid (the LP gets back its small share of its own entry fee)
    assert usdc(1000) * 9_990 // 10_000 - 2 <= net < usdc(1000) * 9_991 // 10_000


def test_pool_redeem_request_by_spender_needs_share_allowance(dep, lp_funded, carol):
    pool, lp = dep.pool, lp_funded
    shares = dep.lp_deposit(lp, usdc(1000))
    with reverts("ERC20InsufficientAllowance"):
        dep.send(pool.functions.requestRedeem(shares, carol, lp), carol)
    dep.send(pool.functions.approve(carol, MAX_UINT), lp)
    dep.send(pool.functions.requestRedeem(shares, carol, lp), carol)
    assert pool.functions.pendingRedeemRequest(0, carol).call() == shares


def test_pool_previews_revert_async(dep):
    for view in ("previewDeposit", "previewMint", "previewWithdraw", "previewRedeem"):
        with reverts("AsyncFlow"):
            call(dep, dep.pool.functions[view](10**6))


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


def test_redemption_is_limited_by_pool_initial_margin(dep, small_pool, admin, alice, carol):
    pool = small_pool
    deposit(dep, alice, 0, 0, usdc(10_000))
    # Pool IM = 40000 x 0.1004 = 4016 of its ~5001: the free cash (~1000) is small enough that the
    # LP's shares cover both requests below (one over the free cash, one within it).
    trade(dep, alice, 0, ETH, wad(20))
    eq, im = dep.core.functions.poolMargin().call()
    assert im == wad(4016)
    free = (eq - im) // 10**12
    assert dep.core.functions.poolFreeCash().call() == free
    assert pool.functions.freeCash().call() == free
    # A request worth more than the free cash waits (the core refuses its pricing)...
    too_much = pool.functions.convertToShares(free * 10_020 // 9_995).call()
    dep.send(pool.functions.requestRedeem(too_much, admin, admin), admin)
    dep.new_round()
    with reverts("PoolUndercollateralized"):
        dep.send(pool.functions.fulfilRedeem(admin), carol)
    assert pool.functions.pendingRedeemRequest(0, admin).call() == too_much  # nothing lost
    # ... one within it is paid (another controller: one request per side each).
    dep.send(
        pool.functions.requestRedeem(
            pool.functions.convertToShares(free * 9_990 // 10_000).call(), carol, admin
        ),
        admin,
    )
    dep.new_round()
    dep.send(pool.functions.fulfilRedeem(carol), carol)
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
def test_pool_requests_rejected_when_paused_claims_stay_open(dep, admin, lp_funded, action):
    pool, lp = dep.pool, lp_funded
    shares = dep.lp_deposit(lp, usdc(100))
    dep.send(pool.functions.requestDeposit(usdc(100), lp, lp), lp)
    dep.send(pool.functions.fulfilDeposit(lp), lp)
    dep.send(dep.core.functions.setPaused(32), admin)
    with reverts("PoolClosed", reason=1, feedId=0, status=0):
        if action == "deposit":
            dep.send(pool.functions.requestDeposit(usdc(100), lp, lp), lp)
        else:
            dep.send(pool.functions.requestRedeem(shares, lp, lp), lp)
    # ERC-7540: max* are the claimable amounts, and claiming them works while paused.
    assert pool.functions.maxDeposit(lp).call() == usdc(100)
    dep.send(pool.functions.deposit(usdc(100), lp, lp), lp)
    assert pool.functions.maxDeposit(lp).call() == 0


def test_redemption_never_exceeds_withdrawable_liquidity(dep, admin, alice):
    # A trader's loss paid from cash debt (collateral-backed) is booked to the pool without
    # tokens arriving. A redemption the core cannot pay waits; a payable one is paid.
    configure_market(dep, ETH, maxFundingRateWad=0)
    deposit(dep, alice, 0, WETH, wad(400))
    trade(dep, alice, 0, ETH, wad(100))
    set_price(dep, 1, 500)
    trade(dep, alice, 0, ETH, -wad(100))
    assert cash_of(dep, alice) < -wad(150_000)
    pool = dep.pool
    free = pool.functions.freeCash().call()
    held = dep.cash.functions.balanceOf(dep.core.address).call()
    shares = pool.functions.convertToShares(min(free, held) * 9_990 // 10_000).call()
    try:
        dep.lp_redeem(admin, shares)
    except ContractRevert as err:
        pytest.fail(f"a redemption within the free cash reverted with {err}; the core holds {held}")


def test_deposits_wait_while_pool_equity_is_gone(dep, small_pool, alice, lp_funded):
    # alice's long wins more than the 5000 USDC the pool holds: its equity is gone.
    deposit(dep, alice, 0, 0, usdc(20_000))
    trade(dep, alice, 0, ETH, wad(10))
    set_price(dep, 1, 2600)
    assert dep.core.functions.poolMargin().call()[0] < 0
    assert small_pool.functions.totalAssets().call() == 0
    dep.send(small_pool.functions.requestDeposit(usdc(1000), lp_funded, lp_funded), lp_funded)
    dep.new_round()
    assert small_pool.functions.canFulfil(lp_funded).call()[0] is False
    with reverts("PoolClosed", reason=4):
        dep.send(small_pool.functions.fulfilDeposit(lp_funded), lp_funded)
    # Back above water, the waiting deposit is priced.
    set_price(dep, 1, 2000)
    dep.send(small_pool.functions.fulfilDeposit(lp_funded), lp_funded)
    assert small_pool.functions.maxDeposit(lp_funded).call() == usdc(1000)
