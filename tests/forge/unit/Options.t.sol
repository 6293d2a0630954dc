// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {IOptions} from "../../../contracts/interfaces/IOptions.sol";
import {MockFeed} from "../../../contracts/mocks/MockFeed.sol";
import {IOptionsMarketT} from "../utils/ICore.sol";

/// @notice The options market wired into the core: an IV feed, ETH options configured with
///         standard and portfolio margin, and four series (ATM call and put, an OTM call, a
///         90-day call). OptionsMarket is deployed from its artifact, like the core.
abstract contract OptionsBase is Base {
    uint16 internal constant IV_FEED = 11;
    uint256 internal constant IV = 0.8e18; // 80%
    uint256 internal constant SPREAD = 0.01e18;
    uint256 internal constant MIN_FEE = 0.0005e18;
    uint256 internal constant SHORT_A = 0.25e18;
    uint256 internal constant SHORT_B = 0.125e18;
    uint256 internal constant OPT_MM = 0.7e18;
    uint256 internal constant LONG_HAIRCUT = 0.8e18;
    uint256 internal constant FULL = type(uint256).max;
    uint256 internal constant N_SCENARIOS = 27; // 9 spot points x 3 vol states
    uint40 internal constant EXPIRY = uint40(START + 30 days);

    // Black-Scholes (r = 0) at S = K = 2,000, 80% vol, 30 days, and for K = 2,400 (mpmath at 40
    // digits): independent checks of the mark.
    uint256 internal constant ATM_30D = 182.596815636925870921e18;
    uint256 internal constant OTM_2400_30D = 60.707797565193109222e18;

    address internal carol = address(0xCA201);

    IOptionsMarketT internal opt;
    MockFeed internal ivFeed;
    uint256 internal atmCall; // K 2,000, 30 days
    uint256 internal atmPut; // K 2,000, 30 days
    uint256 internal otmCall; // K 2,400, 30 days
    uint256 internal call90; // K 2,000, 90 days

    function setUp() public virtual override {
        super.setUp();
        ivFeed = new MockFeed(8, 0.8e8);
        opt = IOptionsMarketT(deploy("OptionsMarket.sol:OptionsMarket", abi.encode(address(core))));
        vm.startPrank(admin);
        oracle.setFeed(IV_FEED, address(ivFeed), 1 hours, 0.01e18, 10e18);
        core.setOptions(address(opt));
        opt.configure(ETH_PERP, optionsCfg());
        opt.configurePortfolio(pmCfg());
        atmCall = opt.listSeries(ETH_PERP, true, EXPIRY, 2_000e18);
        atmPut = opt.listSeries(ETH_PERP, false, EXPIRY, 2_000e18);
        otmCall = opt.listSeries(ETH_PERP, true, EXPIRY, 2_400e18);
        call90 = opt.listSeries(ETH_PERP, true, uint40(START + 90 days), 2_000e18);
        vm.stopPrank();
        vm.label(address(opt), "OptionsMarket");
    }

    function optionsCfg() internal pure returns (IOptions.OptionsConfig memory) {
        return IOptions.OptionsConfig({
            ivFeedId: IV_FEED,
            enabled: true,
            spreadWad: uint64(SPREAD),
            minFeeWad: uint64(MIN_FEE),
            shortAWad: uint64(SHORT_A),
            shortBWad: uint64(SHORT_B),
            optionMmFactorWad: uint64(OPT_MM),
            longHaircutWad: uint64(LONG_HAIRCUT)
        });
    }

    function pmCfg() internal pure returns (IOptions.PortfolioConfig memory) {
        return IOptions.PortfolioConfig({
            spotShockWad: 0.18e18,
            spotPoints: 9,
            volUpWad: 0.3e18,
            volDownWad: 0.3e18,
            volPowWad: 0.5e18,
            maxVolScaleWad: 2e18,
            minVolWad: 0.05e18,
            contPerpWad: 0.005e18,
            contOptionWad: 0.01e18,
            imFactorWad: 1.15e18
        });
    }

    // ------------------------------------------------------------------ helpers

    /// @dev Base's `skip` refreshes the spot feeds only; this keeps the IV feed fresh too.
    function skipFresh(uint256 dt) internal {
        skip(dt);
        ivFeed.updateAnswer(ivFeed.latestAnswer());
    }

    function newRound() internal virtual override {
        super.newRound();
        if (address(ivFeed) != address(0)) ivFeed.updateAnswer(ivFeed.latestAnswer());
    }

    function optTrade(address who, uint256 sub, uint256 id, int256 size) internal {
        vm.prank(who);
        opt.trade(sub, id, size, 0);
    }

    function markOf(uint256 id) internal view returns (uint256 m) {
        (m,,) = opt.mark(id);
    }

    /// @dev The contract's fee per unit: max(ceil(mark x spread), ceil(spot x minFee)).
    function feeUnitOf(uint256 id) internal view returns (uint256) {
        (uint256 m, uint256 spot,) = opt.mark(id);
        uint256 a = mulUp(m, SPREAD);
        uint256 b = mulUp(spot, MIN_FEE);
        return a > b ? a : b;
    }

    function feeOf(uint256 id, uint256 q) internal view returns (uint256) {
        return mulUp(q, feeUnitOf(id));
    }

    function optSize(address who, uint256 sub, uint256 id) internal view returns (int256) {
        (uint256[] memory ids, int256[] memory sizes) = opt.positions(who, sub);
        for (uint256 k; k < ids.length; ++k) if (ids[k] == id) return sizes[k];
        return 0;
    }

    function flagsOf(address who, uint256 sub) internal view returns (uint8) {
        return core.getAccount(who, sub).flags;
    }

    function isLive(uint256 id) internal view returns (bool) {
        uint256[] memory live = opt.liveSeries();
        for (uint256 k; k < live.length; ++k) if (live[k] == id) return true;
        return false;
    }

    /// @dev Standard short-option IM: ceil(ceil(q x S) x max(shortA - OTM, shortB)).
    function shortIm(uint256 q, uint256 spot, uint256 strike, bool isCall) internal pure returns (uint256) {
        uint256 otmAbs = isCall ? (strike > spot ? strike - spot : 0) : (spot > strike ? spot - strike : 0);
        uint256 otm = otmAbs * WAD / spot;
        uint256 rate = SHORT_A > otm ? SHORT_A - otm : 0;
        if (rate < SHORT_B) rate = SHORT_B;
        return mulUp(mulUp(q, spot), rate);
    }

    function mmOf(address who, uint256 sub, uint256 witness) internal view returns (uint256 mm) {
        (,, mm,,,,) = opt.accountRisk(who, sub, true, witness);
    }

    /// @dev Portfolio-margin covered call: 10 ETH long perp, 10 ATM calls short.
    function openPmCoveredCall(address who, uint256 cashAmount) internal {
        depositFor(who, 0, CASH_ID, cashAmount);
        vm.prank(who);
        core.setPortfolioMargin(0, true);
        optTrade(who, 0, atmCall, -10e18);
        tradeAs(who, 0, ETH_PERP, 10e18);
    }
}

