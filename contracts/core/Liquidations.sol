// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Custody} from "./Custody.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title Liquidations
/// @notice Permissionless, partial liquidation of positions at the oracle mark against the pool,
///         purchase of collateral from accounts left with cash debt, and the bad-debt waterfall:
///         account equity -> insurance fund -> pool LPs.
abstract contract Liquidations is Custody {
    using SafeERC20 for IERC20;
    using WadMath for uint256;

    /// @notice Closes just enough of every position of (owner, sub) (perps and options) to
    ///         bring equity back to MM x (1 + buffer); everything when the rest would be dust.
    ///         The caller earns a share of the penalty, credited to its subaccount 0.
    /// @return fraction [wad] share of every position closed
    function liquidate(address owner, uint256 sub)
        external
        nonReentrant
        whenNotPaused(PAUSE_LIQUIDATE)
        returns (uint256 fraction)
    {
        return _liquidate(owner, sub, FULL_GRID);
    }

    /// @notice Liquidates a portfolio-margin account on one scenario per market (`witness`,
    ///         8 bits per market id): the contract prices only those, and equity below their
    ///         loss bound L proves equity below MM (L <= MM); L then serves as MM.
    function liquidateWitness(address owner, uint256 sub, uint256 witness)
        external
        nonReentrant
        whenNotPaused(PAUSE_LIQUIDATE)
        returns (uint256 fraction)
    {
        if (_accounts[owner][sub].flags & FLAG_PORTFOLIO == 0 || witness == FULL_GRID) revert NotPortfolio(owner, sub);
        return _liquidate(owner, sub, witness);
    }

    function _liquidate(address owner, uint256 sub, uint256 witness) internal returns (uint256 fraction) {
        Snapshot memory snap = _snapshotAt(owner, sub, witness);
        // Liquidations wait while any price the account uses is not graded OK.
        _requireTrusted(snap);
        // Only an account below maintenance margin may be liquidated.
        if (snap.equity >= SafeCastLib.toInt(snap.mm)) revert AccountHealthy(owner, sub, snap.equity, snap.mm);
        Account storage acct = _accounts[owner][sub];
        bool hasOptions = acct.flags & FLAG_OPTIONS != 0;
        // An account without positions is cleared by `liquidateCollateral` instead.
        if (snap.marketIds.length == 0 && !hasOptions) revert NoPositions(owner, sub);
        fraction = _closeFraction(snap, _liq);

        (int256 realized, uint256 closedNotional, uint16 mask) = _closePositions(owner, sub, snap, fraction, acct.marketMask);
        acct.marketMask = mask;
        if (hasOptions) {
            // The options market is the admin-set, trusted counterpart; it calls nothing back.
            (int256 r, uint256 n, bool left) = options.liquidateFraction(owner, sub, fraction);
            realized += r;
            closedNotional += n;
            if (!left) acct.flags &= ~FLAG_OPTIONS;
        }
        _bookLiquidation(owner, sub, snap.equity, realized, closedNotional, fraction);
        if (witness != FULL_GRID) emit WitnessLiquidation(owner, sub, witness, snap.mm);
    }

    /// @dev Books a liquidation's cash flows and emits its event.
    function _bookLiquidation(
        address owner,
        uint256 sub,
        int256 equity,
        int256 realized,
        uint256 closedNotional,
        uint256 fraction
    ) internal {
        LiquidationConfig memory lc = _liq;
        Account storage acct = _accounts[owner][sub];
        // penalty = closedNotional x penaltyRate. The keeper's share (capped) is always paid,
        // even by an underwater account, so that no account is too poor to be worth
        // liquidating (the waterfall then covers it); the insurance fund's cut is taken only
        // from equity that is left after the reward.
        uint256 fullPenalty = closedNotional.mulWadUp(lc.penaltyWad);
        // reward = min(max(penalty x keeperShare, minReward), cap): covers the gas of small
        // liquidations, bounded for large ones.
        uint256 reward = Math.min(Math.max(fullPenalty.mulWadDown(lc.keeperShareWad), lc.keeperRewardMin), lc.keeperRewardCap);
        if (reward > fullPenalty) fullPenalty = reward;
        uint256 equityLeft = equity > SafeCastLib.toInt(reward) ? uint256(equity) - reward : 0;
        uint256 penalty = reward + Math.min(fullPenalty - reward, equityLeft);

        // Effects: the realized PnL moves between the account and the pool; the penalty splits
        // into the keeper's reward and the insurance fund.
        acct.cash = SafeCastLib.toInt128(acct.cash + realized - SafeCastLib.toInt(penalty));
        address poolAddr = pool;
        _accounts[poolAddr][0].cash = SafeCastLib.toInt128(_accounts[poolAddr][0].cash - realized);
        insuranceFund = SafeCastLib.toInt128(insuranceFund + SafeCastLib.toInt(penalty - reward));
        if (reward != 0) {
            Account storage keeper = _accounts[msg.sender][0];
            keeper.cash = SafeCastLib.toInt128(keeper.cash + SafeCastLib.toInt(reward));
        }

        uint256 badDebt;
        if (acct.marketMask == 0 && acct.assetMask == 0 && acct.flags & FLAG_OPTIONS == 0 && acct.cash < 0) {
            badDebt = _settleBadDebt(owner, sub, acct);
        }
        emit Liquidated(owner, sub, msg.sender, fraction, closedNotional, penalty, reward, badDebt);
    }

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

    /// @dev Closes `fraction` of every position in the snapshot at the snapshot's prices.
    function _closePositions(address owner, uint256 sub, Snapshot memory snap, uint256 fraction, uint16 mask)
        internal
        returns (int256 realized, uint256 closedNotional, uint16 maskAfter)
    {
        maskAfter = mask;
        for (uint256 k; k < snap.marketIds.length; ++k) {
            uint256 m = snap.marketIds[k];
            _accrue(m, snap.indexes[k]);
            int256 size = _positions[owner][sub][m].size;
            // Round the closed size away from zero so that at least `fraction` closes.
            int256 closeSize = fraction == WAD
                ? size
                : (size > 0 ? WadMath.smulWadCeil(size, int256(fraction)) : -WadMath.smulWadCeil(-size, int256(fraction)));
            realized += _rebase(owner, sub, m, size - closeSize, snap.prices[k], snap.indexes[k]);
            closedNotional += WadMath.abs(closeSize).mulWadUp(snap.prices[k]);
            if (size == closeSize) maskAfter &= ~uint16(1 << m);
        }
    }

    /// @dev The smallest share f of every position whose closing restores MM x (1 + buffer):
    ///      with the proportional penalty, E - f N pen >= (1 - f) MM (1 + buf) gives
    ///      f1 = (MM(1+buf) - E) / (MM(1+buf) - N pen); with the minimum keeper reward R,
    ///      E - R >= (1 - f) MM (1 + buf) gives f2 = 1 - (E - R) / (MM(1+buf)). f = max(f1, f2),
    ///      rounded up; 1 when equity is gone or the rest would be dust.
    function _closeFraction(Snapshot memory snap, LiquidationConfig memory lc) internal pure returns (uint256 f) {
        uint256 target = snap.mm.mulWadUp(WAD + lc.bufferWad);
        uint256 penaltyCost = snap.notional.mulWadUp(lc.penaltyWad);
        if (snap.equity <= SafeCastLib.toInt(lc.keeperRewardMin) || target <= penaltyCost) return WAD;
        uint256 equity = uint256(snap.equity);
        // equity < MM <= target here (the account is liquidatable), so both numerators are > 0.
        f = Math.mulDiv(target - equity, WAD, target - penaltyCost, Math.Rounding.Ceil);
        uint256 f2 = Math.mulDiv(target - (equity - lc.keeperRewardMin), WAD, target, Math.Rounding.Ceil);
        if (f2 > f) f = f2;
        if (f >= WAD || snap.notional.mulWadDown(WAD - f) < lc.dustNotional) return WAD;
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
