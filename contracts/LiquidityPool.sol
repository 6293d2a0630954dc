// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IPoolCore} from "./interfaces/IPoolCore.sol";

/// @title LiquidityPool
/// @notice ERC-4626 vault of the settlement stablecoin. Its cash sits in the Plimsoll core as
///         the pool account; the pool is the counterparty of every perpetual trade, earns the
///         fees and funding, pays traders' profits and absorbs socialized bad debt.
///         totalAssets = the pool's equity in the core (cash + unrealized PnL), so shares
///         price in the pool's open positions.
contract LiquidityPool is ERC4626 {
    using SafeERC20 for IERC20;

    IPoolCore public immutable core;

    constructor(IPoolCore core_, IERC20 cash_) ERC20("Plimsoll LP", "plLP") ERC4626(cash_) {
        core = core_;
        cash_.forceApprove(address(core_), type(uint256).max);
    }

    /// @inheritdoc ERC4626
    function totalAssets() public view override returns (uint256) {
        return core.poolAssets();
    }

    /// @notice Nothing while the pool's equity is gone but shares exist: a new deposit would
    ///         buy into the deficit (its shares would be worth less than it paid).
    function maxDeposit(address receiver) public view override returns (uint256) {
        return _insolvent() ? 0 : super.maxDeposit(receiver);
    }

    function maxMint(address receiver) public view override returns (uint256) {
        return _insolvent() ? 0 : super.maxMint(receiver);
    }

    function _insolvent() internal view returns (bool) {
        return totalSupply() > 0 && totalAssets() == 0;
    }

    /// @notice At most what the core lets the pool pay without breaking its margin.
    function maxWithdraw(address owner) public view override returns (uint256) {
        return Math.min(super.maxWithdraw(owner), core.poolFreeCash());
    }

    function maxRedeem(address owner) public view override returns (uint256) {
        return Math.min(super.maxRedeem(owner), convertToShares(core.poolFreeCash()));
    }

    /// @dev Virtual shares (1e6 per unit) blunt the first-depositor inflation attack.
    function _decimalsOffset() internal pure override returns (uint8) {
        return 6;
    }

    function _deposit(address caller, address receiver, uint256 assets, uint256 shares) internal override {
        super._deposit(caller, receiver, assets, shares);
        core.poolDeposit(assets);
    }

    function _withdraw(address caller, address receiver, address owner, uint256 assets, uint256 shares)
        internal
        override
    {
        if (caller != owner) _spendAllowance(owner, caller, shares);
        _burn(owner, shares);
        core.poolWithdraw(assets, receiver);
        emit Withdraw(caller, receiver, owner, assets, shares);
    }
}