/// @notice Buying and selling against the pool: premium, fee and their rounding, limits, and
///         every reason a trade is refused.
contract OptionsTradingTest is OptionsBase {
    function test_mark_matches_black_scholes_and_put_call_parity() public {
        (uint256 c, uint256 spot, uint256 vol) = opt.mark(atmCall);
        assertEq(spot, 2_000e18);
        assertEq(vol, IV);
        assertAlmostEq(c, ATM_30D, 1e9, "ATM call vs reference");
        assertAlmostEq(markOf(otmCall), OTM_2400_30D, 1e9, "OTM call vs reference");
        // r = 0: C - P = S - K = 0 at the money.
        assertAlmostEq(markOf(atmPut), c, 10);
        // Longer expiry, more time value.
        assertGt(markOf(call90), c);
    }

    function test_buy_pays_ceil_premium_plus_fee_to_the_pool() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        uint256 q = 2.5e18 + 1; // an odd size, so that rounding shows
        uint256 m = markOf(atmCall);
        // At the money the spread binds: mark x 1% ~ 1.83 > spot x 0.05% = 1.
        assertEq(feeUnitOf(atmCall), mulUp(m, SPREAD));
        uint256 premium = mulUp(q, m);
        uint256 fee = mulUp(q, mulUp(m, SPREAD));
        assertEq(premium, q * m / WAD + 1, "buyer premium rounds up");
        int256 c0 = cashOf(alice, 0);
        int256 p0 = poolCash();

        vm.expectEmit(true, true, true, true, address(opt));
        emit IOptionsMarketT.OptionTraded(alice, 0, atmCall, int256(q), m, int256(premium), fee);
        optTrade(alice, 0, atmCall, int256(q));

        assertEq(cashOf(alice, 0), c0 - toInt(premium + fee));
        assertEq(poolCash(), p0 + toInt(premium + fee));
        assertEq(opt.openInterest(atmCall), int256(q));
        assertEq(optSize(alice, 0, atmCall), int256(q));
        assertEq(uint256(flagsOf(alice, 0)), 1, "holds options");
    }

    function test_sell_receives_floor_premium_minus_fee() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        uint256 q = 1.5e18 + 1;
        uint256 m = markOf(otmCall);
        // Out of the money the minimum fee binds: spot x 0.05% = 1 > mark x 1% ~ 0.61.
        assertEq(feeUnitOf(otmCall), 1e18);
        uint256 fee = mulUp(q, 1e18);
        uint256 proceeds = q * m / WAD; // floor
        int256 c0 = cashOf(alice, 0);
        int256 p0 = poolCash();

        vm.expectEmit(true, true, true, true, address(opt));
        emit IOptionsMarketT.OptionTraded(alice, 0, otmCall, -int256(q), m, -int256(proceeds), fee);
        optTrade(alice, 0, otmCall, -int256(q));

        assertEq(cashOf(alice, 0), c0 + toInt(proceeds) - toInt(fee));
        assertEq(poolCash(), p0 - toInt(proceeds) + toInt(fee));
        assertEq(opt.openInterest(otmCall), -int256(q));
        assertEq(optSize(alice, 0, otmCall), -int256(q));
    }

    function test_round_trip_costs_two_fees_and_rounding() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        int256 c0 = cashOf(alice, 0);
        int256 p0 = poolCash();
        optTrade(alice, 0, atmCall, 3e18);
        optTrade(alice, 0, atmCall, -3e18);
        uint256 m = markOf(atmCall);
        uint256 cost = mulUp(3e18, m) - 3e18 * m / WAD + 2 * feeOf(atmCall, 3e18);
        assertEq(cashOf(alice, 0), c0 - toInt(cost));
        assertEq(poolCash(), p0 + toInt(cost));
        assertEq(opt.openInterest(atmCall), 0);
        (uint256[] memory ids,) = opt.positions(alice, 0);
        assertEq(ids.length, 0);
        assertEq(uint256(flagsOf(alice, 0)), 0, "flag cleared with the last position");
    }

    function test_limit_price_guards_buys_and_sells() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        uint256 m = markOf(atmCall);
        uint256 unit = feeUnitOf(atmCall);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionSlippage.selector, m + unit, m + unit - 1));
        vm.prank(alice);
        opt.trade(0, atmCall, 1e18, m + unit - 1);
        vm.prank(alice);
        opt.trade(0, atmCall, 1e18, m + unit); // exactly the limit: filled

        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionSlippage.selector, m - unit, m - unit + 1));
        vm.prank(alice);
        opt.trade(0, atmCall, -2e18, m - unit + 1);
        vm.prank(alice);
        opt.trade(0, atmCall, -2e18, m - unit);
        assertEq(optSize(alice, 0, atmCall), -1e18);
    }

    function test_sell_limit_refuses_a_mark_below_the_fee() public {
        // A far OTM option whose mark is below the minimum fee: any positive limit fails.
        vm.prank(admin);
        uint256 far = opt.listSeries(ETH_PERP, true, EXPIRY, 6_000e18);
        depositFor(alice, 0, CASH_ID, 10_000e6);
        assertLt(markOf(far), 1e18);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionSlippage.selector, 0, 1));
        vm.prank(alice);
        opt.trade(0, far, -1e18, 1);
    }

    function test_trade_rejects_zero_size_unknown_and_expired_series() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        vm.expectRevert(IOptionsMarketT.ZeroSize.selector);
        optTrade(alice, 0, atmCall, 0);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.UnknownSeries.selector, 99));
        optTrade(alice, 0, 99, 1e18);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.UnknownSeries.selector, 99));
        opt.mark(99);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.UnknownSeries.selector, 99));
        opt.series(99);

        skipFresh(30 days);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.SeriesExpired.selector, atmCall, EXPIRY));
        optTrade(alice, 0, atmCall, 1e18);
        optTrade(alice, 0, call90, 1e18); // the 90-day series still trades
    }

    function test_disabled_market_is_reduce_only() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, 1e18);
        IOptions.OptionsConfig memory c = optionsCfg();
        c.enabled = false;
        vm.prank(admin);
        opt.configure(ETH_PERP, c);

        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionsDisabled.selector, ETH_PERP));
        optTrade(alice, 0, atmCall, 1e18);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionsDisabled.selector, ETH_PERP));
        optTrade(alice, 0, atmPut, -1e18);
        optTrade(alice, 0, atmCall, -0.5e18); // reducing is allowed
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionsDisabled.selector, ETH_PERP));
        optTrade(alice, 0, atmCall, -1e18); // a flip is not a reduction
        assertEq(optSize(alice, 0, atmCall), 0.5e18);
    }

    function test_isolated_subaccount_trades_options_on_its_own_market_only() public {
        vm.prank(alice);
        core.configureSubaccount(1, uint8(BTC_PERP + 1));
        depositFor(alice, 1, CASH_ID, 10_000e6);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionsDisabled.selector, ETH_PERP));
        optTrade(alice, 1, atmCall, 1e18);

        vm.prank(alice);
        core.configureSubaccount(2, uint8(ETH_PERP + 1));
        depositFor(alice, 2, CASH_ID, 10_000e6);
        optTrade(alice, 2, atmCall, 1e18);
        assertEq(optSize(alice, 2, atmCall), 1e18);
        // A subaccount holding options cannot change its mode.
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.SubaccountNotEmpty.selector, alice, 2));
        vm.prank(alice);
        core.configureSubaccount(2, 0);
    }

    function test_trade_pause_bit_stops_options_trading() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        vm.prank(guardian);
        core.setPaused(2 | 8); // withdraw and transfer: options still trade
        optTrade(alice, 0, atmCall, 1e18);
        vm.prank(guardian);
        core.setPaused(4);
        vm.expectRevert(IOptionsMarketT.TradingPaused.selector);
        optTrade(alice, 0, atmCall, -1e18); // closing too
        vm.prank(guardian);
        core.setPaused(0);
        optTrade(alice, 0, atmCall, -1e18);
    }

    function test_account_holds_at_most_max_account_series() public {
        uint256 limit = opt.MAX_ACCOUNT_SERIES();
        assertEq(limit, 16);
        uint256[] memory ids = new uint256[](limit + 1);
        (ids[0], ids[1], ids[2], ids[3]) = (atmCall, atmPut, otmCall, call90);
        vm.startPrank(admin);
        for (uint256 k = 4; k <= limit; ++k) ids[k] = opt.listSeries(ETH_PERP, k % 2 == 0, EXPIRY, uint128(1_500e18 + k * 50e18));
        vm.stopPrank();
        depositFor(alice, 0, CASH_ID, 100_000e6);
        for (uint256 k; k < limit; ++k) optTrade(alice, 0, ids[k], 0.1e18);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.TooManySeries.selector, limit));
        optTrade(alice, 0, ids[limit], 0.1e18);
        // Closing one frees its slot.
        optTrade(alice, 0, ids[3], -0.1e18);
        optTrade(alice, 0, ids[limit], 0.1e18);
        (uint256[] memory held,) = opt.positions(alice, 0);
        assertEq(held.length, limit);
    }

    function test_stale_iv_makes_options_reduce_only() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, 2e18);
        skip(1 hours + 1); // spot feeds refreshed, IV stale
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionReduceOnly.selector, atmCall, 2));
        optTrade(alice, 0, atmCall, 1e18);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionReduceOnly.selector, otmCall, 2));
        optTrade(alice, 0, otmCall, -1e18);
        optTrade(alice, 0, atmCall, -1e18); // reducing is allowed
        assertEq(optSize(alice, 0, atmCall), 1e18);
        // A stale spot feed does the same.
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        vm.warp(block.timestamp + 1 hours + 1);
        btcFeed.updateAnswer(btcFeed.latestAnswer());
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionReduceOnly.selector, atmCall, 2));
        optTrade(alice, 0, atmCall, 1e18);
        optTrade(alice, 0, atmCall, -0.5e18);
    }

    function test_opening_needs_trusted_prices_for_the_whole_account() public {
        // A BTC perp with a stale BTC feed: the account may not add option risk on ETH.
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, BTC_PERP, 0.01e18);
        vm.warp(block.timestamp + 1 hours + 1);
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, BTC_FEED, 2));
        optTrade(alice, 0, atmCall, 1e18);
    }
}

