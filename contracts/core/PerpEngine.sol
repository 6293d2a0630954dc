// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {CashLedger} from "./CashLedger.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title PerpEngine
/// @notice Linear USD-quoted perpetual futures traded against the liquidity pool.
/// @dev Trading rule: every fill is at the oracle's latest answer p; while the oracle grades
///      it below OK the market is reduce-only (closing is allowed, at the end of
///      OracleRouter.fillBounds worse for the trader: during a suspect jump, the pre-jump price
///      if that is worse, so a wick cannot be cashed in against the pool; the account must
///      still clear MM at the prices it uses); the trader pays a taker fee of
///      ceil(|sizeDelta| x p x takerFee) to the pool. On every change a position is settled to
///      the mark (its PnL and funding move to cash, against the pool) and reopened at p, so a
///      position is always (size, size x p at the last settlement, funding index then).
///      Funding: index += maxFundingRate x clamp(skew / skewScale, -1, 1) x p x dt / 1 day;
///      a position owes size x (index now - index at settlement); the pool, holding -skew,
///      receives exactly what the positions owe.
abstract contract PerpEngine is CashLedger {
    using WadMath for uint256;

    /// @notice Opens, increases, reduces, closes or flips a position by `sizeDelta` [wad size].
    /// @param acceptablePrice [wad] worst oracle price accepted (buys: at most, sells: at
    ///        least); 0 accepts any.
    function trade(uint256 sub, uint256 marketId, int256 sizeDelta, uint256 acceptablePrice)
        external
        nonReentrant
        whenNotPaused(PAUSE_TRADE)
    {
        if (sizeDelta == 0) revert ZeroAmount();
        if (marketId >= marketCount) revert UnknownMarket(marketId);
        if (pool == address(0)) revert PoolNotSet();
        uint256 iso = _accounts[msg.sender][sub].isolatedMarket;
        if (iso != 0 && iso - 1 != marketId) revert IsolatedMarketMismatch(sub, iso - 1, marketId);

        MarketConfig memory c = _marketConfigs[marketId];
        // OK: lo == hi == the answer. Otherwise (reduce-only) the end worse for the trader.
        (uint256 lo, uint256 hi, uint8 status) = oracle.fillBounds(c.feedId);
        uint256 price = sizeDelta > 0 ? hi : lo;
        if (acceptablePrice != 0 && (sizeDelta > 0 ? price > acceptablePrice : price < acceptablePrice)) {
            revert SlippageExceeded(price, acceptablePrice);
        }
        (bool reducing, bool skewGrew) = _fill(sub, marketId, sizeDelta, c, price);
        // A price the oracle does not grade OK makes the market reduce-only.
        if (status != 0 && !reducing) revert MarketReduceOnly(marketId, status);

        Snapshot memory snap = _snapshot(msg.sender, sub);
        if (reducing) {
            // A reducing trade may leave the account below IM, but never liquidatable.
            if (snap.equity < SafeCastLib.toInt(snap.mm)) revert BelowMaintenance(msg.sender, sub, snap.equity, snap.mm);
        } else {
            // Risk-increasing: IM at prices graded OK only.
            _requireTrusted(snap);
            if (snap.equity < SafeCastLib.toInt(snap.im)) revert InsufficientMargin(msg.sender, sub, snap.equity, snap.im);
        }
        // The pool is margined like an account: growing its exposure needs its IM.
        if (skewGrew) {
            (int256 pe, uint256 pim,,) = _poolMargin();
            if (pe < SafeCastLib.toInt(pim)) revert PoolUndercollateralized(pe, pim);
        }
    }

    /// @dev Books a fill of `sizeDelta` at `price` for msg.sender's subaccount `sub`.
    function _fill(uint256 sub, uint256 marketId, int256 sizeDelta, MarketConfig memory c, uint256 price)
        internal
        returns (bool reducing, bool skewGrew)
    {
        int256 index = _currentIndex(c, _marketStates[marketId], price);
        _accrue(marketId, index);
        int256 oldSize = _positions[msg.sender][sub][marketId].size;
        int256 newSize = oldSize + sizeDelta;
        // Risk-reducing: same side, strictly smaller. Everything else (open, increase, flip)
        // increases risk and must clear initial margin.
        reducing = oldSize != 0 && WadMath.abs(newSize) < WadMath.abs(oldSize)
            && (newSize == 0 || (newSize > 0) == (oldSize > 0));
        if (!reducing && !c.enabled) revert Disabled(marketId);
        uint256 skewBefore = WadMath.abs(_skew(marketId));

        int256 pnl = _rebase(msg.sender, sub, marketId, newSize, price, index);
        uint256 fee = WadMath.abs(sizeDelta).mulWadUp(price).mulWadUp(c.takerFeeWad);
        // Zero-sum: what the trader gains the pool loses; the fee goes to the pool.
        _bookFill(sub, marketId, newSize != 0, pnl - SafeCastLib.toInt(fee));

        if (!reducing) _checkOpenInterest(c, marketId, oldSize, newSize);
        skewGrew = WadMath.abs(_skew(marketId)) > skewBefore;
        emit Traded(msg.sender, sub, marketId, sizeDelta, price, fee, pnl);
    }

    /// @dev Moves `toTrader` [wad] from the pool to the trader and keeps the market bit in step.
    function _bookFill(uint256 sub, uint256 marketId, bool open, int256 toTrader) internal {
        Account storage acct = _accounts[msg.sender][sub];
        acct.cash = SafeCastLib.toInt128(acct.cash + toTrader);
        if (open) {
            // A subaccount holds at most MAX_ACCOUNT_MARKETS positions (gas bound).
            _checkRoom(acct.marketMask, 1 << marketId, MAX_ACCOUNT_MARKETS);
            acct.marketMask |= uint16(1 << marketId);
        }
        else acct.marketMask &= ~uint16(1 << marketId);
        Account storage poolAcct = _accounts[pool][0];
        poolAcct.cash = SafeCastLib.toInt128(poolAcct.cash - toTrader);
    }

    function _skew(uint256 marketId) internal view returns (int256) {
        MarketState storage s = _marketStates[marketId];
        return int256(uint256(s.longOI)) - int256(uint256(s.shortOI));
    }

    /// @dev Reverts when the side that grew is above the market's open-interest limit.
    function _checkOpenInterest(MarketConfig memory c, uint256 marketId, int256 oldSize, int256 newSize) internal view {
        MarketState storage s = _marketStates[marketId];
        if (newSize > 0 && newSize > oldSize && s.longOI > c.maxOpenInterest) {
            revert OpenInterestExceeded(marketId, s.longOI, c.maxOpenInterest);
        }
        if (newSize < 0 && newSize < oldSize && s.shortOI > c.maxOpenInterest) {
            revert OpenInterestExceeded(marketId, s.shortOI, c.maxOpenInterest);
        }
    }

    /// @dev Settles a position to (price, index) and resizes it to `newSize`; keeps the market
    ///      aggregates exact. Returns the PnL realized (funding included) for the caller to book
    ///      against the pool. Does not touch cash or masks.
    function _rebase(address owner, uint256 sub, uint256 marketId, int256 newSize, uint256 price, int256 index)
        internal
        returns (int256 pnl)
    {
        Position storage pos = _positions[owner][sub][marketId];
        Position memory p = pos;
        (pnl,) = _pnl(p, price, index);
        int256 newOpenNotional = WadMath.mulWadFloor(newSize, price);

        MarketState storage s = _marketStates[marketId];
        s.sumOpenNotional = SafeCastLib.toInt128(s.sumOpenNotional - p.openNotional + newOpenNotional);
        s.sumSizeFunding = SafeCastLib.toInt128(
            s.sumSizeFunding - WadMath.smulWadFloor(p.size, p.fundingIndex) + WadMath.smulWadFloor(newSize, index)
        );
        uint256 longOI = s.longOI;
        uint256 shortOI = s.shortOI;
        if (p.size > 0) longOI -= uint256(int256(p.size));
        else shortOI -= uint256(-int256(p.size));
        if (newSize > 0) longOI += uint256(newSize);
        else shortOI += uint256(-newSize);
        s.longOI = SafeCastLib.toUint128(longOI);
        s.shortOI = SafeCastLib.toUint128(shortOI);

        if (newSize == 0) {
            delete _positions[owner][sub][marketId];
        } else {
            pos.size = SafeCastLib.toInt128(newSize);
            pos.openNotional = SafeCastLib.toInt128(newOpenNotional);
            pos.fundingIndex = SafeCastLib.toInt128(index);
        }
    }
}
