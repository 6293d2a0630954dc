// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionsBase} from "./Options.t.sol";
import {IOptionsMarketT} from "../utils/ICore.sol";
import {IOptions} from "../../../contracts/interfaces/IOptions.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {MockFeed} from "../../../contracts/mocks/MockFeed.sol";
import {IOracleRouter} from "../../../contracts/interfaces/IOracleRouter.sol";

/// @notice The attacks of issue 13 on the liquidity pool through the options market, each as
///         the attacker would run it, asserting that it ends at <= 0 for the attacker and
///         leaves the honest LP whole. Each test logs the attacker's result [USDC units].
contract PoolOptionsAttacksTest is OptionsBase {
    address internal attacker = address(0xBAD);

    /// @dev The attacker's total value: trading account cash [wad -> USDC units] + wallet USDC.
    function attackerValue(address who) internal view returns (int256) {
        return cashOf(who, 0) / 1e12 + toInt(usdc.balanceOf(who));
    }

    function fundWallet(address who, uint256 amount) internal {
        usdc.mint(who, amount);
        vm.prank(who);
        usdc.approve(address(pool), type(uint256).max);
    }

    function redeemAll(address who) internal {
        uint256 shares = pool.balanceOf(who);
        vm.prank(who);
        pool.redeem(shares, who, who);
    }

    // ------------------------------------------------------------------ finding 1

    /// Finding 1 (was: the pool's long options counted at longHaircut x mark in totalAssets):
    /// sell puts to the pool (the share price falls by 20% of the premium), deposit LP, buy the
    /// puts back (the haircut disappears), redeem. One transaction, no price move.
    /// Before the fix: attacker +183,022 USDC, honest LP 10,000,000 -> 9,816,979.
    function test_lp_share_price_cannot_be_moved_by_selling_options_to_the_pool() public {
        uint256 q = 10_000e18;
        depositFor(attacker, 0, CASH_ID, 6_000_000e6);
        fundWallet(attacker, 10_000_000e6);
        int256 v0 = attackerValue(attacker);
        uint256 lpBefore = pool.convertToAssets(pool.balanceOf(lp));

        vm.startPrank(attacker);
        opt.trade(0, atmPut, -int256(q), 0); // the pool is long 10,000 puts
        pool.deposit(10_000_000e6, attacker);
        opt.trade(0, atmPut, int256(q), 0); // closed
        pool.redeem(pool.balanceOf(attacker), attacker, attacker);
        vm.stopPrank();

        int256 profit = attackerValue(attacker) - v0;
        uint256 lpAfter = pool.convertToAssets(pool.balanceOf(lp));
        emit LogNamedInt256("attacker profit [USDC units]", profit);
        emit LogNamedUint256("honest LP after [USDC units]", lpAfter);
        assertLte(profit, 0, "the round trip must cost the attacker the fees");
        assertGte(lpAfter, lpBefore, "the honest LP keeps its value (and earns the fees)");
    }

    /// The pool's long options are valued at their full mark; the haircut is margin only:
    /// it sits in the pool's IM, so the pool's equity - IM is what it was.
    function test_pool_long_options_count_at_full_mark_and_the_haircut_goes_to_im() public {
        depositFor(bob, 0, CASH_ID, 100_000e6);
        optTrade(bob, 0, atmPut, -10e18);
        (int256 v, uint256 im,,) = opt.poolRisk();
        uint256 full = 10e18 * markOf(atmPut) / WAD;
        assertEq(v, toInt(full), "full mark, rounded down");
        assertEq(im, full - full * LONG_HAIRCUT / WAD, "the haircut as a requirement");
        // Expired: the pool's long is its payoff, no haircut in IM.
        setPrice(ethFeed, 1_900e18);
        skipFresh(30 days);
        (v, im,,) = opt.poolRisk();
        assertEq(v, 1_000e18);
        assertEq(im, 0);
    }

    // ------------------------------------------------------------------ finding 2

    /// Finding 2 (was: settleSeries retired a series whose NET open interest was 0): a long of
    /// 1,000 calls and a short of 1,000 net out; after settlement at 2,500 the long is paid
    /// 500,000 by the pool and the short owes the pool 500,000. Settling the long first while
    /// the series is off the books drops totalAssets by 500,000; an LP entering then and
    /// leaving after the short is settled takes part of the 500,000 back from the others.
    /// Before the fix: totalAssets -500,000 then +500,000, entrant +256,363 USDC.
    function test_series_stays_on_the_books_until_every_position_settles() public {
        uint256 q = 1_000e18;
        depositFor(alice, 0, CASH_ID, 500_000e6);
        depositFor(bob, 0, CASH_ID, 2_000_000e6);
        optTrade(alice, 0, atmCall, int256(q));
        optTrade(bob, 0, atmCall, -int256(q));
        assertEq(opt.openInterest(atmCall), 0, "net zero");
        assertEq(opt.holders(atmCall), 2);
        setPrice(ethFeed, 2_500e18);
        skipFresh(30 days);
        opt.settleSeries(atmCall, 0);
        assertTrue(isLive(atmCall), "two positions still open");

        uint256 ta0 = pool.totalAssets();
        opt.settleAccount(alice, 0); // the pool pays the long 500,000
        uint256 ta1 = pool.totalAssets();
        assertTrue(isLive(atmCall), "the short is still owed to the pool");
        assertEq(opt.holders(atmCall), 1);

        fundWallet(carol, 10_000_000e6);
        int256 c0 = attackerValue(carol);
        vm.prank(carol);
        pool.deposit(10_000_000e6, carol);
        opt.settleAccount(bob, 0); // the short pays the pool 500,000
        uint256 ta2 = pool.totalAssets() - 10_000_000e6;
        redeemAll(carol);
        int256 profit = attackerValue(carol) - c0;

        emit LogNamedInt256("totalAssets change settling the long [USDC units]", toInt(ta1) - toInt(ta0));
        emit LogNamedInt256("totalAssets change settling the short [USDC units]", toInt(ta2) - toInt(ta1));
        emit LogNamedInt256("entrant profit [USDC units]", profit);
        assertAlmostEq(ta1, ta0, 1, "settling one side moves no value");
        assertAlmostEq(ta2, ta0, 2, "settling the other side moves no value");
        assertLte(profit, 0, "no LP profits from the settlement order");
        assertFalse(isLive(atmCall), "retired once every position is settled");
        assertEq(opt.holders(atmCall), 0);
    }

    /// A series with positions left after settlement retires when a liquidation closes the
    /// last one (the holders count follows closes in full).
    function test_liquidation_closing_a_position_in_full_counts_it_out_of_the_series() public {
        depositFor(alice, 0, CASH_ID, 600e6);
        depositFor(bob, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, -1e18);
        optTrade(bob, 0, atmCall, 1e18);
        setPrice(ethFeed, 3_000e18);
        skipFresh(30 days);
        opt.settleSeries(atmCall, 0);
        vm.prank(keeper);
        core.liquidate(alice, 0);
        assertEq(optSize(alice, 0, atmCall), 0);
        assertEq(opt.holders(atmCall), 1);
        assertTrue(isLive(atmCall), "bob's long is still open");
        opt.settleAccount(bob, 0);
        assertEq(opt.holders(atmCall), 0);
        assertFalse(isLive(atmCall));
    }

    // ------------------------------------------------------------------ finding 3

    /// Finding 3 (was: option closes filled at the mark computed from a SUSPECT answer): buy
    /// 100 puts at 2,000, sell them inside a one-round -40% wick the breaker has not confirmed.
    /// Options now fill like perps: a reducing trade at the end of the fill bounds worse for
    /// the trader (a put seller: the high spot, the low vol), a risk-increasing one refused.
    /// Before the fix: +60,916 USDC from the wick.
    function test_option_close_inside_a_spot_wick_fills_at_the_worse_end_of_the_bounds() public {
        vm.prank(admin);
        oracle.setBreaker(ETH_FEED, 0.1e18, 3, 10 minutes);
        depositFor(alice, 0, CASH_ID, 1_000_000e6);
        int256 v0 = attackerValue(alice);
        optTrade(alice, 0, atmPut, 100e18);
        vm.warp(block.timestamp + 1);
        setPrice(ethFeed, 1_200e18); // -40% in one round: SUSPECT
        (, uint8 st) = oracle.priceInfo(ETH_FEED);
        assertEq(uint256(st), 1);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionReduceOnly.selector, atmPut, 1));
        vm.prank(alice);
        opt.trade(0, atmPut, 1e18, 0);
        optTrade(alice, 0, atmPut, -100e18); // reducing: allowed, at the worse end
        int256 profit = attackerValue(alice) - v0;
        emit LogNamedInt256("put round trip through the wick [USDC units]", profit);
        assertLte(profit, 0, "a wick the oracle does not trust pays nothing");
    }

    /// The same for the volatility feed: a short call bought back while the vol feed wicks
    /// down (0.8 -> 0.3, SUSPECT) pays the mark at the high end of the vol bounds.
    /// Before the fix: +11,431 USDC.
    function test_option_close_inside_a_vol_wick_fills_at_the_worse_end_of_the_bounds() public {
        vm.prank(admin);
        oracle.setBreaker(IV_FEED, 0.1e18, 3, 10 minutes);
        depositFor(alice, 0, CASH_ID, 1_000_000e6);
        int256 v0 = attackerValue(alice);
        optTrade(alice, 0, atmCall, -100e18);
        vm.warp(block.timestamp + 1);
        ivFeed.updateAnswer(0.3e8);
        (, uint8 st) = oracle.priceInfo(IV_FEED);
        assertEq(uint256(st), 1);
        optTrade(alice, 0, atmCall, 100e18); // reducing
        int256 profit = attackerValue(alice) - v0;
        emit LogNamedInt256("short call round trip through the vol wick [USDC units]", profit);
        assertLte(profit, 0);
    }

    // ------------------------------------------------------------------ finding 7

    /// Finding 7 (was: the settlement price was the spot at the first settleSeries call after
    /// expiry, so the caller chose the moment): the round at expiry answers 2,222; an hour of
    /// later rounds move to 2,500 before anyone calls. The series settles at 2,222.
    /// Before the fix: the spot at the call, 2,500.0 (the caller chose among 2,222 .. 2,500).
    function test_settlement_price_is_the_first_round_at_expiry_not_the_call_time() public {
        vm.warp(EXPIRY);
        setPrice(ethFeed, 2_222e18); // the first round at expiry
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        for (uint256 i; i < 6; ++i) {
            vm.warp(block.timestamp + 10 minutes);
            setPrice(ethFeed, 2_222e18 + (i + 1) * 46.333333333333333333e18);
        }
        (uint256 spotNow,) = oracle.priceInfo(ETH_FEED);
        assertGt(spotNow, 2_499e18);
        opt.settleSeries(atmCall, 0);
        emit LogNamedUint256("settlement price [wad]", uint256(opt.series(atmCall).settlementPrice));
        assertEq(uint256(opt.series(atmCall).settlementPrice), 2_222e18);
    }

    /// A named round must be the first at or after expiry: a round before expiry or a later
    /// one is refused (NotFirstRoundAfter); beyond the router's walk, round 0 asks for it.
    function test_settle_series_at_a_named_round_verifies_it() public {
        vm.warp(EXPIRY - 1);
        setPrice(ethFeed, 1_999e18); // round 2, before expiry
        vm.warp(EXPIRY + 5);
        setPrice(ethFeed, 2_100e18); // round 3: the first at or after expiry
        for (uint256 i; i < 30; ++i) {
            vm.warp(block.timestamp + 1);
            setPrice(ethFeed, 2_300e18); // rounds 4 .. 33
        }
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        bytes4 sel = IOracleRouter.NotFirstRoundAfter.selector;
        vm.expectRevert(abi.encodeWithSelector(sel, uint256(ETH_FEED), uint256(33 - 24), uint256(EXPIRY)));
        opt.settleSeries(atmCall, 0);
        vm.expectRevert(abi.encodeWithSelector(sel, uint256(ETH_FEED), uint256(2), uint256(EXPIRY)));
        opt.settleSeries(atmCall, 2);
        vm.expectRevert(abi.encodeWithSelector(sel, uint256(ETH_FEED), uint256(4), uint256(EXPIRY)));
        opt.settleSeries(atmCall, 4);
        opt.settleSeries(atmCall, 3);
        assertEq(uint256(opt.series(atmCall).settlementPrice), 2_100e18);
    }

    // ------------------------------------------------------------------ finding 8

    /// Finding 8 (was: BlackScholes' VolTooHigh above 1,000% reverted the whole grid): with the
    /// admin-allowed volUp = 2 and maxVolScale = 10, a one-day option's vol-up scenario is
    /// 0.8 x 21 = 16.8 (1,680%). The portfolio check prices it (BlackScholes now accepts up to
    /// 100,000%; above that the scenario vol clamps), so the account can be checked and
    /// liquidated. Before the fix: accountMargin and liquidate reverted VolTooHigh(16.8e18).
    function test_high_shocked_vol_neither_reverts_the_check_nor_blocks_liquidation() public {
        IOptions.PortfolioConfig memory p = pmCfg();
        (p.volUpWad, p.maxVolScaleWad, p.volPowWad) = (2e18, 10e18, 1e18);
        vm.startPrank(admin);
        opt.configurePortfolio(p);
        uint256 oneDay = opt.listSeries(ETH_PERP, true, uint40(block.timestamp + 1 days), 2_000e18);
        vm.stopPrank();
        depositFor(alice, 0, CASH_ID, 20_000e6);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        optTrade(alice, 0, oneDay, -5e18);
        (, uint256 im, uint256 mm) = core.accountMargin(alice, 0);
        emit LogNamedUint256("MM of 5 short one-day calls [wad]", mm);
        // The vol-up scenario at an unchanged spot alone: 5 x (v(16.8) - v(0.8)) >= 5 x 600.
        assertGt(mm, 3_000e18, "the 1,680% scenario is priced, not dropped");
        assertGt(im, mm);
        setPrice(ethFeed, 6_000e18);
        assertTrue(core.isLiquidatable(alice, 0));
        vm.prank(keeper);
        core.liquidate(alice, 0);
        assertGt(optSize(alice, 0, oneDay), -5e18, "liquidated");
    }

    // ------------------------------------------------------------------ finding 9

    /// Finding 9 (was: configure copied the market's spot feed id, and a later configureMarket
    /// moving the market to another feed left its options on the old one): the options market
    /// reads the core's feed id at every use. Before the fix: the mark's spot stayed 2,000.
    function test_options_follow_the_core_market_feed_after_configure_market() public {
        MockFeed eth2 = new MockFeed(8, 2_500e8);
        vm.startPrank(admin);
        oracle.setFeed(3, address(eth2), 1 hours, 100e18, 100_000e18);
        IPlimsoll.MarketConfig memory c = ethMarket();
        c.feedId = 3;
        core.configureMarket(ETH_PERP, c);
        vm.stopPrank();
        (, uint256 spot,) = opt.mark(atmCall);
        emit LogNamedUint256("options spot after the market moved to feed 3 [wad]", spot);
        assertEq(spot, 2_500e18);
        // Trades, checks and settlement use it too.
        depositFor(alice, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, 1e18);
        (,, uint256 vol) = opt.mark(atmCall);
        assertEq(vol, IV);
    }
}
