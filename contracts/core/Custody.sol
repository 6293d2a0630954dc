// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {PerpEngine} from "./PerpEngine.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title Custody
/// @notice Deposits and withdrawals. (Transfers between a trader's subaccounts and the choice of
///         a subaccount's mode run in the configurator: see PlimsollConfigurator.)
/// @dev Custody invariant, per token: balanceOf(this) >= what the protocol books for it
///      (`cashBooked` for cash, `totalDeposited` for collateral). Deposits credit the balance
///      actually received (fee-on-transfer safe); token calls accept what SafeERC20 accepts and
///      wrap a token's own revert in `TokenCallFailed`; every token-moving function is
///      nonReentrant.
///      Listing policy: rebasing tokens are not listed (balances are booked in token units).
///      Should a listed token's balance shrink all the same, withdrawals of it pay pro rata
///      (amount x held / totalDeposited, rounded down), so that no depositor ever takes
///      another's tokens; a surplus (positive rebase, donation) is skimmed to the protocol's
///      recovery account (`skim`), whose sales fund the insurance fund.
abstract contract Custody is PerpEngine {
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
            // A subaccount holds at most MAX_ACCOUNT_ASSETS collateral assets (gas bound).
            _checkRoom(acct.assetMask, 1 << assetId, MAX_ACCOUNT_ASSETS);
            received = _pull(IERC20(a.token), msg.sender, amount);
            a.totalDeposited += SafeCastLib.toUint128(received);
            _balances[msg.sender][sub][assetId] += received;
            acct.assetMask |= uint16(1 << assetId);
        }
        emit Deposited(msg.sender, sub, assetId, received);
    }

    /// @notice Withdraws `amount` [token units] of `assetId`; the subaccount must keep IM.
    ///         `type(uint256).max` withdraws the whole balance (cash: every whole token unit;
    ///         the sub-unit remainder of the 18-decimal book goes to the insurance fund).
    /// @return sent [token units] what left the protocol
    function withdraw(uint256 sub, uint256 assetId, uint256 amount)
        external
        nonReentrant
        whenNotPaused(PAUSE_WITHDRAW)
        returns (uint256 sent)
    {
        IERC20 token;
        (token, amount) = _debit(msg.sender, sub, assetId, amount);
        sent = amount;
        if (assetId == 0) {
            int256 wad = SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals));
            cashBooked = SafeCastLib.toInt128(cashBooked - wad);
            uint256 held = token.balanceOf(address(this));
            // Cash lent to accounts with negative balances is not in the contract.
            if (held < amount) revert InsufficientLiquidity(held, amount);
        } else {
            AssetConfig storage a = _assets[assetId];
            uint256 total = a.totalDeposited;
            a.totalDeposited = SafeCastLib.toUint128(total - amount);
            // Pro rata when the token holds less than is booked (see the listing policy).
            uint256 held = token.balanceOf(address(this));
            if (held < total) sent = amount * held / total;
        }
        emit Withdrawn(msg.sender, sub, assetId, sent);
        if (sent != 0) _push(token, msg.sender, sent);
    }
}
