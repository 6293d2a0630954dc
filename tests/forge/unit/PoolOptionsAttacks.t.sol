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
        lpRedeem(who, pool.balanceOf(who));
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

        // (Was one transaction; the entry and the exit now wait for a price round each.)
        optTrade(attacker, 0, atmPut, -int256(q)); // the pool is long 10,000 puts
        lpDeposit(attacker, 10_000_000e6);
        optTrade(attacker, 0, atmPut, int256(q)); // closed
        redeemAll(attacker);

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
        lpDeposit(carol, 10_000_000e6);
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

    // ------------------------------------------------------------------ finding 4

    /// @dev The LP-visible value of `who`: wallet USDC + its shares at convertToAssets + what it
    ///      has pending or claimable in the pool (deposits at face, shares at convertToAssets).
    function lpValue(address who) internal view returns (int256) {
        (uint256 pa, uint256 ps, uint256 ca, uint256 cs) = (
            pool.pendingDepositRequest(0, who),
            pool.pendingRedeemRequest(0, who),
            pool.maxWithdraw(who),
            pool.maxMint(who)
        );
        return toInt(usdc.balanceOf(who)) + toInt(pool.convertToAssets(pool.balanceOf(who) + ps + cs)) + toInt(pa)
            + toInt(ca);
    }

    /// @dev The known update: ETH moves to `priceWad`, and the other feeds post their rounds.
    function oracleUpdate(uint256 priceWad) internal {
        vm.warp(block.timestamp + 1);
        setPrice(ethFeed, priceWad);
        btcFeed.updateAnswer(btcFeed.latestAnswer());
        ivFeed.updateAnswer(ivFeed.latestAnswer());
    }

    /// Finding 4 (was: shares priced at the latest answer, no delay): a deposit just before an
    /// oracle update that favours the pool (its short gains 20,000), redeemed just after.
    /// Before (synchronous pool, same scenario): attacker +19,801.98 USDC risk-free on a 1e9
    /// deposit. Now the request is priced after the update: the attacker pays the fees.
    function test_lp_deposit_before_a_known_update_is_priced_after_it() public {
        depositFor(alice, 0, CASH_ID, 2_000_000e6);
        tradeAs(alice, 0, ETH_PERP, 100e18); // the pool is short 100 ETH
        fundWallet(attacker, 1_000_000_000e6);
        int256 v0 = lpValue(attacker);
        uint256 lpBefore = pool.convertToAssets(pool.balanceOf(lp));

        vm.prank(attacker);
        pool.requestDeposit(1_000_000_000e6, attacker, attacker);
        // Not priceable at the price the attacker saw.
        vm.expectRevert(
            abi.encodeWithSignature(
                "NotYetPriceable(address,uint256,uint256)", attacker, block.timestamp, block.timestamp
            )
        );
        pool.fulfilDeposit(attacker);
        oracleUpdate(1_800e18); // the known update: the pool gains 20,000
        vm.prank(keeper);
        pool.fulfilDeposit(attacker); // anyone fulfils: the first round after the request
        vm.prank(attacker);
        pool.deposit(1_000_000_000e6, attacker);
        redeemAll(attacker);

        int256 profit = lpValue(attacker) - v0;
        emit LogNamedInt256("deposit-before-update attacker profit [USDC units]", profit);
        assertLte(profit, 0, "the attacker pays the entry and exit fees");
        assertGte(pool.convertToAssets(pool.balanceOf(lp)), lpBefore + 19_000e6, "the honest LP keeps the gain");
    }

    /// Finding 4, the mirror: an LP (carol, 10,000,000 beside the honest LP's 10,000,000)
    /// redeems just before an update that hurts the pool (its short loses 20,000) and comes
    /// back just after. Before (synchronous pool): +9,999.99 USDC against holding through the
    /// update. Now the redemption is priced after the update.
    function test_lp_redeem_before_a_known_bad_update_is_priced_after_it() public {
        fundWallet(carol, 10_000_000e6);
        lpDeposit(carol, 10_000_000e6);
        depositFor(alice, 0, CASH_ID, 2_000_000e6);
        tradeAs(alice, 0, ETH_PERP, 100e18);
        uint256 shares = pool.balanceOf(carol);
        uint256 snap = vm.snapshot();
        oracleUpdate(2_200e18);
        int256 held = lpValue(carol); // holding through the update
        vm.revertTo(snap);

        vm.prank(carol);
        pool.requestRedeem(shares, carol, carol);
        oracleUpdate(2_200e18); // the known update: the pool loses 20,000
        vm.prank(keeper);
        pool.fulfilRedeem(carol);
        uint256 claim = pool.maxWithdraw(carol);
        vm.prank(carol);
        pool.withdraw(claim, carol, carol);
        lpDeposit(carol, usdc.balanceOf(carol)); // back in

        int256 gain = lpValue(carol) - held;
        emit LogNamedInt256("redeem-before-update LP gain vs holding [USDC units]", gain);
        assertLte(gain, 0, "leaving before a bad update avoids nothing and pays the fees");
    }

    /// The free option: the requester cannot wait for a better price. Anyone fulfils at the first
    /// round after the request; a top-up once a round has come is refused (it would restart
    /// the clock); claims are the controller's or its operator's only.
    function test_requester_cannot_wait_for_a_better_price_or_restart_the_clock() public {
        depositFor(alice, 0, CASH_ID, 2_000_000e6);
        tradeAs(alice, 0, ETH_PERP, 100e18);
        fundWallet(attacker, 2_000_000e6);
        vm.prank(attacker);
        pool.requestDeposit(1_000_000e6, attacker, attacker);
        uint64 t0 = uint64(block.timestamp);
        vm.warp(block.timestamp + 5);
        vm.prank(attacker); // no round yet: a top-up only restarts a clock nothing has moved
        pool.requestDeposit(100_000e6, attacker, attacker);
        assertEq(pool.pendingDepositRequest(0, attacker), 1_100_000e6);
        oracleUpdate(2_000e18);
        (bool canDeposit,) = pool.canFulfil(attacker);
        assertTrue(canDeposit);
        vm.prank(attacker); // the round came: no restart
        (bool ok, bytes memory ret) =
            address(pool).call(abi.encodeWithSignature("requestDeposit(uint256,address,address)", 1, attacker, attacker));
        assertFalse(ok, "a top-up after a round restarts nothing");
        assertEq(bytes4(ret), bytes4(keccak256("RequestPending(address,uint256)")));
        assertGt(t0, 0);
        uint256 ta = pool.totalAssets();
        uint256 ts = pool.totalSupply();
        vm.prank(keeper);
        uint256 shares = pool.fulfilDeposit(attacker);
        uint256 fee = 550e6; // 5 bp of 1,100,000
        assertEq(shares, (1_100_000e6 - fee) * (ts + 1e6) / (ta + 1), "priced at the first round's share price");
        assertEq(pool.claimableDepositRequest(0, attacker), 1_100_000e6);
        assertEq(pool.pendingDepositRequest(0, attacker), 0);
        // A better price later changes nothing: the shares are fixed.
        oracleUpdate(2_500e18);
        vm.expectRevert(abi.encodeWithSignature("NotOperator(address,address)", attacker, keeper));
        vm.prank(keeper);
        pool.deposit(1_100_000e6, keeper, attacker);
        vm.prank(attacker);
        assertTrue(pool.setOperator(keeper, true));
        vm.prank(keeper);
        assertEq(pool.deposit(1_100_000e6, attacker, attacker), shares);
        assertEq(pool.balanceOf(attacker), shares);
    }

    /// A request waits for a round of every feed the pool's value uses: with option open
    /// interest, the IV feed's too.
    function test_request_waits_for_a_round_of_every_feed_the_pool_uses() public {
        depositFor(alice, 0, CASH_ID, 200_000e6);
        optTrade(alice, 0, atmCall, 20e18); // the pool's value uses the ETH and IV feeds
        fundWallet(attacker, 1_000e6);
        vm.prank(attacker);
        pool.requestDeposit(1_000e6, attacker, attacker);
        vm.warp(block.timestamp + 1);
        ethFeed.updateAnswer(ethFeed.latestAnswer()); // spot round only
        (bool ok,) = pool.canFulfil(attacker);
        assertFalse(ok, "the IV feed has no round since");
        vm.expectRevert();
        pool.fulfilDeposit(attacker);
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        (ok,) = pool.canFulfil(attacker);
        assertTrue(ok);
        pool.fulfilDeposit(attacker);
    }
}
