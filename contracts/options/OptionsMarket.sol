// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {FixedPointMathLib as FPML} from "solady/utils/FixedPointMathLib.sol";
import {IOptions} from "../interfaces/IOptions.sol";
import {IPlimsoll} from "../interfaces/IPlimsoll.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {BlackScholes} from "../libraries/BlackScholes.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @dev What the options market needs from the core.
interface IOptionsHost {
    function admin() external view returns (address);
    function oracle() external view returns (IOracleRouter);
    function marketCount() external view returns (uint256);
    function marketConfig(uint256 marketId) external view returns (IPlimsoll.MarketConfig memory);
    function volScalars(uint256 marketId) external view returns (uint256 imScalar, uint256 mmScalar);
    function optionsBook(address owner, uint256 sub, int256 cashDelta, bool hasOptions) external;
    function optionsCheck(address owner, uint256 sub, bool reducing, bool poolGrew) external view;
    function paused() external view returns (uint8);
    function getAccount(address owner, uint256 sub) external view returns (IPlimsoll.Account memory);
    function getPosition(address owner, uint256 sub, uint256 marketId) external view returns (IPlimsoll.Position memory);
}

/// @title OptionsMarket
/// @notice European calls and puts on the core's underlyings, cash-settled at expiry from the
///         oracle, traded against the liquidity pool at a Black-Scholes mark (implied vol from an
///         oracle feed) plus a spread. Positions live here; cash lives in the core, which asks
///         this contract for the options' value and requirements (standard margin) or for the
///         whole subaccount's portfolio margin (see IOptions for every formula).
/// @dev Bounded loops only: at most MAX_ACCOUNT_SERIES series per subaccount, MAX_LIVE_SERIES
///      series listed and not yet retired (settled with no open interest), 16 markets.
contract OptionsMarket is IOptions, ReentrancyGuard {
    using WadMath for uint256;

    uint256 internal constant WAD = 1e18;
    int256 internal constant IWAD = 1e18;
    uint256 public constant MAX_ACCOUNT_SERIES = 16;
    uint256 public constant MAX_LIVE_SERIES = 32;
    uint256 internal constant MAX_MARKETS = 16;
    uint256 internal constant MONTH = 30 days;
    uint256 internal constant MAX_SHOCK = 0.95e18;
    uint8 internal constant PAUSE_TRADE = 4; // the core's trade switch stops options trading too
    /// @dev `witness` sentinel: compute the full grid.
    uint256 internal constant FULL = type(uint256).max;

    error NotCore(address caller);
    error NotAdmin(address caller);
    error UnknownSeries(uint256 seriesId);
    error SeriesExpired(uint256 seriesId, uint256 expiry);
    error NotExpired(uint256 seriesId, uint256 expiry);
    error AlreadySettled(uint256 seriesId);
    error TooManySeries(uint256 limit);
    error OptionsDisabled(uint256 marketId);
    error OptionReduceOnly(uint256 seriesId, uint8 status);
    error OptionPriceNotTrusted(uint256 feedId, uint8 status);
    error OptionSlippage(uint256 unitPrice, uint256 limitPrice);
    error InvalidOptionsConfig(bytes32 what);
    error ZeroSize();
    error TradingPaused();

    event SeriesListed(uint256 indexed seriesId, uint256 indexed marketId, bool isCall, uint256 expiry, uint256 strike);
    event OptionsConfigured(uint256 indexed marketId, OptionsConfig config);
    event PortfolioConfigured(PortfolioConfig config);
    /// @param premium [wad USD] signed: paid by the trader (> 0) or received (< 0), fee excluded
    event OptionTraded(
        address indexed owner, uint256 indexed subaccount, uint256 indexed seriesId,
        int256 sizeDelta, uint256 mark, int256 premium, uint256 fee
    );
    event SeriesSettled(uint256 indexed seriesId, uint256 settlementPrice);
    event OptionSettled(address indexed owner, uint256 indexed subaccount, uint256 indexed seriesId, int256 size, int256 payoff);
    event OptionsLiquidated(address indexed owner, uint256 indexed subaccount, uint256 fraction, int256 realized, uint256 notional);

    /// @dev The options' part of one subaccount's margin while it is computed.
    struct Risk {
        int256 value;
        uint256 im;
        uint256 mm;
        uint256 notional;
        uint256 untrustedFeed;
        uint8 status;
    }

    /// @dev One market's inputs during a computation.
    struct MarketData {
        bool used;
        uint256 spot;
        uint256 vol;
        int256 perpSize;
    }

    IOptionsHost public immutable core;
    IOracleRouter public immutable oracle;

    Series[] internal _series;
    uint256[] internal _live; // listed and not retired
    mapping(uint256 seriesId => int256) public openInterest; // net trader size; the pool holds minus it
    mapping(uint256 marketId => OptionsConfig) internal _cfg;
    mapping(uint256 marketId => uint16) internal _spotFeed;
    PortfolioConfig internal _pm;
    mapping(address owner => mapping(uint256 sub => uint256[])) internal _held;
    mapping(address owner => mapping(uint256 sub => mapping(uint256 seriesId => int256))) internal _size;

    constructor(IOptionsHost core_) {
        core = core_;
        oracle = core_.oracle();
    }

    modifier onlyAdmin() {
        if (msg.sender != core.admin()) revert NotAdmin(msg.sender);
        _;
    }

    modifier onlyCore() {
        if (msg.sender != address(core)) revert NotCore(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ admin

    /// @notice Options parameters of a core market (its spot feed is read from the core).
    function configure(uint256 marketId, OptionsConfig calldata c) external onlyAdmin {
        if (marketId >= core.marketCount()) revert InvalidOptionsConfig("market");
        if (c.spreadWad > 0.2e18 || c.minFeeWad > 0.01e18) revert InvalidOptionsConfig("fee");
        if (c.shortBWad == 0 || c.shortAWad > WAD || c.shortBWad > WAD) revert InvalidOptionsConfig("shortRate");
        if (c.optionMmFactorWad < 0.1e18 || c.optionMmFactorWad > 0.95e18) revert InvalidOptionsConfig("mmFactor");
        if (c.longHaircutWad > WAD) revert InvalidOptionsConfig("haircut");
        oracle.priceInfo(c.ivFeedId); // the vol feed must exist and answer
        _spotFeed[marketId] = core.marketConfig(marketId).feedId;
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

    /// @notice Lists a series; returns its id.
    function listSeries(uint256 marketId, bool isCall, uint40 expiry, uint128 strike) external onlyAdmin returns (uint256 id) {
        if (_cfg[marketId].shortBWad == 0) revert InvalidOptionsConfig("market");
        if (expiry <= block.timestamp || expiry > block.timestamp + 2 * 365 days) revert InvalidOptionsConfig("expiry");
        if (strike == 0) revert InvalidOptionsConfig("strike");
        if (_live.length >= MAX_LIVE_SERIES) revert TooManySeries(MAX_LIVE_SERIES);
        id = _series.length;
        _series.push(Series(uint16(marketId), isCall, expiry, strike, 0));
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
        Series memory s = _seriesOf(seriesId);
        // An isolated subaccount trades options on its own market only.
        uint8 iso = core.getAccount(msg.sender, sub).isolatedMarket;
        if (iso != 0 && iso - 1 != s.marketId) revert OptionsDisabled(s.marketId);
        if (block.timestamp >= s.expiry) revert SeriesExpired(seriesId, s.expiry);
        OptionsConfig memory c = _cfg[s.marketId];
        (uint256 spot, uint256 vol, uint256 badFeed, uint8 status) = _marketInputs(s.marketId);
        int256 old = _size[msg.sender][sub][seriesId];
        int256 neu = old + sizeDelta;
        bool reducing = old != 0 && WadMath.abs(neu) < WadMath.abs(old) && (neu == 0 || (neu > 0) == (old > 0));
        if (!reducing) {
            if (!c.enabled) revert OptionsDisabled(s.marketId);
            if (badFeed != 0) revert OptionReduceOnly(seriesId, status);
        }
        uint256 mark = _markOf(s, spot, vol);
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

        int256 oiBefore = openInterest[seriesId];
        _setSize(msg.sender, sub, seriesId, old, neu);
        openInterest[seriesId] = oiBefore + sizeDelta;
        bool poolGrew = WadMath.abs(oiBefore + sizeDelta) > WadMath.abs(oiBefore);

        core.optionsBook(msg.sender, sub, -premium - SafeCastLib.toInt(fee), _held[msg.sender][sub].length != 0);
        core.optionsCheck(msg.sender, sub, reducing, poolGrew);
        emit OptionTraded(msg.sender, sub, seriesId, sizeDelta, mark, premium, fee);
    }

    /// @notice Fixes an expired series' settlement price: the spot at this call (the first
    ///         after expiry at which the spot feed is graded OK). Anyone may call it.
    function settleSeries(uint256 seriesId) external {
        Series storage s = _series[_checkSeries(seriesId)];
        if (block.timestamp < s.expiry) revert NotExpired(seriesId, s.expiry);
        if (s.settlementPrice != 0) revert AlreadySettled(seriesId);
        uint16 feed = _spotFeed[s.marketId];
        (uint256 spot, uint8 status) = oracle.priceInfo(feed);
        if (status != 0) revert OptionPriceNotTrusted(feed, status);
        s.settlementPrice = SafeCastLib.toUint128(spot);
        emit SeriesSettled(seriesId, spot);
        _retireIfDone(seriesId);
    }

    /// @notice Pays out every settled series `owner`'s subaccount holds (cash moves between the
    ///         account and the pool) and removes those positions. Anyone may call it.
    function settleAccount(address owner, uint256 sub) external nonReentrant {
        uint256[] storage held = _held[owner][sub];
        int256 cashDelta;
        for (uint256 k = held.length; k > 0; --k) {
            uint256 id = held[k - 1];
            Series memory s = _series[id];
            if (s.settlementPrice == 0) continue;
            int256 q = _size[owner][sub][id];
            uint256 payoff = _intrinsic(s, s.settlementPrice);
            // Longs receive floor(q x payoff), shorts pay ceil(|q| x payoff).
            int256 pay = q > 0 ? SafeCastLib.toInt(uint256(q).mulWadDown(payoff)) : -SafeCastLib.toInt(uint256(-q).mulWadUp(payoff));
            cashDelta += pay;
            openInterest[id] -= q;
            _setSize(owner, sub, id, q, 0);
            emit OptionSettled(owner, sub, id, q, pay);
            _retireIfDone(id);
        }
        core.optionsBook(owner, sub, cashDelta, held.length != 0);
    }

    // ------------------------------------------------------------------ core hooks

    /// @notice Closes `fraction` [wad] of every option position of (owner, sub) at the mark
    ///         (liquidation; the core books the cash and the penalty).
    /// @return realized [wad USD] cash to the account (negative: it pays)
    /// @return notional [wad USD] sum of |closed size| x spot
    /// @return hasOptions whether positions remain
    function liquidateFraction(address owner, uint256 sub, uint256 fraction)
        external
        onlyCore
        returns (int256 realized, uint256 notional, bool hasOptions)
    {
        uint256[] storage held = _held[owner][sub];
        MarketData[MAX_MARKETS] memory md;
        for (uint256 k = held.length; k > 0; --k) {
            uint256 id = held[k - 1];
            Series memory s = _series[id];
            MarketData memory d = md[s.marketId];
            if (!d.used) (d.used, d.spot, d.vol,,) = _loadMarket(s.marketId);
            int256 q = _size[owner][sub][id];
            uint256 absQ = WadMath.abs(q);
            // Round the closed size away from zero so that at least `fraction` closes.
            uint256 closeAbs = fraction >= WAD ? absQ : absQ.mulWadUp(fraction);
            if (closeAbs > absQ) closeAbs = absQ;
            uint256 mark = _markOf(s, d.spot, d.vol);
            realized += q > 0 ? SafeCastLib.toInt(closeAbs.mulWadDown(mark)) : -SafeCastLib.toInt(closeAbs.mulWadUp(mark));
            notional += closeAbs.mulWadUp(d.spot);
            int256 closeQ = q > 0 ? SafeCastLib.toInt(closeAbs) : -SafeCastLib.toInt(closeAbs);
            openInterest[id] -= closeQ;
            _setSize(owner, sub, id, q, q - closeQ);
            _retireIfDone(id); // a settled series whose last position closed leaves the live list
        }
        hasOptions = held.length != 0;
        emit OptionsLiquidated(owner, sub, fraction, realized, notional);
    }

    /// @inheritdoc IOptions
    function accountRisk(address owner, uint256 sub, bool portfolio, uint256 witness)
        external
        view
        returns (int256 value, uint256 im, uint256 mm, uint256 notional, uint256 untrustedFeed, uint8 status)
    {
        Risk memory r;
        uint256[] storage held = _held[owner][sub];
        MarketData[MAX_MARKETS] memory md;
        if (portfolio) _loadPerps(owner, sub, md);
        // Every market the account's options touch: spot and implied vol.
        for (uint256 k; k < held.length; ++k) {
            uint256 m = _series[held[k]].marketId;
            if (md[m].used) continue;
            (uint256 spot, uint256 vol, uint256 bad, uint8 st) = _marketInputs(m);
            md[m].used = true;
            md[m].spot = spot;
            md[m].vol = vol;
            if (bad != 0 && r.untrustedFeed == 0) (r.untrustedFeed, r.status) = (bad, st);
        }
        if (portfolio) {
            _portfolio(r, owner, sub, witness, md);
        } else {
            for (uint256 k; k < held.length; ++k) {
                uint256 id = held[k];
                (int256 v, uint256 legIm, uint256 legMm, uint256 n) = _standardLeg(id, _size[owner][sub][id], md);
                r.value += v;
                r.im += legIm;
                r.mm += legMm;
                r.notional += n;
            }
        }
        return (r.value, r.im, r.mm, r.notional, r.untrustedFeed, r.status);
    }

    /// @dev The perpetual legs of (owner, sub) from the core, at the core's oracle prices.
    function _loadPerps(address owner, uint256 sub, MarketData[MAX_MARKETS] memory md) internal view {
        uint256 mask = core.getAccount(owner, sub).marketMask;
        for (uint256 m; (mask >> m) != 0; ++m) {
            if ((mask >> m) & 1 == 0) continue;
            md[m].perpSize = core.getPosition(owner, sub, m).size;
            (md[m].spot,) = oracle.priceInfo(core.marketConfig(m).feedId);
        }
    }

    /// @inheritdoc IOptions
    function poolRisk() external view returns (int256 value, uint256 im, uint256 untrustedFeed, uint8 status) {
        MarketData[MAX_MARKETS] memory md;
        for (uint256 k; k < _live.length; ++k) {
            uint256 id = _live[k];
            int256 oi = openInterest[id];
            if (oi == 0) continue;
            uint256 m = _series[id].marketId;
            if (!md[m].used && untrustedFeed == 0) {
                (,, uint256 bad, uint8 st) = _marketInputs(m);
                (untrustedFeed, status) = (bad, st);
            }
            (int256 v, uint256 req,,) = _standardLeg(id, -oi, md);
            value += v;
            im += req;
        }
    }

    // ------------------------------------------------------------------ views

    function seriesCount() external view returns (uint256) {
        return _series.length;
    }

    function series(uint256 seriesId) external view returns (Series memory) {
        return _series[_checkSeries(seriesId)];
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
        ids = _held[owner][sub];
        sizes = new int256[](ids.length);
        for (uint256 k; k < ids.length; ++k) sizes[k] = _size[owner][sub][ids[k]];
    }

    /// @notice The mark of `seriesId` now [wad USD per unit] and the inputs used.
    function mark(uint256 seriesId) external view returns (uint256 value, uint256 spot, uint256 vol) {
        Series memory s = _seriesOf(seriesId);
        (spot, vol,,) = _marketInputs(s.marketId);
        value = _markOf(s, spot, vol);
    }

    // ------------------------------------------------------------------ internals

    function _checkSeries(uint256 id) internal view returns (uint256) {
        if (id >= _series.length) revert UnknownSeries(id);
        return id;
    }

    function _seriesOf(uint256 id) internal view returns (Series memory) {
        return _series[_checkSeries(id)];
    }

    /// @dev Spot and implied vol of market `m`, with the first feed not graded OK (+1) and its grade.
    function _marketInputs(uint256 m) internal view returns (uint256 spot, uint256 vol, uint256 bad, uint8 status) {
        uint16 sf = _spotFeed[m];
        uint16 vf = _cfg[m].ivFeedId;
        (spot, status) = oracle.priceInfo(sf);
        if (status != 0) bad = uint256(sf) + 1;
        uint8 vs;
        (vol, vs) = oracle.priceInfo(vf);
        if (vs != 0 && bad == 0) (bad, status) = (uint256(vf) + 1, vs);
    }

    function _loadMarket(uint256 m) internal view returns (bool, uint256, uint256, uint256, uint8) {
        (uint256 spot, uint256 vol, uint256 bad, uint8 st) = _marketInputs(m);
        return (true, spot, vol, bad, st);
    }

    function _intrinsic(Series memory s, uint256 px) internal pure returns (uint256) {
        if (s.isCall) return px > s.strike ? px - s.strike : 0;
        return s.strike > px ? s.strike - px : 0;
    }

    /// @dev The mark [wad per unit]: Black-Scholes (r = 0) before expiry; intrinsic at the
    ///      settlement price (or the spot while unsettled) from expiry on.
    function _markOf(Series memory s, uint256 spot, uint256 vol) internal view returns (uint256) {
        if (block.timestamp >= s.expiry) return _intrinsic(s, s.settlementPrice != 0 ? s.settlementPrice : spot);
        (uint256 c, uint256 p) = BlackScholes.price(spot, s.strike, vol, s.expiry - block.timestamp, 0);
        return s.isCall ? c : p;
    }

    /// @dev Standard margin of one position (IOptions): value, IM, MM, notional.
    function _standardLeg(uint256 id, int256 q, MarketData[MAX_MARKETS] memory md)
        internal
        view
        returns (int256 value, uint256 im, uint256 mm, uint256 notional)
    {
        Series memory s = _series[id];
        MarketData memory d = md[s.marketId];
        if (!d.used) (d.used, d.spot, d.vol,,) = _loadMarket(s.marketId);
        OptionsConfig memory c = _cfg[s.marketId];
        uint256 absQ = WadMath.abs(q);
        uint256 v = _markOf(s, d.spot, d.vol);
        notional = absQ.mulWadUp(d.spot);
        if (q > 0) return (SafeCastLib.toInt(absQ.mulWadDown(v).mulWadDown(c.longHaircutWad)), 0, 0, notional);
        value = -SafeCastLib.toInt(absQ.mulWadUp(v));
        if (block.timestamp >= s.expiry) return (value, 0, 0, notional); // only the payoff is left
        uint256 otmAbs = s.isCall ? (s.strike > d.spot ? s.strike - d.spot : 0) : (d.spot > s.strike ? d.spot - s.strike : 0);
        uint256 otm = otmAbs.divWadDown(d.spot);
        uint256 rate = c.shortAWad > otm ? c.shortAWad - otm : 0;
        if (rate < c.shortBWad) rate = c.shortBWad;
        im = notional.mulWadUp(rate);
        mm = im.mulWadUp(c.optionMmFactorWad);
    }

    /// @dev Portfolio margin (IOptions): full grid, or the witness's scenarios only.
    function _portfolio(Risk memory r, address owner, uint256 sub, uint256 witness, MarketData[MAX_MARKETS] memory md)
        internal
        view
    {
        PortfolioConfig memory pc = _pm;
        uint256 n = uint256(pc.spotPoints) * 3;
        uint256[] storage held = _held[owner][sub];
        uint256 mmTotal;
        uint256 imTotal;
        for (uint256 m; m < MAX_MARKETS; ++m) {
            MarketData memory d = md[m];
            if (d.spot == 0) continue; // not in the account
            (uint256 sIm, uint256 sMm) = core.volScalars(m);
            // Which scenarios: all, or the witness's one.
            uint256 lo;
            uint256 hi = n;
            if (witness != FULL) {
                lo = (witness >> (8 * m)) & 0xff;
                if (lo >= n) lo = 0; // an out-of-range index reads as scenario 0
                hi = lo + 1;
            }
            int256[] memory loss = new int256[](n);
            int256[] memory lnShock = new int256[](pc.spotPoints);
            uint256[] memory spotAt = new uint256[](pc.spotPoints);
            {
                int256 shock = SafeCastLib.toInt(uint256(pc.spotShockWad).mulWadUp(sMm));
                if (shock > int256(MAX_SHOCK)) shock = int256(MAX_SHOCK);
                int256 half = int256(uint256(pc.spotPoints) - 1);
                int256 lnSpot = FPML.lnWad(int256(d.spot));
                for (uint256 i; i < pc.spotPoints; ++i) {
                    // A witness needs one spot point only.
                    if (witness != FULL && i != lo % pc.spotPoints) continue;
                    int256 f = IWAD + shock * (2 * int256(i) - half) / half;
                    spotAt[i] = d.spot * uint256(f) / WAD;
                    lnShock[i] = lnSpot + FPML.lnWad(f);
                }
            }
            // Perp: loss = size x (S - S'), the same in every vol scenario.
            if (d.perpSize != 0) {
                for (uint256 k = lo; k < hi; ++k) {
                    loss[k] = WadMath.smulWadCeil(d.perpSize, int256(d.spot) - int256(spotAt[k % pc.spotPoints]));
                }
            }
            int256 netOptions;
            for (uint256 h; h < held.length; ++h) {
                uint256 id = held[h];
                Series memory s = _series[id];
                if (s.marketId != m) continue;
                int256 q = _size[owner][sub][id];
                netOptions += q;
                uint256 v = _optionLosses(loss, s, q, d, pc, spotAt, lnShock, lo, hi);
                r.value += WadMath.mulWadFloor(q, v);
                r.notional += WadMath.abs(q).mulWadUp(d.spot);
            }
            int256 worst = 0;
            for (uint256 k = lo; k < hi; ++k) if (loss[k] > worst) worst = loss[k];
            uint256 cont = WadMath.abs(d.perpSize).mulWadUp(d.spot).mulWadUp(pc.contPerpWad);
            if (netOptions < 0) cont += uint256(-netOptions).mulWadUp(d.spot).mulWadUp(pc.contOptionWad);
            uint256 mmU = uint256(worst) + cont;
            mmTotal += mmU;
            // IM follows the IM scalar: MM x imFactor x sIm / sMm (>= MM x imFactor).
            imTotal += mmU.mulWadUp(pc.imFactorWad).mulWadUp(sIm.divWadUp(sMm));
        }
        r.mm = mmTotal;
        r.im = imTotal;
    }

    /// @dev Adds q x (v - v'(S', sigma')) to loss[k] for k in [lo, hi); returns the mark v
    ///      (the same number as `_markOf`: one `prepare` serves the mark and the scenarios).
    function _optionLosses(
        int256[] memory loss,
        Series memory s,
        int256 q,
        MarketData memory d,
        PortfolioConfig memory pc,
        uint256[] memory spotAt,
        int256[] memory lnShock,
        uint256 lo,
        uint256 hi
    ) internal view returns (uint256 v) {
        if (block.timestamp >= s.expiry) {
            v = _markOf(s, d.spot, d.vol);
            // Expired: the payoff moves with spot only (settled series do not move at all).
            for (uint256 k = lo; k < hi; ++k) {
                uint256 px = s.settlementPrice != 0 ? s.settlementPrice : spotAt[k % pc.spotPoints];
                loss[k] += WadMath.smulWadCeil(q, int256(v) - int256(_intrinsic(s, px)));
            }
            return v;
        }
        uint256 tau = s.expiry - block.timestamp;
        BlackScholes.Prepared memory p = BlackScholes.prepare(s.strike, tau, 0);
        {
            (uint256 c0, uint256 p0) = BlackScholes.priceAt(p, d.spot, d.vol);
            v = s.isCall ? c0 : p0;
        }
        // Vol shocks scale with (30 days / tau)^volPow, at least 1, capped.
        uint256 scale = WAD;
        if (tau < MONTH) {
            scale = uint256(FPML.powWad(int256(MONTH * WAD / tau), int256(uint256(pc.volPowWad))));
            if (scale > pc.maxVolScaleWad) scale = pc.maxVolScaleWad;
        }
        uint256[3] memory vols;
        vols[0] = d.vol;
        vols[1] = d.vol.mulWadUp(WAD + uint256(pc.volUpWad).mulWadUp(scale));
        uint256 down = uint256(pc.volDownWad).mulWadUp(scale);
        vols[2] = down >= WAD ? 0 : d.vol.mulWadDown(WAD - down);
        if (vols[2] < pc.minVolWad) vols[2] = pc.minVolWad;
        for (uint256 k = lo; k < hi; ++k) {
            uint256 i = k % pc.spotPoints;
            (uint256 c, uint256 pu) = BlackScholes.priceAtLn(p, spotAt[i], lnShock[i], vols[k / pc.spotPoints]);
            loss[k] += WadMath.smulWadCeil(q, int256(v) - int256(s.isCall ? c : pu));
        }
    }

    function _setSize(address owner, uint256 sub, uint256 id, int256 old, int256 neu) internal {
        _size[owner][sub][id] = neu;
        uint256[] storage held = _held[owner][sub];
        if (old == 0 && neu != 0) {
            if (held.length >= MAX_ACCOUNT_SERIES) revert TooManySeries(MAX_ACCOUNT_SERIES);
            held.push(id);
        } else if (old != 0 && neu == 0) {
            for (uint256 k; k < held.length; ++k) {
                if (held[k] == id) {
                    held[k] = held[held.length - 1];
                    held.pop();
                    break;
                }
            }
        }
    }

    /// @dev Drops a settled series without open interest from the live list.
    function _retireIfDone(uint256 id) internal {
        if (_series[id].settlementPrice == 0 || openInterest[id] != 0) return;
        for (uint256 k; k < _live.length; ++k) {
            if (_live[k] == id) {
                _live[k] = _live[_live.length - 1];
                _live.pop();
                return;
            }
        }
    }
}
