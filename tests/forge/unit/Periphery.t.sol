// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {IOracleRouter} from "../../../contracts/interfaces/IOracleRouter.sol";
import {FeeOnTransferToken, HighDecimalsToken} from "../../../contracts/mocks/WeirdTokens.sol";

/// @notice Oracle checks, the LP pool's limits, admin bounds and pause switches, weird tokens.
contract PeripheryTest is Base {
    // ------------------------------------------------------------------ oracle router

    function test_oracle_rejects_stale_price() public {
        vm.warp(block.timestamp + 1 hours + 1);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.StalePrice.selector, 1, START, 1 hours));
        oracle.price(ETH_FEED);
        (bool ok, uint256 p) = oracle.tryPrice(ETH_FEED);
        assertFalse(ok);
        assertEq(p, 2_000e18, "the latest answer, graded not OK");
    }

    function test_oracle_rejects_nonpositive_and_out_of_bounds_answers() public {
        ethFeed.updateAnswer(0);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.NonPositivePrice.selector, 1, int256(0)));
        oracle.price(ETH_FEED);
        ethFeed.updateAnswer(99e8);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.PriceOutOfBounds.selector, 1, 99e18, 100e18, 100_000e18));
        oracle.price(ETH_FEED);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.UnknownFeed.selector, 7));
        oracle.price(7);
    }

    function test_oracle_normalizes_decimals_and_guards_config() public {
        (bool ok, uint256 p) = oracle.tryPrice(BTC_FEED);
        assertTrue(ok);
        assertEq(p, 60_000e18);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.NotAdmin.selector, address(this)));
        oracle.setFeed(3, address(ethFeed), 1 hours, 1, 2);
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.InvalidFeedConfig.selector, 3));
        oracle.setFeed(3, address(ethFeed), 0, 1, 2);
        vm.expectRevert(abi.encodeWithSelector(IOracleRouter.InvalidFeedConfig.selector, 3));
        oracle.setFeed(3, address(ethFeed), 1 hours, 2, 2);
        oracle.setAdmin(alice);
        vm.stopPrank();
        assertEq(oracle.admin(), alice);
    }

    /// A stale feed stops every margin computation that needs it, liquidation included.
    function test_stale_feed_blocks_trading_and_liquidation() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 45e18);
        vm.warp(block.timestamp + 2 hours);
        vm.expectRevert();
        core.liquidate(alice, 0);
        vm.prank(alice);
        vm.expectRevert();
        core.trade(0, ETH_PERP, 1e18, 0);
    }

    // ------------------------------------------------------------------ LP pool

    function testFuzz_pool_deposit_redeem_never_profits(uint256 amount) public {
        amount = bound(amount, 1, 1e15);
        usdc.mint(bob, amount);
        vm.prank(bob);
        usdc.approve(address(pool), amount);
        uint256 lpBefore = pool.convertToAssets(pool.balanceOf(lp));
        uint256 shares = lpDeposit(bob, amount);
        // (A deposit of a few units buys no share after the entry fee: nothing to redeem.)
        uint256 out = shares == 0 ? 0 : lpRedeem(bob, shares);
        // bob gets back his share of his own fees (he may own most of the pool); never more.
        assertLte(out, amount, "the entry and exit fees and rounding favour the pool");
        assertGte(pool.convertToAssets(pool.balanceOf(lp)) + 1, lpBefore, "the other LP loses nothing");
        assertEq(usdc.balanceOf(bob), out);
    }

    function test_pool_withdrawals_keep_the_pool_margined() public {
        // Traders take 1,400 ETH of long skew: the pool must keep IM against it.
        depositFor(alice, 0, CASH_ID, 2_000_000e6);
        tradeAs(alice, 0, ETH_PERP, 1_400e18);
        (int256 equity, uint256 im) = core.poolMargin();
        uint256 free = core.poolFreeCash();
        assertEq(free, uint256(equity - toInt(im)) / 1e12);
        // A redemption worth more than the free cash waits (the core refuses its fulfilment);
        // one within it is paid. (The second request has another controller: one per side.)
        uint256 tooMuch = pool.convertToShares(free * 10_010 / 9_995);
        vm.startPrank(lp);
        pool.requestRedeem(tooMuch, lp, lp);
        pool.requestRedeem(pool.balanceOf(lp) * 99 / 100, bob, lp); // the rest: within free cash
        vm.stopPrank();
        newRound();
        vm.expectRevert(); // PoolUndercollateralized
        pool.fulfilRedeem(lp);
        uint256 paid = pool.fulfilRedeem(bob);
        assertLte(paid, free);
        assertEq(pool.pendingRedeemRequest(0, lp), tooMuch, "the larger request waits, nothing lost");
        (equity, im) = core.poolMargin();
        assertGte(equity, toInt(im));
        // The core refuses pool cash calls from anyone but the pool.
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotPool.selector, address(this)));
        core.poolWithdraw(1, address(this));
    }

    // ------------------------------------------------------------------ admin and pauses

    function test_parameters_stay_within_hard_bounds() public {
        IPlimsoll.MarketConfig memory c = ethMarket();
        c.mmFactorWad = 0.96e18;
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("mmFactor"), 0.96e18));
        core.configureMarket(ETH_PERP, c);
        IPlimsoll.LiquidationConfig memory lc = core.liquidationConfig();
        lc.penaltyWad = 0.11e18;
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("penalty"), 0.11e18));
        core.setLiquidationConfig(lc);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.UnsupportedToken.selector, address(weth)));
        core.listAsset(address(weth), 0.8e18, ETH_FEED, 1);
        HighDecimalsToken high = new HighDecimalsToken();
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.UnsupportedToken.selector, address(high)));
        core.listAsset(address(high), 0.8e18, ETH_FEED, 1);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, admin));
        core.setPool(address(1)); // once only
        vm.stopPrank();
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, address(this)));
        core.setLiquidationConfig(lc);
    }

    function test_pause_stops_its_action_only() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 45e18);
        vm.prank(guardian);
        core.setPaused(1 | 2 | 4); // deposit, withdraw, trade
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ActionPaused.selector, uint8(4)));
        core.trade(0, ETH_PERP, -1e18, 0);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ActionPaused.selector, uint8(2)));
        core.withdraw(0, CASH_ID, 1e6);
        vm.stopPrank();
        // Liquidation has its own switch and still runs.
        setPrice(ethFeed, 1_870e18);
        core.liquidate(alice, 0);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, alice));
        vm.prank(alice);
        core.setPaused(0);
    }

    function test_fee_on_transfer_collateral_credits_what_arrives() public {
        FeeOnTransferToken fot = new FeeOnTransferToken(100); // 1%
        vm.prank(admin);
        uint256 id = core.listAsset(address(fot), 0.5e18, ETH_FEED, 1_000e18);
        fot.mint(alice, 100e18);
        vm.startPrank(alice);
        fot.approve(address(core), type(uint256).max);
        core.deposit(0, id, 100e18);
        vm.stopPrank();
        assertEq(core.collateralBalance(alice, 0, id), 99e18);
        assertEq(core.assetConfig(id).totalDeposited, 99e18);
        assertEq(fot.balanceOf(address(core)), 99e18);
    }
}
