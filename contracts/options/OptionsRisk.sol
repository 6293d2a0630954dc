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
        return intrinsic(l.isCall, l.strike, px);
    }

    /// @dev A call's or put's payoff at price `px` [wad per unit].
    function intrinsic(bool isCall, uint256 strike, uint256 px) internal pure returns (uint256) {
        if (isCall) return px > strike ? px - strike : 0;
        return strike > px ? strike - px : 0;
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
    ///      A long's notional is 0: it carries no requirement, and the liquidation penalty
    ///      and close fraction follow the requirement removed (issue 13, finding 5).
    function standardLeg(Leg memory l, int256 q, MarketData memory d, IOptions.OptionsConfig memory c)
        internal
        view
        returns (int256 value, uint256 im, uint256 mm, uint256 notional, uint256 v)
    {
        uint256 absQ = WadMath.abs(q);
        v = markOf(l, d.spot, d.vol);
        if (q > 0) return (SafeCastLib.toInt(absQ.mulWadDown(v).mulWadDown(c.longHaircutWad)), 0, 0, 0, v);
        notional = absQ.mulWadUp(d.spot);
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

    /// @dev Portfolio margin (IOptions) over every market with a spot in `md`, on the full
    ///      grid (a witness's scenarios are priced by `witnessPrices` instead). Writes each
    ///      leg's packed mark and spot into `legPrices` (same order as `legs`).
    function portfolio(
        Risk memory r,
        Leg[] memory legs,
        MarketData[MAX_MARKETS] memory md,
        IOptions.PortfolioConfig memory pc,
        uint256[] memory legPrices
    ) internal view {
        uint256 points = pc.spotPoints;
        uint256 n = points * 3;
        for (uint256 m; m < MAX_MARKETS; ++m) {
            MarketData memory d = md[m];
            if (d.spot == 0) continue; // not in the account
            Grid memory g = _grid(d, pc);
            int256[] memory loss = new int256[](n);
            // Perp: loss = size x (S - S'), the same in every vol scenario.
            if (d.perpSize != 0) {
                for (uint256 k; k < n; ++k) {
                    loss[k] = WadMath.smulWadCeil(d.perpSize, int256(d.spot) - int256(g.spotAt[k % points]));
                }
            }
            int256 netOptions;
            for (uint256 h; h < legs.length; ++h) {
                Leg memory l = legs[h];
                if (l.marketId != m) continue;
                netOptions += l.size;
                uint256 v = _optionLosses(loss, l, d, pc, g);
                legPrices[h] = packPrice(v, d.spot);
                r.value += WadMath.mulWadFloor(l.size, v);
                // Short options only: a long's loss is at most its premium (finding 5).
                if (l.size < 0) r.notional += uint256(-l.size).mulWadUp(d.spot);
            }
            int256 worst = 0;
            for (uint256 k; k < n; ++k) if (loss[k] > worst) worst = loss[k];
            _addMarketMargin(r, worst, netOptions, d, pc);
        }
    }

    /// @dev `addMarketMargin` with the market's perp size, spot and scalars from `d` (fewer
    ///      values on the grid loop's stack: it compiles without the optimizer, as coverage runs).
    function _addMarketMargin(
        Risk memory r,
        int256 loss,
        int256 netOptions,
        MarketData memory d,
        IOptions.PortfolioConfig memory pc
    ) private pure {
        addMarketMargin(r, loss, d.perpSize, netOptions, d.spot, d.sIm, d.sMm, pc);
    }

    /// @dev Adds one underlying's MM = max(loss, 0) + contingencies, and its IM, to `r`.
    ///      IM follows the IM scalar: MM x imFactor x sIm / sMm (>= MM x imFactor).
    function addMarketMargin(
        Risk memory r,
        int256 loss,
        int256 perpSize,
        int256 netOptions,
        uint256 spot,
        uint256 sIm,
        uint256 sMm,
        IOptions.PortfolioConfig memory pc
    ) internal pure {
        uint256 cont = WadMath.abs(perpSize).mulWadUp(spot).mulWadUp(pc.contPerpWad);
        if (netOptions < 0) cont += uint256(-netOptions).mulWadUp(spot).mulWadUp(pc.contOptionWad);
        uint256 mmU = (loss > 0 ? uint256(loss) : 0) + cont;
        r.mm += mmU;
        r.im += mmU.mulWadUp(pc.imFactorWad).mulWadUp(sIm.divWadUp(sMm));
    }

    /// @dev The spot points of market `d`.
    function _grid(MarketData memory d, IOptions.PortfolioConfig memory pc) private pure returns (Grid memory g) {
        uint256 points = pc.spotPoints;
        g.spotAt = new uint256[](points);
        g.lnShock = new int256[](points);
        int256 shock = maxShock(pc, d.sMm);
        g.lnSpot = FPML.lnWad(int256(d.spot));
        for (uint256 i; i < points; ++i) {
            (g.spotAt[i], g.lnShock[i]) = spotPoint(d.spot, g.lnSpot, shock, i, points);
        }
    }

    /// @dev The largest spot shock of a market: ceil(spotShock x sMm), at most MAX_SHOCK.
    function maxShock(IOptions.PortfolioConfig memory pc, uint256 sMm) internal pure returns (int256 shock) {
        shock = SafeCastLib.toInt(uint256(pc.spotShockWad).mulWadUp(sMm));
        if (shock > int256(MAX_SHOCK)) shock = int256(MAX_SHOCK);
    }

    /// @dev Spot point i of `points`: S' = floor(S x f) with f = 1 + shock (2 i - (points - 1))
    ///      / (points - 1) (truncated toward zero), and ln S' = ln S + ln f.
    function spotPoint(uint256 spot, int256 lnSpot, int256 shock, uint256 i, uint256 points)
        internal
        pure
        returns (uint256 spotAt, int256 lnAt)
    {
        int256 half = int256(points - 1);
        int256 f = IWAD + shock * (2 * int256(i) - half) / half;
        spotAt = spot * uint256(f) / WAD;
        lnAt = lnSpot + FPML.lnWad(f);
    }

    /// @dev The vol of vol state j (0 none, 1 up, 2 down) at vol-shock scale `scale`
    ///      (`volScale` of the option's time to expiry; unused for j == 0).
    function shockedVol(uint256 vol, uint256 j, uint256 scale, IOptions.PortfolioConfig memory pc)
        internal
        pure
        returns (uint256)
    {
        if (j == 0) return vol;
        if (j == 1) {
            // Clamped, never reverting (issue 13, finding 8): at MAX_VOL an option is within
            // 1e-6 of its no-arbitrage bound from an hour before expiry (BlackScholes.MAX_VOL).
            uint256 up = vol.mulWadUp(WAD + uint256(pc.volUpWad).mulWadUp(scale));
            return up > BlackScholes.MAX_VOL ? BlackScholes.MAX_VOL : up;
        }
        uint256 down = uint256(pc.volDownWad).mulWadUp(scale);
        uint256 v = down >= WAD ? 0 : vol.mulWadDown(WAD - down);
        return v < pc.minVolWad ? pc.minVolWad : v;
    }

    /// @dev A witness scenario of one unexpired option: its mark v at (S, sigma) and its value
    ///      at (S', sigma'_j), `tau` seconds before expiry. The same numbers as the full grid's
    ///      `_optionLosses` at that scenario (one `prepare`; ln S and ln S' from the market).
    function witnessPrices(
        bool isCall,
        uint256 strike,
        uint256 tau,
        uint256 spot,
        int256 lnSpot,
        uint256 vol,
        uint256 spotAt,
        int256 lnAt,
        uint256 j,
        IOptions.PortfolioConfig memory pc
    ) internal pure returns (uint256 v, uint256 vAt) {
        BlackScholes.Prepared memory p = BlackScholes.prepareZeroRate(strike, BlackScholes.sqrtTau(tau));
        (uint256 c0, uint256 p0) = BlackScholes.priceAtLn(p, spot, lnSpot, vol);
        uint256 volAt = j == 0 ? vol : shockedVol(vol, j, volScale(tau, pc), pc);
        (uint256 c, uint256 pu) = BlackScholes.priceAtLn(p, spotAt, lnAt, volAt);
        (v, vAt) = isCall ? (c0, c) : (p0, pu);
    }

    /// @dev Adds q x (v - v'(S', sigma')) to loss[k] for every scenario k; returns the mark v
    ///      (the same number as `markOf`: one `prepare` serves the mark and the scenarios, ln S
    ///      comes from the grid).
    function _optionLosses(
        int256[] memory loss,
        Leg memory l,
        MarketData memory d,
        IOptions.PortfolioConfig memory pc,
        Grid memory g
    ) private view returns (uint256 v) {
        uint256 points = pc.spotPoints;
        uint256 n = loss.length;
        int256 q = l.size;
        if (block.timestamp >= l.expiry) {
            v = markOf(l, d.spot, d.vol);
            // Expired: the payoff moves with spot only (settled series do not move at all).
            for (uint256 k; k < n; ++k) {
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
        uint256 scale = volScale(tau, pc);
        uint256[3] memory vols = [d.vol, shockedVol(d.vol, 1, scale, pc), shockedVol(d.vol, 2, scale, pc)];
        for (uint256 k; k < n; ++k) {
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
