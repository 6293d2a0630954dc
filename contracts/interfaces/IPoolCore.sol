// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IPlimsoll} from "./IPlimsoll.sol";
import {IOracleRouter} from "./IOracleRouter.sol";
import {IOptions} from "./IOptions.sol";

/// @title IPoolCore
/// @notice What the liquidity pool calls at the core's address. Some of these run in the core
///         itself (the cash moves), the rest in the configurator or the periphery behind the
///         core's fallback (the views), so the pool needs the core's whole surface as one
///         interface rather than the core contract's own type.
interface IPoolCore {
    function paused() external view returns (uint8);
    function oracle() external view returns (IOracleRouter);
    function options() external view returns (IOptions);
    function marketCount() external view returns (uint256);
    function marketConfig(uint256 marketId) external view returns (IPlimsoll.MarketConfig memory);
    function marketState(uint256 marketId) external view returns (IPlimsoll.MarketState memory);

    /// @notice The pool's equity in cash token units, rounded down, floored at zero.
    function poolAssets() external view returns (uint256);
    /// @notice What the pool can pay out now [cash token units].
    function poolFreeCash() external view returns (uint256);
    /// @notice The pool moves LP cash [token units] in.
    function poolDeposit(uint256 amount) external;
    /// @notice The pool pays an LP `amount` [token units]; the pool must keep its IM.
    function poolWithdraw(uint256 amount, address receiver) external;
}
