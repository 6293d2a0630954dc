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

    /// @dev How long a liquidation episode lasts from the witness liquidation that opens it [s].
    uint256 internal constant EPISODE = 1 hours;
    /// @dev The unit of `Account.episodePenalty` [wad USD]: 1e-6 USD (uint48: 2.8e8 USD).
    uint256 internal constant EPISODE_UNIT = 1e12;

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
    /// @dev The close is sized on L, so a witness milder than the worst closes less than the
    ///      full grid would and may leave the account liquidatable (issue 13, finding 6).
    ///      Pricing the full grid here would cost what the witness saves, and a bound of the
    ///      full MM from one scenario per market is either loose (over-closing the owner) or
    ///      unsound; so the witness path stays cheap and the keeper's incentive is fixed
    ///      instead: a witness liquidation opens a liquidation episode of `EPISODE` seconds on
    ///      the account (Account.episodeStart), and every liquidation within it, on a witness
    ///      or the full grid, by anyone, continues the episode. The episode books the penalty
    ///      P it has charged so far, and a liquidation adding a penalty p pays the keeper
    ///      R(P + p) - R(P), R(x) = min(max(x keeperShare, keeperRewardMin), keeperRewardCap)
    ///      (the one-liquidation rule): the minimum and the cap are paid once per episode,
    ///      the proportional part is paid for what each step closes. Closing in two steps
    ///      (the mildest breaking scenario, then the worst) closes no more than closing on
    ///      the worst once (each step restores MM x (1 + buffer) of what is left, MM scales
    ///      with the positions and the perp's size term falls faster than the size), so its
    ///      penalties add up to no more and the rewards telescope to no more: a keeper gains
    ///      nothing by naming a milder scenario, and anyone may finish the episode on a
    ///      worse one and is paid for what it closes (the worst named wins, as in Derive's
    ///      DutchAuction). Within an episode the close fraction counts no minimum reward
    ///      (none is paid again). A new episode opens after `EPISODE` (a keeper waiting that
    ///      long for a second minimum reward leaves the rest to every other keeper).
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
        LiquidationConfig memory lc = _liq;
        // An open episode (finding 6): its penalty so far; no minimum reward is paid again.
        uint256 episode = block.timestamp < uint256(acct.episodeStart) + EPISODE
            ? uint256(acct.episodePenalty) * EPISODE_UNIT
            : type(uint256).max;
        fraction = _closeFraction(snap, lc, episode == type(uint256).max ? lc.keeperRewardMin : 0);

        (int256 realized, uint256 closedNotional, uint16 mask) = _closePositions(owner, sub, snap, fraction, acct.marketMask);
        acct.marketMask = mask;
        if (hasOptions) {
            // The options market is the admin-set, trusted counterpart; it calls nothing back.
            (int256 r, uint256 n, bool left) = options.liquidateFraction(owner, sub, fraction, snap.optionPrices);
            realized += r;
            closedNotional += n;
            if (!left) acct.flags &= ~FLAG_OPTIONS;
        }
        uint256 fullPenalty = closedNotional.mulWadUp(lc.penaltyWad);
        uint256 reward = _reward(fullPenalty, lc);
        if (episode != type(uint256).max) {
            // Continued: R(P + p) - R(P) (R is non-decreasing). P is booked rounded up, so a
            // continuation never pays more than the exact telescoped sum.
            reward = _reward(episode + fullPenalty, lc) - _reward(episode, lc);
        } else if (witness != FULL_GRID) {
            episode = 0;
            acct.episodeStart = uint32(block.timestamp);
        }
        if (episode != type(uint256).max) {
            uint256 units = Math.ceilDiv(episode + fullPenalty, EPISODE_UNIT);
            acct.episodePenalty = units > type(uint48).max ? type(uint48).max : uint48(units);
        }
        _bookLiquidation(owner, sub, snap.equity, snap.collateral, realized, closedNotional, fraction, fullPenalty, reward);
        if (witness != FULL_GRID) emit WitnessLiquidation(owner, sub, witness, snap.mm);
    }

    /// @dev The keeper's reward for a penalty `penalty` [wad USD] on its own:
    ///      min(max(penalty x keeperShare, keeperRewardMin), keeperRewardCap).
    function _reward(uint256 penalty, LiquidationConfig memory lc) internal pure returns (uint256) {
        return Math.min(Math.max(penalty.mulWadDown(lc.keeperShareWad), lc.keeperRewardMin), lc.keeperRewardCap);
    }

    /// @dev Books a liquidation's cash flows and emits its event.
    function _bookLiquidation(
        address owner,
        uint256 sub,
        int256 equity,
        uint256 collateral,
        int256 realized,
        uint256 closedNotional,
        uint256 fraction,
        uint256 fullPenalty,
        uint256 reward
    ) internal {
        Account storage acct = _accounts[owner][sub];
        // penalty = closedNotional x penaltyRate; reward = min(max(penalty x keeperShare,
        // minReward), cap, max(equity, 0)) (within an episode: its increment, `_liquidate`).
        // Both come out of the account's equity and nothing
        // else: a liquidation never turns an account with equity >= 0 into bad debt, and an
        // owner who liquidates itself only moves its own equity (no insurance or LP money
        // pays a reward). Underwater accounts pay nothing and are cleared by the protocol's
        // keepers (their bad-debt override); the insurance fund's cut is what equity has left.
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
    ///      rounded up; 1 when equity is gone or the rest would be dust. N is the notional
    ///      that carries a requirement (perps, short options; long options carry none and
    ///      count 0: issue 13, finding 5), so the penalty and the close follow the risk that
    ///      is removed, not the notional of hedges. `rewardMin`: R (0 within an episode).
    function _closeFraction(Snapshot memory snap, LiquidationConfig memory lc, uint256 rewardMin)
        internal
        pure
        returns (uint256 f)
    {
        uint256 target = snap.mm.mulWadUp(WAD + lc.bufferWad);
        uint256 penaltyCost = snap.notional.mulWadUp(lc.penaltyWad);
        if (snap.equity <= SafeCastLib.toInt(rewardMin) || target <= penaltyCost) return WAD;
        uint256 equity = uint256(snap.equity);
        // equity < MM <= target here (the account is liquidatable), so both numerators are > 0.
        f = Math.mulDiv(target - equity, WAD, target - penaltyCost, Math.Rounding.Ceil);
        uint256 f2 = Math.mulDiv(target - (equity - rewardMin), WAD, target, Math.Rounding.Ceil);
        if (f2 > f) f = f2;
        if (f >= WAD || snap.notional.mulWadDown(WAD - f) < lc.dustNotional) return WAD;
    }
}
