// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "@prb/test/src/Vm.sol";
import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {
    RebasingToken,
    BlocklistToken,
    ReturnsFalseToken,
    ReentrantToken
} from "../../../contracts/mocks/WeirdTokens.sol";

/// @notice The core's promises under adversity (issue 12): liquidation economics that never
///         create bad debt nor pay anyone out of the insurance fund or the LPs, collateral feeds
///         that never block a liquidation, deficits booked when they are known, custody that
///         survives rebasing and blocklisting tokens, withdrawals that leave no dust.
contract CoreSafetyTest is Base {
    // ------------------------------------------------------------------ liquidation economics

    /// Finding 1: a dust account's owner liquidates it and collects the minimum reward. The
    /// reward now comes out of the account's own equity only: the owner gains nothing, and
    /// neither the insurance fund nor the pool pays (before: reward 5 against equity 2.1, the
    /// fund paid the 2.9 difference, per account, repeatable).
    function test_self_liquidation_of_a_dust_account_gains_nothing() public {
        depositFor(alice, 1, CASH_ID, 25e6);
        tradeAs(alice, 1, ETH_PERP, 0.1e18); // notional 200, fee 0.1: equity 24.9
        setPrice(ethFeed, 1_772e18); // loss 22.8: equity 2.1 < MM
        (int256 e0,, uint256 mm0) = core.accountMargin(alice, 1);
        assertEq(e0, 2.1e18);
        assertLt(e0, toInt(mm0));
        int256 ins0 = core.insuranceFund();
        int256 pool0 = poolCash();
        int256 reward0 = cashOf(alice, 0);

        vm.prank(alice);
        core.liquidate(alice, 1);

        (int256 e1,,) = core.accountMargin(alice, 1);
        int256 gained = (cashOf(alice, 0) - reward0) + e1 - e0;
        assertLte(gained, 0, "liquidating one's own account gains nothing");
        assertEq(cashOf(alice, 0) - reward0, 2.1e18, "the reward is capped at the equity left");
        assertEq(core.insuranceFund(), ins0, "the insurance fund pays no reward");
        assertEq(poolCash() - pool0, 22.8e18, "the pool only receives the realized loss");
        assertGte(e1, 0, "and the account is not left insolvent");
    }

    /// Finding 2: an account liquidated at or above zero equity ends at or above zero equity
    /// (before: the 5 USD minimum reward was paid from any equity, leaving deficits).
    function testFuzz_liquidation_never_makes_a_solvent_account_insolvent(uint256 sizeSeed, uint256 upSeed)
        public
    {
        depositFor(alice, 0, CASH_ID, 1_000e6);
        uint256 size = bound(sizeSeed, 1e18, 4.9e18);
        tradeAs(alice, 0, ETH_PERP, int256(size));
        // p0: the price at which equity is zero; the account is liquidatable just above it.
        uint256 fee = mulUp(mulUp(size, 2_000e18), 0.0005e18);
        uint256 p0 = 2_000e18 - (1_000e18 - fee) * WAD / size + 1e18;
        setPrice(ethFeed, p0 + bound(upSeed, 0, 90e18));
        (int256 e0,, uint256 mm0) = core.accountMargin(alice, 0);
        if (e0 < 0 || e0 >= toInt(mm0)) return; // outside the window: nothing to show
        int256 ins0 = core.insuranceFund();

        vm.recordLogs();
        vm.prank(keeper);
        core.liquidate(alice, 0);

        (int256 e1,,) = core.accountMargin(alice, 0);
        assertGte(e1, 0, "equity stays >= 0");
        assertGte(cashOf(alice, 0), 0, "no debt (cash is the only collateral)");
        assertGte(core.insuranceFund(), ins0, "no deficit reached the insurance fund");
        assertEq(_badDebtInLogs(), 0, "no bad debt booked");
    }

    // ------------------------------------------------------------------ collateral feeds

    /// Finding 3: 1 satoshi of WBTC whose feed is stale no longer holds off the liquidation of
    /// an unrelated ETH position, and an out-of-bounds BTC answer reverts nothing.
    function test_untrusted_collateral_feed_counts_nothing_and_never_blocks_liquidation() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        depositFor(alice, 0, WBTC_ID, 1);
        tradeAs(alice, 0, ETH_PERP, 45e18);
        vm.warp(block.timestamp + 2 hours); // both feeds stale ...
        ethFeed.updateAnswer(1_800e8); // ... then ETH answers again: only BTC is stale
        assertTrue(core.isLiquidatable(alice, 0), "the stale BTC feed does not hold it off");

        btcFeed.updateAnswer(1); // an answer outside the feed's bounds
        (int256 equity,, uint256 mm) = core.accountMargin(alice, 0);
        assertLt(equity, toInt(mm));
        assertTrue(core.isLiquidatable(alice, 0), "nor does an invalid answer revert it");
        vm.prank(keeper);
        uint256 fraction = core.liquidate(alice, 0);
        assertGt(fraction, 0);
    }

    /// The untrusted collateral counts for nothing (never more) while its feed is stale.
    function test_stale_collateral_counts_for_nothing() public {
        depositFor(bob, 0, WBTC_ID, 1e8); // 1 BTC: 45,000 at its haircut
        depositFor(bob, 0, CASH_ID, 1_000e6);
        (int256 e0,,) = core.accountMargin(bob, 0);
        assertEq(e0, 46_000e18);
        vm.warp(block.timestamp + 2 hours);
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        (int256 e1,,) = core.accountMargin(bob, 0);
        assertEq(e1, 1_000e18, "stale BTC counts 0");
        btcFeed.updateAnswer(0);
        (int256 e2,,) = core.accountMargin(bob, 0);
        assertEq(e2, 1_000e18, "a zero answer counts 0 and reverts nothing");
    }

    // ------------------------------------------------------------------ deficits

    /// Finding 6: 1 wei of collateral no longer keeps a deficit out of the books: the debt the
    /// collateral cannot cover is written off in the liquidation itself, and the wei goes to
    /// the protocol's recovery account.
    function test_deficit_is_booked_when_collateral_can_no_longer_cover_the_debt() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        depositFor(alice, 0, WETH_ID, 1);
        tradeAs(alice, 0, ETH_PERP, 45e18);
        setPrice(ethFeed, 1_700e18); // loss 13,500 > equity 9,955
        uint256 assets0 = pool.totalAssets();
        int256 ins0 = core.insuranceFund();
        vm.recordLogs();
        core.liquidate(alice, 0);
        uint256 badDebt = _badDebtInLogs();
        assertGt(badDebt, 0, "the deficit is booked at once");
        assertEq(cashOf(alice, 0), 0);
        assertEq(core.getAccount(alice, 0).assetMask, 0);
        assertEq(core.collateralBalance(alice, 0, WETH_ID), 0);
        assertEq(core.recoveredBalance(WETH_ID), 1, "the wei is forfeited to the protocol");
        assertEq(ins0 - core.insuranceFund(), toInt(badDebt), "the insurance fund covers it");
        assertGte(pool.totalAssets(), assets0, "LPs keep the realized gain");
    }

    // ------------------------------------------------------------------ tokens

    function _listToken(address token) internal returns (uint256 id) {
        vm.prank(admin);
        id = core.listAsset(token, 0.8e18, ETH_FEED, type(uint128).max);
    }

    function _depositToken(RebasingToken t, address who, uint256 id, uint256 amount) internal {
        t.mint(who, amount);
        vm.startPrank(who);
        t.approve(address(core), amount);
        core.deposit(0, id, amount);
        vm.stopPrank();
    }

    /// Finding 7a: after a negative rebase the first withdrawer no longer takes the others'
    /// tokens: every withdrawal pays pro rata (before: alice took 100 of the 100 left, bob 0).
    function test_rebasing_token_loss_is_shared_pro_rata() public {
        RebasingToken t = new RebasingToken();
        uint256 id = _listToken(address(t));
        _depositToken(t, alice, id, 100e18);
        _depositToken(t, bob, id, 100e18);
        t.rebase(address(core), 100e18); // the core's balance halves

        vm.prank(alice);
        uint256 a = core.withdraw(0, id, type(uint256).max);
        vm.prank(bob);
        uint256 b = core.withdraw(0, id, type(uint256).max);
        assertEq(a, 50e18);
        assertEq(b, 50e18);
        assertEq(t.balanceOf(alice), 50e18);
        assertEq(t.balanceOf(bob), 50e18);
        assertEq(t.balanceOf(address(core)), 0);
        assertEq(core.assetConfig(id).totalDeposited, 0);
    }

    /// A positive rebase is skimmed to the recovery account, never to a depositor.
    function test_rebasing_token_surplus_is_skimmed_to_recovery() public {
        RebasingToken t = new RebasingToken();
        uint256 id = _listToken(address(t));
        _depositToken(t, alice, id, 100e18);
        t.rebase(address(core), 130e18);
        assertEq(core.skim(id), 30e18);
        assertEq(core.recoveredBalance(id), 30e18);
        vm.prank(alice);
        assertEq(core.withdraw(0, id, type(uint256).max), 100e18, "the depositor gets its own");
        assertEq(t.balanceOf(address(core)), 30e18, "the surplus stays booked to recovery");
        assertEq(core.assetConfig(id).totalDeposited, 30e18);
    }

    /// Finding 7b: a token that blocklists the core made the debt against it unsettleable; the
    /// debt is now written off (waterfall) and the collateral forfeited to recovery.
    function test_blocklisted_collateral_does_not_freeze_debt_settlement() public {
        BlocklistToken t = new BlocklistToken();
        vm.prank(admin);
        uint256 id = core.listAsset(address(t), 0.8e18, ETH_FEED, type(uint128).max);
        t.mint(alice, 12e18); // 24,000 at 2,000: 19,200 at its haircut
        vm.startPrank(alice);
        t.approve(address(core), 12e18);
        core.deposit(0, id, 12e18);
        core.trade(0, BTC_PERP, 2e18, 0);
        vm.stopPrank();
        setPrice(btcFeed, 50_431e18); // loss 19,138 + fee 60: equity 2
        core.liquidate(alice, 0);
        assertEq(cashOf(alice, 0), -19_200e18, "debt covered by the collateral at its haircut");
        assertEq(core.collateralBalance(alice, 0, id), 12e18);

        setPrice(ethFeed, 1_999e18); // the collateral no longer covers the debt at its haircut
        t.setBlocked(address(core), true);
        usdc.mint(keeper, 100_000e6);
        vm.startPrank(keeper);
        usdc.approve(address(core), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(
                IPlimsoll.TokenCallFailed.selector,
                address(t),
                bytes4(0xa9059cbb),
                abi.encodeWithSelector(BlocklistToken.Blocked.selector, address(core))
            )
        );
        core.liquidateCollateral(alice, 0, id, 1_000e6);
        vm.stopPrank();

        // Back at a price where the collateral covers the debt at its haircut: no deficit is
        // known, but the collateral cannot be sold, so the debt is written off all the same.
        setPrice(ethFeed, 2_000e18);
        (int256 e,,) = core.accountMargin(alice, 0);
        assertEq(e, 0);
        int256 pool0 = poolCash();
        int256 ins0 = core.insuranceFund();
        uint256 deficit = core.writeOff(alice, 0);
        assertEq(deficit, 19_200e18, "the whole debt; the collateral goes to recovery");
        assertEq(cashOf(alice, 0), 0);
        assertEq(core.recoveredBalance(id), 12e18);
        assertEq(ins0 - core.insuranceFund() + (pool0 - poolCash()), 19_200e18, "through the waterfall");
    }

    /// writeOff also books a deficit that is known (cash + collateral at its haircut < 0)
    /// without waiting for anyone to buy the collateral.
    function test_write_off_books_a_known_deficit() public {
        depositFor(alice, 0, WETH_ID, 10e18);
        tradeAs(alice, 0, BTC_PERP, 2e18);
        setPrice(btcFeed, 52_031.5e18);
        core.liquidate(alice, 0); // debt 16,000 = the WETH at its haircut
        setPrice(ethFeed, 1_900e18); // now 15,200
        assertEq(core.writeOff(alice, 0), 16_000e18);
        assertEq(core.recoveredBalance(WETH_ID), 10e18);
    }

    /// writeOff is refused while the collateral can still be sold.
    function test_write_off_is_refused_while_collateral_is_sellable() public {
        depositFor(alice, 0, WETH_ID, 10e18);
        tradeAs(alice, 0, BTC_PERP, 0.5e18);
        tradeAs(alice, 0, BTC_PERP, -0.5e18); // a small debt (fees) against the WETH
        assertLt(cashOf(alice, 0), 0);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.CollateralNotSeizable.selector, alice, 0));
        core.writeOff(alice, 0);
    }

    /// Recovered collateral is sold at the oracle less the bonus; the cash goes to insurance.
    function test_recovered_collateral_is_sold_to_the_insurance_fund() public {
        RebasingToken t = new RebasingToken();
        uint256 id = _listToken(address(t));
        _depositToken(t, alice, id, 1e18);
        t.rebase(address(core), 2.05e18);
        core.skim(id);
        usdc.mint(keeper, 10_000e6);
        vm.startPrank(keeper);
        usdc.approve(address(core), type(uint256).max);
        int256 ins0 = core.insuranceFund();
        uint256 paid = core.buyRecovered(id, 1.05e18); // 2,100 at 2,000 / 1.05 = 2,000
        vm.stopPrank();
        assertEq(paid, 2_000e6);
        assertEq(core.insuranceFund() - ins0, 2_000e18);
        assertEq(t.balanceOf(keeper), 1.05e18);
        assertEq(core.recoveredBalance(id), 0);
    }

    /// Finding 7c: a token's own failure reaches the caller as TokenCallFailed naming the token
    /// and the operation (before: an empty revert or the token's string).
    function test_token_failures_are_wrapped_in_one_error() public {
        ReturnsFalseToken t = new ReturnsFalseToken();
        vm.prank(admin);
        uint256 id = core.listAsset(address(t), 0.8e18, ETH_FEED, type(uint128).max);
        vm.prank(alice); // holds none: the token returns false
        vm.expectRevert(
            abi.encodeWithSelector(IPlimsoll.TokenCallFailed.selector, address(t), bytes4(0x23b872dd), abi.encode(false))
        );
        core.deposit(0, id, 1e18);
    }

    /// Finding 10: configureSubaccount is guarded like every other state-changing entry point.
    function test_configure_subaccount_cannot_be_reentered_from_a_token_hook() public {
        ReentrantToken t = new ReentrantToken();
        vm.prank(admin);
        uint256 id = core.listAsset(address(t), 0.8e18, ETH_FEED, type(uint128).max);
        t.mint(alice, 1e18);
        vm.prank(alice);
        t.approve(address(core), 1e18);
        t.arm(address(core), abi.encodeCall(core.configureSubaccount, (5, 1)));
        vm.prank(alice);
        // The hook's call is refused by the guard; the token's failure reaches the depositor
        // wrapped, with the guard's error inside.
        vm.expectRevert(
            abi.encodeWithSelector(
                IPlimsoll.TokenCallFailed.selector,
                address(t),
                bytes4(0x23b872dd),
                abi.encodeWithSignature("ReentrancyGuardReentrantCall()")
            )
        );
        core.deposit(0, id, 1e18);
    }

    // ------------------------------------------------------------------ cash dust and units

    /// Finding 8: sub-unit cash dust left after closing everything no longer blocks the
    /// subaccount: withdraw(max) takes every whole token unit, the dust goes to the insurance
    /// fund, and errors report token units only.
    function test_withdraw_max_leaves_no_dust_and_errors_speak_token_units() public {
        depositFor(alice, 0, CASH_ID, 1_000e6);
        tradeAs(alice, 0, ETH_PERP, 1e18);
        setPrice(ethFeed, 2_000.12345678e18);
        tradeAs(alice, 0, ETH_PERP, -1e18);
        int256 cashWad = cashOf(alice, 0);
        assertGt(cashWad % 1e12, 0, "sub-unit dust on the books");
        uint256 whole = uint256(cashWad) / 1e12;

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.InsufficientBalance.selector, 0, whole, 2_000e6));
        core.withdraw(0, CASH_ID, 2_000e6);

        int256 ins0 = core.insuranceFund();
        int256 booked0 = core.cashBooked();
        uint256 before = usdc.balanceOf(alice);
        vm.prank(alice);
        uint256 sent = core.withdraw(0, CASH_ID, type(uint256).max);
        assertEq(sent, whole);
        assertEq(usdc.balanceOf(alice) - before, whole);
        assertEq(cashOf(alice, 0), 0, "nothing left");
        assertEq(core.insuranceFund() - ins0, cashWad % 1e12, "the dust has a home");
        assertEq(booked0 - core.cashBooked(), toInt(whole * 1e12));
        vm.prank(alice);
        core.configureSubaccount(0, 1); // empty: its mode can change
        assertEq(core.getAccount(alice, 0).isolatedMarket, 1);
    }

    // ------------------------------------------------------------------ gas bound

    /// Finding 5: a subaccount holds at most 8 collateral assets and 8 perp positions, which
    /// bounds the gas of its health check and liquidation (liquidate_max_account in the gas
    /// snapshot); more exposure goes in another subaccount.
    function test_a_subaccount_holds_at_most_eight_assets_and_eight_markets() public {
        vm.startPrank(admin);
        for (uint256 i; i < 7; ++i) core.listAsset(address(new RebasingToken()), 0.5e18, ETH_FEED, type(uint128).max);
        for (uint256 i; i < 7; ++i) core.listMarket(ethMarket());
        vm.stopPrank();
        depositFor(alice, 0, CASH_ID, 1_000_000e6);
        depositFor(alice, 0, WETH_ID, 1e18);
        depositFor(alice, 0, WBTC_ID, 1e8);
        for (uint256 id = 3; id <= 8; ++id) _depositToken(RebasingToken(core.assetConfig(id).token), alice, id, 1e18);
        assertEq(_popcount(core.getAccount(alice, 0).assetMask), 8);
        RebasingToken ninth = RebasingToken(core.assetConfig(9).token);
        ninth.mint(alice, 1e18);
        vm.startPrank(alice);
        ninth.approve(address(core), 1e18);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.TooMany.selector, 8));
        core.deposit(0, 9, 1e18);
        core.deposit(1, 9, 1e18); // another subaccount takes it
        for (uint256 m; m < 8; ++m) core.trade(0, m, 1e18, 0);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.TooMany.selector, 8));
        core.trade(0, 8, 1e18, 0);
        core.trade(0, 0, 1e18, 0); // adding to a held market is fine
        vm.stopPrank();
    }

    function _popcount(uint256 x) internal pure returns (uint256 n) {
        for (; x != 0; x &= x - 1) ++n;
    }

    // ------------------------------------------------------------------ helpers

    /// @dev The bad debt reported by the Liquidated / BadDebtSettled events recorded.
    function _badDebtInLogs() internal returns (uint256 total) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 topic = keccak256("BadDebtSettled(address,uint256,uint256,uint256,uint256)");
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == topic) {
                (uint256 deficit,,) = abi.decode(logs[i].data, (uint256, uint256, uint256));
                total += deficit;
            }
        }
    }
}
