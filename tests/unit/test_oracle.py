"""OracleRouter: normalization, staleness, non-positive and out-of-bounds answers, admin, and the
core refusing to act on a bad price."""

from __future__ import annotations

import pytest
from helpers import (
    BTC,
    ETH,
    WAD,
    WETH,
    answer,
    call,
    deploy,
    deposit,
    reverts,
    trade,
    usdc,
    wad,
    warp,
)

HEARTBEAT = 3600
MIN_WAD = WAD // 10**6
MAX_WAD = 10**9 * WAD


def test_price_normalizes_feed_decimals_to_wad(dep):
    assert dep.oracle.functions.price(1).call() == 2000 * WAD
    assert dep.oracle.functions.price(2).call() == 60_000 * WAD
    assert dep.oracle.functions.price(3).call() == 150 * WAD


@pytest.mark.parametrize("decimals", [0, 6, 18])
def test_price_normalizes_any_decimals_up_to_18(dep, admin, decimals):
    feed = deploy(dep.w3, "MockFeed", admin, decimals, 1234 * 10**decimals)
    dep.send(dep.oracle.functions.setFeed(7, feed.address, HEARTBEAT, MIN_WAD, MAX_WAD), admin)
    assert dep.oracle.functions.price(7).call() == 1234 * WAD


def test_set_feed_stores_feed_and_emits(dep, admin):
    feed = deploy(dep.w3, "MockFeed", admin, 6, 5 * 10**6)
    rcpt = dep.send(dep.oracle.functions.setFeed(8, feed.address, 60, MIN_WAD, MAX_WAD), admin)
    # The jump breaker starts off (jumpWad, confirmRounds, holdSeconds all 0).
    assert tuple(dep.oracle.functions.feeds(8).call()) == (
        feed.address, 60, 6, False, MIN_WAD, MAX_WAD, 0, 0, 0
    )
    ev = dep.oracle.events.FeedSet().process_receipt(rcpt)[0]["args"]
    assert (ev["feedId"], ev["aggregator"], ev["decimals"], ev["heartbeat"]) == (
        8,
        feed.address,
        6,
        60,
    )


def test_try_price_reports_success(dep):
    assert dep.oracle.functions.tryPrice(1).call() == [True, 2000 * WAD]


def test_price_rejects_unknown_feed(dep):
    with reverts("UnknownFeed", feedId=99):
        call(dep, dep.oracle.functions.price(99))
    assert dep.oracle.functions.tryPrice(99).call() == [False, 0]


def test_price_rejects_answer_older_than_heartbeat(dep, admin):
    now = dep.w3.eth.get_block("latest")["timestamp"]
    old = now - HEARTBEAT - 1
    dep.send(dep.feeds[1].functions.updateRoundData(5, answer(2000), old, old), admin)
    with reverts("StalePrice", feedId=1, updatedAt=old, heartbeat=HEARTBEAT):
        call(dep, dep.oracle.functions.price(1))
    # Graded, not reverted: the latest answer with status 2 (stale).
    assert dep.oracle.functions.tryPrice(1).call() == [False, 2000 * WAD]
    assert dep.oracle.functions.priceInfo(1).call() == [2000 * WAD, 2]


@pytest.mark.parametrize("age,fresh", [(HEARTBEAT, True), (HEARTBEAT + 1, False)])
def test_price_staleness_boundary_is_the_heartbeat(dep, w3, admin, age, fresh):
    # Stale iff updatedAt + heartbeat < block.timestamp: an answer exactly heartbeat old is fresh.
    t = w3.eth.get_block("latest")["timestamp"] + 10
    w3.provider.make_request("evm_setNextBlockTimestamp", [t])
    dep.send(dep.feeds[1].functions.updateRoundData(5, answer(2100), t - age, t - age), admin)
    fn = dep.oracle.functions.price(1)
    if fresh:
        assert fn.call() == 2100 * WAD
    else:
        with reverts("StalePrice", feedId=1, updatedAt=t - age, heartbeat=HEARTBEAT):
            call(dep, fn)