/// @notice Standard option margin (IOptions): the short's mark as a liability plus
///         max(shortA - OTM, shortB) x spot; longs at a haircut; MM = IM x factor.
contract OptionsMarginTest is OptionsBase {
    function test_short_call_margin_matches_hand_computation() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        uint256 q = 3e18;
        uint256 m = markOf(otmCall);
        uint256 fee = feeOf(otmCall, q);
        optTrade(alice, 0, otmCall, -int256(q));

        // OTM = (2,400 - 2,000) / 2,000 = 20%: rate = max(25% - 20%, 12.5%) = 12.5%.
        uint256 im = mulUp(mulUp(q, 2_000e18), 0.125e18);
        assertEq(im, 750e18);
        assertEq(shortIm(q, 2_000e18, 2_400e18, true), im);
        uint256 mm = mulUp(im, OPT_MM);
        int256 equity = 10_000e18 + toInt(q * m / WAD) - toInt(fee) - toInt(mulUp(q, m));
        (int256 e, uint256 i, uint256 mmOut) = core.accountMargin(alice, 0);
        assertEq(e, equity);
        assertEq(i, im);
        assertEq(mmOut, mm);
        assertEq(mmOut, 525e18);
    }

    function test_short_margin_rate_follows_moneyness() public {
        depositFor(alice, 0, CASH_ID, 20_000e6);
        optTrade(alice, 0, atmCall, -2e18);
        optTrade(alice, 0, atmPut, -1.5e18 - 7);
        (, uint256 im,) = core.accountMargin(alice, 0);
        // At the money both rates are shortA = 25%.
        assertEq(im, mulUp(mulUp(2e18, 2_000e18), SHORT_A) + mulUp(mulUp(1.5e18 + 7, 2_000e18), SHORT_A));

        // Spot 2,200: the call is ITM (25%), the put 9.09% OTM (15.91%).
        setPrice(ethFeed, 2_200e18);
        (, im,) = core.accountMargin(alice, 0);
        uint256 putIm = shortIm(1.5e18 + 7, 2_200e18, 2_000e18, false);
        uint256 otm = uint256(200e18) * WAD / 2_200e18;
        assertEq(putIm, mulUp(mulUp(1.5e18 + 7, 2_200e18), SHORT_A - otm));
        assertEq(im, mulUp(mulUp(2e18, 2_200e18), SHORT_A) + putIm);

        // Spot 3,000: the put is 33% OTM, the floor shortB applies.
        setPrice(ethFeed, 3_000e18);
        (, im,) = core.accountMargin(alice, 0);
        assertEq(im, mulUp(mulUp(2e18, 3_000e18), SHORT_A) + mulUp(mulUp(1.5e18 + 7, 3_000e18), SHORT_B));
    }

    function test_long_option_counts_at_haircut_and_needs_no_margin() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        uint256 q = 2e18;
        optTrade(alice, 0, atmCall, int256(q));
        uint256 m = markOf(atmCall);
        (int256 e, uint256 im, uint256 mm) = core.accountMargin(alice, 0);
        assertEq(e, cashOf(alice, 0) + toInt((q * m / WAD) * LONG_HAIRCUT / WAD));
        assertEq(im, 0);
        assertEq(mm, 0);
        (int256 v,,, uint256 notional,,,) = opt.accountRisk(alice, 0, false, FULL);
        assertEq(v, toInt((q * m / WAD) * LONG_HAIRCUT / WAD));
        assertEq(notional, 0, "a long carries no requirement: no penalty notional (issue 13, finding 5)");
    }

    function test_short_too_large_for_collateral_reverts_insufficient_margin() public {
        depositFor(alice, 0, CASH_ID, 1_000e6);
        uint256 q = 10e18;
        uint256 m = markOf(atmCall);
        int256 equity = 1_000e18 + toInt(q * m / WAD) - toInt(feeOf(atmCall, q)) - toInt(mulUp(q, m));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.InsufficientMargin.selector, alice, 0, equity, 5_000e18));
        optTrade(alice, 0, atmCall, -int256(q));
        equity = 1_000e18 + toInt(3e18 * m / WAD) - toInt(feeOf(atmCall, 3e18)) - toInt(mulUp(3e18, m));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.InsufficientMargin.selector, alice, 0, equity, 1_500e18));
        optTrade(alice, 0, atmCall, -3e18); // IM 1,500 > equity ~995 too
    }

    function test_short_within_collateral_succeeds_at_the_boundary() public {
        depositFor(alice, 0, CASH_ID, 1_000e6);
        optTrade(alice, 0, atmCall, -1.9e18); // IM 950 < equity ~996.5
        (int256 e, uint256 im,) = core.accountMargin(alice, 0);
        assertGte(e, toInt(im));
        assertEq(im, 950e18);
    }

    function test_withdraw_keeps_initial_margin_with_options_held() public {
        depositFor(alice, 0, CASH_ID, 2_000e6);
        optTrade(alice, 0, atmCall, -2e18); // IM 1,000
        (int256 e, uint256 im,) = core.accountMargin(alice, 0);
        assertEq(im, 1_000e18);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.InsufficientMargin.selector, alice, 0, e - 1_000e18, im));
        vm.prank(alice);
        core.withdraw(0, CASH_ID, 1_000e6);
        vm.prank(alice);
        core.withdraw(0, CASH_ID, 990e6);
        (e, im,) = core.accountMargin(alice, 0);
        assertGte(e, toInt(im));
    }

    function test_reducing_trade_must_leave_account_above_maintenance() public {
        depositFor(alice, 0, CASH_ID, 7_000e6);
        optTrade(alice, 0, atmCall, -10e18);
        setPrice(ethFeed, 2_500e18);
        assertTrue(core.isLiquidatable(alice, 0));
        // Buying back 0.01: equity pays ceil(0.01 x mark) + fee, the liability is 9.99 calls;
        // MM = 9.99 x 2,500 x 25% x 0.7.
        uint256 m = markOf(atmCall);
        int256 eAfter = cashOf(alice, 0) - toInt(mulUp(0.01e18, m)) - toInt(feeOf(atmCall, 0.01e18)) - toInt(mulUp(9.99e18, m));
        uint256 mmAfter = mulUp(mulUp(mulUp(9.99e18, 2_500e18), SHORT_A), OPT_MM);
        assertEq(mmAfter, 4_370.625e18);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.BelowMaintenance.selector, alice, 0, eAfter, mmAfter));
        optTrade(alice, 0, atmCall, 0.01e18);
        // Closing everything is allowed: no MM is left.
        optTrade(alice, 0, atmCall, 10e18);
        assertEq(uint256(flagsOf(alice, 0)), 0);
    }
}

