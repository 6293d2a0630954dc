// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {PlimsollStorage} from "./PlimsollStorage.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";
import {IOptions} from "../interfaces/IOptions.sol";

/// @title MarginEngine
/// @notice Standard margin: the one computation behind every view and every enforcement path.
/// @dev Rounding favours the protocol: collateral value and PnL round down, requirements and
///      funding owed round up.
///
///      Per position in market m at oracle price p, volatility scalars sIm, sMm (all [wad]):
///        notional = ceil(|size| x p)
///        rate     = min(imBase + ceil(|size| x sizeSlope), 1)
///        IM       = ceil(notional x min(ceil(rate x sIm), 1))
///        MM       = ceil(notional x ceil(min(ceil(rate x sMm), 1) x mmFactor))
///        funding  = ceil(size x (index - position.index))          (owed by the position)
///        uPnL     = floor(size x p) - openNotional - funding
///      Per collateral asset: value = floor(floor(toWad(balance) x price) x haircut), at the
///      router's collateral price (0 while the feed is stale or invalid, the lower end while
///      a jump is pending). equity = cash + sum(value) + sum(uPnL); liquidatable iff
///      equity < MM and every price of a position is graded OK by the oracle router.
abstract contract MarginEngine is PlimsollStorage {
    using WadMath for uint256;

    /// @dev One account's margin at one instant, with the per-market prices and funding indexes
    ///      it used so that callers can act on exactly those.
    struct Snapshot {
        int256 equity; // [wad USD]
        uint256 im; // [wad USD]
        uint256 mm; // [wad USD]
        uint256 notional; // [wad USD] sum of |size| x price
        uint256 collateral; // [wad USD] haircut value of the non-cash collateral
        uint256 untrustedFeed; // 0: every price OK; else feedId + 1 of the first that is not
        uint8 untrustedStatus; // its grade (IOracleRouter)
        uint256[] marketIds;
        uint256[] prices; // [wad]
        int256[] indexes; // [wad] current funding index (pending accrual included)
        uint256[] optionPrices; // per option position: mark | spot << 128 (IOptions.accountRisk)
    }

    // ------------------------------------------------------------------ rates

    /// @dev IM rate of a position of |size| `absSize` [wad]; grows with size, capped at 100%.
    function _imRate(MarketConfig memory c, uint256 absSize) internal pure returns (uint256 rate) {
        rate = c.imBaseWad + absSize.mulWadUp(c.sizeSlopeWad);
        if (rate > WAD) rate = WAD;
    }

    /// @dev The volatility scalars of market `m` now: IM's (the target) and MM's (ramped).
    ///      The ramp rounds down, so at the update's own timestamp MM's scalar is unchanged.
    function _volScalars(uint256 m) internal view returns (uint256 sIm, uint256 sMm) {
        VolScalar memory v = _vol[m];
        if (v.toWad == 0) return (WAD, WAD);
        sIm = v.toWad;
        sMm = v.toWad;
        if (v.toWad > v.fromWad && block.timestamp < v.rampEnd) {
            // rampStart <= block.timestamp < rampEnd: the elapsed share is below 1.
            sMm = v.fromWad + (v.toWad - v.fromWad) * (block.timestamp - v.rampStart) / (v.rampEnd - v.rampStart);
        }
    }

    /// @dev Notional, IM and MM of a position in market `m`.
    function _requirements(MarketConfig memory c, uint256 m, int256 size, uint256 price)
        internal
        view
        returns (uint256 notional, uint256 im, uint256 mm)
    {
        uint256 absSize = WadMath.abs(size);
        notional = absSize.mulWadUp(price);
        uint256 rate = _imRate(c, absSize);
        (uint256 sIm, uint256 sMm) = _volScalars(m);
        im = notional.mulWadUp(_capped(rate.mulWadUp(sIm)));
        mm = notional.mulWadUp(_capped(rate.mulWadUp(sMm)).mulWadUp(c.mmFactorWad));
    }

    function _capped(uint256 rate) internal pure returns (uint256) {
        return rate > WAD ? WAD : rate;
    }

    /// @dev The oracle's latest price of `feedId` and its grade; notes the first untrusted
    ///      feed in `snap`.
    function _gradedPrice(Snapshot memory snap, uint256 feedId) internal view returns (uint256 price) {
        uint8 status;
        (price, status) = oracle.priceInfo(feedId);
        if (status != 0 && snap.untrustedFeed == 0) {
            snap.untrustedFeed = feedId + 1;
            snap.untrustedStatus = status;
        }
    }

    /// @dev Reverts unless every price in `snap` is graded OK.
    function _requireTrusted(Snapshot memory snap) internal pure {
        if (snap.untrustedFeed != 0) revert PriceNotTrusted(snap.untrustedFeed - 1, snap.untrustedStatus);
    }

    /// @dev Funding rate per day [wad of price]: maxFundingRate x clamp(skew / skewScale, -1, 1),
    ///      truncated toward zero. Positive: longs pay shorts and the pool.
    function _fundingRatePerDay(MarketConfig memory c, MarketState memory s) internal pure returns (int256) {
        if (c.skewScale == 0) return 0;
        int256 skew = int256(uint256(s.longOI)) - int256(uint256(s.shortOI));
        int256 prop = skew * int256(WAD) / int256(uint256(c.skewScale));
        if (prop > int256(WAD)) prop = int256(WAD);
        if (prop < -int256(WAD)) prop = -int256(WAD);
        return prop * int256(uint256(c.maxFundingRateWad)) / int256(WAD);
    }

    /// @dev The funding index now: stored index + rate x price x elapsed / (WAD x 1 day),
    ///      truncated toward zero.
    function _currentIndex(MarketConfig memory c, MarketState memory s, uint256 price) internal view returns (int256) {
        uint256 elapsed = block.timestamp - s.lastFundingTime;
        if (elapsed == 0) return s.fundingIndex;
        return s.fundingIndex + _fundingRatePerDay(c, s) * int256(price) * int256(elapsed) / int256(WAD * 1 days);
    }

    /// @dev Stores the funding index computed by `_currentIndex` (same block, same price).
    function _accrue(uint256 marketId, int256 index) internal {
        MarketState storage s = _marketStates[marketId];
        if (s.lastFundingTime == block.timestamp) return;
        s.fundingIndex = SafeCastLib.toInt128(index);
        s.lastFundingTime = uint64(block.timestamp);
        emit FundingAccrued(marketId, index, _fundingRatePerDay(_marketConfigs[marketId], s));
    }

    /// @dev Unrealized PnL of a position and the funding it owes, at `price` and `index`.
    function _pnl(Position memory p, uint256 price, int256 index) internal pure returns (int256 pnl, int256 funding) {
        funding = WadMath.smulWadCeil(p.size, index - p.fundingIndex);
        pnl = WadMath.mulWadFloor(p.size, price) - p.openNotional - funding;
    }

    // ------------------------------------------------------------------ accounts

    /// @dev Value of an account's non-cash collateral at the oracle, after haircuts. Each asset
    ///      counts at `IOracleRouter.collateralPrice`: never more than a trusted price, nothing
    ///      while its feed is stale or invalid. A collateral feed therefore never holds off or
    ///      reverts a liquidation (only the prices of the positions being closed can).
    function _collateralValue(address owner, uint256 sub, uint256 mask) internal view returns (uint256 value) {
        for (uint256 i = 1; (mask >> i) != 0; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            AssetConfig storage a = _assets[i];
            (uint256 price,) = oracle.collateralPrice(a.feedId);
            value += WadMath.toWad(_balances[owner][sub][i], a.decimals).mulWadDown(price).mulWadDown(a.haircutWad);
        }
    }

    /// @dev The full margin picture of (owner, sub): every enforcement path and view uses it.
    function _snapshot(address owner, uint256 sub) internal view returns (Snapshot memory snap) {
        return _snapshotAt(owner, sub, FULL_GRID);
    }

    /// @dev `_snapshot`; for a portfolio-margin account with `witness` != FULL_GRID, IM and MM
    ///      come from the witness's scenarios only (MM is then the loss bound L <= MM).
    function _snapshotAt(address owner, uint256 sub, uint256 witness) internal view returns (Snapshot memory snap) {
        Account memory acct = _accounts[owner][sub];
        snap.collateral = _collateralValue(owner, sub, acct.assetMask);
        snap.equity = int256(acct.cash) + SafeCastLib.toInt(snap.collateral);
        uint256 mask = acct.marketMask;
        uint256 n = _popcount(mask);
        snap.marketIds = new uint256[](n);
        snap.prices = new uint256[](n);
        snap.indexes = new int256[](n);
        uint256 k;
        for (uint256 m; (mask >> m) != 0; ++m) {
            if ((mask >> m) & 1 == 0) continue;
            MarketConfig memory c = _marketConfigs[m];
            uint256 price = _gradedPrice(snap, c.feedId);
            int256 index = _currentIndex(c, _marketStates[m], price);
            Position memory p = _positions[owner][sub][m];
            (int256 pnl,) = _pnl(p, price, index);
            (uint256 notional, uint256 im, uint256 mm) = _requirements(c, m, p.size, price);
            snap.equity += pnl;
            snap.im += im;
            snap.mm += mm;
            snap.notional += notional;
            snap.marketIds[k] = m;
            snap.prices[k] = price;
            snap.indexes[k] = index;
            ++k;
        }
        if (acct.flags != 0) _addOptions(snap, owner, sub, acct.flags, witness);
        // Portfolio margin prices perps in its scenario grid, which knows nothing of size: the
        // size-dependent part of the perp rate is added on top, so that a large position never
        // gets cheaper by switching mode.
        if (acct.flags & FLAG_PORTFOLIO != 0) _addSizeRequirements(snap, owner, sub);
    }

    /// @dev The size-dependent part of a perp's IM and MM (the rate's |size| x sizeSlope term
    ///      alone, with the same scalars, caps and rounding as `_requirements`): what portfolio
    ///      margin adds to its grid.
    ///      Reads each position again at the snapshot's prices (portfolio accounts only).
    function _addSizeRequirements(Snapshot memory snap, address owner, uint256 sub) internal view {
        for (uint256 k; k < snap.marketIds.length; ++k) {
            uint256 m = snap.marketIds[k];
            MarketConfig storage c = _marketConfigs[m];
            uint256 absSize = WadMath.abs(_positions[owner][sub][m].size);
            uint256 notional = absSize.mulWadUp(snap.prices[k]);
            uint256 rate = _capped(absSize.mulWadUp(c.sizeSlopeWad));
            (uint256 sIm, uint256 sMm) = _volScalars(m);
            snap.im += notional.mulWadUp(_capped(rate.mulWadUp(sIm)));
            snap.mm += notional.mulWadUp(_capped(rate.mulWadUp(sMm)).mulWadUp(c.mmFactorWad));
        }
    }

    /// @dev Adds the options market's part: standard mode adds the options' value and
    ///      requirements; portfolio mode replaces IM and MM by the whole subaccount's stress.
    function _addOptions(Snapshot memory snap, address owner, uint256 sub, uint8 flags, uint256 witness) internal view {
        bool portfolio = flags & FLAG_PORTFOLIO != 0;
        (int256 value, uint256 im, uint256 mm, uint256 notional, uint256 bad, uint8 status, uint256[] memory prices) =
            options.accountRisk(owner, sub, portfolio, witness);
        snap.optionPrices = prices;
        snap.equity += value;
        snap.notional += notional;
        if (portfolio) {
            snap.im = im;
            snap.mm = mm;
        } else {
            snap.im += im;
            snap.mm += mm;
        }
        if (bad != 0 && snap.untrustedFeed == 0) (snap.untrustedFeed, snap.untrustedStatus) = (bad, status);
    }

    /// @dev The config of listed asset `assetId` (ids 1..assetCount); reverts otherwise.
    function _asset(uint256 assetId) internal view returns (AssetConfig storage a) {
        if (assetId == 0 || assetId > assetCount) revert UnknownAsset(assetId);
        a = _assets[assetId];
    }

    /// @dev Reverts when setting `bit` in `mask` would take it past `limit` bits set.
    function _checkRoom(uint256 mask, uint256 bit, uint256 limit) internal pure {
        if (mask & bit == 0 && _popcount(mask) >= limit) revert TooMany(limit);
    }

    function _popcount(uint256 x) internal pure returns (uint256 n) {
        // Masks are 16 bits wide: at most 16 iterations.
        while (x != 0) {
            x &= x - 1;
            ++n;
        }
    }

    /// @dev Reverts unless every price is OK and equity >= IM: the gate of every
    ///      risk-increasing action.
    function _requireInitialMargin(address owner, uint256 sub) internal view {
        Snapshot memory s = _snapshot(owner, sub);
        _requireTrusted(s);
        if (s.equity < SafeCastLib.toInt(s.im)) revert InsufficientMargin(owner, sub, s.equity, s.im);
    }

    // ------------------------------------------------------------------ pool

    /// @dev The pool is the counterparty of every position: it holds -skew in each market. Its
    ///      unrealized PnL comes from the market aggregates in O(markets):
    ///        price PnL   = sumOpenNotional - floor(skew x p)
    ///        funding due = floor(skew x index) - sumSizeFunding
    ///      `untrustedFeed`: 0 when every price used is graded OK, else the first other feed + 1
    ///      with its grade `status` (pool withdrawals need all OK).
    function _poolMargin()
        internal
        view
        returns (int256 equity, uint256 im, uint256 untrustedFeed, uint8 untrustedStatus)
    {
        equity = pool == address(0) ? int256(0) : int256(_accounts[pool][0].cash);
        uint256 n = marketCount;
        for (uint256 m; m < n; ++m) {
            MarketState memory s = _marketStates[m];
            if (s.longOI == 0 && s.shortOI == 0 && s.sumOpenNotional == 0 && s.sumSizeFunding == 0) continue;
            MarketConfig memory c = _marketConfigs[m];
            (uint256 price, uint8 status) = oracle.priceInfo(c.feedId);
            if (status != 0 && untrustedFeed == 0) (untrustedFeed, untrustedStatus) = (c.feedId + 1, status);
            int256 index = _currentIndex(c, s, price);
            int256 skew = int256(uint256(s.longOI)) - int256(uint256(s.shortOI));
            equity += int256(s.sumOpenNotional) - WadMath.mulWadCeil(skew, price);
            equity += WadMath.smulWadFloor(skew, index) - int256(s.sumSizeFunding);
            (, uint256 req,) = _requirements(c, m, skew, price);
            im += req;
        }
        if (address(options) != address(0)) {
            (int256 v, uint256 req, uint256 bad, uint8 st) = options.poolRisk();
            equity += v;
            im += req;
            if (bad != 0 && untrustedFeed == 0) (untrustedFeed, untrustedStatus) = (bad, st);
        }
    }

    // ------------------------------------------------------------------ views

    function getAccount(address owner, uint256 sub) external view returns (Account memory) {
        return _accounts[owner][sub];
    }

    function getPosition(address owner, uint256 sub, uint256 marketId) external view returns (Position memory) {
        return _positions[owner][sub][marketId];
    }

    function marketConfig(uint256 marketId) external view returns (MarketConfig memory) {
        return _marketConfigs[marketId];
    }

    /// @notice Market `marketId`'s volatility scalars now [wad]: IM's and MM's (ramping). In
    ///         the core itself (not behind the fallback): the options market reads it in every
    ///         portfolio-margin check.
    function volScalars(uint256 marketId) external view returns (uint256 imScalar, uint256 mmScalar) {
        return _volScalars(marketId);
    }
}
