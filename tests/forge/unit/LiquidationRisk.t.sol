// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {Vm} from "@prb/test/src/Vm.sol";
import {OptionsBase} from "./Options.t.sol";

/// @notice Issue 13, findings 5 and 6: the liquidation penalty and close fraction follow the
///         risk removed (long options do not inflate them), and a keeper gains nothing by
///         naming a witness scenario milder than the worst (liquidation episodes).
contract LiquidationRiskTest is OptionsBase {
    uint256 internal farCall; // K 4,000, 30 days: far out of the money

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        farCall = opt.listSeries(ETH_PERP, true, EXPIRY, 4_000e18);
    }

    // ------------------------------------------------------------------ finding 5

    struct Measured {
        int256 equity;
        uint256 fraction;
        int256 loss; // the penalty the owner pays
        int256 reward;
    }

    /// @dev One liquidation of `who`: its equity before, fraction, loss (penalty) and reward.
    function liquidateMeasured(address who) internal returns (Measured memory m) {
        (m.equity,,) = core.accountMargin(who, 0);
        int256 k0 = cashOf(keeper, 0);
        int256 i0 = core.insuranceFund();
        vm.prank(keeper);
        m.fraction = core.liquidate(who, 0);
        m.reward = cashOf(keeper, 0) - k0;
        m.loss = m.reward + (core.insuranceFund() - i0);
        emit LogNamedInt256("equity", m.equity);
        emit LogNamedUint256("fraction", m.fraction);
        emit LogNamedInt256("loss", m.loss);
        emit LogNamedInt256("reward", m.reward);
    }

    /// Alice and carol hold the same long perp (40 ETH) on the same equity; carol also holds
    /// 200 far-OTM calls (K 4,000). The calls carry no requirement, so they must neither turn
    /// carol's partial liquidation into a full one nor raise her penalty. Before the fix they
    /// counted at their spot notional (200 x spot): carol was closed in full.
    function test_long_options_do_not_inflate_the_liquidation_penalty_or_close_fraction() public {
        depositFor(alice, 0, CASH_ID, 9_000e6);
        tradeAs(alice, 0, ETH_PERP, 40e18);
        depositFor(carol, 0, CASH_ID, 9_000e6);
        tradeAs(carol, 0, ETH_PERP, 40e18);
        int256 c0 = cashOf(carol, 0);
        optTrade(carol, 0, farCall, 200e18);
        // Carol is refunded what the calls cost: the same equity but their haircut value.
        depositFor(carol, 0, CASH_ID, uint256(c0 - cashOf(carol, 0)) / 1e12);
        setPrice(ethFeed, 1_869e18);
        assertTrue(core.isLiquidatable(alice, 0) && core.isLiquidatable(carol, 0));
        (,, uint256 mmA) = core.accountMargin(alice, 0);
        (,, uint256 mmC) = core.accountMargin(carol, 0);
        assertEq(mmC, mmA, "the calls carry no MM");

        Measured memory a = liquidateMeasured(alice);
        Measured memory c = liquidateMeasured(carol);
        assertAlmostEq(c.equity, a.equity, 30e18, "about the same equity");
        assertLt(a.fraction, WAD, "alice: partial");
        assertLt(c.fraction, WAD, "carol: partial too");
        assertLte(c.fraction, a.fraction, "the calls add no close fraction");
        assertLte(c.loss, a.loss, "the calls add no penalty");
        assertEq(sizeOf(carol, 0, ETH_PERP), 40e18 - toInt(mulUp(40e18, c.fraction)), "the same share of the perp");
        (int256 e,, uint256 mm) = core.accountMargin(carol, 0);
        assertGte(e, toInt(mm), "carol's MM restored");
    }

    /// The options' notional the core uses counts short positions only, in standard and
    /// portfolio mode, on the full grid and on a witness.
    function test_option_notional_counts_short_positions_only() public {
        depositFor(alice, 0, CASH_ID, 20_000e6);
        optTrade(alice, 0, farCall, 50e18);
        optTrade(alice, 0, atmCall, -2e18);
        uint256 want = mulUp(2e18, 2_000e18);
        (,,, uint256 n,,,) = opt.accountRisk(alice, 0, false, FULL);
        assertEq(n, want, "standard");
        (,,, n,,,) = opt.accountRisk(alice, 0, true, FULL);
        assertEq(n, want, "portfolio, full grid");
        (,,, n,,,) = opt.accountRisk(alice, 0, true, 3);
        assertEq(n, want, "portfolio, witness");
    }

    // ------------------------------------------------------------------ finding 6

    /// @dev A portfolio covered call scaled by `scale` (10 x scale ETH perp long, as many ATM
    ///      calls short) brought below MM at spot 1,700.
    function pmAccountUnderwater(uint256 scale) internal {
        depositFor(alice, 0, CASH_ID, 4_000e6 * scale);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        optTrade(alice, 0, atmCall, -10e18 * int256(scale));
        tradeAs(alice, 0, ETH_PERP, 10e18 * int256(scale));
        setPrice(ethFeed, 1_700e18);
    }

    /// @dev The core's MM of alice on witness k (the grid's L plus the perps' size term).
    function lossBound(uint256 k) internal view returns (uint256) {
        (,, uint256 mm) = core.accountMargin(alice, 0);
        return mmOf(alice, 0, k) + (mm - mmOf(alice, 0, FULL));
    }

    /// @dev The scenario with the largest L (the full grid's MM) and the breaking one with
    ///      the smallest (0 if none breaks).
    function worstAndMildest() internal view returns (uint256 worst, uint256 mildest, bool breaks) {
        (int256 e,,) = core.accountMargin(alice, 0);
        uint256 hi;
        uint256 lo = type(uint256).max;
        for (uint256 k; k < N_SCENARIOS; ++k) {
            uint256 l = lossBound(k);
            if (l > hi) (hi, worst) = (l, k);
            if (toInt(l) > e && l < lo) (lo, mildest, breaks) = (l, k, true);
        }
    }

    /// @dev Liquidates alice on witness k, then on the worst scenario while she is still
    ///      liquidatable: the keeper's total reward and the number of liquidations.
    function twoStep(uint256 k) internal returns (int256 reward, uint256 steps) {
        int256 k0 = cashOf(keeper, 0);
        vm.prank(keeper);
        core.liquidateWitness(alice, 0, k);
        steps = 1;
        if (core.isLiquidatable(alice, 0)) {
            (uint256 worst,,) = worstAndMildest();
            vm.prank(keeper);
            core.liquidateWitness(alice, 0, worst);
            ++steps;
        }
        reward = cashOf(keeper, 0) - k0;
    }

    function oneStepWorst() internal returns (int256 reward) {
        (uint256 worst,,) = worstAndMildest();
        int256 k0 = cashOf(keeper, 0);
        vm.prank(keeper);
        core.liquidateWitness(alice, 0, worst);
        reward = cashOf(keeper, 0) - k0;
        (int256 e,, uint256 mm) = core.accountMargin(alice, 0);
        assertGte(e, toInt(mm), "the worst scenario restores the full MM at once");
    }

    /// A keeper names the mildest breaking scenario: the account is left liquidatable on the
    /// full grid, and the keeper liquidates it again on the worst. Its two rewards add up to
    /// no more than naming the worst once (before: the minimum reward, or the cap, was paid
    /// on each step). Small account (the minimum reward binds) and large (the cap binds).
    function test_naming_the_mildest_scenario_then_liquidating_again_gains_nothing() public {
        uint256[2] memory scales = [uint256(1), 30];
        for (uint256 i; i < scales.length; ++i) {
            uint256 snap = vm.snapshot();
            pmAccountUnderwater(scales[i]);
            (, uint256 mildest, bool breaks) = worstAndMildest();
            assertTrue(breaks);
            uint256 s2 = vm.snapshot();
            int256 one = oneStepWorst();
            vm.revertTo(s2);
            vm.prank(keeper);
            uint256 f1 = core.liquidateWitness(alice, 0, mildest);
            assertTrue(core.isLiquidatable(alice, 0), "the mild witness closed too little");
            vm.revertTo(s2);
            (int256 two, uint256 steps) = twoStep(mildest);
            emit LogNamedUint256("scale", scales[i]);
            emit LogNamedUint256("mildest scenario", mildest);
            emit LogNamedUint256("its close fraction", f1);
            emit LogNamedInt256("reward, worst once", one);
            emit LogNamedInt256("reward, mildest then worst", two);
            assertEq(steps, 2);
            assertLte(two, one, "naming a milder scenario gains nothing");
            vm.revertTo(snap);
        }
    }

    /// @dev R(x) = min(max(x keeperShare, keeperRewardMin), keeperRewardCap) at the
    ///      deployment's parameters (50%, 5, 100).
    function rewardOf(uint256 penalty) internal pure returns (uint256 r) {
        r = penalty / 2;
        if (r < 5e18) r = 5e18;
        if (r > 100e18) r = 100e18;
    }

    /// @dev `who` liquidates alice on witness k: its reward and the closed notional (event).
    function liquidateRecorded(address who, uint256 k) internal returns (int256 reward, uint256 closedNotional) {
        int256 c0 = cashOf(who, 0);
        vm.recordLogs();
        vm.prank(who);
        core.liquidateWitness(alice, 0, k);
        reward = cashOf(who, 0) - c0;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 sig = IPlimsoll.Liquidated.selector;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(core) && logs[i].topics[0] == sig) {
                (, closedNotional,,,) = abi.decode(logs[i].data, (uint256, uint256, uint256, uint256, uint256));
            }
        }
    }

    /// Within an episode anyone may finish the liquidation on a worse scenario and is paid
    /// R(P + p) - R(P) for the penalty p its close adds to the episode's P: the proportional
    /// part only, no second minimum, and nothing past the cap. After `EPISODE` (1 hour) a new
    /// episode opens and pays the whole rule again.
    function test_episode_continuation_pays_what_it_closes_once_and_expires_after_an_hour() public {
        pmAccountUnderwater(1);
        (, uint256 mildest,) = worstAndMildest();
        liquidateRecorded(keeper, mildest);
        IPlimsoll.Account memory a = core.getAccount(alice, 0);
        assertEq(uint256(a.episodeStart), block.timestamp, "episode opened");
        uint256 booked = uint256(a.episodePenalty) * 1e12;
        assertGt(booked, 0, "its penalty booked");
        uint256 s = vm.snapshot();
        (uint256 worst,,) = worstAndMildest();
        (int256 cont, uint256 n) = liquidateRecorded(carol, worst);
        uint256 p = mulUp(n, 0.01e18);
        assertGt(cont, 0, "the next keeper is paid for what it closes");
        assertEq(cont, toInt(rewardOf(booked + p) - rewardOf(booked)), "R(P + p) - R(P)");
        assertLte(cont, toInt(rewardOf(p)), "no more than a liquidation of its own");
        vm.revertTo(s);
        skipFresh(1 hours);
        assertTrue(core.isLiquidatable(alice, 0));
        (worst,,) = worstAndMildest();
        (cont, n) = liquidateRecorded(carol, worst);
        assertEq(cont, toInt(rewardOf(mulUp(n, 0.01e18))), "a new episode: the whole rule");
        assertEq(uint256(core.getAccount(alice, 0).episodeStart), block.timestamp, "a new episode");
    }

    /// A large account: the mild witness already earns the cap; finishing the episode on the
    /// worst scenario pays nothing more (before: the cap again).
    function test_episode_pays_the_cap_once() public {
        pmAccountUnderwater(30);
        (, uint256 mildest,) = worstAndMildest();
        (int256 first,) = liquidateRecorded(keeper, mildest);
        assertEq(first, 100e18, "the cap");
        assertTrue(core.isLiquidatable(alice, 0));
        (uint256 worst,,) = worstAndMildest();
        (int256 cont, uint256 n) = liquidateRecorded(carol, worst);
        assertGt(n, 0, "the worst closes more");
        assertEq(cont, 0, "the cap is paid once per episode");
        (int256 e,, uint256 mm) = core.accountMargin(alice, 0);
        assertGte(e, toInt(mm), "MM restored");
    }

    /// Over every breaking scenario and account sizes from the minimum-reward regime to the
    /// cap: first naming scenario k, then the worst, never pays more than the worst once.
    function testFuzz_no_scenario_pays_more_than_the_worst(uint256 k, uint256 scaleSeed) public {
        k = bound(k, 0, N_SCENARIOS - 1);
        uint256 scale = bound(scaleSeed, 1, 30);
        pmAccountUnderwater(scale);
        (int256 e,,) = core.accountMargin(alice, 0);
        if (toInt(lossBound(k)) <= e) return; // k does not break: refused (tested elsewhere)
        uint256 s = vm.snapshot();
        int256 one = oneStepWorst();
        vm.revertTo(s);
        (int256 two,) = twoStep(k);
        assertLte(two, one, "naming a milder scenario gains nothing");
    }
}
