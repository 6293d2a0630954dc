// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";

/// @notice Partial liquidation, the penalty split, collateral sales and the bad-debt waterfall.
contract LiquidationTest is Base {
    /// @dev Alice: 10,000 USDC and 45 ETH long at 2,000 (IM 9,405, MM 4,702.5, equity 9,955).
    function openLeveragedLong() internal {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 45e18);
    }

    function test_liquidate_rejects_healthy_account() public {
        openLeveragedLong();
        (int256 equity,, uint256 mm) = core.accountMargin(alice, 0);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.AccountHealthy.selector, alice, 0, equity, mm));
        core.liquidate(alice, 0);
    }

    function test_liquidate_rejects_healthy_account_without_positions() public {
        depositFor(alice, 0, CASH_ID, 10e6);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.AccountHealthy.selector, alice, 0, 10e18, 0));
        core.liquidate(alice, 0);
    }

    function test_liquidate_at_exact_maintenance_boundary_is_refused() public {
        openLeveragedLong();
        // Below MM by one price step it is liquidatable; at the first healthy price it is not.
        uint256 p = 1_900e18;
        while (!core.isLiquidatable(alice, 0)) {
            p -= 1e18;
            setPrice(ethFeed, p);
        }
        setPrice(ethFeed, p + 1e18);
        vm.expectRevert();
        core.liquidate(alice, 0);
        setPrice(ethFeed, p);
        core.liquidate(alice, 0);
    }

    /// A liquidation succeeds exactly on unhealthy accounts and leaves them at or above MM
    /// (with the buffer, when partial) or with every position closed.
    function testFuzz_liquidation_restores_maintenance_or_closes(uint256 sizeSeed, uint256 dropSeed, bool withBtc)
        public
    {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, int256(bound(sizeSeed, 1e17, 45e18)));
        if (withBtc) tradeAs(alice, 0, BTC_PERP, -int256(bound(sizeSeed >> 128, 1e12, 0.01e18)));
        setPrice(ethFeed, 2_000e18 - bound(dropSeed, 0, 600e18));

        bool unhealthy = core.isLiquidatable(alice, 0);
        (int256 e0,, uint256 mm0) = core.accountMargin(alice, 0);
        vm.prank(keeper);
        (bool ok, bytes memory ret) = address(core).call(abi.encodeCall(core.liquidate, (alice, 0)));
        assertEq(ok, unhealthy, "liquidation succeeds iff equity < MM");
        if (!ok) {
            assertEq(bytes4(ret), IPlimsoll.AccountHealthy.selector);
            assertGte(e0, toInt(mm0));
            return;
        }
        uint256 fraction = abi.decode(ret, (uint256));
        assertGt(fraction, 0);
        assertLte(fraction, WAD);
        IPlimsoll.Account memory a = core.getAccount(alice, 0);
        (int256 e1,, uint256 mm1) = core.accountMargin(alice, 0);
        if (a.marketMask != 0) {
            assertLt(fraction, WAD, "positions left only after a partial liquidation");
            IPlimsoll.LiquidationConfig memory lc = core.liquidationConfig();
            assertGte(e1, toInt(mm1), "partial liquidation restores MM");
            assertGte(e1, toInt(mulUp(mm1, WAD + lc.bufferWad)) - 1e6, "and the buffer, up to rounding");
        } else {
            assertEq(fraction, WAD);
        }
    }

    /// The close fraction is the smallest that restores MM x (1 + buffer):
    /// f = (MM(1+buf) - E) / (MM(1+buf) - N x penalty), rounded up.
    function test_partial_liquidation_fraction_matches_formula() public {
        openLeveragedLong();
        setPrice(ethFeed, 1_870e18);
        (int256 equity,, uint256 mm) = core.accountMargin(alice, 0);
        IPlimsoll.LiquidationConfig memory lc = core.liquidationConfig();
        uint256 notional = mulUp(45e18, 1_870e18);
        uint256 target = mulUp(mm, WAD + lc.bufferWad);
        uint256 expected = ceilDiv((target - uint256(equity)) * WAD, target - mulUp(notional, lc.penaltyWad));
        assertGt(expected, 0.25e18);
        assertLt(expected, 0.35e18);

        vm.prank(keeper);
        uint256 fraction = core.liquidate(alice, 0);
        assertEq(fraction, expected);
        // size x f rounded away from zero is closed; the rest stays open.
        assertEq(sizeOf(alice, 0, ETH_PERP), 45e18 - int256(mulUp(45e18, fraction)));
        // Closing less than f would not have reached the target: f is minimal.
        uint256 fLess = fraction - 1e15;
        uint256 eLess = uint256(equity) - mulUp(mulUp(notional, fLess), lc.penaltyWad);
        assertLt(eLess, mulUp(target, WAD - fLess));
    }

    /// penalty = ceil(closedNotional x 1%) (at most the equity); the keeper gets half of it
    /// (capped), the insurance fund the rest; the realized PnL moves against the pool.
    function test_penalty_and_keeper_reward_split() public {
        depositFor(alice, 0, CASH_ID, 2_000e6);
        tradeAs(alice, 0, ETH_PERP, 9e18); // IM 1,816.2; equity 1,991
        setPrice(ethFeed, 1_860e18); // equity 731 < MM 844.5
        (int256 equity,,) = core.accountMargin(alice, 0);
        int256 aliceCash0 = cashOf(alice, 0);
        int256 pool0 = poolCash();
        int256 ins0 = core.insuranceFund();
        int256 booked0 = core.cashBooked();

        vm.prank(keeper);
        core.liquidate(alice, 0);

        int256 closed = 9e18 - sizeOf(alice, 0, ETH_PERP);
        assertGt(closed, 0);
        assertLt(closed, 9e18, "partial");
        uint256 penalty = mulUp(mulUp(uint256(closed), 1_860e18), 0.01e18);
        uint256 reward = penalty / 2;
        assertLt(reward, 100e18, "below the cap here");
        // The whole position is settled to the mark and the rest reopened there:
        // realized = 9 x (1,860 - 2,000).
        int256 realized = -1_260e18;
        assertEq(cashOf(keeper, 0), toInt(reward), "keeper earns its share in subaccount 0");
        assertEq(core.insuranceFund() - ins0, toInt(penalty - reward), "the rest goes to insurance");
        assertEq(cashOf(alice, 0) - aliceCash0, realized - toInt(penalty));
        assertEq(poolCash() - pool0, -realized);
        assertEq(core.cashBooked(), booked0, "no cash created or destroyed");
        (int256 equityAfter,,) = core.accountMargin(alice, 0);
        assertEq(equityAfter, equity - toInt(penalty), "equity only pays the penalty");
    }

    function test_keeper_reward_is_capped() public {
        openLeveragedLong();
        setPrice(ethFeed, 1_870e18); // closes ~30% of 84,150: penalty ~250, half > 100
        int256 ins0 = core.insuranceFund();
        vm.prank(keeper);
        core.liquidate(alice, 0);
        assertEq(cashOf(keeper, 0), 100e18, "reward capped at keeperRewardCap");
        assertGt(core.insuranceFund() - ins0, 100e18, "insurance keeps the excess");
    }

    /// An underwater account closes fully; it pays no reward (rewards come out of equity only,
    /// so that no liquidation pays anyone out of the insurance fund or the LPs), and the
    /// insurance fund covers exactly the deficit.
    function test_underwater_account_closes_fully_and_insurance_covers_bad_debt() public {
        openLeveragedLong();
        setPrice(ethFeed, 1_700e18); // loss 13,500 > equity 9,955
        (int256 equity,,) = core.accountMargin(alice, 0);
        assertLt(equity, 0);
        int256 ins0 = core.insuranceFund();
        int256 pool0 = poolCash();

        vm.prank(keeper);
        uint256 fraction = core.liquidate(alice, 0);
        assertEq(fraction, WAD);
        assertEq(sizeOf(alice, 0, ETH_PERP), 0);
        assertEq(cashOf(alice, 0), 0, "deficit written off");
        assertEq(cashOf(keeper, 0), 0, "an underwater account pays no reward");
        // The pool gains the realized 13,500; insurance pays the deficit, nothing more.
        assertEq(poolCash() - pool0, 13_500e18);
        assertEq(core.insuranceFund() - ins0, equity);
    }

    function test_bad_debt_beyond_insurance_is_socialized_to_the_pool() public {
        depositFor(alice, 0, CASH_ID, 400_000e6);
        tradeAs(alice, 0, ETH_PERP, 900e18); // IM 342,000; fee 900
        setPrice(ethFeed, 1_400e18); // loss 540,000
        (int256 equity,,) = core.accountMargin(alice, 0);
        uint256 deficit = uint256(-equity); // no reward from an underwater account
        assertGt(deficit, INSURANCE_SEED * 1e12);
        int256 pool0 = poolCash();
        uint256 lpAssets0 = pool.totalAssets();

        core.liquidate(alice, 0);
        assertEq(core.insuranceFund(), 0, "insurance pays first, all of it");
        uint256 socialized = deficit - INSURANCE_SEED * 1e12;
        assertEq(poolCash() - pool0, 540_000e18 - toInt(socialized));
        // LPs had already priced the position's loss as their gain; the socialized part comes off.
        assertEq(lpAssets0 - pool.totalAssets(), ceilDiv(socialized, 1e12));
    }

    // ------------------------------------------------------------------ collateral sales

    /// @dev Alice: 10 WETH collateral (16,000 at its haircut), 2 BTC long, no cash. BTC at
    ///      52,031.5 leaves equity 3 (< the minimum reward): the liquidation closes everything and
    ///      leaves a debt of exactly the WETH's haircut value, so nothing is written off.
    function leaveDebtAgainstCollateral() internal returns (int256 debt) {
        depositFor(alice, 0, WETH_ID, 10e18);
        tradeAs(alice, 0, BTC_PERP, 2e18);
        setPrice(btcFeed, 52_031.5e18);
        core.liquidate(alice, 0);
        assertEq(core.getAccount(alice, 0).marketMask, 0);
        debt = cashOf(alice, 0);
        // loss 15,937 + fee 60 + the reward, capped at the equity left (3)
        assertEq(debt, -16_000e18);
        usdc.mint(keeper, 1_000_000e6);
        vm.prank(keeper);
        usdc.approve(address(core), type(uint256).max);
    }

    function test_liquidate_collateral_sells_at_the_bonus() public {
        leaveDebtAgainstCollateral();
        setPrice(ethFeed, 1_999e18); // the WETH no longer covers the debt at its haircut
        int256 booked0 = core.cashBooked();
        vm.prank(keeper);
        uint256 seized = core.liquidateCollateral(alice, 0, WETH_ID, 5_000e6);
        uint256 want = 5_250e18 * WAD / 1_999e18; // 5,000 x 1.05 / 1,999, rounded down
        assertEq(seized, want);
        assertEq(weth.balanceOf(keeper), want);
        assertEq(core.collateralBalance(alice, 0, WETH_ID), 10e18 - want);
        assertEq(core.assetConfig(WETH_ID).totalDeposited, 10e18 - want);
        assertEq(cashOf(alice, 0), -11_000e18);
        assertEq(core.cashBooked(), booked0 + 5_000e18);
    }

    function test_liquidate_collateral_caps_at_balance_then_settles_bad_debt() public {
        leaveDebtAgainstCollateral();
        setPrice(ethFeed, 1_500e18); // 10 WETH = 15,000 < 16,000 x 1.05
        // Nothing left for `liquidate`: collateral goes through `liquidateCollateral`.
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.NoPositions.selector, alice, 0));
        core.liquidate(alice, 0);
        int256 ins0 = core.insuranceFund();
        vm.prank(keeper);
        uint256 seized = core.liquidateCollateral(alice, 0, WETH_ID, 1_000_000e6);
        assertEq(seized, 10e18, "the whole balance");
        // repay = 15,000 / 1.05 rounded up to a token unit
        uint256 repay = ceilDiv(15_000e18 * WAD / 1.05e18 + 1, 1e12);
        assertAlmostEq(usdc.balanceOf(keeper), 1_000_000e6 - repay, 1);
        assertEq(cashOf(alice, 0), 0, "rest written off");
        assertEq(core.getAccount(alice, 0).assetMask, 0);
        assertLt(core.insuranceFund(), ins0);
    }

    function test_liquidate_collateral_rejects_healthy_or_open_accounts() public {
        depositFor(alice, 0, WETH_ID, 10e18);
        tradeAs(alice, 0, BTC_PERP, 0.5e18);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.CollateralNotSeizable.selector, alice, 0));
        core.liquidateCollateral(alice, 0, WETH_ID, 100e6);
        // Closed with a small debt (fees) that the collateral covers: healthy.
        tradeAs(alice, 0, BTC_PERP, -0.5e18);
        assertLt(cashOf(alice, 0), 0);
        (int256 equity,,) = core.accountMargin(alice, 0);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.AccountHealthy.selector, alice, 0, equity, 0));
        core.liquidateCollateral(alice, 0, WETH_ID, 100e6);
    }

    // ------------------------------------------------------------------ isolation, gas

    function test_isolated_subaccount_loss_stays_isolated() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, BTC_PERP, 0.1e18);
        vm.prank(alice);
        core.configureSubaccount(1, uint8(ETH_PERP + 1));
        depositFor(alice, 1, CASH_ID, 10_000e6);
        tradeAs(alice, 1, ETH_PERP, 45e18);

        IPlimsoll.Account memory before0 = core.getAccount(alice, 0);
        IPlimsoll.Position memory pos0 = core.getPosition(alice, 0, BTC_PERP);
        setPrice(ethFeed, 1_500e18); // sub 1 is deeply underwater
        core.liquidate(alice, 1);
        assertEq(sizeOf(alice, 1, ETH_PERP), 0);
        assertEq(cashOf(alice, 1), 0, "sub 1's deficit went to insurance");

        IPlimsoll.Account memory after0 = core.getAccount(alice, 0);
        assertEq(after0.cash, before0.cash, "sub 0 untouched");
        assertEq(core.getPosition(alice, 0, BTC_PERP).size, pos0.size);
        assertEq(core.getPosition(alice, 0, BTC_PERP).openNotional, pos0.openNotional);
        assertFalse(core.isLiquidatable(alice, 0));
    }

    /// Sanity figure, not a snapshot: gas of `liquidate` on a one-position account.
    function test_gas_liquidate_one_position() public {
        openLeveragedLong();
        setPrice(ethFeed, 1_870e18);
        vm.prank(keeper);
        uint256 g = gasleft();
        core.liquidate(alice, 0);
        g -= gasleft();
        emit LogNamedUint256("gas: liquidate, 1 position, partial", g);
        assertLt(g, 250_000);

        // Full close with bad debt, for comparison.
        depositFor(bob, 0, CASH_ID, 10_000e6);
        tradeAs(bob, 0, BTC_PERP, 1.5e18);
        setPrice(btcFeed, 50_000e18);
        vm.prank(keeper);
        g = gasleft();
        core.liquidate(bob, 0);
        g -= gasleft();
        emit LogNamedUint256("gas: liquidate, 1 position, full + bad debt", g);
        assertLt(g, 250_000);
    }
}
