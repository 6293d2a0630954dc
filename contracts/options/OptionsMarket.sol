// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IOptions} from "../interfaces/IOptions.sol";
import {IPlimsoll} from "../interfaces/IPlimsoll.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {OptionsRisk} from "./OptionsRisk.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";
import {FixedPointMathLib as FPML} from "solady/utils/FixedPointMathLib.sol";

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
///      Storage is laid out for the margin checks: a series' hot data (market, type, expiry,
///      strike, open interest) is one slot, and an account's positions are packed two per
///      slot (series id + 1: 24 bits, size: int104), so a check of a 16-option account reads
///      16 + 8 slots and a liquidation writes the same slots back.
contract OptionsMarket is IOptions, ReentrancyGuard {
    using WadMath for uint256;
    using OptionsRisk for OptionsRisk.Leg;

    uint256 internal constant WAD = 1e18;
    int256 internal constant IWAD = 1e18;
    uint256 public constant MAX_ACCOUNT_SERIES = 16;
    uint256 public constant MAX_LIVE_SERIES = 32;
    uint256 internal constant MAX_MARKETS = 16;
    uint256 internal constant BOOK_SLOTS = MAX_ACCOUNT_SERIES / 2;
    uint256 internal constant MAX_SERIES_ID = (1 << 24) - 2; // ids + 1 fit 24 bits
    uint256 internal constant MASK_24 = (1 << 24) - 1;
    uint256 internal constant OI_SHIFT = 152; // SeriesSlot.openInterest's bit offset
    uint256 internal constant LOW_152 = (1 << 152) - 1;
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
    /// @notice A position or a series' open interest [wad] would leave the int104 range
    ///         (+-1.0e13 units of the underlying).
    error SizeOutOfRange(int256 size);
    /// @notice liquidateFraction got prices for `given` legs; the account has `legs`.
    error LegPricesMismatch(uint256 legs, uint256 given);

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

    /// @dev A series' hot data: one slot (256 bits).
    struct SeriesSlot {
        uint8 marketId;
        bool isCall;
        uint40 expiry; // [s]
        uint96 strike; // [wad USD] <= 7.9e10 USD per unit
        int104 openInterest; // [wad] net trader size; the pool holds minus it
    }

    IOptionsHost public immutable core;
    IOracleRouter public immutable oracle;

    SeriesSlot[] internal _series;
    mapping(uint256 seriesId => uint256) internal _settlement; // [wad] 0 until settled
    uint256[] internal _live; // listed and not retired
    mapping(uint256 marketId => OptionsConfig) internal _cfg;
    /// @dev Market's spot feed id | implied-vol feed id << 16: the two ids a check needs, one slot.
    mapping(uint256 marketId => uint32) internal _feedIds;
    PortfolioConfig internal _pm;
    /// @dev Positions of (owner, sub): dense, two 128-bit legs per slot, leg = id + 1 | size << 24.
    mapping(address owner => mapping(uint256 sub => uint256[BOOK_SLOTS])) internal _book;

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
        _feedIds[marketId] = uint32(core.marketConfig(marketId).feedId) | (uint32(c.ivFeedId) << 16);
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
        (uint256 spot, uint256 vol, uint256 badFeed, uint8 status) = _marketInputs(s.marketId);
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
        } else {
            kept = _appendLeg(msg.sender, sub, legs.length, seriesId, neu);
        }

        core.optionsBook(msg.sender, sub, -premium - SafeCastLib.toInt(fee), kept != 0);
        core.optionsCheck(msg.sender, sub, reducing, poolGrew);
        emit OptionTraded(msg.sender, sub, seriesId, sizeDelta, mark, premium, fee);
    }

    /// @notice Fixes an expired series' settlement price: the spot at this call (the first
    ///         after expiry at which the spot feed is graded OK). Anyone may call it.
    function settleSeries(uint256 seriesId) external {
        SeriesSlot memory s = _series[_checkSeries(seriesId)];
        if (block.timestamp < s.expiry) revert NotExpired(seriesId, s.expiry);
        if (_settlement[seriesId] != 0) revert AlreadySettled(seriesId);
        uint16 feed = uint16(_feedIds[s.marketId]);
        (uint256 spot, uint8 status) = oracle.priceInfo(feed);
        if (status != 0) revert OptionPriceNotTrusted(feed, status);
        _settlement[seriesId] = spot;
        emit SeriesSettled(seriesId, spot);
        if (s.openInterest == 0) _retire(seriesId);
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

    // ------------------------------------------------------------------ core hooks

    /// @notice Closes `fraction` [wad] of every option position of (owner, sub) at the marks the
    ///         core's margin check returned a moment earlier in the same transaction
    ///         (`legPrices`, from `accountRisk`, one per position in its order: mark | spot << 128).
    ///         The core books the cash and the penalty.
    /// @return realized [wad USD] cash to the account (negative: it pays)
    /// @return notional [wad USD] sum of |closed size| x spot
    /// @return hasOptions whether positions remain
    function liquidateFraction(address owner, uint256 sub, uint256 fraction, uint256[] calldata legPrices)
        external
        onlyCore
        returns (int256 realized, uint256 notional, bool hasOptions)
    {
        // Straight on the packed words (the hot path of every options liquidation): each leg's
        // series slot is read and written once, each book slot at most once, and the book is
        // rewritten dense as it is read (legs closed in full drop out, the rest keep their order).
        if (fraction > WAD) fraction = WAD;
        uint256[BOOK_SLOTS] storage b = _book[owner][sub];
        uint256 seriesBase = _seriesSlot(0);
        uint256 n; // legs read
        uint256 kept; // legs written back
        uint256 out; // the book word being rebuilt (slot kept / 2)
        uint256[MAX_ACCOUNT_SERIES] memory emptied; // series whose open interest reached 0
        uint256 nEmptied;
        bytes4 errMismatch = LegPricesMismatch.selector;
        bytes4 errSize = SizeOutOfRange.selector;
        (uint256 slots, uint256 mask24, uint256 low152) = (BOOK_SLOTS, MASK_24, LOW_152);
        // Per leg (book word: id + 1 in bits 0-23, int104 size in bits 24-127; series word:
        // open interest int104 in bits 152-255, expiry in bits 16-55):
        //   closed = ceil(|q| x fraction) (at least `fraction` closes; <= |q| as fraction <= 1)
        //   realized += q > 0 ? floor(closed x mark) : -ceil(closed x mark)
        //   notional += ceil(closed x spot); open interest -= closed (signed like q)
        // No overflow: |q| < 2^103, fraction <= 1e18 < 2^60, marks and spots (from the check)
        // < 2^128: every product is below 2^231 and 16 legs' sums stay far inside int256; the
        // new open interest is range-checked to int104 (SizeOutOfRange), the size left has q's
        // sign and a smaller magnitude, so it fits int104 as q did.
        assembly ("memory-safe") {
            let len := legPrices.length
            let book := b.slot
            let done := 0
            for { let i := 0 } and(lt(i, slots), iszero(done)) { i := add(i, 1) } {
                let w := sload(add(book, i))
                if iszero(w) { break }
                for { let h := 0 } lt(h, 2) { h := add(h, 1) } {
                    let leg := shr(128, shl(sub(128, mul(h, 128)), w))
                    if iszero(leg) {
                        done := 1 // a slot not full ends the book
                        break
                    }
                    if iszero(lt(n, len)) {
                        let e := mload(0x40) // the revert data at free memory
                        mstore(e, errMismatch)
                        mstore(add(e, 0x04), add(n, 1))
                        mstore(add(e, 0x24), len)
                        revert(e, 0x44)
                    }
                    let unit := calldataload(add(legPrices.offset, shl(5, n)))
                    n := add(n, 1)
                    let q := signextend(12, shr(24, leg))
                    let closed := q
                    if slt(q, 0) { closed := sub(0, q) }
                    if lt(fraction, WAD) {
                        let z := mul(closed, fraction)
                        closed := add(div(z, WAD), gt(mod(z, WAD), 0))
                    }
                    let cost := mul(closed, and(unit, 0xffffffffffffffffffffffffffffffff))
                    let closeQ := closed
                    switch sgt(q, 0)
                    case 1 { realized := add(realized, div(cost, WAD)) }
                    default {
                        realized := sub(realized, add(div(cost, WAD), gt(mod(cost, WAD), 0)))
                        closeQ := sub(0, closed)
                    }
                    let z := mul(closed, shr(128, unit))
                    notional := add(notional, add(div(z, WAD), gt(mod(z, WAD), 0)))
                    let id := sub(and(leg, mask24), 1)
                    let slot := add(seriesBase, id)
                    let sw := sload(slot)
                    let oi := sub(signextend(12, shr(OI_SHIFT, sw)), closeQ)
                    if iszero(eq(signextend(12, oi), oi)) {
                        let e := mload(0x40)
                        mstore(e, errSize)
                        mstore(add(e, 0x04), oi)
                        revert(e, 0x24)
                    }
                    sstore(slot, or(and(sw, low152), shl(OI_SHIFT, and(oi, 0xffffffffffffffffffffffffff))))
                    // An expired series without open interest may retire (if settled: below).
                    if and(iszero(oi), iszero(lt(timestamp(), and(shr(16, sw), 0xffffffffff)))) {
                        mstore(add(emptied, shl(5, nEmptied)), id)
                        nEmptied := add(nEmptied, 1)
                    }
                    if iszero(eq(q, closeQ)) {
                        let left := or(and(leg, mask24), shl(24, and(sub(q, closeQ), 0xffffffffffffffffffffffffff)))
                        switch and(kept, 1)
                        case 0 { out := left }
                        default {
                            out := or(out, shl(128, left))
                            let bs := add(book, shr(1, kept))
                            if iszero(eq(sload(bs), out)) { sstore(bs, out) }
                        }
                        kept := add(kept, 1)
                    }
                }
            }
        }
        if (n != legPrices.length) revert LegPricesMismatch(n, legPrices.length);
        // A settled series whose last position closed leaves the live list.
        for (uint256 k; k < nEmptied; ++k) {
            if (_settlement[emptied[k]] != 0) _retire(emptied[k]);
        }
        // The half-built last word, then zeros over the slots the closed legs freed.
        if (kept % 2 == 1 && b[kept / 2] != out) b[kept / 2] = out;
        for (uint256 i = (kept + 1) / 2; 2 * i < n; ++i) b[i] = 0;
        hasOptions = kept != 0;
        emit OptionsLiquidated(owner, sub, fraction, realized, notional);
    }

    /// @inheritdoc IOptions
    function accountRisk(address owner, uint256 sub, bool portfolio, uint256 witness)
        external
        view
        returns (
            int256 value,
            uint256 im,
            uint256 mm,
            uint256 notional,
            uint256 untrustedFeed,
            uint8 status,
            uint256[] memory legPrices
        )
    {
        OptionsRisk.Risk memory r;
        if (portfolio && witness != FULL) {
            (r, legPrices) = _witnessRisk(owner, sub, witness);
            return (r.value, r.im, r.mm, r.notional, r.untrustedFeed, r.status, legPrices);
        }
        OptionsRisk.Leg[] memory legs = _legs(owner, sub);
        legPrices = new uint256[](legs.length);
        OptionsRisk.MarketData[MAX_MARKETS] memory md;
        if (portfolio) {
            uint256[MAX_MARKETS] memory spot;
            int256[MAX_MARKETS] memory perp;
            uint256 mask = _loadPerps(owner, sub, spot, perp);
            for (uint256 m; (mask >> m) != 0; ++m) (md[m].spot, md[m].perpSize) = (spot[m], perp[m]);
        }
        // Every market the account's options touch: spot and implied vol.
        for (uint256 k; k < legs.length; ++k) {
            OptionsRisk.MarketData memory d = md[legs[k].marketId];
            if (d.used) continue;
            (uint256 spot, uint256 vol, uint256 bad, uint8 st) = _marketInputs(legs[k].marketId);
            (d.used, d.spot, d.vol) = (true, spot, vol);
            if (bad != 0 && r.untrustedFeed == 0) (r.untrustedFeed, r.status) = (bad, st);
        }
        if (portfolio) {
            for (uint256 m; m < MAX_MARKETS; ++m) {
                if (md[m].spot != 0) (md[m].sIm, md[m].sMm) = core.volScalars(m);
            }
            OptionsRisk.portfolio(r, legs, md, _pm, legPrices);
        } else {
            for (uint256 k; k < legs.length; ++k) {
                OptionsRisk.Leg memory l = legs[k];
                OptionsRisk.MarketData memory d = md[l.marketId];
                (int256 v, uint256 legIm, uint256 legMm, uint256 n, uint256 unit) =
                    OptionsRisk.standardLeg(l, l.size, d, _cfg[l.marketId]);
                r.value += v;
                r.im += legIm;
                r.mm += legMm;
                r.notional += n;
                legPrices[k] = OptionsRisk.packPrice(unit, d.spot);
            }
        }
        return (r.value, r.im, r.mm, r.notional, r.untrustedFeed, r.status, legPrices);
    }

    /// @dev `accountRisk` of a portfolio account on a witness: the numbers the full grid gives
    ///      at the scenario the witness names for each market (IOptions), computed straight on
    ///      the packed words (no Leg structs, no grid arrays), one mark and one scenario price
    ///      per position. The hot path of every witness liquidation.
    function _witnessRisk(address owner, uint256 sub, uint256 witness)
        internal
        view
        returns (OptionsRisk.Risk memory r, uint256[] memory legPrices)
    {
        uint256[MAX_ACCOUNT_SERIES] memory legW; // book order: id + 1 | size << 24
        uint256[MAX_ACCOUNT_SERIES] memory seriesW; // each leg's series slot
        uint256[MAX_MARKETS] memory spot;
        uint256[MAX_MARKETS] memory vol;
        int256[MAX_MARKETS] memory perp;
        uint256 mask = _loadPerps(owner, sub, spot, perp);
        uint256 n = _readBook(_book[owner][sub], legW);
        // Every market the options touch, in the order of first use: spot and implied vol.
        uint256 optMask;
        for (uint256 k; k < n; ++k) {
            uint256 sw = _sload(_seriesSlot((legW[k] & MASK_24) - 1)); // ids in a book are listed
            seriesW[k] = sw;
            uint256 m = uint8(sw);
            if ((optMask >> m) & 1 != 0) continue;
            optMask |= 1 << m;
            uint256 bad;
            uint8 st;
            (spot[m], vol[m], bad, st) = _marketInputs(m);
            if (bad != 0 && r.untrustedFeed == 0) (r.untrustedFeed, r.status) = (bad, st);
        }
        legPrices = new uint256[](n);
        IOptions.PortfolioConfig memory pc = _pm;
        uint256 points = pc.spotPoints;
        mask |= optMask;
        for (uint256 m; (mask >> m) != 0; ++m) {
            if ((mask >> m) & 1 == 0) continue;
            (uint256 sIm, uint256 sMm) = core.volScalars(m);
            uint256 k = (witness >> (8 * m)) & 0xff;
            if (k >= 3 * points) k = 0; // an out-of-range index reads as scenario 0
            uint256 s = spot[m];
            int256 lnSpot = FPML.lnWad(int256(s));
            (uint256 spotAt, int256 lnAt) =
                OptionsRisk.spotPoint(s, lnSpot, OptionsRisk.maxShock(pc, sMm), k % points, points);
            // Perp: loss = size x (S - S').
            int256 loss = perp[m] == 0 ? int256(0) : WadMath.smulWadCeil(perp[m], int256(s) - int256(spotAt));
            int256 netOptions;
            int256 value;
            uint256 notional;
            for (uint256 h; h < n; ++h) {
                uint256 sw = seriesW[h];
                if (uint8(sw) != m) continue;
                int256 q = int256(int104(uint104(legW[h] >> 24)));
                (uint256 v, uint256 vAt) = _witnessLeg(sw, (legW[h] & MASK_24) - 1, s, lnSpot, vol[m], spotAt, lnAt, k / points, pc);
                legPrices[h] = OptionsRisk.packPrice(v, s);
                unchecked {
                    // The rounding of WadMath's smulWadCeil, mulWadFloor and mulWadUp, without
                    // their overflow checks: |q| < 2^103 (int104), prices and spots < 2^128, so
                    // each product is below 2^231 and 16 legs' sums stay far inside int256.
                    loss += _ceilWad(q * (int256(v) - int256(vAt)));
                    value += _floorWad(q * int256(v));
                    notional += uint256(_ceilWad(int256(q >= 0 ? uint256(q) : uint256(-q)) * int256(s)));
                    netOptions += q;
                }
            }
            r.value += value;
            r.notional += notional;
            OptionsRisk.addMarketMargin(r, loss, perp[m], netOptions, s, sIm, sMm, pc);
        }
    }

    /// @dev One position's mark and its value in the witness scenario (spot `spotAt`, vol
    ///      state j); expired series: the payoff at the settlement price, or at S and S' while
    ///      unsettled.
    function _witnessLeg(
        uint256 sw,
        uint256 id,
        uint256 spot,
        int256 lnSpot,
        uint256 vol,
        uint256 spotAt,
        int256 lnAt,
        uint256 j,
        PortfolioConfig memory pc
    ) internal view returns (uint256 v, uint256 vAt) {
        uint256 expiry = uint40(sw >> 16);
        bool isCall = uint8(sw >> 8) != 0;
        uint256 strike = uint96(sw >> 56);
        if (block.timestamp < expiry) {
            return OptionsRisk.witnessPrices(isCall, strike, expiry - block.timestamp, spot, lnSpot, vol, spotAt, lnAt, j, pc);
        }
        uint256 settle = _settlement[id];
        v = OptionsRisk.intrinsic(isCall, strike, settle != 0 ? settle : spot);
        vAt = OptionsRisk.intrinsic(isCall, strike, settle != 0 ? settle : spotAt);
    }

    /// @dev The perpetual legs of (owner, sub) from the core, at the core's oracle prices:
    ///      size and spot per market; returns the mask of those markets.
    function _loadPerps(address owner, uint256 sub, uint256[MAX_MARKETS] memory spot, int256[MAX_MARKETS] memory perp)
        internal
        view
        returns (uint256 mask)
    {
        mask = core.getAccount(owner, sub).marketMask;
        for (uint256 m; (mask >> m) != 0; ++m) {
            if ((mask >> m) & 1 == 0) continue;
            perp[m] = core.getPosition(owner, sub, m).size;
            (spot[m],) = oracle.priceInfo(core.marketConfig(m).feedId);
        }
    }

    /// @dev Copies the packed legs of a book into `legW` (book order); returns how many.
    function _readBook(uint256[BOOK_SLOTS] storage b, uint256[MAX_ACCOUNT_SERIES] memory legW)
        internal
        view
        returns (uint256 n)
    {
        for (uint256 i; i < BOOK_SLOTS; ++i) {
            uint256 w = b[i];
            if (w == 0) break;
            legW[n++] = uint128(w);
            if (w >> 128 == 0) break;
            legW[n++] = w >> 128;
        }
    }

    /// @inheritdoc IOptions
    function poolRisk() external view returns (int256 value, uint256 im, uint256 untrustedFeed, uint8 status) {
        OptionsRisk.MarketData[MAX_MARKETS] memory md;
        for (uint256 k; k < _live.length; ++k) {
            uint256 id = _live[k];
            OptionsRisk.Leg memory l = _seriesLeg(id);
            int256 oi = _series[id].openInterest;
            if (oi == 0) continue;
            OptionsRisk.MarketData memory d = md[l.marketId];
            if (!d.used) {
                uint256 bad;
                uint8 st;
                (d.spot, d.vol, bad, st) = _marketInputs(l.marketId);
                d.used = true;
                if (bad != 0 && untrustedFeed == 0) (untrustedFeed, status) = (bad, st);
            }
            (int256 v, uint256 req,,,) = OptionsRisk.standardLeg(l, -oi, d, _cfg[l.marketId]);
            value += v;
            im += req;
        }
    }

    // ------------------------------------------------------------------ views

    function seriesCount() external view returns (uint256) {
        return _series.length;
    }

    function series(uint256 seriesId) external view returns (Series memory) {
        SeriesSlot memory s = _series[_checkSeries(seriesId)];
        return Series(s.marketId, s.isCall, s.expiry, s.strike, uint128(_settlement[seriesId]));
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

    // ------------------------------------------------------------------ internals

    function _checkSeries(uint256 id) internal view returns (uint256) {
        if (id >= _series.length) revert UnknownSeries(id);
        return id;
    }

    /// @dev Series `id` as a leg of size 0 (its settlement price read only from expiry on).
    ///      One read of the series slot, decoded in place (`id` must be listed).
    function _seriesLeg(uint256 id) internal view returns (OptionsRisk.Leg memory l) {
        uint256 sw = _sload(_seriesSlot(id));
        uint256 expiry = uint40(sw >> 16);
        l.id = id;
        l.marketId = uint8(sw);
        l.isCall = uint8(sw >> 8) != 0;
        l.expiry = expiry;
        l.strike = uint96(sw >> 56);
        if (block.timestamp >= expiry) l.settlementPrice = _settlement[id];
    }

    /// @dev The positions of (owner, sub) with their series, in book order.
    function _legs(address owner, uint256 sub) internal view returns (OptionsRisk.Leg[] memory legs) {
        uint256[MAX_ACCOUNT_SERIES] memory raw;
        uint256 n = _readBook(_book[owner][sub], raw);
        // An array of n pointers, each set below (`new Leg[](n)` would first build n zero
        // structs that are thrown away).
        assembly ("memory-safe") {
            legs := mload(0x40)
            mstore(legs, n)
            mstore(0x40, add(legs, shl(5, add(n, 1))))
        }
        for (uint256 k; k < n; ++k) {
            legs[k] = _seriesLeg((raw[k] & MASK_24) - 1); // ids in a book are listed
            legs[k].size = int256(int104(uint104(raw[k] >> 24)));
        }
    }

    /// @dev The storage slot of `_series[id]` (a one-slot struct: marketId bits 0-7, isCall
    ///      8-15, expiry 16-55, strike 56-151, openInterest 152-255).
    function _seriesSlot(uint256 id) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0, _series.slot)
            slot := add(keccak256(0, 0x20), id)
        }
    }

    function _sload(uint256 slot) internal view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(slot)
        }
    }

    function _sstore(uint256 slot, uint256 w) internal {
        assembly ("memory-safe") {
            sstore(slot, w)
        }
    }

    /// @dev ceil(p / WAD), rounding toward plus infinity.
    function _ceilWad(int256 p) internal pure returns (int256 z) {
        unchecked {
            z = p / IWAD; // truncates toward zero
            if (p > 0 && p % IWAD != 0) ++z;
        }
    }

    /// @dev floor(p / WAD), rounding toward minus infinity.
    function _floorWad(int256 p) internal pure returns (int256 z) {
        unchecked {
            z = p / IWAD; // truncates toward zero
            if (p < 0 && p % IWAD != 0) --z;
        }
    }

    /// @dev ceil(z / WAD).
    function _divWadUp(uint256 z) internal pure returns (uint256) {
        unchecked {
            return z / WAD + (z % WAD == 0 ? 0 : 1);
        }
    }

    function _pack(uint256 id, int256 size) internal pure returns (uint256) {
        return (id + 1) | (uint256(uint104(_toInt104(size))) << 24);
    }

    /// @dev Writes `legs` back, dropping those of size 0 (the rest keep their order); only the
    ///      slots that change are written. Returns how many legs are left.
    function _storeLegs(address owner, uint256 sub, OptionsRisk.Leg[] memory legs) internal returns (uint256 kept) {
        uint256[MAX_ACCOUNT_SERIES] memory packed;
        for (uint256 k; k < legs.length; ++k) {
            if (legs[k].size != 0) packed[kept++] = _pack(legs[k].id, legs[k].size);
        }
        _writeBook(_book[owner][sub], packed, legs.length);
    }

    /// @dev Writes packed legs over a book that held `n` legs (the slots they used), skipping
    ///      slots that do not change.
    function _writeBook(uint256[BOOK_SLOTS] storage b, uint256[MAX_ACCOUNT_SERIES] memory packed, uint256 n) internal {
        for (uint256 i; 2 * i < n; ++i) {
            uint256 w = packed[2 * i] | (packed[2 * i + 1] << 128); // 2 i + 1 < n + 1 <= 16
            if (b[i] != w) b[i] = w;
        }
    }

    /// @dev Adds a new leg after the `n` existing ones; returns n + 1.
    function _appendLeg(address owner, uint256 sub, uint256 n, uint256 id, int256 size) internal returns (uint256) {
        if (n >= MAX_ACCOUNT_SERIES) revert TooManySeries(MAX_ACCOUNT_SERIES);
        _book[owner][sub][n / 2] |= _pack(id, size) << (128 * (n % 2));
        return n + 1;
    }

    /// @dev Removes `closed` [wad] of the traders' open interest in `l`'s series (the pool takes
    ///      the other side) and retires a settled series left without open interest.
    function _closeInSeries(OptionsRisk.Leg memory l, int256 closed) internal {
        SeriesSlot storage s = _series[l.id];
        int256 oi = s.openInterest - closed;
        s.openInterest = _toInt104(oi);
        if (oi == 0 && l.settlementPrice != 0) _retire(l.id);
    }

    function _toInt104(int256 x) internal pure returns (int104) {
        if (x > type(int104).max || x < type(int104).min) revert SizeOutOfRange(x);
        return int104(x);
    }

    /// @dev Spot and implied vol of market `m`, with the first feed not graded OK (+1) and its grade.
    function _marketInputs(uint256 m) internal view returns (uint256 spot, uint256 vol, uint256 bad, uint8 status) {
        uint32 ids = _feedIds[m];
        uint16 sf = uint16(ids);
        uint16 vf = uint16(ids >> 16);
        (spot, status) = oracle.priceInfo(sf);
        if (status != 0) bad = uint256(sf) + 1;
        uint8 vs;
        (vol, vs) = oracle.priceInfo(vf);
        if (vs != 0 && bad == 0) (bad, status) = (uint256(vf) + 1, vs);
    }

    /// @dev Drops a settled series without open interest from the live list.
    function _retire(uint256 id) internal {
        for (uint256 k; k < _live.length; ++k) {
            if (_live[k] == id) {
                _live[k] = _live[_live.length - 1];
                _live.pop();
                return;
            }
        }
    }
}
