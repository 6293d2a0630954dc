// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {PerpEngine} from "./PerpEngine.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title Custody
/// @notice Deposits, withdrawals and transfers between a trader's subaccounts.
/// @dev Custody invariant, per token: balanceOf(this) >= what the protocol books for it
///      (`cashBooked` for cash, `totalDeposited` for collateral). Deposits credit the balance
///      actually received (fee-on-transfer safe); SafeERC20 handles tokens that return false or
///      nothing; every token-moving function is nonReentrant.
abstract contract Custody is PerpEngine {
    using SafeERC20 for IERC20;
    using WadMath for uint256;

    /// @notice Deposits `amount` [token units] of asset `assetId` (0 = cash) into subaccount `sub`.
    function deposit(uint256 sub, uint256 assetId, uint256 amount) external nonReentrant whenNotPaused(PAUSE_DEPOSIT) {
        if (amount == 0) revert ZeroAmount();
        Account storage acct = _accounts[msg.sender][sub];
        uint256 received;
        if (assetId == 0) {
            received = _pull(cash, msg.sender, amount);
            int256 wad = SafeCastLib.toInt(WadMath.toWad(received, cashDecimals));
            acct.cash = SafeCastLib.toInt128(acct.cash + wad);
            cashBooked = SafeCastLib.toInt128(cashBooked + wad);
        } else {
            AssetConfig storage a = _asset(assetId);
            if (!a.enabled) revert Disabled(assetId);
            // The cap is checked on the amount asked, which bounds the amount received.
            uint256 total = a.totalDeposited + amount;
            if (total > a.cap) revert CapExceeded(assetId, total, a.cap);
            received = _pull(IERC20(a.token), msg.sender, amount);
            a.totalDeposited += SafeCastLib.toUint128(received);
            _balances[msg.sender][sub][assetId] += received;
            acct.assetMask |= uint16(1 << assetId);
        }
        emit Deposited(msg.sender, sub, assetId, received);
    }

    /// @notice Withdraws `amount` [token units] of `assetId`; the subaccount must keep IM.
    function withdraw(uint256 sub, uint256 assetId, uint256 amount) external nonReentrant whenNotPaused(PAUSE_WITHDRAW) {
        IERC20 token = _debit(msg.sender, sub, assetId, amount);
        emit Withdrawn(msg.sender, sub, assetId, amount);
        if (assetId == 0) {
            int256 wad = SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals));
            cashBooked = SafeCastLib.toInt128(cashBooked - wad);
            uint256 held = token.balanceOf(address(this));
            // Cash lent to accounts with negative balances is not in the contract.
            if (held < amount) revert InsufficientLiquidity(held, amount);
        } else {
            _assets[assetId].totalDeposited -= SafeCastLib.toUint128(amount);
        }
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Moves `amount` of `assetId` between two of the caller's subaccounts; the source
    ///         must keep IM.
    function transfer(uint256 fromSub, uint256 toSub, uint256 assetId, uint256 amount)
        external
        nonReentrant
        whenNotPaused(PAUSE_TRANSFER)
    {
        _debit(msg.sender, fromSub, assetId, amount);
        Account storage to = _accounts[msg.sender][toSub];
        if (assetId == 0) {
            to.cash = SafeCastLib.toInt128(to.cash + SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals)));
        } else {
            _balances[msg.sender][toSub][assetId] += amount;
            to.assetMask |= uint16(1 << assetId);
        }
        emit Transferred(msg.sender, fromSub, toSub, assetId, amount);
    }

    /// @notice Makes an empty subaccount cross-margin (`isolatedMarket` = 0) or isolated to
    ///         market `isolatedMarket - 1`.
    function configureSubaccount(uint256 sub, uint8 isolatedMarket) external {
        Account storage acct = _accounts[msg.sender][sub];
        if (acct.cash != 0 || acct.assetMask != 0 || acct.marketMask != 0 || acct.flags != 0) {
            revert SubaccountNotEmpty(msg.sender, sub);
        }
        if (isolatedMarket != 0 && isolatedMarket > marketCount) revert UnknownMarket(isolatedMarket - 1);
        acct.isolatedMarket = isolatedMarket;
        emit SubaccountConfigured(msg.sender, sub, isolatedMarket);
    }

    /// @dev Takes `amount` of `assetId` out of a subaccount and checks what is left: the
    ///      subaccount stays at or above initial margin (skipped when it has no positions and
    ///      no debt, where equity >= 0 = IM holds by construction).
    function _debit(address owner, uint256 sub, uint256 assetId, uint256 amount) internal returns (IERC20 token) {
        if (amount == 0) revert ZeroAmount();
        Account storage acct = _accounts[owner][sub];
        if (assetId == 0) {
            int256 wad = SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals));
            // Cash cannot be borrowed by withdrawal: only the positive balance leaves.
            if (acct.cash < wad) revert InsufficientBalance(0, acct.cash > 0 ? uint256(int256(acct.cash)) : 0, amount);
            acct.cash = SafeCastLib.toInt128(acct.cash - wad);
            token = cash;
        } else {
            AssetConfig storage a = _asset(assetId);
            uint256 bal = _balances[owner][sub][assetId];
            if (bal < amount) revert InsufficientBalance(assetId, bal, amount);
            unchecked {
                // bal >= amount was checked just above.
                _balances[owner][sub][assetId] = bal - amount;
            }
            if (bal == amount) acct.assetMask &= ~uint16(1 << assetId);
            token = IERC20(a.token);
        }
        if (acct.marketMask != 0 || acct.cash < 0 || acct.flags & FLAG_OPTIONS != 0) _requireInitialMargin(owner, sub);
    }
}
