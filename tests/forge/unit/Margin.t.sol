// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";

/// @notice Custody round trips, the initial-margin gate and funding/PnL conservation.
contract MarginTest is Base {
    // ------------------------------------------------------------------ custody

    function testFuzz_deposit_withdraw_cash_round_trip(uint256 amount) public {
        amount = bound(amount, 1, 1e15); // up to 1 billion USDC
        int256 bookedBefore = core.cashBooked();
        depositFor(alice, 0, CASH_ID, amount);
        assertEq(cashOf(alice, 0), toInt(amount * 1e12), "cash booked in wad");
        assertEq(core.cashBooked(), bookedBefore + toInt(amount * 1e12));

        vm.prank(alice);
        core.withdraw(0, CASH_ID, amount);
        assertEq(usdc.balanceOf(alice), amount, "all of it comes back");
        assertEq(cashOf(alice, 0), 0);
        assertEq(core.cashBooked(), bookedBefore);
    }

    function testFuzz_deposit_withdraw_collateral_round_trip(uint256 amount, bool btc) public {
        uint256 id = btc ? WBTC_ID : WETH_ID;
        amount = bound(amount, 1, btc ? 5_000e8 : 100_000e18);
        depositFor(alice, 3, id, amount);
        assertEq(core.collateralBalance(alice, 3, id), amount);
        assertEq(core.assetConfig(id).totalDeposited, amount);
        assertEq(core.getAccount(alice, 3).assetMask, uint16(1 << id));

        vm.prank(alice);
        core.withdraw(3, id, amount);
        assertEq((btc ? wbtc : weth).balanceOf(alice), amount);
        assertEq(core.assetConfig(id).totalDeposited, 0);
        assertEq(core.getAccount(alice, 3).assetMask, 0, "mask cleared with the balance");
    }

    function test_withdraw_rejects_more_than_balance() public {
        depositFor(alice, 0, CASH_ID, 100e6);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.InsufficientBalance.selector, 0, 100e6, 100e6 + 1));
        core.withdraw(0, CASH_ID, 100e6 + 1);
    }

    function test_deposit_rejects_above_cap() public {
        depositFor(alice, 0, WBTC_ID, 4_000e8);
        wbtc.mint(alice, 2_000e8);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.CapExceeded.selector, WBTC_ID, 6_000e8, 5_000e8));
        core.deposit(0, WBTC_ID, 2_000e8);
    }

    /// Rounding favours the protocol: whatever happens in between (fees, a round trip through a
    /// position), a depositor never takes out more than it put in.
    function testFuzz_round_trip_through_position_never_pays_out_more(uint256 amount, uint256 sizeSeed) public {
        amount = bound(amount, 1_000e6, 1_000_000e6);
        depositFor(alice, 0, CASH_ID, amount);
        // Between 1e-6 ETH and 2x leverage at 2,000 (the IM rate grows with size).
        uint256 size = bound(sizeSeed, 1e12, amount * 1e12 * 2 / 2_000);
        tradeAs(alice, 0, ETH_PERP, int256(size));
        tradeAs(alice, 0, ETH_PERP, -int256(size));

        int256 cashWad = cashOf(alice, 0);
        assertLt(cashWad, toInt(amount * 1e12), "fees were paid");
        uint256 maxOut = uint256(cashWad) / 1e12; // what withdraw can pay: floor in token units
        vm.startPrank(alice);
        vm.expectRevert();
        core.withdraw(0, CASH_ID, amount);
        if (maxOut > 0) core.withdraw(0, CASH_ID, maxOut);
        vm.stopPrank();
        assertLte(usdc.balanceOf(alice), amount);
        assertGte(cashOf(alice, 0), 0, "no debt left behind");
    }

    function test_transfer_between_subaccounts_keeps_im_on_source() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 40e18); // IM = 80,000 x 0.104 = 8,320
        vm.startPrank(alice);
        core.transfer(0, 1, CASH_ID, 1_000e6);
        vm.expectRevert(); // InsufficientMargin: 10,000 - 40 fee - 1,000 - 1,000 < 8,320
        core.transfer(0, 1, CASH_ID, 1_000e6);
        vm.stopPrank();
        assertEq(cashOf(alice, 1), 1_000e18);
    }

    // ------------------------------------------------------------------ the IM gate

    function test_account_margin_matches_the_documented_formula() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        depositFor(alice, 0, WETH_ID, 1e18); // 2,000 x 0.8 = 1,600 of equity
        tradeAs(alice, 0, ETH_PERP, 10e18);
        (int256 equity, uint256 im, uint256 mm) = core.accountMargin(alice, 0);
        // fee = 10 x 2000 x 0.0005 = 10; imRate = 0.1 + 10 x 0.0001 = 0.101
        assertEq(equity, 10_000e18 - 10e18 + 1_600e18);
        assertEq(im, 20_000e18 * 101 / 1000);
        assertEq(mm, 20_000e18 * 505 / 10_000);
        assertFalse(core.isLiquidatable(alice, 0));
    }

    /// The trade gate agrees with an independent computation of equity and IM after the fill:
    /// a new position opens iff cash - fee >= IM (pool and OI limits are far away here).
    function testFuzz_open_succeeds_iff_equity_covers_im(uint256 deposit_, uint256 sizeSeed, bool btc, bool short_)
        public
    {
        deposit_ = bound(deposit_, 100e6, 500_000e6);
        depositFor(alice, 0, CASH_ID, deposit_);
        IPlimsoll.MarketConfig memory c = btc ? btcMarket() : ethMarket();
        uint256 price = btc ? 60_000e18 : 2_000e18;
        // Up to ~15x the deposit in notional: both sides of the boundary.
        uint256 absSize = bound(sizeSeed, 1e9, deposit_ * 1e12 * 15 * WAD / price);
        uint256 notional = mulUp(absSize, price);
        uint256 fee = mulUp(notional, c.takerFeeWad);
        uint256 rate = c.imBaseWad + mulUp(absSize, c.sizeSlopeWad);
        if (rate > WAD) rate = WAD;
        uint256 im = mulUp(notional, rate);
        bool expectOk = toInt(deposit_ * 1e12) - toInt(fee) >= toInt(im);

        int256 delta = short_ ? -int256(absSize) : int256(absSize);
        vm.prank(alice);
        (bool ok,) = address(core).call(abi.encodeCall(core.trade, (0, btc ? BTC_PERP : ETH_PERP, delta, 0)));
        assertEq(ok, expectOk, "gate disagrees with the formula");
        if (ok) {
            (int256 e, uint256 imNow,) = core.accountMargin(alice, 0);
            assertGte(e, toInt(imNow), "a trade that passes leaves equity >= IM");
        }
    }

    function test_withdraw_keeps_initial_margin() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 10e18);
        (int256 equity, uint256 im,) = core.accountMargin(alice, 0);
        uint256 free = uint256(equity - toInt(im)) / 1e12; // 9,990 - 2,020 = 7,970 USDC
        assertEq(free, 7_970e6);
        vm.startPrank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IPlimsoll.InsufficientMargin.selector, alice, 0, toInt(im) - 1e12, im)
        );
        core.withdraw(0, CASH_ID, free + 1);
        core.withdraw(0, CASH_ID, free);
        vm.stopPrank();
        (equity, im,) = core.accountMargin(alice, 0);
        assertEq(equity, toInt(im));
    }

    function test_reducing_trade_needs_only_maintenance_margin() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 45e18); // IM 9,405; equity 9,955
        setPrice(ethFeed, 1_900e18); // equity 5,455 < IM but > MM (4,467)
        (int256 equity, uint256 im, uint256 mm) = core.accountMargin(alice, 0);
        assertLt(equity, toInt(im));
        assertGte(equity, toInt(mm));
        // Increasing is refused, reducing is allowed.
        vm.prank(alice);
        vm.expectRevert();
        core.trade(0, ETH_PERP, 1e18, 0);
        tradeAs(alice, 0, ETH_PERP, -5e18);
        assertEq(sizeOf(alice, 0, ETH_PERP), 40e18);
    }

    function test_reducing_trade_rejected_if_it_leaves_account_liquidatable() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 45e18);
        setPrice(ethFeed, 1_800e18); // equity 955 < MM
        assertTrue(core.isLiquidatable(alice, 0));
        vm.prank(alice);
        vm.expectRevert(); // BelowMaintenance
        core.trade(0, ETH_PERP, -1e18, 0);
    }

    function test_trade_rejects_slippage_isolation_mismatch_and_oi() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.SlippageExceeded.selector, 2_000e18, 1_999e18));
        core.trade(0, ETH_PERP, 1e18, 1_999e18);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.SlippageExceeded.selector, 2_000e18, 2_001e18));
        core.trade(0, ETH_PERP, -1e18, 2_001e18);
        core.configureSubaccount(5, uint8(ETH_PERP + 1));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.IsolatedMarketMismatch.selector, 5, ETH_PERP, BTC_PERP));
        core.trade(5, BTC_PERP, 1e18, 0);
        vm.stopPrank();

        depositFor(bob, 0, CASH_ID, 10_000_000e6);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.OpenInterestExceeded.selector, BTC_PERP, 1_501e18, 1_500e18));
        core.trade(0, BTC_PERP, 1_501e18, 0);
    }

    // ------------------------------------------------------------------ conservation

    /// Unrealized PnL (price and funding) of alice, bob and the pool together [wad]: zero-sum
    /// up to per-position rounding.
    function unrealizedTotal() internal view returns (int256) {
        (int256 pe,) = core.poolMargin();
        return (equityOf(alice, 0) - cashOf(alice, 0)) + (equityOf(bob, 0) - cashOf(bob, 0)) + (pe - poolCash());
    }

    /// Funding moves value between positions and the pool and creates none: after any time,
    /// the positions' and the pool's unrealized PnL sum to zero up to a few wei of rounding,
    /// all of it against the traders (positions opened at index 0 here).
    function testFuzz_funding_is_zero_sum(uint256 longSeed, uint256 shortSeed, uint256 dtSeed) public {
        depositFor(alice, 0, CASH_ID, 1_000_000e6);
        depositFor(bob, 0, CASH_ID, 1_000_000e6);
        uint256 longSize = bound(longSeed, 1e15, 1_500e18);
        uint256 shortSize = bound(shortSeed, 1e15, 1_500e18);
        tradeAs(alice, 0, ETH_PERP, int256(longSize));
        tradeAs(bob, 0, ETH_PERP, -int256(shortSize));

        int256 a0 = equityOf(alice, 0);
        int256 b0 = equityOf(bob, 0);
        skip(bound(dtSeed, 1, 30 days));
        int256 total = unrealizedTotal();
        assertLte(total, 0, "funding creates no value");
        assertGte(total, -6, "and destroys at most rounding dust");
        // The heavier side pays.
        if (longSize >= shortSize + 1e15) assertLt(equityOf(alice, 0), a0);
        if (shortSize >= longSize + 1e15) assertLt(equityOf(bob, 0), b0);

        // Settling both positions is a pure transfer against the pool.
        int256 bookedBefore = core.cashBooked();
        int256 cashSum = cashOf(alice, 0) + cashOf(bob, 0) + poolCash();
        tradeAs(alice, 0, ETH_PERP, -int256(longSize));
        tradeAs(bob, 0, ETH_PERP, int256(shortSize));
        assertEq(cashOf(alice, 0) + cashOf(bob, 0) + poolCash(), cashSum, "settlement is a transfer");
        assertEq(core.cashBooked(), bookedBefore);
        IPlimsoll.MarketState memory s = core.marketState(ETH_PERP);
        assertEq(uint256(s.longOI) + uint256(s.shortOI), 0);
        assertEq(s.sumOpenNotional, 0);
        assertEq(s.sumSizeFunding, 0);
    }

    function testFuzz_price_pnl_is_zero_sum_with_the_pool(uint256 sizeSeed, uint256 priceSeed) public {
        depositFor(alice, 0, CASH_ID, 1_000_000e6);
        depositFor(bob, 0, CASH_ID, 1_000_000e6);
        tradeAs(alice, 0, BTC_PERP, int256(bound(sizeSeed, 1e10, 40e18)));
        tradeAs(bob, 0, BTC_PERP, -int256(bound(sizeSeed >> 128, 1e10, 40e18)));
        setPrice(btcFeed, bound(priceSeed, 40_000e18, 80_000e18));
        int256 total = unrealizedTotal();
        assertLte(total, 0, "price PnL rounds against traders and the pool");
        assertGte(total, -3);
    }

    function test_funding_rate_follows_skew() public {
        depositFor(alice, 0, CASH_ID, 1_000_000e6);
        tradeAs(alice, 0, ETH_PERP, 500e18); // half the skew scale: 0.5% per day of price
        int256 i0 = core.fundingIndex(ETH_PERP);
        skip(1 days);
        int256 i1 = core.fundingIndex(ETH_PERP);
        assertEq(i1 - i0, 10e18, "0.005 x 2000 per day");
        // The long owes size x index change, rounded up: 500 x 10 = 5,000.
        assertEq(equityOf(alice, 0), 1_000_000e18 - 500e18 - 5_000e18);
    }
}
