// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionsBase} from "./Options.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";

interface IPoolErrors {
    error PoolClosed(uint8 reason, uint256 feedId, uint8 status);
}

/// @notice EIP-4626 conformance of LiquidityPool, clause by clause, in every state the core and
///         the oracle router can be in (open, paused, a price stale / suspect / unreadable under
///         the pool's perp or option exposure). The a16z property suite covers the open state;
///         these tests cover the MUSTs it does not reach.
contract Pool4626Test is OptionsBase {
    uint8 internal constant OPEN = 0;
    uint8 internal constant PAUSED = 1;
    uint8 internal constant UNPRICED = 2;
    uint8 internal constant UNTRUSTED = 3;
    uint8 internal constant N_STATES = 11;

    address internal user = address(0x5E5);
    address internal spender = address(0x5BE);

    function setUp() public override {
        super.setUp();
        usdc.mint(user, 5_000_000e6);
        vm.prank(user);
        usdc.approve(address(pool), type(uint256).max);
        vm.prank(user);
        pool.deposit(1_000_000e6, user);
        // The pool's exposure: a perp long (ETH) and option open interest (calls bought).
        depositFor(alice, 0, CASH_ID, 200_000e6);
        tradeAs(alice, 0, ETH_PERP, 10e18);
        optTrade(alice, 0, atmCall, 20e18);
    }

    /// @dev Puts the protocol in state `s`: 0 open; 1 pool paused; 2 spot stale; 3 spot
    ///      suspect (a wick); 4 spot answer below the router's bounds; 5 above them; 6 spot
    ///      answer 0; 7 negative; 8 vol stale; 9 vol suspect; 10 vol answer out of bounds.
    function enterState(uint8 s) internal returns (uint8 expected) {
        if (s == 0) return OPEN;
        if (s == 1) {
            vm.prank(guardian);
            core.setPaused(32);
            return PAUSED;
        }
        if (s == 3 || s == 9) {
            vm.startPrank(admin);
            oracle.setBreaker(s == 3 ? ETH_FEED : IV_FEED, 0.1e18, 3, 10 minutes);
            vm.stopPrank();
            vm.warp(block.timestamp + 1);
            if (s == 3) setPrice(ethFeed, 1_200e18);
            else ivFeed.updateAnswer(0.3e8);
            return UNTRUSTED;
        }
        if (s == 2 || s == 8) {
            vm.warp(block.timestamp + 1 hours + 1);
            if (s == 2) ivFeed.updateAnswer(ivFeed.latestAnswer());
            else ethFeed.updateAnswer(ethFeed.latestAnswer());
            btcFeed.updateAnswer(btcFeed.latestAnswer());
            return UNTRUSTED;
        }
        if (s == 4) ethFeed.updateAnswer(50e8); // bounds 100 .. 100,000
        if (s == 5) ethFeed.updateAnswer(200_000e8);
        if (s == 6) ethFeed.updateAnswer(0);
        if (s == 7) ethFeed.updateAnswer(-1);
        if (s == 10) ivFeed.updateAnswer(20e8); // bounds 0.01 .. 10
        return UNPRICED;
    }

    /// @dev Every ERC-4626 view, called: any revert fails the caller.
    function callEveryView(uint256 x) internal view returns (uint256 sum) {
        // unchecked: max* may be 2^256 - 1; the sum is only a sink.
        unchecked {
            sum = _callEveryView(x);
        }
    }

    function _callEveryView(uint256 x) private view returns (uint256 sum) {
        unchecked {
        sum += pool.totalAssets();
        sum += pool.convertToShares(x);
        sum += pool.convertToAssets(x);
        sum += pool.maxDeposit(user);
        sum += pool.maxMint(user);
        sum += pool.maxWithdraw(user);
        sum += pool.maxRedeem(user);
        sum += pool.previewDeposit(x);
        sum += pool.previewMint(x);
        sum += pool.previewWithdraw(x);
        sum += pool.previewRedeem(x);
        }
    }

    // ------------------------------------------------------------------ views in every state

    /// EIP-4626: totalAssets, convertTo*, max* MUST NOT revert; preview* MUST NOT revert for
    /// vault-specific limits. Was: an answer out of the router's bounds (or <= 0) made them
    /// all revert (PriceOutOfBounds / NonPositivePrice from the core's pool valuation).
    function testFuzz_views_never_revert_in_any_oracle_state(uint8 s, uint256 x) public {
        s = uint8(bound(s, 0, N_STATES - 1));
        x = bound(x, 0, 1e30);
        uint8 expected = enterState(s);
        callEveryView(x);
        (uint8 why,,) = pool.closedReason();
        assertEq(uint256(why), expected, "the reason the pool reports");
    }

    /// EIP-4626: max* MUST return 0 while the action is disabled (even temporarily), and the
    /// action then reverts with a reason. Was: paused pool maxDeposit = 2^256 - 1, stale
    /// price maxWithdraw = 1,000,000 while withdraw reverted.
    function test_every_closed_state_reports_zero_max_and_the_actions_revert_PoolClosed() public {
        for (uint8 s = 1; s < N_STATES; ++s) {
            uint256 snap = vm.snapshot();
            uint8 expected = enterState(s);
            assertEq(pool.maxDeposit(user), 0, "maxDeposit");
            assertEq(pool.maxMint(user), 0, "maxMint");
            assertEq(pool.maxWithdraw(user), 0, "maxWithdraw");
            assertEq(pool.maxRedeem(user), 0, "maxRedeem");
            (uint8 why, uint256 feed, uint8 st) = pool.closedReason();
            assertEq(uint256(why), expected);
            bytes memory err = abi.encodeWithSelector(IPoolErrors.PoolClosed.selector, why, feed, st);
            vm.startPrank(user);
            vm.expectRevert(err);
            pool.deposit(1e6, user);
            vm.expectRevert(err);
            pool.mint(1e12, user);
            vm.expectRevert(err);
            pool.withdraw(1e6, user, user);
            vm.expectRevert(err);
            pool.redeem(1e12, user, user);
            vm.stopPrank();
            vm.revertTo(snap);
        }
    }

    /// The stale-price case of the issue: the spot under the pool's perp is stale; the core
    /// refuses the withdrawal (PriceNotTrusted) and maxWithdraw says 0 (was 1,000,000e6).
    function test_stale_price_with_open_interest_max_withdraw_is_zero() public {
        enterState(2);
        assertEq(pool.maxWithdraw(user), 0);
        assertEq(pool.maxRedeem(user), 0);
        (uint8 why, uint256 feed, uint8 st) = pool.closedReason();
        assertEq(uint256(why), UNTRUSTED);
        assertEq(feed, ETH_FEED);
        assertEq(uint256(st), 2);
        // The core agrees: its own check refuses the withdrawal.
        vm.prank(address(pool));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(ETH_FEED), 2));
        core.poolWithdraw(1e6, user);
    }

    /// Back to OK prices, the pool opens again by itself (no keeper, no admin).
    function test_pool_reopens_when_the_prices_are_ok_again() public {
        enterState(4);
        assertEq(pool.totalAssets(), 0, "unvalued");
        setPrice(ethFeed, 2_000e18);
        (uint8 why,,) = pool.closedReason();
        assertEq(uint256(why), OPEN);
        assertGt(pool.totalAssets(), LP_SEED);
        assertGt(pool.maxWithdraw(user), 0);
        assertEq(pool.maxDeposit(user), type(uint256).max);
    }

    // ------------------------------------------------------------------ MUSTs in the open state

    /// asset() is the underlying ERC-20; totalAssets is what the core values the pool at.
    function test_asset_and_total_assets() public {
        assertEq(pool.asset(), address(usdc));
        assertEq(pool.totalAssets(), core.poolAssets());
    }

    /// convertToShares / convertToAssets round down and do not depend on the caller.
    function testFuzz_convert_rounds_down(uint256 a) public {
        a = bound(a, 0, 1e15);
        uint256 sh = pool.convertToShares(a);
        assertLte(pool.convertToAssets(sh), a);
        vm.prank(bob);
        assertEq(pool.convertToShares(a), sh, "not caller-dependent");
    }

    /// deposit: mints exactly previewDeposit(assets) shares (MUST be <= the real mint), pulls
    /// exactly `assets`, emits Deposit; the receiver may differ from the caller.
    function testFuzz_deposit_matches_preview(uint256 a) public {
        a = bound(a, 1, 4_000_000e6);
        uint256 preview = pool.previewDeposit(a);
        assertLte(a, pool.maxDeposit(bob));
        uint256 before = usdc.balanceOf(user);
        vm.expectEmit(true, true, false, true, address(pool));
        emit Deposit(user, bob, a, preview);
        vm.prank(user);
        uint256 sh = pool.deposit(a, bob);
        assertEq(sh, preview);
        assertEq(pool.balanceOf(bob), sh);
        assertEq(before - usdc.balanceOf(user), a);
    }

    /// mint: pulls exactly previewMint(shares) (MUST be >= the real cost) and mints `shares`.
    function testFuzz_mint_matches_preview(uint256 s) public {
        s = bound(s, 1, 3_000_000e12);
        uint256 preview = pool.previewMint(s);
        uint256 before = usdc.balanceOf(user);
        vm.prank(user);
        uint256 a = pool.mint(s, user);
        assertEq(a, preview);
        assertEq(before - usdc.balanceOf(user), a);
    }

    /// withdraw: burns exactly previewWithdraw(assets) shares (MUST be >= the real burn); a
    /// third party with an allowance may withdraw to any receiver (the allowance is spent in
    /// shares); withdraw(maxWithdraw) does not revert.
    function testFuzz_withdraw_matches_preview_and_spends_allowance(uint256 a) public {
        uint256 max = pool.maxWithdraw(user);
        assertGt(max, 0);
        a = bound(a, 1, max);
        uint256 preview = pool.previewWithdraw(a);
        vm.prank(user);
        pool.approve(spender, preview);
        uint256 sharesBefore = pool.balanceOf(user);
        vm.expectEmit(true, true, true, true, address(pool));
        emit Withdraw(spender, carol, user, a, preview);
        vm.prank(spender);
        uint256 burned = pool.withdraw(a, carol, user);
        assertEq(burned, preview);
        assertEq(sharesBefore - pool.balanceOf(user), burned);
        assertEq(usdc.balanceOf(carol), a);
        assertEq(pool.allowance(user, spender), 0);
        // The rest, up to the maximum, still goes.
        uint256 rest = pool.maxWithdraw(user);
        vm.prank(user);
        pool.withdraw(rest, user, user);
    }

    /// redeem: pays exactly previewRedeem(shares) (MUST be <= the real payment); redeem of
    /// maxRedeem does not revert.
    function testFuzz_redeem_matches_preview(uint256 s) public {
        uint256 max = pool.maxRedeem(user);
        assertGt(max, 0);
        s = bound(s, 1, max);
        uint256 preview = pool.previewRedeem(s);
        uint256 before = usdc.balanceOf(user);
        vm.prank(user);
        uint256 a = pool.redeem(s, user, user);
        assertEq(a, preview);
        assertEq(usdc.balanceOf(user) - before, a);
        uint256 rest = pool.maxRedeem(user);
        vm.prank(user);
        pool.redeem(rest, user, user);
    }

    /// deposit(0), mint(0), withdraw(0) and a redeem worth less than one token unit do not
    /// revert (they are within max*): nothing moves but the dust shares burned.
    function test_zero_and_dust_amounts_do_not_revert() public {
        vm.startPrank(user);
        assertEq(pool.deposit(0, user), 0);
        assertEq(pool.mint(0, user), 0);
        assertEq(pool.withdraw(0, user, user), 0);
        uint256 dust = pool.convertToShares(1) / 2; // less than one unit's worth
        assertGt(dust, 0);
        uint256 before = pool.balanceOf(user);
        assertEq(pool.redeem(dust, user, user), 0);
        assertEq(before - pool.balanceOf(user), dust);
        vm.stopPrank();
    }

    /// maxWithdraw never promises more than the core pays: the pool's free cash bounds it,
    /// and withdrawing one unit more than a free-cash-bound maximum reverts in the core.
    function test_max_withdraw_is_bounded_by_the_pool_free_cash() public {
        uint256 free = core.poolFreeCash();
        assertLte(pool.maxWithdraw(lp), free);
        assertLte(pool.convertToAssets(pool.maxRedeem(lp)), free);
    }

    event Deposit(address indexed sender, address indexed owner, uint256 assets, uint256 shares);
    event Withdraw(
        address indexed sender, address indexed receiver, address indexed owner, uint256 assets, uint256 shares
    );
}
