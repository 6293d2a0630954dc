// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {MarginEngine} from "./MarginEngine.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title CashLedger
/// @notice What the core and the configurator share: token calls (amounts measured on
///         arrival, token failures wrapped in one error), withdrawals' debit and margin check,
///         and the booking of deficits through the bad-debt waterfall.
abstract contract CashLedger is MarginEngine {
    using WadMath for uint256;
    /// @dev Pulls `amount` from `from` and returns what actually arrived.
    function _pull(IERC20 token, address from, uint256 amount) internal returns (uint256 received) {
        uint256 before = token.balanceOf(address(this));
        _tokenCall(token, abi.encodeCall(IERC20.transferFrom, (from, address(this), amount)));
        received = token.balanceOf(address(this)) - before;
        if (received == 0) revert NothingReceived(address(token));
    }

    /// @dev Sends `amount` of `token` to `to`.
    function _push(IERC20 token, address to, uint256 amount) internal {
        _tokenCall(token, abi.encodeCall(IERC20.transfer, (to, amount)));
    }

    /// @dev Calls a token and accepts what SafeERC20 accepts (success with no data or `true`,
    ///      from an address with code); anything else reverts with `TokenCallFailed`, which
    ///      names the token, the operation and the token's own revert data.
    function _tokenCall(IERC20 token, bytes memory data) internal {
        (bool ok, bytes memory ret) = address(token).call(data);
        if (!ok || (ret.length == 0 ? address(token).code.length == 0 : (ret.length < 32 || abi.decode(ret, (uint256)) != 1))) {
            revert TokenCallFailed(address(token), bytes4(data), ret);
        }
    }

    /// @dev Takes `amount` [token units] of `assetId` out of a subaccount (`type(uint256).max`:
    ///      all of it) and checks what is left: the subaccount stays at or above initial margin
    ///      (skipped when it has no positions and no debt, where equity >= 0 = IM holds by
    ///      construction). Returns the token and the amount taken.
    function _debit(address owner, uint256 sub, uint256 assetId, uint256 amount)
        internal
        returns (IERC20 token, uint256 taken)
    {
        if (amount == 0) revert ZeroAmount();
        Account storage acct = _accounts[owner][sub];
        if (assetId == 0) {
            int256 cashWad = acct.cash;
            uint256 whole = cashWad > 0 ? uint256(cashWad).fromWadDown(cashDecimals) : 0;
            int256 wad;
            if (amount == type(uint256).max) {
                // Everything: the sub-unit remainder cannot be paid out and goes to the fund.
                if (cashWad <= 0) revert InsufficientBalance(0, 0, amount);
                amount = whole;
                insuranceFund = SafeCastLib.toInt128(insuranceFund + cashWad - SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals)));
                wad = cashWad;
            } else {
                wad = SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals));
                // Cash cannot be borrowed by withdrawal: only the positive balance leaves.
                if (cashWad < wad) revert InsufficientBalance(0, whole, amount);
            }
            acct.cash = SafeCastLib.toInt128(cashWad - wad);
            token = cash;
        } else {
            AssetConfig storage a = _asset(assetId);
            uint256 bal = _balances[owner][sub][assetId];
            if (amount == type(uint256).max) amount = bal;
            if (bal < amount || amount == 0) revert InsufficientBalance(assetId, bal, amount);
            unchecked {
                // bal >= amount was checked just above.
                _balances[owner][sub][assetId] = bal - amount;
            }
            if (bal == amount) acct.assetMask &= ~uint16(1 << assetId);
            token = IERC20(a.token);
        }
        taken = amount;
        if (acct.marketMask != 0 || acct.cash < 0 || acct.flags & FLAG_OPTIONS != 0) _requireInitialMargin(owner, sub);
    }

    /// @dev For an account with no positions: when its cash debt exceeds the haircut value of
    ///      its collateral, the whole debt is written off through the waterfall (insurance fund,
    ///      then LPs) and the collateral is forfeited to the protocol (`recoveredBalance`, sold
    ///      back to the insurance fund by `buyRecovered`). Returns the deficit booked (0: none).
    ///      `value` is the collateral's haircut value ([wad USD], as `_collateralValue`).
    function _bookDeficit(address owner, uint256 sub, Account storage acct, uint256 value)
        internal
        returns (uint256 deficit)
    {
        int256 cashWad = acct.cash;
        if (cashWad >= 0 || cashWad + SafeCastLib.toInt(value) >= 0) return 0;
        uint256 mask = acct.assetMask;
        _forfeitCollateral(owner, sub, acct, mask);
        return _settleBadDebt(owner, sub, acct);
    }

    /// @dev Moves every collateral balance of (owner, sub) to the protocol's recovery account
    ///      (this contract's subaccount 0); token totals are unchanged.
    function _forfeitCollateral(address owner, uint256 sub, Account storage acct, uint256 mask) internal {
        for (uint256 i = 1; (mask >> i) != 0; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            uint256 bal = _balances[owner][sub][i];
            delete _balances[owner][sub][i];
            _balances[address(this)][0][i] += bal;
            emit CollateralForfeited(owner, sub, i, bal);
        }
        acct.assetMask = 0;
    }

    /// @dev An account's negative cash: the insurance fund covers what it can and the pool's
    ///      LPs absorb the rest. Every step is in the event; nothing is hidden.
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