/// @notice Portfolio margin: the mode switch, the scenario grid against hand computations, and
///         the full grid bounding every witness.
contract OptionsPortfolioTest is OptionsBase {
    function test_portfolio_margin_is_for_cross_subaccounts_only() public {
        vm.prank(alice);
        core.configureSubaccount(1, uint8(ETH_PERP + 1));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotPortfolio.selector, alice, 1));
        vm.prank(alice);
        core.setPortfolioMargin(1, true);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        assertEq(uint256(flagsOf(alice, 0)), 2);
        vm.prank(alice);
        core.setPortfolioMargin(0, false);
        assertEq(uint256(flagsOf(alice, 0)), 0);
    }

    /// A naked perp needs more in portfolio mode (an 18% shock) than in standard (10.1%):
    /// grid MM = 10 x 2,000 x 18% + 0.5% x 20,000 = 3,700; IM = 3,700 x 1.15 = 4,255; the core
    /// adds the perp's size term (rate 10 x 0.01% = 0.1% of 20,000: IM 20, MM 10).
    function test_switching_mode_requires_initial_margin_in_the_new_mode() public {
        depositFor(alice, 0, CASH_ID, 3_000e6);
        tradeAs(alice, 0, ETH_PERP, 10e18); // standard IM 2,020; fee 10
        (int256 v, uint256 im, uint256 mm, uint256 notional,,,) = opt.accountRisk(alice, 0, true, FULL);
        assertEq(v, 0);
        assertEq(mm, 3_700e18);
        assertEq(im, 4_255e18);
        assertEq(notional, 0);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.InsufficientMargin.selector, alice, 0, 2_990e18, 4_275e18));
        vm.prank(alice);
        core.setPortfolioMargin(0, true);

        depositFor(alice, 0, CASH_ID, 2_000e6);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        (int256 e, uint256 im2, uint256 mm2) = core.accountMargin(alice, 0);
        assertEq(e, 4_990e18);
        assertEq(im2, 4_255e18 + 20e18);
        assertEq(mm2, 3_700e18 + 10e18);
        // The scenario that shows the loss: spot -18% (index 0); a spot +18% one shows none.
        assertEq(mmOf(alice, 0, 0), 3_700e18);
        assertEq(mmOf(alice, 0, 9), 3_700e18, "vol shocks do not move a perp");
        assertEq(mmOf(alice, 0, 8), 100e18, "only the contingency");

        vm.prank(alice);
        core.setPortfolioMargin(0, false);
        (, im2,) = core.accountMargin(alice, 0);
        assertEq(im2, 2_020e18);
    }

    function test_covered_call_needs_much_less_initial_margin_in_portfolio_mode() public {
        // Bob: standard margin. Alice: the same portfolio in portfolio mode.
        depositFor(bob, 0, CASH_ID, 10_000e6);
        tradeAs(bob, 0, ETH_PERP, 10e18);
        optTrade(bob, 0, atmCall, -10e18);
        openPmCoveredCall(alice, 10_000e6);

        (int256 eStd, uint256 imStd, uint256 mmStd) = core.accountMargin(bob, 0);
        (int256 ePm, uint256 imPm, uint256 mmPm) = core.accountMargin(alice, 0);
        assertEq(imStd, 2_020e18 + 5_000e18, "perp 10.1% + short call 25%");
        assertEq(mmStd, mulUp(20_000e18, mulUp(0.101e18, 0.5e18)) + mulUp(5_000e18, OPT_MM));
        assertEq(ePm, eStd, "shorts count at full mark in both modes");
        // Reference (mpmath grid): worst loss 2,586.50 at spot -18% / vol up (scenario 9),
        // contingency 100 + 200, MM 2,886.50, IM 3,319.47.
        // The core adds the perp's size term (IM 20, MM 10) to the grid's requirement.
        assertAlmostEq(mmPm, 2_886.498e18 + 10e18, 0.01e18);
        assertAlmostEq(imPm, 3_319.473e18 + 20e18, 0.01e18);
        assertLt(imPm * 2, imStd, "less than half the standard IM");
        assertEq(mmOf(alice, 0, 9) + 10e18, mmPm, "the worst scenario is spot -18%, vol up");
    }

    function test_long_options_count_at_full_mark_in_portfolio_mode() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        optTrade(alice, 0, atmCall, 2e18);
        uint256 m = markOf(atmCall);
        (int256 e, uint256 im, uint256 mm) = core.accountMargin(alice, 0);
        assertEq(e, cashOf(alice, 0) + toInt(2e18 * m / WAD));
        // A long call's worst case is losing its value at spot -18%: less than the premium.
        assertGt(mm, 0);
        assertLt(mm, 2e18 * m / WAD);
        assertEq(im, mulUp(mm, 1.15e18));
    }

    /// @dev A two-market portfolio-margin account: ETH perp + options, BTC perp.
    function openMixedPortfolio() internal {
        depositFor(alice, 0, CASH_ID, 50_000e6);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        optTrade(alice, 0, atmCall, -10e18);
        optTrade(alice, 0, atmPut, 5e18);
        optTrade(alice, 0, call90, -3e18);
        optTrade(alice, 0, otmCall, 4e18);
        tradeAs(alice, 0, ETH_PERP, 6e18);
        tradeAs(alice, 0, BTC_PERP, -0.2e18);
    }

    /// The full grid's MM bounds the loss L of any witness (any bytes, out-of-range included).
    function testFuzz_full_grid_mm_bounds_every_witness(uint256 witness, uint256 spotSeed, uint256 ivSeed) public {
        openMixedPortfolio();
        setPrice(ethFeed, bound(spotSeed, 1_400e18, 2_800e18));
        setPrice(btcFeed, bound(spotSeed >> 128, 40_000e18, 80_000e18));
        ivFeed.updateAnswer(int256(bound(ivSeed, 0.2e8, 2e8)));
        if (witness == FULL) witness = 0;
        uint256 mmFull = mmOf(alice, 0, FULL);
        uint256 l = mmOf(alice, 0, witness);
        assertLte(l, mmFull);
        // Only the two markets' bytes matter.
        assertEq(mmOf(alice, 0, witness & 0xffff), l);
    }

    /// The witness path (one scenario per market, priced on the packed words) agrees with the
    /// full grid on everything but MM: the same value, notional, feed grade and per-leg mark and
    /// spot for every witness; each loss bound is at most the full MM, and with BTC's short perp
    /// on its worst point (+18%) the worst of ETH's 27 scenarios is exactly the full MM. Time
    /// moves up to 45 days: short-dated vol-shock scales, and the 30-day series expired unsettled.
    function testFuzz_witness_path_agrees_with_the_full_grid(uint256 seed) public {
        openMixedPortfolio();
        skipFresh(bound(seed >> 128, 0, 45 days));
        setPrice(ethFeed, bound(seed, 1_400e18, 2_800e18));
        ivFeed.updateAnswer(int256(bound(seed >> 64, 0.2e8, 2e8)));
        RiskView memory full = riskView(FULL);
        assertGt(full.im, full.mm);
        uint256 worst;
        for (uint256 k; k < N_SCENARIOS; ++k) {
            RiskView memory w = riskView(k | (8 << 8));
            assertEq(w.value, full.value, "value");
            assertEq(w.notional, full.notional, "notional");
            assertEq(w.bad, full.bad, "feed");
            assertEq(w.status, full.status, "grade");
            assertEq(w.prices.length, full.prices.length, "legs");
            for (uint256 h; h < full.prices.length; ++h) assertEq(w.prices[h], full.prices[h], "mark | spot");
            assertLte(w.mm, full.mm, "L <= MM");
            assertLte(w.im, full.im, "IM of L <= IM");
            if (w.mm > worst) worst = w.mm;
        }
        assertEq(worst, full.mm, "worst witness = full grid");
    }

    /// @dev `accountRisk` of alice's subaccount 0 in portfolio mode, as one value.
    struct RiskView {
        int256 value;
        uint256 im;
        uint256 mm;
        uint256 notional;
        uint256 bad;
        uint8 status;
        uint256[] prices;
    }

    function riskView(uint256 witness) internal view returns (RiskView memory r) {
        (r.value, r.im, r.mm, r.notional, r.bad, r.status, r.prices) = opt.accountRisk(alice, 0, true, witness);
    }

    /// The full grid's MM is the loss at the worst scenario: a search over the 27 scenarios of
    /// each market finds a witness whose L equals it.
    function test_full_grid_mm_equals_the_worst_witness() public {
        openMixedPortfolio();
        setPrice(ethFeed, 1_850e18);
        uint256 mmFull = mmOf(alice, 0, FULL);
        uint256 best0;
        uint256 bestL;
        for (uint256 k; k < N_SCENARIOS; ++k) {
            uint256 l = mmOf(alice, 0, k);
            if (l > bestL) (bestL, best0) = (l, k);
        }
        uint256 best1;
        for (uint256 k; k < N_SCENARIOS; ++k) {
            uint256 l = mmOf(alice, 0, best0 | (k << 8));
            if (l > bestL) (bestL, best1) = (l, k);
        }
        assertEq(bestL, mmFull);
        assertEq(mmOf(alice, 0, best0 | (best1 << 8)), mmFull);
        // A short BTC perp loses most at spot +18%, whatever the vol.
        assertEq(best1 % 9, 8);
        // An out-of-range index reads as scenario 0.
        assertEq(mmOf(alice, 0, 200 | (best1 << 8)), mmOf(alice, 0, best1 << 8));
        assertGte(mmFull, mmOf(alice, 0, ((best0 + 1) % N_SCENARIOS) | (best1 << 8)));
    }

    /// A short option's loss in a scenario ranks vol up >= no shock >= vol down, at the same
    /// spot; short-dated options get the capped vol-shock scale; a vol-down shock of 100% or
    /// more falls to the floor `minVol`.
    function test_vol_shocks_rank_scenarios_for_a_short_option() public {
        IOptions.PortfolioConfig memory p = pmCfg();
        p.volDownWad = 1e18; // x scale 2 => sigma floors at minVol
        vm.prank(admin);
        opt.configurePortfolio(p);
        depositFor(alice, 0, CASH_ID, 10_000e6);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        optTrade(alice, 0, atmCall, -1e18);
        uint256 cont = 20e18; // 1% x 2,000 x 1 short
        for (uint256 age; age < 2; ++age) {
            if (age == 1) skipFresh(29 days); // tau 1 day: scale (30)^0.5 capped at 2
            for (uint256 i; i < 9; ++i) {
                uint256 none = mmOf(alice, 0, i);
                uint256 up = mmOf(alice, 0, i + 9);
                uint256 down = mmOf(alice, 0, i + 18);
                assertGte(up, none);
                assertGte(none, down);
                assertGte(down, cont);
            }
        }
        // Spot -18%, vol at the floor: a 1-day ATM call is worth ~0, so the short's gain is
        // its whole mark and the loss is clamped to 0: only the contingency remains.
        assertEq(mmOf(alice, 0, 18), cont);
    }

    /// The spot shock follows the MM volatility scalar (shock x sMm, capped at 95%) and IM
    /// follows the IM scalar: IM = MM x imFactor x sIm / sMm.
    function test_spot_shock_scales_with_the_vol_scalar_and_is_capped() public {
        depositFor(alice, 0, CASH_ID, 30_000e6);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        tradeAs(alice, 0, ETH_PERP, 10e18);
        vm.startPrank(admin);
        core.setRiskLimits(IPlimsoll.RiskLimits({minScalarWad: 0.5e18, maxScalarWad: 10e18, maxStepWad: 1e18, minInterval: 0, rampPeriod: 1 days}));
        core.setVolScalar(ETH_PERP, 2e18);
        vm.stopPrank();
        // At once: IM's scalar is 2, MM's still 1 (ramping). The core adds the perp's size
        // term with the same scalars: 0.1% x 20,000 x sIm for IM, x sMm x 0.5 for MM.
        (, uint256 im, uint256 mm) = core.accountMargin(alice, 0);
        assertEq(mm, 3_700e18 + 10e18);
        assertEq(im, mulUp(mulUp(3_700e18, 1.15e18), 2e18) + 40e18);
        skip(1 days);
        // Shock 36%: MM = 10 x 720 + 100 = 7,300.
        (, im, mm) = core.accountMargin(alice, 0);
        assertEq(mm, 7_300e18 + 20e18);
        assertEq(im, mulUp(7_300e18, 1.15e18) + 40e18);
        // Shock 50% x 2 = 100%, capped at 95%: MM = 10 x 1,900 + 100.
        IOptions.PortfolioConfig memory p = pmCfg();
        p.spotShockWad = 0.5e18;
        vm.prank(admin);
        opt.configurePortfolio(p);
        (, im, mm) = core.accountMargin(alice, 0);
        assertEq(mm, 19_100e18 + 20e18);
    }

    /// An expired, unsettled option moves with spot only (its payoff); once settled it does
    /// not move at all. Long 1 ATM call, spot 2,100 at expiry: mark 100; scenario 0 (spot
    /// 1,722) pays nothing: L = 100.
    function test_expired_options_in_portfolio_mode_move_with_the_payoff() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        optTrade(alice, 0, atmCall, 1e18);
        setPrice(ethFeed, 2_100e18);
        skipFresh(30 days);
        assertEq(markOf(atmCall), 100e18);
        assertEq(mmOf(alice, 0, 0), 100e18);
        assertEq(mmOf(alice, 0, FULL), 100e18);
        assertEq(mmOf(alice, 0, 8), 0, "spot up: a gain");
        opt.settleSeries(atmCall, 0);
        assertEq(mmOf(alice, 0, FULL), 0, "settled: nothing moves");
        (int256 e,,) = core.accountMargin(alice, 0);
        assertEq(e, cashOf(alice, 0) + 100e18);
    }
}

