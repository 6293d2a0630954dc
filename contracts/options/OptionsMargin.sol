// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMathLib as FPML} from "solady/utils/FixedPointMathLib.sol";
import {IOptions} from "../interfaces/IOptions.sol";
import {OptionsRisk} from "./OptionsRisk.sol";
import {OptionsStorage} from "./OptionsStorage.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title OptionsMargin
/// @notice What the core asks of the options market: an account's options value and margin
///         (standard, portfolio on the full grid, or on a witness's scenarios), the pool's
///         options, and the close of a liquidated fraction (every formula in IOptions).
/// @dev The witness check and the close work straight on the packed words (the hot path of
///      every portfolio-margin liquidation); the full grid on Leg structs (OptionsRisk).
abstract contract OptionsMargin is OptionsStorage {
    using WadMath for uint256;
    using OptionsRisk for OptionsRisk.Leg;

    // ------------------------------------------------------------------ core hooks

    /// @notice Closes `fraction` [wad] of every option position of (owner, sub) at the marks the
    ///         core's margin check returned a moment earlier in the same transaction
    ///         (`legPrices`, from `accountRisk`, one per position in its order: mark | spot << 128).
    ///         The core books the cash and the penalty.
    /// @return realized [wad USD] cash to the account (negative: it pays)
    /// @return notional [wad USD] sum of |closed size| x spot of the short positions (a long
    ///         carries no requirement: the penalty follows the risk removed, finding 5)
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
        uint256[MAX_ACCOUNT_SERIES] memory emptied; // series of the positions closed in full
        uint256 nEmptied;
        bytes4 errMismatch = LegPricesMismatch.selector;
        bytes4 errSize = SizeOutOfRange.selector;
        (uint256 slots, uint256 mask24, uint256 low152) = (BOOK_SLOTS, MASK_24, LOW_152);
        // Per leg (book word: id + 1 in bits 0-23, int104 size in bits 24-127; series word:
        // open interest int104 in bits 152-255, expiry in bits 16-55):
        //   closed = ceil(|q| x fraction) (at least `fraction` closes; <= |q| as fraction <= 1)
        //   realized += q > 0 ? floor(closed x mark) : -ceil(closed x mark)
        //   notional += ceil(closed x spot) if q < 0; open interest -= closed (signed like q)
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
                    if slt(q, 0) {
                        let z := mul(closed, shr(128, unit))
                        notional := add(notional, add(div(z, WAD), gt(mod(z, WAD), 0)))
                    }
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
                    // A position closed in full leaves its series' holders (below).
                    if eq(q, closeQ) {
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
        for (uint256 k; k < nEmptied; ++k) _leaveSeries(emptied[k]);
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
                    if (q < 0) notional += uint256(_ceilWad(-q * int256(s))); // shorts only (finding 5)
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
        (bool isCall, uint256 expiry, uint256 strike) = _decodeSeries(sw);
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
            (spot[m],) = oracle.priceInfo(_spotFeed(m));
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
            // The pool's positions count at their full mark in its value (the share price: a
            // margin haircut is a risk measure, not a value, and a haircut in the share price
            // lets a trade move it); the haircut of its longs goes into its IM instead, so
            // equity - IM is what the standard margin of the same positions gives.
            (int256 v, uint256 req,,, uint256 unit) = OptionsRisk.standardLeg(l, -oi, d, _cfg[l.marketId]);
            if (oi < 0) {
                int256 full = SafeCastLib.toInt(uint256(-oi).mulWadDown(unit));
                // v = floor(full x haircut) <= full; from expiry on only the payoff is left
                // and it needs no margin.
                if (block.timestamp < l.expiry) req += uint256(full - v);
                v = full;
            }
            value += v;
            im += req;
        }
    }
}
