// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Custody} from "./Custody.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title Liquidations
/// @notice Permissionless, partial liquidation of positions at the oracle mark against the pool
///         and the bad-debt waterfall: account equity -> insurance fund -> pool LPs. (The
///         purchase of collateral from accounts left with cash debt, `liquidateCollateral`,
///         runs in the configurator: CollateralLiquidation.)
abstract contract Liquidations is Custody {
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
            (int256 r, uint256 n, bool left) = options.liquidateFraction(owner, sub, fraction, snap.optionPrices);
            realized += r;
            closedNotional += n;
            if (!left) acct.flags &= ~FLAG_OPTIONS;
        }
        _bookLiquidation(owner, sub, snap.equity, snap.collateral, realized, closedNotional, fraction);
        if (witness != FULL_GRID) emit WitnessLiquidation(owner, sub, witness, snap.mm);
    }

    /// @dev Books a liquidation's cash flows and emits its event.
    function _bookLiquidation(
        address owner,
        uint256 sub,
        int256 equity,
        uint256 collateral,
        int256 realized,
        uint256 closedNotional,
        uint256 fraction
    ) internal {
        LiquidationConfig memory lc = _liq;
        Account storage acct = _accounts[owner][sub];
        // penalty = closedNotional x penaltyRate; reward = min(max(penalty x keeperShare,
        // minReward), cap, max(equity, 0)). Both come out of the account's equity and nothing
        // else: a liquidation never turns an account with equity >= 0 into bad debt, and an
        // owner who liquidates itself only moves its own equity (no insurance or LP money
        // pays a reward). Underwater accounts pay nothing and are cleared by the protocol's
        // keepers (their bad-debt override); the insurance fund's cut is what equity has left.
        uint256 fullPenalty = closedNotional.mulWadUp(lc.penaltyWad);
        uint256 reward = Math.min(Math.max(fullPenalty.mulWadDown(lc.keeperShareWad), lc.keeperRewardMin), lc.keeperRewardCap);
        uint256 equityLeft = equity > 0 ? uint256(equity) : 0;
        if (reward > equityLeft) reward = equityLeft;
        unchecked {
            // reward <= equityLeft was just ensured.
            equityLeft -= reward;
        }
        uint256 penalty = reward + Math.min(fullPenalty > reward ? fullPenalty - reward : 0, equityLeft);

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

        // A deficit is booked as soon as it is known: every position is closed and the
        // collateral, at its haircut value, no longer covers the cash debt.
        uint256 badDebt;
        if (acct.marketMask == 0 && acct.flags & FLAG_OPTIONS == 0) badDebt = _bookDeficit(owner, sub, acct, collateral);
        emit Liquidated(owner, sub, msg.sender, fraction, closedNotional, penalty, reward, badDebt);
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
}
