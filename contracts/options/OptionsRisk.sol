// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMathLib as FPML} from "solady/utils/FixedPointMathLib.sol";
import {IOptions} from "../interfaces/IOptions.sol";
import {BlackScholes} from "../libraries/BlackScholes.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title OptionsRisk
/// @notice The options market's margin arithmetic on data already loaded into memory: marks,
///         standard option margin, and the portfolio-margin scenario grid (full, or a witness's
///         scenarios only). Every formula is specified in IOptions.
/// @dev No storage, no external calls: OptionsMarket loads an account's legs, spots, vols and
///      volatility scalars once and hands them here, so the full check and the witness check
///      read each slot once.
library OptionsRisk {
    using WadMath for uint256;

    uint256 internal constant WAD = 1e18;
    int256 internal constant IWAD = 1e18;
    uint256 internal constant MAX_MARKETS = 16;
    uint256 internal constant MONTH = 30 days;
    uint256 internal constant MAX_SHOCK = 0.95e18;
    /// @dev `witness` sentinel: compute the full grid.
    uint256 internal constant FULL = type(uint256).max;

    /// @dev One option position of an account with its series' data (`settlementPrice` is read
    ///      from storage only from expiry on; 0 before).
    struct Leg {
        uint256 id;
        int256 size; // [wad] > 0 long
        uint256 marketId;
        bool isCall;
        uint256 expiry;
        uint256 strike;
        uint256 settlementPrice;
    }

    /// @dev One market's inputs during a computation (spot 0: the account does not use it).
    struct MarketData {
        bool used; // spot and vol loaded (an option market of the account)
        uint256 spot;
        uint256 vol;
        int256 perpSize;
        uint256 sIm; // volatility scalars (portfolio mode)
        uint256 sMm;
    }

    /// @dev The options' part of one subaccount's margin while it is computed.
    struct Risk {
        int256 value;
        uint256 im;
        uint256 mm;
        uint256 notional;
        uint256 untrustedFeed;
        uint8 status;
    }

    /// @dev A market's scenario spots: S' per spot point and ln S' (ln S + ln(1 + shock)).
    struct Grid {
        int256 lnSpot;
        uint256[] spotAt;
        int256[] lnShock;
    }

    // ------------------------------------------------------------------ marks

    function intrinsic(Leg memory l, uint256 px) internal pure returns (uint256) {
        if (l.isCall) return px > l.strike ? px - l.strike : 0;
        return l.strike > px ? l.strike - px : 0;
    }

    /// @dev The mark [wad per unit]: Black-Scholes (r = 0) before expiry; intrinsic at the
    ///      settlement price (or the spot while unsettled) from expiry on.
    function markOf(Leg memory l, uint256 spot, uint256 vol) internal view returns (uint256) {
        if (block.timestamp >= l.expiry) return intrinsic(l, l.settlementPrice != 0 ? l.settlementPrice : spot);
        (uint256 c, uint256 p) = BlackScholes.price(spot, l.strike, vol, l.expiry - block.timestamp, 0);
        return l.isCall ? c : p;
    }

    /// @dev One leg's mark and spot packed for the liquidation that follows a check:
    ///      mark | spot << 128 (both below 2^120: BlackScholes.MAX_PRICE).
    function packPrice(uint256 mark, uint256 spot) internal pure returns (uint256) {
        return mark | (spot << 128);
    }

    // ------------------------------------------------------------------ standard margin

    /// @dev Standard margin of `q` units of leg `l` (IOptions): value, IM, MM, notional, mark.
    function standardLeg(Leg memory l, int256 q, MarketData memory d, IOptions.OptionsConfig memory c)
        internal
        view
        returns (int256 value, uint256 im, uint256 mm, uint256 notional, uint256 v)
    {
        uint256 absQ = WadMath.abs(q);
        v = markOf(l, d.spot, d.vol);
        notional = absQ.mulWadUp(d.spot);
        if (q > 0) return (SafeCastLib.toInt(absQ.mulWadDown(v).mulWadDown(c.longHaircutWad)), 0, 0, notional, v);
        value = -SafeCastLib.toInt(absQ.mulWadUp(v));
        if (block.timestamp >= l.expiry) return (value, 0, 0, notional, v); // only the payoff is left
        uint256 otmAbs = l.isCall ? (l.strike > d.spot ? l.strike - d.spot : 0) : (d.spot > l.strike ? d.spot - l.strike : 0);
        uint256 otm = otmAbs.divWadDown(d.spot);
        uint256 rate = c.shortAWad > otm ? c.shortAWad - otm : 0;
        if (rate < c.shortBWad) rate = c.shortBWad;
        im = notional.mulWadUp(rate);
        mm = im.mulWadUp(c.optionMmFactorWad);
    }

    // ------------------------------------------------------------------ portfolio margin

    /// @dev Portfolio margin (IOptions) over every market with a spot in `md`: the full grid,
    ///      or the witness's scenario per market. Writes each leg's packed mark and spot into
    ///      `legPrices` (same order as `legs`).
    function portfolio(
        Risk memory r,
        Leg[] memory legs,
        MarketData[MAX_MARKETS] memory md,
        IOptions.PortfolioConfig memory pc,
        uint256 witness,
        uint256[] memory legPrices
    ) internal view {
        uint256 points = pc.spotPoints;
        uint256 n = points * 3;
        for (uint256 m; m < MAX_MARKETS; ++m) {
            MarketData memory d = md[m];
            if (d.spot == 0) continue; // not in the account
            // Which scenarios: all, or the witness's one.
            uint256 lo;
            uint256 hi = n;
            if (witness != FULL) {
                lo = (witness >> (8 * m)) & 0xff;
                if (lo >= n) lo = 0; // an out-of-range index reads as scenario 0
                hi = lo + 1;
            }
            Grid memory g = _grid(d, pc, witness == FULL ? type(uint256).max : lo % points);
            int256[] memory loss = new int256[](n);
            // Perp: loss = size x (S - S'), the same in every vol scenario.
            if (d.perpSize != 0) {
                for (uint256 k = lo; k < hi; ++k) {
                    loss[k] = WadMath.smulWadCeil(d.perpSize, int256(d.spot) - int256(g.spotAt[k % points]));
                }
            }
            int256 netOptions;
            for (uint256 h; h < legs.length; ++h) {
                Leg memory l = legs[h];
                if (l.marketId != m) continue;
                netOptions += l.size;
                uint256 v = _optionLosses(loss, l, d, pc, g, lo, hi);
                legPrices[h] = packPrice(v, d.spot);
                r.value += WadMath.mulWadFloor(l.size, v);
                r.notional += WadMath.abs(l.size).mulWadUp(d.spot);
            }
            int256 worst = 0;
            for (uint256 k = lo; k < hi; ++k) if (loss[k] > worst) worst = loss[k];
            uint256 cont = WadMath.abs(d.perpSize).mulWadUp(d.spot).mulWadUp(pc.contPerpWad);
            if (netOptions < 0) cont += uint256(-netOptions).mulWadUp(d.spot).mulWadUp(pc.contOptionWad);
            uint256 mmU = uint256(worst) + cont;
            r.mm += mmU;
            // IM follows the IM scalar: MM x imFactor x sIm / sMm (>= MM x imFactor).
            r.im += mmU.mulWadUp(pc.imFactorWad).mulWadUp(d.sIm.divWadUp(d.sMm));
        }
    }

    /// @dev The spot points of market `d` (all, or only `only` for a witness).
    function _grid(MarketData memory d, IOptions.PortfolioConfig memory pc, uint256 only)
        private
        pure
        returns (Grid memory g)
    {
        uint256 points = pc.spotPoints;
        g.spotAt = new uint256[](points);
        g.lnShock = new int256[](points);
        int256 shock = SafeCastLib.toInt(uint256(pc.spotShockWad).mulWadUp(d.sMm));
        if (shock > int256(MAX_SHOCK)) shock = int256(MAX_SHOCK);
        int256 half = int256(points - 1);
        g.lnSpot = FPML.lnWad(int256(d.spot));
        for (uint256 i; i < points; ++i) {
            if (only != type(uint256).max && i != only) continue;
            int256 f = IWAD + shock * (2 * int256(i) - half) / half;
            g.spotAt[i] = d.spot * uint256(f) / WAD;
            g.lnShock[i] = g.lnSpot + FPML.lnWad(f);
        }
    }

    /// @dev Adds q x (v - v'(S', sigma')) to loss[k] for k in [lo, hi); returns the mark v
    ///      (the same number as `markOf`: one `prepare` serves the mark and the scenarios, ln S
    ///      comes from the grid).
    function _optionLosses(
        int256[] memory loss,
        Leg memory l,
        MarketData memory d,
        IOptions.PortfolioConfig memory pc,
        Grid memory g,
        uint256 lo,
        uint256 hi
    ) private view returns (uint256 v) {
        uint256 points = pc.spotPoints;
        int256 q = l.size;
        if (block.timestamp >= l.expiry) {
            v = markOf(l, d.spot, d.vol);
            // Expired: the payoff moves with spot only (settled series do not move at all).
            for (uint256 k = lo; k < hi; ++k) {
                uint256 px = l.settlementPrice != 0 ? l.settlementPrice : g.spotAt[k % points];
                loss[k] += WadMath.smulWadCeil(q, int256(v) - int256(intrinsic(l, px)));
            }
            return v;
        }
        uint256 tau = l.expiry - block.timestamp;
        BlackScholes.Prepared memory p = BlackScholes.prepareZeroRate(l.strike, BlackScholes.sqrtTau(tau));
        {
            (uint256 c0, uint256 p0) = BlackScholes.priceAtLn(p, d.spot, g.lnSpot, d.vol);
            v = l.isCall ? c0 : p0;
        }
        uint256[3] memory vols;
        vols[0] = d.vol;
        // Vol shocks are needed unless the range is one scenario of the unshocked vol.
        if (hi - lo > 1 || lo >= points) {
            uint256 scale = volScale(tau, pc);
            vols[1] = d.vol.mulWadUp(WAD + uint256(pc.volUpWad).mulWadUp(scale));
            uint256 down = uint256(pc.volDownWad).mulWadUp(scale);
            vols[2] = down >= WAD ? 0 : d.vol.mulWadDown(WAD - down);
            if (vols[2] < pc.minVolWad) vols[2] = pc.minVolWad;
        }
        for (uint256 k = lo; k < hi; ++k) {
            uint256 i = k % points;
            (uint256 c, uint256 pu) = BlackScholes.priceAtLn(p, g.spotAt[i], g.lnShock[i], vols[k / points]);
            loss[k] += WadMath.smulWadCeil(q, int256(v) - int256(l.isCall ? c : pu));
        }
    }

    /// @dev The vol-shock scale min((30 days / tau)^volPow, maxVolScale), 1 when tau >= 30 days.
    function volScale(uint256 tau, IOptions.PortfolioConfig memory pc) internal pure returns (uint256 scale) {
        scale = WAD;
        if (tau < MONTH) {
            scale = uint256(FPML.powWad(int256(MONTH * WAD / tau), int256(uint256(pc.volPowWad))));
            if (scale > pc.maxVolScaleWad) scale = pc.maxVolScaleWad;
        }
    }
}
