// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionsBase} from "./Options.t.sol";

/// @notice Finding 4 of issue 12: portfolio margin prices perps in its scenario grid, which
///         knows nothing of size; the size-dependent part of the perp rate is added on top, so a
///         large position never gets cheaper by switching mode (before: 2,000 ETH long asked
///         IM 1.2M in standard margin and ~0.85M in portfolio margin).
contract PortfolioSizeTest is OptionsBase {
    function test_large_perp_position_is_not_cheaper_in_portfolio_margin() public {
        depositFor(alice, 0, CASH_ID, 2_000_000e6);
        tradeAs(alice, 0, ETH_PERP, 2_000e18); // 4M notional, standard rate 10% + 20%
        (, uint256 imStd, uint256 mmStd) = core.accountMargin(alice, 0);
        assertEq(imStd, 1_200_000e18);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        (, uint256 imPm, uint256 mmPm) = core.accountMargin(alice, 0);
        assertGte(imPm, imStd, "portfolio IM >= standard IM");
        assertGte(mmPm, mmStd, "portfolio MM >= standard MM");
        // The grid (18% shock + 0.5% contingency, IM x 1.15) plus the size term (20% of the
        // notional for IM, x 0.5 for MM).
        assertEq(mmPm, 740_000e18 + 400_000e18);
        assertEq(imPm, 851_000e18 + 800_000e18);
    }

    /// Over sizes: a perp-only subaccount asks at least as much in portfolio as in standard mode.
    function testFuzz_portfolio_margin_never_prices_size_below_standard(uint256 sizeSeed, bool short_) public {
        uint256 size = bound(sizeSeed, 1e18, 4_000e18);
        depositFor(alice, 0, CASH_ID, size * 2_000 / 1e12 + 1_000e6);
        tradeAs(alice, 0, ETH_PERP, short_ ? -int256(size) : int256(size));
        (, uint256 imStd, uint256 mmStd) = core.accountMargin(alice, 0);
        vm.prank(alice);
        core.setPortfolioMargin(0, true);
        (, uint256 imPm, uint256 mmPm) = core.accountMargin(alice, 0);
        assertGte(imPm, imStd);
        assertGte(mmPm, mmStd);
    }
}
