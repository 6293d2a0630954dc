// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Base} from "../Base.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";

/// @notice Roles and every bounded setter: who may call it, and what it refuses.
contract AdminTest is Base {
    function test_admin_hands_over_roles_and_only_the_admin_may() public {
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, alice));
        vm.prank(alice);
        core.setAdmin(alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, alice));
        vm.prank(alice);
        core.setGuardian(alice);

        vm.prank(admin);
        core.setGuardian(bob);
        assertEq(core.guardian(), bob);
        vm.prank(bob);
        core.setPaused(4); // the new guardian can pause
        assertEq(uint256(core.paused()), 4);

        vm.prank(admin);
        core.setAdmin(alice);
        assertEq(core.admin(), alice);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Unauthorized.selector, admin));
        vm.prank(admin);
        core.setGuardian(admin); // the old admin lost the role
    }

    function test_configure_asset_updates_and_checks_bounds() public {
        vm.startPrank(admin);
        core.configureAsset(WETH_ID, 0.5e18, ETH_FEED, 7e18, false);
        IPlimsoll.AssetConfig memory a = core.assetConfig(WETH_ID);
        assertEq(uint256(a.haircutWad), 0.5e18);
        assertEq(uint256(a.cap), 7e18);
        assertFalse(a.enabled);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.UnknownAsset.selector, 9));
        core.configureAsset(9, 0.5e18, ETH_FEED, 1, true);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("haircut"), 0));
        core.configureAsset(WETH_ID, 0, ETH_FEED, 1, true);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("haircut"), 1e18 + 1));
        core.configureAsset(WETH_ID, 1e18 + 1, ETH_FEED, 1, true);
        vm.stopPrank();
        // Disabled: deposits refused, withdrawals still allowed.
        weth.mint(alice, 1e18);
        vm.startPrank(alice);
        weth.approve(address(core), type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.Disabled.selector, WETH_ID));
        core.deposit(0, WETH_ID, 1e18);
        vm.stopPrank();
    }

    function test_liquidation_config_bounds_each_field() public {
        IPlimsoll.LiquidationConfig memory ok = core.liquidationConfig();
        vm.startPrank(admin);
        IPlimsoll.LiquidationConfig memory c = ok;
        c.keeperShareWad = 1e18 + 1;
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("keeperShare"), 1e18 + 1));
        core.setLiquidationConfig(c);
        c = core.liquidationConfig();
        c.bufferWad = 1e18 + 1;
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("buffer"), 1e18 + 1));
        core.setLiquidationConfig(c);
        c = core.liquidationConfig();
        c.collateralBonusWad = 0.2e18 + 1;
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("collateralBonus"), 0.2e18 + 1));
        core.setLiquidationConfig(c);
        c = core.liquidationConfig();
        c.keeperRewardMin = c.keeperRewardCap + 1;
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.ParameterOutOfBounds.selector, bytes32("keeperRewardMin"), uint256(c.keeperRewardMin)));
        core.setLiquidationConfig(c);
        c = core.liquidationConfig();
        c.penaltyWad = 0.02e18;
        c.keeperRewardMin = 1e18;
        core.setLiquidationConfig(c);
        vm.stopPrank();
        IPlimsoll.LiquidationConfig memory got = core.liquidationConfig();
        assertEq(uint256(got.penaltyWad), 0.02e18);
        assertEq(uint256(got.keeperRewardMin), 1e18);
        assertEq(uint256(got.keeperRewardCap), uint256(ok.keeperRewardCap));
    }
}