/// @notice Liquidation of accounts holding options: standard mode through `liquidate`,
///         portfolio mode through `liquidateWitness`.
contract OptionsLiquidationTest is OptionsBase {
    /// @dev Alice: 7,000 USDC and 10 ATM calls short (IM 5,000); spot 2,500 makes her
    ///      liquidatable (call ~545: equity ~3,260 < MM 4,375).
    function shortCallsUnderwater() internal {
        depositFor(alice, 0, CASH_ID, 7_000e6);
        optTrade(alice, 0, atmCall, -10e18);
        setPrice(ethFeed, 2_500e18);
    }

    function test_standard_liquidation_closes_options_and_books_pnl() public {
        shortCallsUnderwater();
        assertTrue(core.isLiquidatable(alice, 0));
        uint256 m = markOf(atmCall);
        int256 a0 = cashOf(alice, 0);
        int256 p0 = poolCash();
        int256 k0 = cashOf(keeper, 0);
        int256 i0 = core.insuranceFund();

        vm.prank(keeper);
        uint256 fraction = core.liquidate(alice, 0);

        assertGt(fraction, 0);
        assertLt(fraction, WAD, "partial");
        int256 left = optSize(alice, 0, atmCall);
        uint256 closed = uint256(10e18 + left);
        assertEq(closed, mulUp(10e18, fraction), "closed size rounds up");
        assertEq(opt.openInterest(atmCall), left);
        // The account pays ceil(closed x mark) to the pool.
        int256 realized = -toInt(mulUp(closed, m));
        assertEq(poolCash() - p0, -realized);
        int256 reward = cashOf(keeper, 0) - k0;
        assertGte(reward, 5e18, "at least the minimum keeper reward");
        int256 penalty = reward + (core.insuranceFund() - i0);
        assertEq(penalty, toInt(mulUp(mulUp(closed, 2_500e18), 0.01e18)), "1% of the closed notional");
        assertEq(cashOf(alice, 0) - a0, realized - penalty);
        assertEq(uint256(flagsOf(alice, 0)), 1, "options remain");
        (int256 e,, uint256 mm) = core.accountMargin(alice, 0);
        assertGte(e, toInt(mm), "MM restored");
    }

    function test_liquidation_closing_every_option_clears_the_flag() public {
        depositFor(alice, 0, CASH_ID, 700e6);
        optTrade(alice, 0, atmCall, -1e18);
        setPrice(ethFeed, 3_000e18); // call ~1,009: equity < 0
        vm.prank(keeper);
        uint256 fraction = core.liquidate(alice, 0);
        assertEq(fraction, WAD);
        (uint256[] memory ids,) = opt.positions(alice, 0);
        assertEq(ids.length, 0);
        assertEq(opt.openInterest(atmCall), 0);
        assertEq(uint256(flagsOf(alice, 0)), 0);
        assertEq(cashOf(alice, 0), 0, "bad debt settled");
    }

    function test_liquidation_of_perps_and_options_together() public {
        depositFor(alice, 0, CASH_ID, 6_000e6);
        tradeAs(alice, 0, ETH_PERP, -5e18);
        optTrade(alice, 0, atmCall, -5e18);
        setPrice(ethFeed, 2_500e18);
        assertTrue(core.isLiquidatable(alice, 0));
        vm.prank(keeper);
        uint256 fraction = core.liquidate(alice, 0);
        int256 closedPerp = sizeOf(alice, 0, ETH_PERP) + 5e18;
        int256 closedOpt = optSize(alice, 0, atmCall) + 5e18;
        assertEq(closedPerp, closedOpt, "the same fraction of both");
        assertEq(uint256(closedOpt), mulUp(5e18, fraction));
    }

    function test_liquidation_waits_for_a_trusted_iv() public {
        shortCallsUnderwater();
        skip(1 hours + 1); // IV stale
        assertFalse(core.isLiquidatable(alice, 0));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, IV_FEED, 2));
        vm.prank(keeper);
        core.liquidate(alice, 0);
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        vm.prank(keeper);
        core.liquidate(alice, 0);
    }

    function test_liquidate_fraction_is_for_the_core_only() public {
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.NotCore.selector, alice));
        vm.prank(alice);
        opt.liquidateFraction(alice, 0, WAD, new uint256[](0));
    }

    function test_liquidate_fraction_needs_one_price_per_position() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, 1e18);
        optTrade(alice, 0, atmPut, 1e18);
        vm.startPrank(address(core));
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.LegPricesMismatch.selector, 1, 0));
        opt.liquidateFraction(alice, 0, WAD, new uint256[](0));
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.LegPricesMismatch.selector, 2, 3));
        opt.liquidateFraction(alice, 0, WAD, new uint256[](3));
        vm.stopPrank();
    }

    function test_sizes_beyond_int104_revert() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        int256 tooBig = int256(type(int104).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.SizeOutOfRange.selector, tooBig));
        optTrade(alice, 0, otmCall, tooBig);
    }

    /// The book keeps positions packed two per slot and dense: removing legs from the middle
    /// and the end, then adding, leaves exactly the live positions with their sizes, and the
    /// open interest of every series equals the sum of its positions.
    function test_packed_book_stays_dense_through_removals() public {
        uint256[] memory ids = new uint256[](7);
        (ids[0], ids[1], ids[2], ids[3]) = (atmCall, atmPut, otmCall, call90);
        vm.startPrank(admin);
        for (uint256 k = 4; k < 7; ++k) ids[k] = opt.listSeries(ETH_PERP, k % 2 == 0, EXPIRY, uint128(1_500e18 + k * 50e18));
        vm.stopPrank();
        depositFor(alice, 0, CASH_ID, 100_000e6);
        for (uint256 k; k < 7; ++k) optTrade(alice, 0, ids[k], int256(k + 1) * 0.1e18);
        optTrade(alice, 0, ids[1], -0.2e18); // middle leg closed
        optTrade(alice, 0, ids[6], -0.7e18); // last leg closed (odd count: lone low half)
        optTrade(alice, 0, ids[3], 0.05e18); // a kept leg changes size in place
        (uint256[] memory held, int256[] memory sizes) = opt.positions(alice, 0);
        assertEq(held.length, 5);
        int256[7] memory want = [int256(0.1e18), 0, 0.3e18, 0.45e18, 0.5e18, 0.6e18, 0];
        for (uint256 k; k < held.length; ++k) {
            uint256 j;
            while (ids[j] != held[k]) ++j;
            assertEq(sizes[k], want[j], "size of a kept leg");
            assertEq(opt.openInterest(held[k]), want[j], "open interest = the only position");
        }
        optTrade(alice, 0, ids[1], -0.3e18); // re-added, now short
        assertEq(optSize(alice, 0, ids[1]), -0.3e18);
        assertEq(opt.openInterest(ids[1]), -0.3e18);
        (held,) = opt.positions(alice, 0);
        assertEq(held.length, 6);
    }

    function test_witness_liquidation_needs_a_portfolio_account_and_a_witness() public {
        openPmCoveredCall(bob, 4_000e6);
        shortCallsUnderwater(); // standard mode
        assertTrue(core.isLiquidatable(alice, 0));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotPortfolio.selector, alice, 0));
        vm.prank(keeper);
        core.liquidateWitness(alice, 0, 9);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotPortfolio.selector, bob, 0));
        vm.prank(keeper);
        core.liquidateWitness(bob, 0, FULL);
    }

    function test_witness_liquidation_rejects_a_healthy_account() public {
        openPmCoveredCall(alice, 4_000e6);
        (int256 e,,) = core.accountMargin(alice, 0);
        uint256 l = mmOf(alice, 0, 9) + 10e18; // the witness's loss + the perp's size term
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.AccountHealthy.selector, alice, 0, e, l));
        vm.prank(keeper);
        core.liquidateWitness(alice, 0, 9);
    }

    function test_witness_liquidation_of_a_portfolio_account() public {
        openPmCoveredCall(alice, 4_000e6);
        setPrice(ethFeed, 1_700e18);
        assertTrue(core.isLiquidatable(alice, 0));
        (int256 e,, uint256 mm) = core.accountMargin(alice, 0);
        // The worst scenario's L is the full MM; a scenario showing no loss is refused.
        // The core's MM is the grid's plus the perp's size term: 0.1% x 17,000 x 0.5 = 8.5.
        uint256 sizeMm = 8.5e18;
        uint256 worst;
        for (uint256 k; k < N_SCENARIOS; ++k) if (mmOf(alice, 0, k) + sizeMm == mm) worst = k;
        uint256 l = mmOf(alice, 0, worst) + sizeMm;
        assertEq(l, mm);
        uint256 lUp = mmOf(alice, 0, 8) + sizeMm; // spot +18%: the perp gains more than the calls lose
        assertLte(toInt(lUp), e);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.AccountHealthy.selector, alice, 0, e, lUp));
        vm.prank(keeper);
        core.liquidateWitness(alice, 0, 8);

        vm.expectEmit(true, true, false, true, address(core));
        emit IPlimsoll.WitnessLiquidation(alice, 0, worst, l);
        vm.prank(keeper);
        uint256 fraction = core.liquidateWitness(alice, 0, worst);
        assertGt(fraction, 0);
        assertEq(uint256(-optSize(alice, 0, atmCall)), 10e18 - mulUp(10e18, fraction));
        assertEq(uint256(sizeOf(alice, 0, ETH_PERP)), 10e18 - mulUp(10e18, fraction));
        assertGt(cashOf(keeper, 0), 0);
    }
}

