// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {MarginEngine} from "./MarginEngine.sol";
import {SafeCastLib} from "../libraries/WadMath.sol";

/// @title CashLedger
/// @notice The two cash movements the core and the configurator share: pulling tokens in
///         (measured on arrival) and settling an emptied account's bad debt.
abstract contract CashLedger is MarginEngine {
    using SafeERC20 for IERC20;

    /// @dev Pulls `amount` from `from` and returns what actually arrived.
    function _pull(IERC20 token, address from, uint256 amount) internal returns (uint256 received) {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(from, address(this), amount);
        received = token.balanceOf(address(this)) - before;
        if (received == 0) revert NothingReceived(address(token));
    }

    /// @dev An empty account with negative cash: the insurance fund covers what it can and the
    ///      pool's LPs absorb the rest. Every step is in the event; nothing is hidden.
    function _settleBadDebt(address owner, uint256 sub, Account storage acct) internal returns (uint256 deficit) {
        deficit = uint256(-int256(acct.cash));
        int256 fund = insuranceFund;
        uint256 fromInsurance = fund > 0 ? Math.min(deficit, uint256(fund)) : 0;
        uint256 socialized = deficit - fromInsurance;
        acct.cash = 0;
        insuranceFund = SafeCastLib.toInt128(fund - SafeCastLib.toInt(fromInsurance));
        address poolAddr = pool;
        _accounts[poolAddr][0].cash = SafeCastLib.toInt128(_accounts[poolAddr][0].cash - SafeCastLib.toInt(socialized));
        emit BadDebtSettled(owner, sub, deficit, fromInsurance, socialized);
    }
}