def test_price_goes_stale_when_time_passes_heartbeat(dep, w3):
    warp(w3, HEARTBEAT + 1)
    with reverts("StalePrice", feedId=1, heartbeat=HEARTBEAT):
        call(dep, dep.oracle.functions.price(1))


@pytest.mark.parametrize("bad", [0, -1, -2000 * 10**8])
def test_price_rejects_non_positive_answer(dep, admin, bad):
    dep.send(dep.feeds[1].functions.updateAnswer(bad), admin)
    with reverts("NonPositivePrice", feedId=1, answer=bad):
        call(dep, dep.oracle.functions.price(1))
    assert dep.oracle.functions.tryPrice(1).call() == [False, 0]


def test_price_rejects_answer_below_min(dep, admin):
    dep.send(
        dep.oracle.functions.setFeed(1, dep.feeds[1].address, HEARTBEAT, 1000 * WAD, 3000 * WAD),
        admin,
    )
    dep.send(dep.feeds[1].functions.updateAnswer(answer(999)), admin)
    with reverts(
        "PriceOutOfBounds", feedId=1, priceWad=999 * WAD, minWad=1000 * WAD, maxWad=3000 * WAD
    ):
        call(dep, dep.oracle.functions.price(1))


def test_price_rejects_answer_above_max(dep, admin):
    dep.send(
        dep.oracle.functions.setFeed(1, dep.feeds[1].address, HEARTBEAT, 1000 * WAD, 3000 * WAD),
        admin,
    )
    dep.send(dep.feeds[1].functions.updateAnswer(answer(3001)), admin)
    with reverts("PriceOutOfBounds", feedId=1, priceWad=3001 * WAD):
        call(dep, dep.oracle.functions.price(1))
    dep.send(dep.feeds[1].functions.updateAnswer(answer(3000)), admin)
    assert dep.oracle.functions.price(1).call() == 3000 * WAD  # bounds are inclusive


def test_set_feed_rejects_non_admin(dep, outsider):
    with reverts("NotAdmin", caller=outsider):
        dep.send(
            dep.oracle.functions.setFeed(9, dep.feeds[1].address, HEARTBEAT, MIN_WAD, MAX_WAD),
            outsider,
        )


@pytest.mark.parametrize(
    "case", ["zero_aggregator", "zero_heartbeat", "zero_min", "min_eq_max", "min_gt_max"]
)
def test_set_feed_rejects_invalid_config(dep, admin, case):
    agg, hb, lo, hi = dep.feeds[1].address, HEARTBEAT, MIN_WAD, MAX_WAD
    if case == "zero_aggregator":
        agg = "0x" + "00" * 20
    elif case == "zero_heartbeat":
        hb = 0
    elif case == "zero_min":
        lo = 0
    elif case == "min_eq_max":
        lo = hi
    else:
        lo = hi + 1
    with reverts("InvalidFeedConfig", feedId=9):
        dep.send(dep.oracle.functions.setFeed(9, agg, hb, lo, hi), admin)


def test_set_feed_rejects_more_than_18_decimals(dep, admin):
    feed = deploy(dep.w3, "MockFeed", admin, 19, 2000 * 10**19)
    with reverts("InvalidFeedConfig", feedId=9):
        dep.send(dep.oracle.functions.setFeed(9, feed.address, HEARTBEAT, MIN_WAD, MAX_WAD), admin)


def test_set_admin_hands_over_the_role(dep, admin, outsider):
    with reverts("NotAdmin", caller=outsider):
        dep.send(dep.oracle.functions.setAdmin(outsider), outsider)
    dep.send(dep.oracle.functions.setAdmin(outsider), admin)
    assert dep.oracle.functions.admin().call() == outsider
    with reverts("NotAdmin", caller=admin):
        dep.send(dep.oracle.functions.setAdmin(admin), admin)


