// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {CashLedger} from "./CashLedger.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title CollateralLiquidation
/// @notice Purchase of collateral from accounts left with cash debt and no positions. Part of
///         the configurator (reached through the core's fallback, on the core's storage) to keep
///         the core under the 24 KiB code limit; the guards are the core's own.
abstract contract CollateralLiquidation is CashLedger {
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

        // What the rest of the collateral cannot cover is booked now, not when it is gone.
        _bookDeficit(owner, sub, acct, _collateralValue(owner, sub, acct.assetMask));
        emit CollateralLiquidated(owner, sub, msg.sender, assetId, uint256(credit), seized);
        _push(IERC20(a.token), msg.sender, seized);
    }

    /// @notice Writes off the cash debt of an account with no positions when the deficit is
    ///         known (its collateral at its haircut value no longer covers the debt) or its
    ///         remaining collateral cannot be sold (each asset either counts for nothing at the
    ///         oracle or its token refuses to move out of this contract: a blocklist, a paused
    ///         token). The debt goes through the waterfall and the collateral to the recovery
    ///         account, so unsellable collateral never freezes settlement nor leaves the debt
    ///         counted as the pool's cash. Anyone may call it.
    /// @return deficit [wad USD] booked
    function writeOff(address owner, uint256 sub) external nonReentrant returns (uint256 deficit) {
        Account storage acct = _accounts[owner][sub];
        if (acct.marketMask != 0 || acct.flags & FLAG_OPTIONS != 0 || acct.cash >= 0) revert CollateralNotSeizable(owner, sub);
        uint256 mask = acct.assetMask;
        if (acct.cash + SafeCastLib.toInt(_collateralValue(owner, sub, mask)) < 0) {
            _forfeitCollateral(owner, sub, acct, mask);
            return _settleBadDebt(owner, sub, acct);
        }
        for (uint256 i = 1; (mask >> i) != 0; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            (uint256 price,) = oracle.collateralPrice(_assets[i].feedId);
            // A transfer of 0 to itself fails exactly when the token refuses to move ours.
            (bool ok, bytes memory ret) =
                _assets[i].token.call(abi.encodeCall(IERC20.transfer, (address(this), 0)));
            if (price != 0 && ok && (ret.length == 0 || abi.decode(ret, (bool)))) revert CollateralNotSeizable(owner, sub);
        }
        _forfeitCollateral(owner, sub, acct, mask);
        deficit = _settleBadDebt(owner, sub, acct);
    }

    /// @notice Buys `amount` [token units] of recovered collateral `assetId` (forfeited by
    ///         written-off accounts, or skimmed surplus) at the oracle price less the collateral
    ///         bonus; the cash paid goes to the insurance fund.
    /// @return paid [cash token units]
    function buyRecovered(uint256 assetId, uint256 amount) external nonReentrant returns (uint256 paid) {
        AssetConfig storage a = _asset(assetId);
        uint256 bal = _balances[address(this)][0][assetId];
        if (amount == 0 || amount > bal) revert InsufficientBalance(assetId, bal, amount);
        uint256 price = oracle.price(a.feedId);
        // paid = amount x price / (1 + bonus), rounded up: the fund is never short-changed.
        paid = WadMath.toWad(amount, a.decimals).mulWadUp(price).divWadUp(WAD + _liq.collateralBonusWad).fromWadUp(cashDecimals);
        if (paid == 0) revert ZeroAmount();
        uint256 received = _pull(cash, msg.sender, paid);
        int256 credit = SafeCastLib.toInt(WadMath.toWad(received, cashDecimals));
        insuranceFund = SafeCastLib.toInt128(insuranceFund + credit);
        cashBooked = SafeCastLib.toInt128(cashBooked + credit);
        _balances[address(this)][0][assetId] = bal - amount;
        a.totalDeposited -= SafeCastLib.toUint128(amount);
        emit RecoveredSold(msg.sender, assetId, amount, received);
        _push(IERC20(a.token), msg.sender, amount);
    }

    /// @notice Books a token surplus (held above what accounts are owed: a positive rebase, a
    ///         donation) to the recovery account. Anyone may call it.
    function skim(uint256 assetId) external nonReentrant returns (uint256 surplus) {
        AssetConfig storage a = _asset(assetId);
        uint256 held = IERC20(a.token).balanceOf(address(this));
        if (held <= a.totalDeposited) return 0;
        surplus = held - a.totalDeposited;
        a.totalDeposited = SafeCastLib.toUint128(held);
        _balances[address(this)][0][assetId] += surplus;
        emit CollateralForfeited(address(this), 0, assetId, surplus);
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
