// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {CashLedger} from "./CashLedger.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title CollateralLiquidation
/// @notice Purchase of collateral from accounts left with cash debt and no positions. Part of
///         the configurator (reached through the core's fallback, on the core's storage) to keep
///         the core under the 24 KiB code limit; the guards are the core's own.
abstract contract CollateralLiquidation is CashLedger {
    using SafeERC20 for IERC20;
    using WadMath for uint256;

    /// @notice Buys collateral `assetId` from a liquidatable account that has no positions left
    ///         and owes cash: the caller pays `repayAmount` cash [token units] from its wallet
    ///         and receives collateral worth repay x (1 + bonus) at the oracle.
    /// @return seized [token units] collateral sent to the caller
    function liquidateCollateral(address owner, uint256 sub, uint256 assetId, uint256 repayAmount)
        external
        nonReentrant
        whenNotPaused(PAUSE_LIQUIDATE)
        returns (uint256 seized)
    {
        if (repayAmount == 0) revert ZeroAmount();
        Account storage acct = _accounts[owner][sub];
        if (acct.marketMask != 0 || acct.flags & FLAG_OPTIONS != 0 || acct.cash >= 0) revert CollateralNotSeizable(owner, sub);
        Snapshot memory snap = _snapshot(owner, sub);
        _requireTrusted(snap);
        if (snap.equity >= SafeCastLib.toInt(snap.mm)) revert AccountHealthy(owner, sub, snap.equity, snap.mm);
        AssetConfig storage a = _asset(assetId);
        uint256 bal = _balances[owner][sub][assetId];
        if (bal == 0) revert InsufficientBalance(assetId, 0, 1);

        (repayAmount, seized) = _seizeAmounts(uint256(-int256(acct.cash)), repayAmount, a, bal);
        if (seized == 0) revert ZeroAmount();

        // Interactions are split around the effects: the payment is measured on arrival, the
        // collateral leaves last; nonReentrant covers both.
        uint256 received = _pull(cash, msg.sender, repayAmount);
        if (received < repayAmount) revert InsufficientBalance(0, received, repayAmount);
        int256 credit = SafeCastLib.toInt(WadMath.toWad(repayAmount, cashDecimals));
        acct.cash = SafeCastLib.toInt128(acct.cash + credit);
        cashBooked = SafeCastLib.toInt128(cashBooked + credit);
        _balances[owner][sub][assetId] = bal - seized;
        a.totalDeposited -= SafeCastLib.toUint128(seized);
        if (bal == seized) acct.assetMask &= ~uint16(1 << assetId);

        if (acct.assetMask == 0 && acct.cash < 0) _settleBadDebt(owner, sub, acct);
        emit CollateralLiquidated(owner, sub, msg.sender, assetId, uint256(credit), seized);
        IERC20(a.token).safeTransfer(msg.sender, seized);
    }

    /// @dev How much cash [token units] the buyer pays and how much collateral [token units] it
    ///      receives: seized = repay x (1 + bonus) / price, rounded down; when that exceeds the
    ///      balance, the whole balance for its value / (1 + bonus), rounded up.
    function _seizeAmounts(uint256 debtWad, uint256 repayAmount, AssetConfig storage a, uint256 bal)
        internal
        view
        returns (uint256 repay, uint256 seized)
    {
        uint8 cd = cashDecimals;
        uint256 maxRepay = debtWad.fromWadUp(cd);
        repay = repayAmount > maxRepay ? maxRepay : repayAmount;
        uint256 price = oracle.price(a.feedId);
        uint256 bonus = WAD + _liq.collateralBonusWad;
        seized = WadMath.toWad(repay, cd).mulWadDown(bonus).divWadDown(price).fromWadDown(a.decimals);
        if (seized > bal) {
            seized = bal;
            repay = WadMath.toWad(bal, a.decimals).mulWadUp(price).divWadUp(bonus).fromWadUp(cd);
        }
    }
}
