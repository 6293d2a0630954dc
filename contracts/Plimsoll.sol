// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {Liquidations} from "./core/Liquidations.sol";
import {PlimsollStorage} from "./core/PlimsollStorage.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";
import {WadMath, SafeCastLib} from "./libraries/WadMath.sol";

/// @title Plimsoll
/// @notice The margin core: custody, perpetuals, standard margin, liquidation. This file holds
///         the liquidity pool's entry points and the fallback into the configurator (roles,
///         registry and parameter setters within hard bounds, transfers between subaccounts,
///         the insurance fund, recovered collateral and the views that are not hot paths).
contract Plimsoll is Liquidations {
    using WadMath for uint256;

    /// @notice The configurator this core delegates every other call to (fixed at deployment;
    ///         it must serve the same cash token and oracle, which is checked here).
    address public immutable configurator;

    constructor(IERC20 cash_, IOracleRouter oracle_, address admin_, address guardian_, address configurator_)
        PlimsollStorage(cash_, IERC20Metadata(address(cash_)).decimals(), oracle_, admin_, guardian_)
    {
        if (PlimsollStorage(configurator_).cash() != cash_ || PlimsollStorage(configurator_).oracle() != oracle_) {
            revert Unauthorized(configurator_);
        }
        configurator = configurator_;
        isListed[address(cash_)] = true;
        _liq = LiquidationConfig({
            penaltyWad: 0.01e18,
            keeperShareWad: 0.5e18,
            bufferWad: 0.25e18,
            collateralBonusWad: 0.05e18,
            keeperRewardCap: 100e18,
            dustNotional: 1_000e18,
            keeperRewardMin: 5e18
        });
        emit LiquidationConfigured(_liq);
    }

    // ------------------------------------------------------------------ configuration

    /// @notice Every call the core does not implement (roles, pauses, registry, risk
    ///         parameters: see PlimsollConfigurator) runs in the configurator, by delegatecall,
    ///         on this contract's storage and with the caller's identity. The configurator has
    ///         no state of its own and no way to be replaced.
    fallback() external {
        address impl = configurator;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), impl, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ------------------------------------------------------------------ liquidity pool hooks

    /// @notice The pool moves LP cash [token units] in.
    function poolDeposit(uint256 amount) external nonReentrant whenNotPaused(PAUSE_POOL) {
        if (msg.sender != pool) revert NotPool(msg.sender);
        if (amount == 0) revert ZeroAmount();
        uint256 received = _pull(cash, msg.sender, amount);
        int256 wad = SafeCastLib.toInt(WadMath.toWad(received, cashDecimals));
        Account storage p = _accounts[msg.sender][0];
        p.cash = SafeCastLib.toInt128(p.cash + wad);
        cashBooked = SafeCastLib.toInt128(cashBooked + wad);
        emit PoolCashMoved(wad);
    }

    /// @notice The pool pays an LP `amount` [token units]; the pool must keep its IM.
    function poolWithdraw(uint256 amount, address receiver) external nonReentrant whenNotPaused(PAUSE_POOL) {
        if (msg.sender != pool) revert NotPool(msg.sender);
        if (amount == 0) revert ZeroAmount();
        int256 wad = SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals));
        Account storage p = _accounts[msg.sender][0];
        p.cash = SafeCastLib.toInt128(p.cash - wad);
        cashBooked = SafeCastLib.toInt128(cashBooked - wad);
        // The pool, like any account, keeps equity >= IM after a withdrawal.
        (int256 equity, uint256 im, uint256 untrusted, uint8 status) = _poolMargin();
        if (untrusted != 0) revert PriceNotTrusted(untrusted - 1, status);
        if (equity < SafeCastLib.toInt(im)) revert PoolUndercollateralized(equity, im);
        uint256 held = cash.balanceOf(address(this));
        if (held < amount) revert InsufficientLiquidity(held, amount);
        emit PoolCashMoved(-wad);
        _push(cash, receiver, amount);
    }
}