/// @notice Settlement: the series' price from the oracle after expiry, the accounts' payoffs,
///         and the live list.
contract OptionsSettlementTest is OptionsBase {
    function test_settle_series_guards() public {
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.NotExpired.selector, atmCall, EXPIRY));
        opt.settleSeries(atmCall, 0);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.UnknownSeries.selector, 42));
        opt.settleSeries(42, 0);
        vm.warp(EXPIRY); // feeds not refreshed: the spot is stale
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.OptionPriceNotTrusted.selector, ETH_FEED, 2));
        opt.settleSeries(atmCall, 0);
        setPrice(ethFeed, 2_222e18);
        vm.expectEmit(true, false, false, true, address(opt));
        emit IOptionsMarketT.SeriesSettled(atmCall, 2_222e18);
        opt.settleSeries(atmCall, 0);
        assertEq(uint256(opt.series(atmCall).settlementPrice), 2_222e18);
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.AlreadySettled.selector, atmCall));
        opt.settleSeries(atmCall, 0);
        // No open interest: settling retired it at once.
        assertFalse(isLive(atmCall));
        assertTrue(isLive(call90));
    }

    function test_settle_account_pays_intrinsic_and_retires_the_series() public {
        uint256 qLong = 1.333333333333333333e18;
        uint256 qShort = 0.333333333333333333e18;
        depositFor(alice, 0, CASH_ID, 10_000e6);
        depositFor(bob, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, int256(qLong));
        optTrade(bob, 0, atmCall, -int256(qShort));
        optTrade(bob, 0, call90, 1e18); // a series that is not settled stays
        setPrice(ethFeed, 2_345.678e18);
        skipFresh(30 days);
        opt.settleSeries(atmCall, 0);
        assertTrue(isLive(atmCall), "open interest left");

        uint256 payoff = 345.678e18;
        uint256 toAlice = qLong * payoff / WAD; // floor
        uint256 fromBob = mulUp(qShort, payoff); // ceil
        assertGt(mulUp(qLong, payoff), toAlice, "the size makes rounding show");
        int256 a0 = cashOf(alice, 0);
        int256 b0 = cashOf(bob, 0);
        int256 p0 = poolCash();

        vm.expectEmit(true, true, true, true, address(opt));
        emit IOptionsMarketT.OptionSettled(alice, 0, atmCall, int256(qLong), int256(toAlice));
        opt.settleAccount(alice, 0);
        assertEq(cashOf(alice, 0) - a0, toInt(toAlice));
        assertEq(optSize(alice, 0, atmCall), 0);
        assertEq(uint256(flagsOf(alice, 0)), 0);
        assertEq(opt.openInterest(atmCall), -int256(qShort));
        assertTrue(isLive(atmCall));

        opt.settleAccount(bob, 0);
        assertEq(cashOf(bob, 0) - b0, -toInt(fromBob));
        assertEq(poolCash() - p0, toInt(fromBob) - toInt(toAlice));
        assertEq(opt.openInterest(atmCall), 0);
        assertFalse(isLive(atmCall), "retired: settled with no open interest");
        assertEq(optSize(bob, 0, call90), 1e18);
        assertEq(uint256(flagsOf(bob, 0)), 1, "the 90-day call is still held");

        // Settling again changes nothing.
        int256 b1 = cashOf(bob, 0);
        opt.settleAccount(bob, 0);
        assertEq(cashOf(bob, 0), b1);
    }

    function test_put_settles_below_the_strike() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmPut, 2e18);
        setPrice(ethFeed, 1_800e18);
        skipFresh(30 days);
        opt.settleSeries(atmPut, 0);
        int256 a0 = cashOf(alice, 0);
        opt.settleAccount(alice, 0);
        assertEq(cashOf(alice, 0) - a0, 400e18);
    }

    function test_expired_unsettled_series_are_valued_at_intrinsic_at_spot() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        depositFor(bob, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, 2e18);
        optTrade(bob, 0, atmCall, -1e18);
        setPrice(ethFeed, 2_150e18);
        skipFresh(30 days);
        assertEq(markOf(atmCall), 150e18);
        (int256 e, uint256 im, uint256 mm) = core.accountMargin(alice, 0);
        assertEq(e, cashOf(alice, 0) + toInt(300e18 * LONG_HAIRCUT / WAD));
        (e, im, mm) = core.accountMargin(bob, 0);
        assertEq(e, cashOf(bob, 0) - 150e18);
        assertEq(im, 0, "an expired short needs only its payoff");
        assertEq(mm, 0);
        // The spot keeps moving the value until the series is settled.
        setPrice(ethFeed, 2_050e18);
        assertEq(markOf(atmCall), 50e18);
        // Settlement takes the first round at or after expiry (2,150, from skipFresh at the
        // expiry), not the spot at the call (2,050).
        opt.settleSeries(atmCall, 0);
        assertEq(uint256(opt.series(atmCall).settlementPrice), 2_150e18);
        setPrice(ethFeed, 2_400e18);
        assertEq(markOf(atmCall), 150e18, "fixed at the settlement price");
        // settleAccount skips series that are not settled.
        vm.prank(admin);
        uint256 late = opt.listSeries(ETH_PERP, true, uint40(block.timestamp + 1 days), 2_000e18);
        optTrade(bob, 0, late, 1e18);
        opt.settleAccount(bob, 0);
        assertEq(optSize(bob, 0, atmCall), 0);
        assertEq(optSize(bob, 0, late), 1e18);
    }

    /// Was a bug (contracts/options/OptionsMarket.sol, `liquidateFraction` does not call
    /// `_retireIfDone`): a liquidation that closes the last position of a settled series brings
    /// its open interest to 0, but the series stays in the live list. Nothing can retire it
    /// later (settleSeries reverts AlreadySettled, settleAccount only walks held series and
    /// nobody holds it), so it occupies one of the MAX_LIVE_SERIES slots for ever; enough of
    /// them block `listSeries` (TooManySeries). Found by this test; fixed (liquidateFraction
    /// retires it).
    function test_liquidation_closing_the_last_settled_position_retires_the_series() public {
        depositFor(alice, 0, CASH_ID, 600e6);
        optTrade(alice, 0, atmCall, -1e18);
        setPrice(ethFeed, 3_000e18);
        skipFresh(30 days);
        opt.settleSeries(atmCall, 0);
        assertTrue(core.isLiquidatable(alice, 0)); // payoff 1,000 > equity
        vm.prank(keeper);
        core.liquidate(alice, 0);
        assertEq(opt.openInterest(atmCall), 0);
        (uint256[] memory ids,) = opt.positions(alice, 0);
        assertEq(ids.length, 0);
        // Nothing else can retire it.
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.AlreadySettled.selector, atmCall));
        opt.settleSeries(atmCall, 0);
        opt.settleAccount(alice, 0);
        assertFalse(isLive(atmCall), "settled, no open interest: should be retired");
    }
}

