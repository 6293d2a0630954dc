// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {IOracleRouter} from "../../../contracts/interfaces/IOracleRouter.sol";
import {MockFeed} from "../../../contracts/mocks/MockFeed.sol";

/// @notice Graded oracle circuit breakers: stale and suspect prices make a market reduce-only and
///         hold liquidations; confirmed moves are acted on; the L2 sequencer feed and its grace.
contract BreakersTest is Base {
    uint8 internal constant OK = 0;
    uint8 internal constant SUSPECT = 1;
    uint8 internal constant STALE = 2;
    uint8 internal constant SEQUENCER = 3;

    event FeedStatusChanged(uint256 indexed feedId, uint8 previous, uint8 status, uint256 priceWad);

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        oracle.setBreaker(ETH_FEED, 0.1e18, 3, 10 minutes); // >10% per round: suspect
    }

    /// Alice: 10,000 USDC, 45 ETH long at 2,000: liquidatable below ~1,890.
    function openLeveragedLong() internal {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 45e18);
    }

    function status(uint256 feedId) internal view returns (uint8 s) {
        (, s) = oracle.priceInfo(feedId);
    }

    function nextBlock() internal {
        vm.warp(block.timestamp + 1);
        vm.roll(block.number + 1);
    }

    // ---------------------------------------------------------------- grades

    function test_small_moves_stay_ok() public {
        for (uint256 i; i < 10; ++i) {
            nextBlock();
            setPrice(ethFeed, 2_000e18 - i * 50e18); // -2.5% steps
            assertEq(status(ETH_FEED), OK);
        }
    }

    function test_jump_is_suspect_until_confirmed_by_rounds() public {
        nextBlock();
        setPrice(ethFeed, 1_200e18); // -40%
        assertEq(status(ETH_FEED), SUSPECT);
        nextBlock();
        setPrice(ethFeed, 1_200e18);
        assertEq(status(ETH_FEED), SUSPECT);
        nextBlock();
        setPrice(ethFeed, 1_195e18);
        assertEq(status(ETH_FEED), SUSPECT, "two agreeing rounds of three");
        nextBlock();
        setPrice(ethFeed, 1_190e18);
        assertEq(status(ETH_FEED), OK, "three agreeing rounds confirm the move");
    }

    function test_jump_is_accepted_after_hold_time() public {
        nextBlock();
        setPrice(ethFeed, 1_200e18);
        vm.warp(block.timestamp + 10 minutes - 1);
        assertEq(status(ETH_FEED), SUSPECT);
        vm.warp(block.timestamp + 1);
        assertEq(status(ETH_FEED), OK);
    }

    function test_wick_and_recovery_never_ok_at_the_wick() public {
        nextBlock();
        setPrice(ethFeed, 1_200e18);
        nextBlock();
        setPrice(ethFeed, 1_200e18);
        nextBlock();
        setPrice(ethFeed, 2_000e18); // back
        assertEq(status(ETH_FEED), SUSPECT, "the jump back is also held");
        for (uint256 i; i < 3; ++i) {
            nextBlock();
            setPrice(ethFeed, 2_000e18);
        }
        assertEq(status(ETH_FEED), OK);
        (uint256 p,) = oracle.priceInfo(ETH_FEED);
        assertEq(p, 2_000e18);
    }

    function test_short_closes_at_the_pre_jump_price_after_a_down_wick() public {
        depositFor(bob, 0, CASH_ID, 10_000e6);
        tradeAs(bob, 0, ETH_PERP, -10e18);
        nextBlock();
        setPrice(ethFeed, 1_600e18); // -20% wick: a short would profit 400 per ETH
        int256 cash0 = cashOf(bob, 0);
        tradeAs(bob, 0, ETH_PERP, 10e18); // closes at hi = 2,000
        int256 moved = cashOf(bob, 0) - cash0;
        assertTrue(moved < -9.99e18 && moved > -10.1e18, "no wick profit, only the fee");
        (uint256 lo, uint256 hi,) = oracle.fillBounds(BTC_FEED);
        assertEq(lo, hi, "an OK feed has one price");
    }

    function test_stale_price_is_graded_not_reverted() public {
        vm.warp(block.timestamp + 1 hours + 1);
        (uint256 p, uint8 s) = oracle.priceInfo(ETH_FEED);
        assertEq(s, STALE);
        assertEq(p, 2_000e18);
        (bool ok, uint256 p2) = oracle.tryPrice(ETH_FEED);
        assertFalse(ok);
        assertEq(p2, 2_000e18, "tryPrice reports the latest answer even when not OK");
        vm.expectRevert();
        oracle.price(ETH_FEED);
    }

    function test_breaker_config_bounds_and_auth() public {
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.NotAdmin.selector, address(this)));
        oracle.setBreaker(ETH_FEED, 0.1e18, 3, 60);
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.InvalidFeedConfig.selector, uint256(ETH_FEED)));
        oracle.setBreaker(ETH_FEED, 0.1e18, 0, 60);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.InvalidFeedConfig.selector, uint256(ETH_FEED)));
        oracle.setBreaker(ETH_FEED, 0.1e18, 9, 60);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.UnknownFeed.selector, uint256(99)));
        oracle.setBreaker(99, 0.1e18, 3, 60);
        oracle.setBreaker(ETH_FEED, 0, 0, 0); // off
        vm.stopPrank();
        nextBlock();
        setPrice(ethFeed, 1_000e18);
        assertEq(status(ETH_FEED), OK, "breaker off: jumps taken at face value");
    }

    function test_poke_announces_changes_once() public {
        uint256[] memory ids = new uint256[](2);
        ids[0] = ETH_FEED;
        ids[1] = BTC_FEED;
        oracle.poke(ids); // both OK: recorded as 0 already, no event needed
        nextBlock();
        setPrice(ethFeed, 1_200e18);
        vm.expectEmit(true, false, false, true, address(oracle));
        emit FeedStatusChanged(ETH_FEED, OK, SUSPECT, 1_200e18);
        oracle.poke(ids);
        assertEq(oracle.lastStatus(ETH_FEED), SUSPECT);
        vm.recordLogs();
        oracle.poke(ids);
        assertEq(vm.getRecordedLogs().length, 0, "no event without a change");
    }

    // ---------------------------------------------------------------- sequencer

    function test_sequencer_down_and_grace() public {
        MockFeed seq = new MockFeed(0, 0); // 0 = up since now
        vm.prank(admin);
        oracle.setSequencer(address(seq), 1 hours);
        assertEq(status(ETH_FEED), SEQUENCER, "just came up: in the grace period");
        vm.warp(block.timestamp + 1 hours);
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        btcFeed.updateAnswer(btcFeed.latestAnswer());
        assertEq(status(ETH_FEED), OK);
        seq.updateAnswer(1); // down
        assertEq(status(BTC_FEED), SEQUENCER);
        vm.warp(block.timestamp + 10);
        seq.updateAnswer(0); // back up: grace starts
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        assertEq(status(ETH_FEED), SEQUENCER);
        vm.warp(block.timestamp + 1 hours);
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        assertEq(status(ETH_FEED), OK);
    }

    // ---------------------------------------------------------------- the core obeys

    function test_suspect_market_is_reduce_only() public {
        openLeveragedLong();
        nextBlock();
        setPrice(ethFeed, 2_400e18); // +20%: suspect
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.MarketReduceOnly.selector, ETH_PERP, SUSPECT));
        core.trade(0, ETH_PERP, 1e18, 0);
        // Reducing is allowed, at the pre-jump price when that is worse for the trader: the long
        // sells 5 ETH at 2,000, not at the +20% wick (realized PnL ~0, minus the 5 USD fee).
        (uint256 lo, uint256 hi, uint8 st) = oracle.fillBounds(ETH_FEED);
        assertEq(lo, 2_000e18);
        assertEq(hi, 2_400e18);
        assertEq(st, SUSPECT);
        int256 cash0 = cashOf(alice, 0);
        tradeAs(alice, 0, ETH_PERP, -5e18);
        assertEq(sizeOf(alice, 0, ETH_PERP), 40e18);
        int256 moved = cashOf(alice, 0) - cash0;
        assertTrue(moved < -4.99e18 && moved > -5.01e18, "filled at the pre-jump price");
        // A risk-increasing action elsewhere that needs the suspect price waits too.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(ETH_FEED), SUSPECT));
        core.withdraw(0, CASH_ID, 1e6);
    }

    function test_liquidation_waits_for_a_suspect_price_and_runs_once_confirmed() public {
        openLeveragedLong();
        nextBlock();
        setPrice(ethFeed, 1_600e18); // -20%: suspect, the account would be deep under MM
        (int256 e,, uint256 mm) = core.accountMargin(alice, 0);
        assertLt(e, toInt(mm));
        assertFalse(core.isLiquidatable(alice, 0), "not liquidatable on a suspect price");
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(ETH_FEED), SUSPECT));
        core.liquidate(alice, 0);
        for (uint256 i; i < 3; ++i) {
            nextBlock();
            setPrice(ethFeed, 1_600e18);
        }
        assertTrue(core.isLiquidatable(alice, 0));
        vm.prank(keeper);
        core.liquidate(alice, 0);
    }

    function test_wick_does_not_liquidate_a_healthy_account() public {
        openLeveragedLong();
        nextBlock();
        setPrice(ethFeed, 1_200e18); // -40% wick
        nextBlock();
        setPrice(ethFeed, 1_200e18);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(ETH_FEED), SUSPECT));
        core.liquidate(alice, 0);
        nextBlock();
        setPrice(ethFeed, 2_000e18); // recovered
        for (uint256 i; i < 3; ++i) {
            nextBlock();
            setPrice(ethFeed, 2_000e18);
        }
        assertFalse(core.isLiquidatable(alice, 0));
        assertEq(sizeOf(alice, 0, ETH_PERP), 45e18);
    }

    function test_stale_market_is_reduce_only_and_holds_liquidations() public {
        openLeveragedLong();
        vm.warp(block.timestamp + 1 hours + 1);
        btcFeed.updateAnswer(btcFeed.latestAnswer());
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.MarketReduceOnly.selector, ETH_PERP, STALE));
        core.trade(0, ETH_PERP, 1e18, 0);
        tradeAs(alice, 0, ETH_PERP, -1e18);
        setPrice(ethFeed, 1_850e18); // fresh: -7.5%, within the jump bound
        assertTrue(core.isLiquidatable(alice, 0));
        vm.warp(block.timestamp + 1 hours + 1);
        btcFeed.updateAnswer(btcFeed.latestAnswer());
        assertFalse(core.isLiquidatable(alice, 0), "stale again: held");
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(ETH_FEED), STALE));
        core.liquidate(alice, 0);
        setPrice(ethFeed, 1_850e18);
        vm.prank(keeper);
        core.liquidate(alice, 0);
    }

    function test_pause_of_trading_does_not_stop_liquidation() public {
        openLeveragedLong();
        vm.prank(guardian);
        core.setPaused(1 | 2 | 4 | 8 | 32); // everything but liquidation
        setPrice(ethFeed, 1_850e18);
        vm.prank(keeper);
        core.liquidate(alice, 0);
    }
}