# ------------------------------------------------------------------ the core on a bad price


def test_stale_market_is_reduce_only(dep, admin, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(2))
    now = dep.w3.eth.get_block("latest")["timestamp"]
    old = now - 2 * HEARTBEAT
    dep.send(dep.feeds[1].functions.updateRoundData(7, answer(2000), old, old), admin)
    with reverts("MarketReduceOnly", marketId=ETH, status=2):
        trade(dep, alice, 0, ETH, wad(1))
    trade(dep, alice, 0, ETH, -wad(1))  # reducing is allowed at the stale answer
    assert dep.core.functions.getPosition(alice, 0, ETH).call()[0] == wad(1)
    deposit(dep, alice, 1, 0, usdc(10_000))
    trade(dep, alice, 1, BTC, wad("0.01"))  # other markets are unaffected (separate account)


def test_trade_after_time_warp_is_reduce_only(dep, w3, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    warp(w3, HEARTBEAT + 10)
    with reverts("MarketReduceOnly", marketId=ETH, status=2):
        trade(dep, alice, 0, ETH, wad(1))


def test_trade_rejects_non_positive_price(dep, admin, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    dep.send(dep.feeds[1].functions.updateAnswer(0), admin)
    with reverts("NonPositivePrice", feedId=1, answer=0):
        trade(dep, alice, 0, ETH, wad(1))


def test_trade_rejects_out_of_bounds_price(dep, admin, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    dep.send(
        dep.oracle.functions.setFeed(1, dep.feeds[1].address, HEARTBEAT, 1000 * WAD, 3000 * WAD),
        admin,
    )
    dep.send(dep.feeds[1].functions.updateAnswer(answer(5000)), admin)
    with reverts("PriceOutOfBounds", feedId=1, priceWad=5000 * WAD):
        trade(dep, alice, 0, ETH, wad(1))


def test_withdraw_with_position_rejects_stale_price(dep, w3, alice):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(1))
    warp(w3, HEARTBEAT + 1)
    with reverts("PriceNotTrusted", feedId=1, status=2):
        dep.send(dep.core.functions.withdraw(0, 0, usdc(1)), alice)


def test_withdraw_without_positions_needs_no_price(dep, w3, alice):
    # No positions and no debt: no margin check, so a dead feed cannot trap funds.
    deposit(dep, alice, 0, WETH, wad(1))
    deposit(dep, alice, 0, 0, usdc(100))
    warp(w3, HEARTBEAT * 5)
    dep.send(dep.core.functions.withdraw(0, WETH, wad(1)), alice)
    dep.send(dep.core.functions.withdraw(0, 0, usdc(100)), alice)
    assert dep.token(WETH).functions.balanceOf(alice).call() == wad(1)


def test_account_views_count_stale_collateral_for_nothing(dep, admin, alice):
    deposit(dep, alice, 0, WETH, wad(1))
    deposit(dep, alice, 0, 0, usdc(10))
    now = dep.w3.eth.get_block("latest")["timestamp"]
    old = now - HEARTBEAT - 100
    dep.send(dep.feeds[1].functions.updateRoundData(9, answer(2000), old, old), admin)
    equity, im, mm = dep.core.functions.accountMargin(alice, 0).call()
    # A stale collateral price counts for nothing (never more): only the cash is left.
    assert (equity, im, mm) == (wad(10), 0, 0)
    assert dep.oracle.functions.collateralPrice(1).call() == [0, 2]
    assert dep.core.functions.isLiquidatable(alice, 0).call() is False


def test_liquidate_rejects_stale_price(dep, w3, alice, keeper):
    deposit(dep, alice, 0, 0, usdc(1000))
    trade(dep, alice, 0, ETH, wad(4))
    warp(w3, HEARTBEAT + 1)
    with reverts("PriceNotTrusted", feedId=1, status=2):
        dep.send(dep.core.functions.liquidate(alice, 0), keeper)