/// @notice Admin bounds, the one-time wiring, the hooks' callers, and the pool's options risk.
contract OptionsAdminTest is OptionsBase {
    function expectInvalid(bytes32 what) internal {
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.InvalidOptionsConfig.selector, what));
    }

    function test_wiring_views() public {
        assertEq(core.options(), address(opt));
        assertEq(opt.core(), address(core));
        assertEq(opt.oracle(), address(oracle));
        assertEq(opt.seriesCount(), 4);
        assertEq(opt.liveSeries().length, 4);
        IOptions.Series memory s = opt.series(otmCall);
        assertEq(uint256(s.marketId), ETH_PERP);
        assertTrue(s.isCall);
        assertEq(uint256(s.expiry), EXPIRY);
        assertEq(uint256(s.strike), 2_400e18);
        assertEq(uint256(s.settlementPrice), 0);
        assertEq(uint256(opt.optionsConfig(ETH_PERP).optionMmFactorWad), OPT_MM);
        assertEq(uint256(opt.portfolioConfig().spotPoints), 9);
        assertEq(uint256(opt.portfolioConfig().imFactorWad), 1.15e18);
    }

    function test_configure_checks_admin_and_bounds() public {
        IOptions.OptionsConfig memory c = optionsCfg();
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.NotAdmin.selector, alice));
        vm.prank(alice);
        opt.configure(ETH_PERP, c);

        vm.startPrank(admin);
        expectInvalid("market");
        opt.configure(2, c);
        c.spreadWad = 0.2e18 + 1;
        expectInvalid("fee");
        opt.configure(ETH_PERP, c);
        c = optionsCfg();
        c.minFeeWad = 0.01e18 + 1;
        expectInvalid("fee");
        opt.configure(ETH_PERP, c);
        c = optionsCfg();
        c.shortBWad = 0;
        expectInvalid("shortRate");
        opt.configure(ETH_PERP, c);
        c = optionsCfg();
        c.shortAWad = 1e18 + 1;
        expectInvalid("shortRate");
        opt.configure(ETH_PERP, c);
        c = optionsCfg();
        c.shortBWad = 1e18 + 1;
        expectInvalid("shortRate");
        opt.configure(ETH_PERP, c);
        c = optionsCfg();
        c.optionMmFactorWad = 0.1e18 - 1;
        expectInvalid("mmFactor");
        opt.configure(ETH_PERP, c);
        c.optionMmFactorWad = 0.95e18 + 1;
        expectInvalid("mmFactor");
        opt.configure(ETH_PERP, c);
        c = optionsCfg();
        c.longHaircutWad = 1e18 + 1;
        expectInvalid("haircut");
        opt.configure(ETH_PERP, c);
        c = optionsCfg();
        c.ivFeedId = 12; // no such feed
        vm.expectRevert();
        opt.configure(ETH_PERP, c);
        // The bounds themselves are accepted.
        c = optionsCfg();
        (c.spreadWad, c.minFeeWad, c.shortAWad, c.shortBWad) = (0.2e18, 0.01e18, 1e18, 1e18);
        (c.optionMmFactorWad, c.longHaircutWad) = (0.95e18, 1e18);
        opt.configure(BTC_PERP, c);
        vm.stopPrank();
        assertEq(uint256(opt.optionsConfig(BTC_PERP).shortBWad), 1e18);
    }

    function test_configure_portfolio_checks_admin_and_bounds() public {
        IOptions.PortfolioConfig memory p = pmCfg();
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.NotAdmin.selector, alice));
        vm.prank(alice);
        opt.configurePortfolio(p);

        vm.startPrank(admin);
        p.spotShockWad = 0;
        expectInvalid("spotShock");
        opt.configurePortfolio(p);
        p.spotShockWad = 0.5e18 + 1;
        expectInvalid("spotShock");
        opt.configurePortfolio(p);
        uint8[4] memory badPoints = [uint8(2), 4, 17, 16];
        for (uint256 k; k < 4; ++k) {
            p = pmCfg();
            p.spotPoints = badPoints[k];
            expectInvalid("spotPoints");
            opt.configurePortfolio(p);
        }
        p = pmCfg();
        p.volUpWad = 2e18 + 1;
        expectInvalid("volShock");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.volDownWad = 1e18 + 1;
        expectInvalid("volShock");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.volPowWad = 1e18 + 1;
        expectInvalid("volScale");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.maxVolScaleWad = 1e18 - 1;
        expectInvalid("volScale");
        opt.configurePortfolio(p);
        p.maxVolScaleWad = 10e18 + 1;
        expectInvalid("volScale");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.minVolWad = 0;
        expectInvalid("minVol");
        opt.configurePortfolio(p);
        p.minVolWad = 1e18 + 1;
        expectInvalid("minVol");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.contPerpWad = 0.1e18 + 1;
        expectInvalid("contingency");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.contOptionWad = 0.1e18 + 1;
        expectInvalid("contingency");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.imFactorWad = 1e18 - 1;
        expectInvalid("imFactor");
        opt.configurePortfolio(p);
        p.imFactorWad = 3e18 + 1;
        expectInvalid("imFactor");
        opt.configurePortfolio(p);
        p = pmCfg();
        p.spotPoints = 15;
        opt.configurePortfolio(p);
        vm.stopPrank();
        assertEq(uint256(opt.portfolioConfig().spotPoints), 15);
    }

    function test_list_series_checks_admin_and_bounds() public {
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.NotAdmin.selector, alice));
        vm.prank(alice);
        opt.listSeries(ETH_PERP, true, EXPIRY, 2_000e18);

        vm.startPrank(admin);
        expectInvalid("market"); // BTC options not configured
        opt.listSeries(BTC_PERP, true, EXPIRY, 60_000e18);
        expectInvalid("expiry");
        opt.listSeries(ETH_PERP, true, uint40(block.timestamp), 2_000e18);
        expectInvalid("expiry");
        opt.listSeries(ETH_PERP, true, uint40(block.timestamp + 2 * 365 days + 1), 2_000e18);
        expectInvalid("strike");
        opt.listSeries(ETH_PERP, true, EXPIRY, 0);
        expectInvalid("strike"); // strikes are stored in 96 bits
        opt.listSeries(ETH_PERP, true, EXPIRY, uint128(type(uint96).max) + 1);

        vm.expectEmit(true, true, false, true, address(opt));
        emit IOptionsMarketT.SeriesListed(4, ETH_PERP, false, block.timestamp + 2 * 365 days, 1);
        assertEq(opt.listSeries(ETH_PERP, false, uint40(block.timestamp + 2 * 365 days), 1), 4);
        uint256 maxLive = opt.MAX_LIVE_SERIES();
        assertEq(maxLive, 32);
        for (uint256 k = 5; k < maxLive; ++k) opt.listSeries(ETH_PERP, true, EXPIRY, uint128(k * 100e18));
        vm.expectRevert(abi.encodeWithSelector(IOptionsMarketT.TooManySeries.selector, maxLive));
        opt.listSeries(ETH_PERP, true, EXPIRY, 2_000e18);
        vm.stopPrank();

        // A settled series without open interest frees its slot.
        skipFresh(30 days);
        opt.settleSeries(atmCall, 0);
        vm.prank(admin);
        assertEq(opt.listSeries(ETH_PERP, true, uint40(block.timestamp + 30 days), 2_000e18), maxLive);
    }

    function test_options_book_only_from_the_options_market() public {
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotOptions.selector, alice));
        vm.prank(alice);
        core.optionsBook(alice, 0, 1e18, false);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotOptions.selector, admin));
        vm.prank(admin);
        core.optionsBook(admin, 0, 1e18, true);
        // optionsCheck is a view: callable by anyone, it only reverts.
        core.optionsCheck(alice, 0, false, false);
    }

    function test_options_market_is_set_once() public {
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, admin));
        vm.prank(admin);
        core.setOptions(address(0xBEEF));
        assertEq(core.options(), address(opt));
    }

    function test_pool_im_grows_when_traders_buy_calls() public {
        (int256 pe0, uint256 pim0) = core.poolMargin();
        assertEq(pim0, 0);
        depositFor(alice, 0, CASH_ID, 10_000e6);
        uint256 m = markOf(atmCall);
        uint256 fee = feeOf(atmCall, 5e18);
        optTrade(alice, 0, atmCall, 5e18);
        (int256 pe1, uint256 pim1) = core.poolMargin();
        // The pool is short 5 ATM calls: IM 25% x 10,000; its equity gains only the fee.
        assertEq(pim1, 2_500e18);
        assertEq(pe1 - pe0, toInt(fee) + toInt(mulUp(5e18, m)) - toInt(mulUp(5e18, m)));
        (int256 v, uint256 req,,) = opt.poolRisk();
        assertEq(v, -toInt(mulUp(5e18, m)));
        assertEq(req, 2_500e18);
        // Traders selling puts make the pool long: value at the full mark (the share price),
        // the haircut as IM (issue 13, finding 1).
        depositFor(bob, 0, CASH_ID, 10_000e6);
        optTrade(bob, 0, atmPut, -2e18);
        (v, req,,) = opt.poolRisk();
        uint256 longValue = 2e18 * markOf(atmPut) / WAD;
        assertEq(req, 2_500e18 + longValue - longValue * LONG_HAIRCUT / WAD);
        assertEq(v, -toInt(mulUp(5e18, m)) + toInt(longValue));
    }

    /// Was a bug (contracts/core/MarginEngine.sol `_poolMargin` with OptionsMarket.poolRisk):
    /// `_poolMargin` grades the perp feeds it uses ("pool withdrawals need all OK") but adds
    /// `options.poolRisk()`, which reads the options' spot and IV feeds without grading them,
    /// so an LP withdraws against option values priced from a stale IV (or a stale spot of a
    /// market without perp open interest). Found by this test; fixed (poolRisk reports the
    /// first feed not graded OK).
    function test_pool_withdrawal_waits_for_trusted_option_prices() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        optTrade(alice, 0, atmCall, 5e18);
        // Control: a stale spot under the pool's perp exposure holds LP withdrawals.
        depositFor(bob, 0, CASH_ID, 10_000e6);
        tradeAs(bob, 0, ETH_PERP, 1e18);
        vm.warp(block.timestamp + 1 hours + 1);
        btcFeed.updateAnswer(btcFeed.latestAnswer());
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        // The LP's redemption request waits: the pool says why before the core's own check
        // (PoolClosed: UNTRUSTED, feed, grade).
        uint256 someShares = pool.convertToShares(1_000e6);
        vm.prank(lp);
        pool.requestRedeem(someShares, lp, lp);
        vm.expectRevert(abi.encodeWithSignature("PoolClosed(uint8,uint256,uint8)", 3, uint256(ETH_FEED), 2));
        pool.fulfilRedeem(lp);
        vm.prank(address(pool));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(ETH_FEED), 2));
        core.poolWithdraw(1_000e6, lp);
        // The IV feed pricing the pool's 5 short calls goes stale: not checked.
        skip(1 hours + 1);
        vm.expectRevert(abi.encodeWithSignature("PoolClosed(uint8,uint256,uint8)", 3, uint256(IV_FEED), 2));
        pool.fulfilRedeem(lp);
        vm.prank(address(pool));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(IV_FEED), 2));
        core.poolWithdraw(1_000e6, lp);
    }

    function test_pool_must_keep_im_when_its_option_exposure_grows() public {
        // The LP takes out all but 1 USDC worth of shares; the 0.05% exit fee (5,000 USDC)
        // stays in the pool: about 5,001 USDC left.
        lpRedeem(lp, pool.balanceOf(lp) - 1e12);
        depositFor(alice, 0, CASH_ID, 10_000e6);
        int256 pc0 = poolCash();
        assertLt(pc0, 5_002e18);
        uint256 fee = feeOf(atmCall, 15e18);
        // The pool's equity after: its cash + premium + fee - ceil(15 x mark) = cash + fee.
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PoolUndercollateralized.selector, pc0 + toInt(fee), 7_500e18));
        optTrade(alice, 0, atmCall, 15e18);
        optTrade(alice, 0, atmCall, 1e18); // IM 500: fits
        // Selling back shrinks the pool's exposure: no pool check.
        optTrade(alice, 0, atmCall, -1e18);
    }
}

