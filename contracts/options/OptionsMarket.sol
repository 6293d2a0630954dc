// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {OptionsRisk} from "./OptionsRisk.sol";
import {IOptionsHost, OptionsStorage} from "./OptionsStorage.sol";
import {OptionsMargin} from "./OptionsMargin.sol";
import {BlackScholes} from "../libraries/BlackScholes.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title OptionsMarket
/// @notice European calls and puts on the core's underlyings, cash-settled at expiry from the
///         oracle, traded against the liquidity pool at a Black-Scholes mark (implied vol from an
///         oracle feed) plus a spread. Positions live here; cash lives in the core, which asks
///         this contract for the options' value and requirements (standard margin) or for the
///         whole subaccount's portfolio margin (see IOptions for every formula).
/// @dev Bounded loops only: at most MAX_ACCOUNT_SERIES series per subaccount, MAX_LIVE_SERIES
///      series listed and not yet retired (settled, and every position in it settled or
///      closed: gross, not net), 16 markets.
///      Storage and its helpers: OptionsStorage; margin checks and the liquidation hook:
///      OptionsMargin.
contract OptionsMarket is OptionsMargin, ReentrancyGuard {
    using WadMath for uint256;
    using OptionsRisk for OptionsRisk.Leg;

    constructor(IOptionsHost core_) OptionsStorage(core_) {}

    // ------------------------------------------------------------------ admin

    /// @notice Options parameters of a core market (its spot feed is read from the core).
    function configure(uint256 marketId, OptionsConfig calldata c) external onlyAdmin {
        if (marketId >= core.marketCount()) revert InvalidOptionsConfig("market");
        if (c.spreadWad > 0.2e18 || c.minFeeWad > 0.01e18) revert InvalidOptionsConfig("fee");
        if (c.shortBWad == 0 || c.shortAWad > WAD || c.shortBWad > WAD) revert InvalidOptionsConfig("shortRate");
        if (c.optionMmFactorWad < 0.1e18 || c.optionMmFactorWad > 0.95e18) revert InvalidOptionsConfig("mmFactor");
        if (c.longHaircutWad > WAD) revert InvalidOptionsConfig("haircut");
        oracle.priceInfo(c.ivFeedId); // the vol feed must exist and answer
        _volFeedIds[marketId] = c.ivFeedId; // the spot feed is read from the core at each use
        _cfg[marketId] = c;
        emit OptionsConfigured(marketId, c);
    }

    /// @notice The portfolio-margin grid and contingencies.
    function configurePortfolio(PortfolioConfig calldata p) external onlyAdmin {
        if (p.spotShockWad == 0 || p.spotShockWad > 0.5e18) revert InvalidOptionsConfig("spotShock");
        if (p.spotPoints < 3 || p.spotPoints > 15 || p.spotPoints % 2 == 0) revert InvalidOptionsConfig("spotPoints");
        if (p.volUpWad > 2e18 || p.volDownWad > WAD) revert InvalidOptionsConfig("volShock");
        if (p.volPowWad > WAD || p.maxVolScaleWad < WAD || p.maxVolScaleWad > 10e18) revert InvalidOptionsConfig("volScale");
        if (p.minVolWad == 0 || p.minVolWad > WAD) revert InvalidOptionsConfig("minVol");
        if (p.contPerpWad > 0.1e18 || p.contOptionWad > 0.1e18) revert InvalidOptionsConfig("contingency");
        if (p.imFactorWad < WAD || p.imFactorWad > 3e18) revert InvalidOptionsConfig("imFactor");
        _pm = p;
        emit PortfolioConfigured(p);
    }

    /// @notice Lists a series; returns its id. Strikes up to type(uint96).max [wad].
    function listSeries(uint256 marketId, bool isCall, uint40 expiry, uint128 strike) external onlyAdmin returns (uint256 id) {
        if (_cfg[marketId].shortBWad == 0) revert InvalidOptionsConfig("market");
        if (expiry <= block.timestamp || expiry > block.timestamp + 2 * 365 days) revert InvalidOptionsConfig("expiry");
        if (strike == 0 || strike > type(uint96).max) revert InvalidOptionsConfig("strike");
        if (_live.length >= MAX_LIVE_SERIES) revert TooManySeries(MAX_LIVE_SERIES);
        id = _series.length;
        if (id > MAX_SERIES_ID) revert TooManySeries(MAX_SERIES_ID + 1);
        _series.push(SeriesSlot(uint8(marketId), isCall, expiry, uint96(strike), 0));
        _live.push(id);
        emit SeriesListed(id, marketId, isCall, expiry, strike);
    }

    // ------------------------------------------------------------------ trading

    /// @notice Buys (sizeDelta > 0) or sells options of `seriesId` against the pool at the mark
    ///         plus the spread. `limitPrice` [wad per unit]: most paid per unit when buying,
    ///         least received when selling; 0 accepts any.
    function trade(uint256 sub, uint256 seriesId, int256 sizeDelta, uint256 limitPrice) external nonReentrant {
        if (sizeDelta == 0) revert ZeroSize();
        if (core.paused() & PAUSE_TRADE != 0) revert TradingPaused();
        OptionsRisk.Leg memory s = _seriesLeg(_checkSeries(seriesId));
        // An isolated subaccount trades options on its own market only.
        uint8 iso = core.getAccount(msg.sender, sub).isolatedMarket;
        if (iso != 0 && iso - 1 != s.marketId) revert OptionsDisabled(s.marketId);
        if (block.timestamp >= s.expiry) revert SeriesExpired(seriesId, s.expiry);
        OptionsConfig memory c = _cfg[s.marketId];
        (uint256 spot, uint256 vol, uint256 badFeed, uint8 status) = _fillInputs(s.marketId, s.isCall, sizeDelta > 0);
        OptionsRisk.Leg[] memory legs = _legs(msg.sender, sub);
        uint256 j;
        while (j < legs.length && legs[j].id != seriesId) ++j;
        int256 old = j < legs.length ? legs[j].size : int256(0);
        int256 neu = old + sizeDelta;
        bool reducing = old != 0 && WadMath.abs(neu) < WadMath.abs(old) && (neu == 0 || (neu > 0) == (old > 0));
        if (!reducing) {
            if (!c.enabled) revert OptionsDisabled(s.marketId);
            if (badFeed != 0) revert OptionReduceOnly(seriesId, status);
        }
        uint256 mark = s.markOf(spot, vol);
        uint256 q = WadMath.abs(sizeDelta);
        // Fee per unit: max(mark x spread, spot x minFee), rounded up.
        uint256 feeUnit = mark.mulWadUp(c.spreadWad);
        uint256 minFee = spot.mulWadUp(c.minFeeWad);
        if (minFee > feeUnit) feeUnit = minFee;
        if (limitPrice != 0) {
            if (sizeDelta > 0 && mark + feeUnit > limitPrice) revert OptionSlippage(mark + feeUnit, limitPrice);
            if (sizeDelta < 0 && (mark < feeUnit || mark - feeUnit < limitPrice)) {
                revert OptionSlippage(mark > feeUnit ? mark - feeUnit : 0, limitPrice);
            }
        }
        // Buyers pay ceil(q x mark), sellers receive floor(q x mark); the fee goes to the pool.
        int256 premium = sizeDelta > 0 ? SafeCastLib.toInt(q.mulWadUp(mark)) : -SafeCastLib.toInt(q.mulWadDown(mark));
        uint256 fee = q.mulWadUp(feeUnit);

        SeriesSlot storage slot = _series[seriesId];
        int256 oiBefore = slot.openInterest;
        slot.openInterest = _toInt104(oiBefore + sizeDelta);
        bool poolGrew = WadMath.abs(oiBefore + sizeDelta) > WadMath.abs(oiBefore);
        uint256 kept;
        if (j < legs.length) {
            legs[j].size = neu;
            kept = _storeLegs(msg.sender, sub, legs);
            if (neu == 0) --_holders[seriesId]; // unexpired: not settled, nothing to retire
        } else {
            kept = _appendLeg(msg.sender, sub, legs.length, seriesId, neu);
        }

        core.optionsBook(msg.sender, sub, -premium - SafeCastLib.toInt(fee), kept != 0);
        core.optionsCheck(msg.sender, sub, reducing, poolGrew);
        emit OptionTraded(msg.sender, sub, seriesId, sizeDelta, mark, premium, fee);
    }

    /// @dev The spot and vol a trade fills at, as perps fill (OracleRouter.fillBounds): while
    ///      a feed is graded OK its bounds are its answer; otherwise (reduce-only) the end of
    ///      each feed's bounds worse for the trader. The mark rises with the vol, a call's with
    ///      the spot and a put's as it falls: a buyer's mark takes the high vol and the spot
    ///      end that raises the option, a seller's the other ends. Also returns the first feed
    ///      (+1) not graded OK and its grade.
    function _fillInputs(uint256 m, bool isCall, bool buy)
        internal
        view
        returns (uint256 spot, uint256 vol, uint256 bad, uint8 status)
    {
        (uint16 sf, uint16 vf) = (_spotFeed(m), _volFeed(m));
        (uint256 lo, uint256 hi, uint8 st) = oracle.fillBounds(sf);
        spot = isCall == buy ? hi : lo;
        if (st != 0) (bad, status) = (uint256(sf) + 1, st);
        (lo, hi, st) = oracle.fillBounds(vf);
        vol = buy ? hi : lo;
        if (vol > BlackScholes.MAX_VOL) vol = BlackScholes.MAX_VOL; // as _marketInputs
        if (st != 0 && bad == 0) (bad, status) = (uint256(vf) + 1, st);
    }

    /// @notice Fixes an expired series' settlement price: the answer of the spot feed's first
    ///         round at or after expiry (OracleRouter.priceAt). `roundId` names that round, or
    ///         0: the router finds it by walking back from the latest round (a few dozen
    ///         rounds; further back, name it). The caller chooses nothing: every call after
    ///         that round gives the same price. The feed must be graded OK at the call (a feed
    ///         in trouble holds settlement). Anyone may call it.
    function settleSeries(uint256 seriesId, uint80 roundId) external {
        SeriesSlot memory s = _series[_checkSeries(seriesId)];
        if (block.timestamp < s.expiry) revert NotExpired(seriesId, s.expiry);
        if (_settlement[seriesId] != 0) revert AlreadySettled(seriesId);
        uint16 feed = _spotFeed(s.marketId);
        (, uint8 status) = oracle.priceInfo(feed);
        if (status != 0) revert OptionPriceNotTrusted(feed, status);
        (uint256 spot,) = oracle.priceAt(feed, s.expiry, roundId);
        _settlement[seriesId] = spot;
        emit SeriesSettled(seriesId, spot);
        if (_holders[seriesId] == 0) _retire(seriesId);
    }

    /// @notice Pays out every settled series `owner`'s subaccount holds (cash moves between the
    ///         account and the pool) and removes those positions. Anyone may call it.
    function settleAccount(address owner, uint256 sub) external nonReentrant {
        OptionsRisk.Leg[] memory legs = _legs(owner, sub);
        int256 cashDelta;
        for (uint256 k; k < legs.length; ++k) {
            OptionsRisk.Leg memory l = legs[k];
            if (l.settlementPrice == 0) continue;
            int256 q = l.size;
            uint256 payoff = l.intrinsic(l.settlementPrice);
            // Longs receive floor(q x payoff), shorts pay ceil(|q| x payoff).
            int256 pay = q > 0 ? SafeCastLib.toInt(uint256(q).mulWadDown(payoff)) : -SafeCastLib.toInt(uint256(-q).mulWadUp(payoff));
            cashDelta += pay;
            l.size = 0;
            _closeInSeries(l, q);
            emit OptionSettled(owner, sub, l.id, q, pay);
        }
        core.optionsBook(owner, sub, cashDelta, _storeLegs(owner, sub, legs) != 0);
    }

    // ------------------------------------------------------------------ views

    function seriesCount() external view returns (uint256) {
        return _series.length;
    }

    function series(uint256 seriesId) external view returns (Series memory) {
        SeriesSlot memory s = _series[_checkSeries(seriesId)];
        return Series(s.marketId, s.isCall, s.expiry, s.strike, uint128(_settlement[seriesId]));
    }

    /// @notice How many subaccounts hold a position (long or short) in `seriesId`.
    function holders(uint256 seriesId) external view returns (uint256) {
        return _holders[_checkSeries(seriesId)];
    }

    /// @notice Net size [wad] the traders hold in `seriesId`; the pool holds minus it.
    function openInterest(uint256 seriesId) external view returns (int256) {
        return _series[_checkSeries(seriesId)].openInterest;
    }

    function liveSeries() external view returns (uint256[] memory) {
        return _live;
    }

    function optionsConfig(uint256 marketId) external view returns (OptionsConfig memory) {
        return _cfg[marketId];
    }

    function portfolioConfig() external view returns (PortfolioConfig memory) {
        return _pm;
    }

    /// @notice The series ids and sizes [wad] of (owner, sub).
    function positions(address owner, uint256 sub) external view returns (uint256[] memory ids, int256[] memory sizes) {
        OptionsRisk.Leg[] memory legs = _legs(owner, sub);
        ids = new uint256[](legs.length);
        sizes = new int256[](legs.length);
        for (uint256 k; k < legs.length; ++k) (ids[k], sizes[k]) = (legs[k].id, legs[k].size);
    }

    /// @notice The mark of `seriesId` now [wad USD per unit] and the inputs used.
    function mark(uint256 seriesId) external view returns (uint256 value, uint256 spot, uint256 vol) {
        OptionsRisk.Leg memory s = _seriesLeg(_checkSeries(seriesId));
        (spot, vol,,) = _marketInputs(s.marketId);
        value = s.markOf(spot, vol);
    }
}
