// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionsBase} from "../unit/Options.t.sol";
import {PoolOptionsHandler} from "./PoolOptionsHandler.sol";

/// @notice Properties of the liquidity pool with the options market (issue 13), over random
///         sequences of option trades and closes, LP deposits and redemptions, liquidations,
///         settlements, price moves, time warps and bad oracle states:
///         (p1) at unchanged prices and time no sequence raises the actors' combined value
///              (wallet + trading cash + options at full mark + LP shares) beyond rounding,
///              nor lowers the honest LP's: trading cannot move the share price;
///         (p2) settling every position of a settled series leaves totalAssets unchanged (the
///              pool's payoff was already in it) and moves exactly the cash the accounts get;
///         (p3) totalAssets and every ERC-4626 view return, in every oracle state.
contract PoolOptionsInvariantsTest is OptionsBase {
    PoolOptionsHandler internal handler;

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    function setUp() public override {
        super.setUp();
        // The spot breaker: a round-to-round move above 25% is SUSPECT (the handler's price
        // moves stay within 15%; its wick state is -40%).
        vm.prank(admin);
        oracle.setBreaker(ETH_FEED, 0.25e18, 2, 10 minutes);
        handler = new PoolOptionsHandler(
            core, pool, opt, usdc, ethFeed, ivFeed, lp, [atmCall, atmPut, otmCall, call90]
        );
        vm.label(address(handler), "PoolOptionsHandler");
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory s) {
        bytes4[] memory sel = new bytes4[](13);
        sel[0] = PoolOptionsHandler.optTrade.selector;
        sel[1] = PoolOptionsHandler.optTrade.selector; // trades twice as often
        sel[2] = PoolOptionsHandler.optClose.selector;
        sel[3] = PoolOptionsHandler.lpDeposit.selector;
        sel[4] = PoolOptionsHandler.lpDeposit.selector;
        sel[5] = PoolOptionsHandler.lpRedeem.selector;
        sel[6] = PoolOptionsHandler.liquidate.selector;
        sel[7] = PoolOptionsHandler.movePrice.selector;
        sel[8] = PoolOptionsHandler.warp.selector;
        sel[9] = PoolOptionsHandler.settle.selector;
        sel[10] = PoolOptionsHandler.oracleState.selector;
        sel[11] = PoolOptionsHandler.lpFulfil.selector;
        sel[12] = PoolOptionsHandler.lpClaim.selector;
        s = new FuzzSelector[](1);
        s[0] = FuzzSelector(address(handler), sel);
    }

    /// (p1), (p2), (p3) after every call of every run (the handler checks every view inside
    /// each bad oracle state it creates, where a revert would show; here totalAssets in the
    /// state the call left).
    function invariant_pool_and_options() public {
        if (handler.valueLeaks() + handler.settlementLeaks() + handler.viewLeaks() != 0) fail(handler.lastLeak());
        pool.totalAssets();
    }

    /// A fixed pseudo-random walk through the handler: the actions succeed often enough for
    /// the properties to bite (trades, LP moves, settlements, bad oracle states), and the
    /// properties hold along the way. Logs the largest rise of the actors' value seen.
    function test_pool_options_handler_drives_every_action() public {
        for (uint256 i; i < 400; ++i) {
            uint256 r = uint256(keccak256(abi.encode("pool-walk", i)));
            uint256 a = uint256(keccak256(abi.encode(r, 1)));
            uint256 b = uint256(keccak256(abi.encode(r, 2)));
            uint256 action = r % 19;
            if (action < 5) handler.optTrade(a, b, r >> 100, r & 1 == 1);
            else if (action == 5) handler.optClose(a, b);
            else if (action < 8) handler.lpDeposit(a, b);
            else if (action == 8) handler.lpRedeem(a, b);
            else if (action < 17 && action >= 15) handler.lpFulfil(a);
            else if (action >= 17) handler.lpClaim(a);
            else if (action == 9) handler.liquidate(a);
            else if (action == 10) handler.movePrice(a, b);
            else if (action == 11) handler.warp(a);
            else if (action < 14) handler.settle(a);
            else handler.oracleState(a, b);
            invariant_pool_and_options();
        }
        emit LogNamedUint256("calls", handler.calls());
        emit LogNamedUint256("successes", handler.successes());
        emit LogNamedUint256("option trades", handler.tradesDone());
        emit LogNamedUint256("LP moves", handler.lpMoves());
        emit LogNamedUint256("settlements", handler.settlements());
        emit LogNamedUint256("fulfilments", handler.fulfilments());
        emit LogNamedUint256("claims", handler.claims());
        emit LogNamedInt256("largest rise of the actors' value in an epoch [USDC units]", handler.worstLeak());
        assertGt(handler.tradesDone(), 50, "trades");
        assertGt(handler.lpMoves(), 10, "LP requests");
        assertGt(handler.lpMoves() + handler.fulfilments() + handler.claims(), 40, "LP moves");
        assertGt(handler.settlements(), 0, "settlements");
        assertGt(handler.fulfilments(), 10, "fulfilments");
        assertGt(handler.claims(), 5, "claims");
        assertGt(handler.badOracleSteps(), 0, "bad oracle states");
        assertEq(handler.viewLeaks(), 0);
    }
}
