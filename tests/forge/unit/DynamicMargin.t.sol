// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";

/// @notice Volatility scalars: bounds, rate limits and the MM ramp, and the property that no
///         update makes an account liquidatable in the block it lands.
contract DynamicMarginTest is Base {
    address internal risk = address(0x815C);

    function setUp() public override {
        super.setUp();
        vm.startPrank(admin);
        core.setRiskKeeper(risk);
        core.setRiskLimits(limits());
        vm.stopPrank();
    }

    function limits() internal pure returns (IPlimsoll.RiskLimits memory) {
        return IPlimsoll.RiskLimits({
            minScalarWad: 0.5e18,
            maxScalarWad: 4e18,
            maxStepWad: 0.5e18,
            minInterval: 1 hours,
            rampPeriod: 4 hours
        });
    }

    function post(uint256 m, uint64 s) internal {
        vm.prank(risk);
        core.setVolScalar(m, s);
    }

    function test_defaults_to_one() public {
        (uint256 a, uint256 b) = core.volScalars(ETH_PERP);
        assertEq(a, WAD);
        assertEq(b, WAD);
    }

    function test_auth_bounds_step_and_interval() public {
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, address(this)));
        core.setVolScalar(ETH_PERP, 1.2e18);
        vm.startPrank(risk);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.UnknownMarket.selector, uint256(7)));
        core.setVolScalar(7, 1.2e18);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("volStep"), uint256(1.6e18)));
        core.setVolScalar(ETH_PERP, 1.6e18); // +60% > 50% step
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("volScalar"), uint256(0.4e18)));
        core.setVolScalar(ETH_PERP, 0.4e18);
        core.setVolScalar(ETH_PERP, 1.5e18);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.UpdateTooSoon.selector, ETH_PERP, block.timestamp + 1 hours));
        core.setVolScalar(ETH_PERP, 1.6e18);
        vm.stopPrank();
        vm.warp(block.timestamp + 1 hours);
        post(ETH_PERP, 2.25e18); // +50% of 1.5
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, address(this)));
        core.setRiskLimits(limits());
    }

    function test_limits_hard_bounds() public {
        IPlimsoll.RiskLimits memory l = limits();
        l.maxScalarWad = 11e18;
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("maxScalar"), uint256(11e18)));
        core.setRiskLimits(l);
        l = limits();
        l.rampPeriod = 0;
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("rampPeriod"), uint256(0)));
        core.setRiskLimits(l);
        l = limits();
        l.maxStepWad = 0;
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("maxStep"), uint256(0)));
        core.setRiskLimits(l);
        vm.stopPrank();
    }

    function test_rise_ramps_mm_and_raises_im_at_once() public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 20e18);
        (, uint256 im0, uint256 mm0) = core.accountMargin(alice, 0);
        post(ETH_PERP, 1.5e18);
        (, uint256 im1, uint256 mm1) = core.accountMargin(alice, 0);
        assertEq(mm1, mm0, "MM unchanged in the update's block");
        assertGt(im1, im0, "IM rises at once");
        vm.warp(block.timestamp + 2 hours);
        skip(0);
        (uint256 sIm, uint256 sMm) = core.volScalars(ETH_PERP);
        assertEq(sIm, 1.5e18);
        assertEq(sMm, 1.25e18, "half way up the ramp");
        vm.warp(block.timestamp + 2 hours);
        skip(0);
        (sIm, sMm) = core.volScalars(ETH_PERP);
        assertEq(sMm, 1.5e18);
    }

    function test_fall_applies_at_once() public {
        post(ETH_PERP, 1.5e18);
        vm.warp(block.timestamp + 1 hours);
        post(ETH_PERP, 0.75e18);
        (uint256 sIm, uint256 sMm) = core.volScalars(ETH_PERP);
        assertEq(sIm, 0.75e18);
        assertEq(sMm, 0.75e18);
    }

    function test_rise_mid_ramp_continues_from_the_current_mm() public {
        post(ETH_PERP, 1.5e18);
        vm.warp(block.timestamp + 2 hours); // MM scalar 1.25
        post(ETH_PERP, 2e18);
        (uint256 sIm, uint256 sMm) = core.volScalars(ETH_PERP);
        assertEq(sIm, 2e18);
        assertEq(sMm, 1.25e18);
    }

    /// Property: whatever the account and the update, the liquidatable flag and MM are the same
    /// just before and just after the update lands (same block).
    function testFuzz_update_never_liquidates_in_its_block(
        uint256 sizeSeed,
        uint256 dropSeed,
        uint256 firstSeed,
        uint256 secondSeed,
        uint256 gapSeed
    ) public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, int256(bound(sizeSeed, 1e17, 45e18)));
        depositFor(bob, 0, CASH_ID, 20_000e6);
        tradeAs(bob, 0, BTC_PERP, -int256(bound(sizeSeed >> 64, 1e15, 2e18)));
        tradeAs(bob, 0, ETH_PERP, int256(bound(sizeSeed >> 128, 1e15, 20e18)));

        // A first update, some time, a price move, then a second update.
        post(ETH_PERP, uint64(bound(firstSeed, 0.5e18, 1.5e18)));
        vm.warp(block.timestamp + bound(gapSeed, 1 hours, 6 hours));
        skip(0);
        setPrice(ethFeed, 2_000e18 - bound(dropSeed, 0, 300e18));
        (, uint256 target) = core.volScalars(ETH_PERP);
        IPlimsoll.VolScalar memory v = core.volScalar(ETH_PERP);
        target = v.toWad;
        uint256 lo = target - target / 2;
        uint256 hi = target + target / 2;
        if (lo < 0.5e18) lo = 0.5e18;
        if (hi > 4e18) hi = 4e18;
        uint64 next = uint64(bound(secondSeed, lo, hi));

        bool aliceBefore = core.isLiquidatable(alice, 0);
        bool bobBefore = core.isLiquidatable(bob, 0);
        (,, uint256 mmBefore) = core.accountMargin(alice, 0);
        post(ETH_PERP, next);
        (,, uint256 mmAfter) = core.accountMargin(alice, 0);
        if (!aliceBefore) assertFalse(core.isLiquidatable(alice, 0), "alice: healthy stays healthy");
        if (!bobBefore) assertFalse(core.isLiquidatable(bob, 0), "bob: healthy stays healthy");
        assertLte(mmAfter, mmBefore, "MM never rises in the update's block");
    }

    /// During a ramp MM never falls and never overshoots the target's requirement.
    function testFuzz_ramp_is_monotone(uint256 t1, uint256 t2, uint256 s) public {
        depositFor(alice, 0, CASH_ID, 10_000e6);
        tradeAs(alice, 0, ETH_PERP, 10e18);
        post(ETH_PERP, uint64(bound(s, 1e18, 1.5e18)));
        uint256 a = bound(t1, 0, 5 hours);
        uint256 b = bound(t2, a, 6 hours);
        uint256 start = block.timestamp;
        vm.warp(start + a);
        (, uint256 mmA) = core.volScalars(ETH_PERP);
        vm.warp(start + b);
        (uint256 imB, uint256 mmB) = core.volScalars(ETH_PERP);
        assertLte(mmA, mmB);
        assertLte(mmB, imB);
    }
}
