"""Perpetuals: fills at the mark, fees to the pool, realized PnL against the pool, funding,
open-interest limit, slippage, disabled markets, isolated subaccounts."""

from __future__ import annotations

import pytest
from helpers import (
    BTC,
    DAY,
    ETH,
    SOL,
    WETH,
    call,
    cash_of,
    configure_market,
    current_index,
    deposit,
    events,
    fee_of,
    feed_price,
    margin,
    market_cfg,
    mul_up,
    pool_cash,
    position,
    refresh_feeds,
    reverts,
    set_price,
    smul_ceil,
    trade,
    usdc,
    wad,
    warp,
)


@pytest.fixture
def no_funding(dep):
    for m in range(dep.core.functions.marketCount().call()):
        configure_market(dep, m, maxFundingRateWad=0)


def test_open_long_books_position_and_pays_fee_to_pool(dep, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    pool_before = pool_cash(dep)
    rcpt = trade(dep, alice, 0, ETH, wad(2))
    fee = mul_up(wad(4000), wad("0.0005"))
    assert fee == wad(2)
    assert cash_of(dep, alice) == wad(10_000) - fee
    assert pool_cash(dep) == pool_before + fee
    size, open_notional, _ = position(dep, alice, 0, ETH)
    assert (size, open_notional) == (wad(2), wad(4000))
    ev = events(rcpt, dep.core, "Traded")[0]
    assert (ev["sizeDelta"], ev["price"], ev["fee"], ev["realizedPnl"]) == (
        wad(2),
        wad(2000),
        fee,
        0,
    )
    acct = dep.core.functions.getAccount(alice, 0).call()
    assert acct[2] == 1 << ETH
    st = dep.core.functions.marketState(ETH).call()
    assert (st[0], st[1], st[4]) == (wad(2), 0, wad(4000))


def test_open_short_books_negative_size(dep, alice):
    deposit(dep, alice, 0, 0, usdc(100_000))
    trade(dep, alice, 0, BTC, -wad("0.5"))
    assert position(dep, alice, 0, BTC)[:2] == (-wad("0.5"), -wad(30_000))
    st = dep.core.functions.marketState(BTC).call()
    assert (st[0], st[1]) == (0, wad("0.5"))


def test_trade_rejects_zero_size(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    with reverts("ZeroAmount"):
        trade(dep, alice, 0, ETH, 0)


def test_trade_rejects_unknown_market(dep, alice):
    deposit(dep, alice, 0, 0, usdc(1000))
    n = dep.core.functions.marketCount().call()
    with reverts("UnknownMarket", marketId=n):
        trade(dep, alice, 0, n, wad(1))


def test_realized_pnl_is_zero_sum_with_the_pool(dep, no_funding, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    total = cash_of(dep, alice) + pool_cash(dep)
    trade(dep, alice, 0, ETH, wad(2))
    set_price(dep, 1, 2100)
    rcpt = trade(dep, alice, 0, ETH, -wad(2))
    ev = events(rcpt, dep.core, "Traded")[0]
    assert ev["realizedPnl"] == wad(200)
    assert ev["fee"] == wad("2.1")
    assert cash_of(dep, alice) == wad(10_000) - wad(2) + wad(200) - wad("2.1")
    assert cash_of(dep, alice) + pool_cash(dep) == total
    assert position(dep, alice, 0, ETH) == (0, 0, 0)
    assert dep.core.functions.getAccount(alice, 0).call()[2] == 0


def test_partial_reduce_realizes_pnl_and_reopens_at_mark(dep, no_funding, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, -wad(3))
    set_price(dep, 1, 1900)
    rcpt = trade(dep, alice, 0, ETH, wad(1))
    # the whole position is settled to the mark, then reopened there
    assert events(rcpt, dep.core, "Traded")[0]["realizedPnl"] == wad(300)
    assert position(dep, alice, 0, ETH)[:2] == (-wad(2), -wad(3800))


def test_losses_flow_to_the_pool(dep, no_funding, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(2))
    before = pool_cash(dep)
    set_price(dep, 1, 1950)
    rcpt = trade(dep, alice, 0, ETH, -wad(2))
    fee = events(rcpt, dep.core, "Traded")[0]["fee"]
    assert pool_cash(dep) == before + wad(100) + fee


def test_funding_longs_pay_when_skew_positive(dep, w3, alice, bob):
    deposit(dep, alice, 0, 0, usdc(100_000))
    deposit(dep, bob, 0, 0, usdc(100_000))
    trade(dep, alice, 0, ETH, wad(100))
    trade(dep, bob, 0, ETH, -wad(40))
    blk0 = w3.eth.block_number
    ea0, eb0 = margin(dep, alice, 0, blk0)[0], margin(dep, bob, 0, blk0)[0]
    pe0 = dep.core.functions.poolMargin().call(block_identifier=blk0)[0]
    idx0 = dep.core.functions.fundingIndex(ETH).call(block_identifier=blk0)
    warp(w3, DAY)
    refresh_feeds(dep)
    blk = w3.eth.block_number
    idx = dep.core.functions.fundingIndex(ETH).call(block_identifier=blk)
    assert idx > idx0
    # the index follows the documented formula exactly
    cfg, st = market_cfg(dep, ETH), dep.core.functions.marketState(ETH).call(block_identifier=blk)
    assert idx == current_index(
        cfg, st, feed_price(dep, 1, blk), w3.eth.get_block(blk)["timestamp"]
    )
    ea, eb = margin(dep, alice, 0, blk)[0], margin(dep, bob, 0, blk)[0]
    pe = dep.core.functions.poolMargin().call(block_identifier=blk)[0]
    _, _, a_idx = position(dep, alice, 0, ETH)
    _, _, b_idx = position(dep, bob, 0, ETH)
    assert ea < ea0 and eb > eb0  # the long pays, the short receives
    assert ea0 - ea == smul_ceil(wad(100), idx - a_idx) - smul_ceil(wad(100), idx0 - a_idx)
    # roughly 1 day at 0.01 x 60/10000 of the price: 0.12 USD per unit
    assert abs((ea0 - ea) - wad(12)) < wad("0.05")
    # zero-sum up to one wei of rounding per leg, in the protocol's favour
    drift = (ea - ea0) + (eb - eb0) + (pe - pe0)
    assert -3 <= drift <= 0


def test_funding_shorts_pay_when_skew_negative(dep, w3, alice):
    deposit(dep, alice, 0, 0, usdc(100_000))
    trade(dep, alice, 0, ETH, -wad(100))
    idx0 = dep.core.functions.fundingIndex(ETH).call()
    e0 = margin(dep, alice)[0]
    warp(w3, DAY // 2)
    refresh_feeds(dep)
    assert dep.core.functions.fundingIndex(ETH).call() < idx0
    assert margin(dep, alice)[0] < e0


def test_funding_is_realized_on_close(dep, w3, alice):
    deposit(dep, alice, 0, 0, usdc(100_000))
    trade(dep, alice, 0, ETH, wad(100))
    _, _, entry_idx = position(dep, alice, 0, ETH)
    warp(w3, DAY)
    refresh_feeds(dep)
    pool_before, cash_before = pool_cash(dep), cash_of(dep, alice)
    rcpt = trade(dep, alice, 0, ETH, -wad(100))
    ev = events(rcpt, dep.core, "Traded")[0]
    idx = dep.core.functions.marketState(ETH).call()[2]
    assert ev["realizedPnl"] == -smul_ceil(wad(100), idx - entry_idx) < 0
    assert cash_of(dep, alice) == cash_before + ev["realizedPnl"] - ev["fee"]
    assert pool_cash(dep) == pool_before - ev["realizedPnl"] + ev["fee"]
    accrued = events(rcpt, dep.core, "FundingAccrued")
    assert accrued and accrued[0]["marketId"] == ETH and accrued[0]["fundingIndex"] == idx


def test_trade_rejects_open_interest_past_limit(dep, alice, bob):
    configure_market(dep, ETH, maxOpenInterest=wad(10))
    deposit(dep, alice, 0, 0, usdc(10_000))
    deposit(dep, bob, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(6))
    with reverts("OpenInterestExceeded", marketId=ETH, openInterest=wad(11), limit=wad(10)):
        trade(dep, bob, 0, ETH, wad(5))
    trade(dep, bob, 0, ETH, wad(4))  # exactly at the limit
    with reverts("OpenInterestExceeded", marketId=ETH, openInterest=wad(11), limit=wad(10)):
        trade(dep, bob, 0, ETH, -wad(15))  # the short side: bob's 4 long flips to 11 short
    trade(dep, bob, 0, ETH, -wad(14))  # flips to 10 short: at the short limit
    st = dep.core.functions.marketState(ETH).call()
    assert (st[0], st[1]) == (wad(6), wad(10))


def test_reducing_is_allowed_above_open_interest_limit(dep, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(8))
    configure_market(dep, ETH, maxOpenInterest=wad(5))
    with reverts("OpenInterestExceeded", openInterest=wad(9), limit=wad(5)):
        trade(dep, alice, 0, ETH, wad(1))
    trade(dep, alice, 0, ETH, -wad(2))
    assert position(dep, alice, 0, ETH)[0] == wad(6)


def test_trade_rejects_buy_above_acceptable_price(dep, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    with reverts("SlippageExceeded", price=wad(2000), acceptablePrice=wad(1999)):
        trade(dep, alice, 0, ETH, wad(1), wad(1999))
    trade(dep, alice, 0, ETH, wad(1), wad(2000))


def test_trade_rejects_sell_below_acceptable_price(dep, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    with reverts("SlippageExceeded", price=wad(2000), acceptablePrice=wad(2001)):
        trade(dep, alice, 0, ETH, -wad(1), wad(2001))
    trade(dep, alice, 0, ETH, -wad(1), wad(2000))


def test_disabled_market_refuses_opening_but_allows_reducing(dep, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(2))
    configure_market(dep, ETH, enabled=False)
    with reverts("Disabled", id=ETH):
        trade(dep, alice, 0, ETH, wad(1))
    with reverts("Disabled", id=ETH):
        trade(dep, alice, 0, ETH, -wad(3))  # a flip increases risk
    trade(dep, alice, 0, ETH, -wad(1))
    trade(dep, alice, 0, ETH, -wad(1))
    assert position(dep, alice, 0, ETH)[0] == 0


def test_isolated_subaccount_rejects_other_markets(dep, alice):
    dep.send(dep.core.functions.configureSubaccount(1, ETH + 1), alice)
    deposit(dep, alice, 1, 0, usdc(10_000))
    with reverts("IsolatedMarketMismatch", subaccount=1, isolatedMarket=ETH, marketId=BTC):
        trade(dep, alice, 1, BTC, wad("0.01"))
    with reverts("IsolatedMarketMismatch", subaccount=1, isolatedMarket=ETH, marketId=SOL):
        trade(dep, alice, 1, SOL, wad(1))
    trade(dep, alice, 1, ETH, wad(1))


def test_configure_subaccount_rejects_open_position(dep, alice):
    deposit(dep, alice, 1, WETH, wad(10))
    trade(dep, alice, 1, ETH, wad(1))
    dep.send(dep.core.functions.withdraw(1, WETH, wad(1)), alice)
    with reverts("SubaccountNotEmpty", owner=alice, subaccount=1):
        dep.send(dep.core.functions.configureSubaccount(1, ETH + 1), alice)


def test_isolated_subaccount_bad_debt_leaves_other_subaccounts_unchanged(
    dep, no_funding, alice, keeper
):
    core = dep.core
    deposit(dep, alice, 0, 0, usdc(20_000))
    deposit(dep, alice, 0, WETH, wad(2))
    trade(dep, alice, 0, BTC, wad("0.1"))
    trade(dep, alice, 0, ETH, -wad(1))
    dep.send(core.functions.configureSubaccount(1, ETH + 1), alice)
    deposit(dep, alice, 1, 0, usdc(500))
    trade(dep, alice, 1, ETH, wad(2))

    def sub0_state():
        return (
            core.functions.getAccount(alice, 0).call(),
            core.functions.collateralBalance(alice, 0, WETH).call(),
            position(dep, alice, 0, BTC),
            position(dep, alice, 0, ETH),
        )

    state_before = sub0_state()
    set_price(dep, 1, 1500)  # sub 1 loses 1000 on 500 of margin
    margin_before = margin(dep, alice, 0)
    assert core.functions.isLiquidatable(alice, 1).call()
    rcpt = dep.send(core.functions.liquidate(alice, 1), keeper)
    bad = events(rcpt, core, "BadDebtSettled")
    assert len(bad) == 1 and bad[0]["subaccount"] == 1 and bad[0]["deficit"] > 0
    assert sub0_state() == state_before
    assert margin(dep, alice, 0) == margin_before
    acct1 = core.functions.getAccount(alice, 1).call()
    assert acct1[0] == 0 and acct1[2] == 0  # wiped clean, debt settled


def test_account_margin_follows_fee_and_price(dep, no_funding, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, SOL, wad(10))
    cfg = market_cfg(dep, SOL)
    fee = fee_of(cfg, wad(10), wad(150))
    set_price(dep, 3, 160)
    eq, _, _ = margin(dep, alice)
    assert eq == wad(10_000) - fee + wad(100)


def test_funding_index_view_rejects_unknown_market(dep):
    n = dep.core.functions.marketCount().call()
    with reverts("UnknownMarket", marketId=n):
        call(dep, dep.core.functions.fundingIndex(n))