/// @notice The core without an options market: portfolio margin and the wiring.
contract OptionsWiringTest is Base {
    function test_portfolio_margin_needs_an_options_market() public {
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotPortfolio.selector, alice, 0));
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
    }

    function test_set_options_is_admin_only_once_and_nonzero() public {
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, alice));
        vm.prank(alice);
        core.setOptions(address(0xBEEF));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, admin));
        vm.prank(admin);
        core.setOptions(address(0));
        vm.prank(admin);
        core.setOptions(address(0xBEEF));
        assertEq(core.options(), address(0xBEEF));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, admin));
        vm.prank(admin);
        core.setOptions(address(0xBEEF2));
    }

    function test_witness_liquidation_without_portfolio_flag() public {
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NotPortfolio.selector, alice, 0));
        core.liquidateWitness(alice, 0, 0);
    }
}

/// @notice Random sequences of option trades, time, price moves and settlements: cash is only
///         moved between traders and the pool (never created), and open interest is the sum of
///         the positions.
contract OptionsConservationTest is OptionsBase {
    uint256 internal constant STEPS = 24;

    address[3] internal actors;
    uint256[4] internal ids;
    uint256 internal done; // successful trades and settlements

    function setUp() public override {
        super.setUp();
        actors = [alice, bob, carol];
        ids = [atmCall, atmPut, otmCall, call90];
        for (uint256 a; a < 3; ++a) depositFor(actors[a], 0, CASH_ID, 1_000_000e6);
    }

    function totalCash() internal view returns (int256 sum) {
        for (uint256 a; a < 3; ++a) sum += cashOf(actors[a], 0);
        sum += poolCash();
    }

    function step(uint256 r) internal {
        uint256 op = r % 10;
        address who = actors[(r >> 8) % 3];
        uint256 id = ids[(r >> 16) % 4];
        bool ok;
        if (op < 6) {
            int256 size = int256(bound(r >> 32, 0.001e18, 8e18));
            if ((r >> 24) & 1 == 1) size = -size;
            vm.prank(who);
            (ok,) = address(opt).call(abi.encodeCall(opt.trade, (0, id, size, 0)));
        } else if (op == 6) {
            skipFresh(bound(r >> 32, 1 hours, 12 days));
        } else if (op == 7) {
            setPrice(ethFeed, bound(r >> 32, 1_400e18, 2_800e18));
            ivFeed.updateAnswer(int256(bound(r >> 96, 0.3e8, 1.5e8)));
        } else if (op == 8) {
            (ok,) = address(opt).call(abi.encodeCall(opt.settleSeries, (id, 0)));
        } else {
            (ok,) = address(opt).call(abi.encodeCall(opt.settleAccount, (who, 0)));
        }
        if (ok) ++done;
    }

    function testFuzz_option_cash_is_conserved_and_open_interest_matches_positions(uint256 seed) public {
        int256 total0 = totalCash();
        int256 pool0 = poolCash();
        for (uint256 i; i < STEPS; ++i) {
            step(uint256(keccak256(abi.encode(seed, i))));
            assertEq(totalCash(), total0, "cash conservation");
            for (uint256 s; s < 4; ++s) {
                int256 sum;
                for (uint256 a; a < 3; ++a) sum += optSize(actors[a], 0, ids[s]);
                assertEq(opt.openInterest(ids[s]), sum, "open interest = sum of positions");
            }
        }
        int256 traders;
        for (uint256 a; a < 3; ++a) traders += cashOf(actors[a], 0) - 1_000_000e18;
        assertEq(traders + (poolCash() - pool0), 0);
        assertGt(done, 0);
        // A retired series has no open interest and is settled.
        uint256[] memory live = opt.liveSeries();
        for (uint256 s; s < 4; ++s) {
            bool listed;
            for (uint256 k; k < live.length; ++k) if (live[k] == ids[s]) listed = true;
            if (!listed) {
                assertEq(opt.openInterest(ids[s]), 0);
                assertGt(uint256(opt.series(ids[s]).settlementPrice), 0);
            }
        }
    }
}
