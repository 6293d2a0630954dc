// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IOptions
/// @notice European options on the core's perpetual markets' underlyings, cash-settled in the
///         settlement stablecoin, traded against the liquidity pool; standard and portfolio
///         margin for the options (and, in portfolio mode, the whole subaccount).
/// @dev Units: [wad] = 1e18. Sizes: wad units of the underlying (> 0 long, < 0 short). Strikes,
///      prices, marks: wad USD per unit. Vols: annualized wad. Times: seconds; tau = expiry - now,
///      annualized over 365 days. Rate 0 (crypto convention: Black-Scholes with r = 0, i.e.
///      Black-76 on the spot). Every price comes from the core's oracle router (spot: the
///      market's feed; implied vol: the market's `ivFeedId`, a feed answering the vol as a
///      fraction, e.g. 0.65e18 = 65%).
///
///      Mark v of a series at spot S, vol sigma: BlackScholes.price(S, K, sigma, tau, 0) (call
///      or put); after expiry, the intrinsic value at the settlement price (or at S while the
///      series is not settled yet).
///
///      STANDARD margin, per option position q (mark v, spot S, strike K):
///        value  = q > 0 ? floor(q x v x longHaircut) : -ceil(|q| x v)
///        OTM    = call: max(K - S, 0) / S,  put: max(S - K, 0) / S       (wad, floor)
///        rate   = max(shortA - OTM, shortB)                               (0 if OTM >= shortA ... then shortB)
///        IM     = q < 0 ? ceil(ceil(|q| x S) x rate) : 0
///        MM     = ceil(IM x optionMmFactor)
///      (equity carries the short's mark as a liability, so the requirement is the Lyra-style
///      max(a - OTM%, b) x spot on top of it.)
///
///      PORTFOLIO margin (opt-in per cross subaccount): for each underlying u (market m) the
///      account holds (perp or options), a grid of n = spotPoints x 3 scenarios k:
///        spot index i = k % spotPoints, vol index j = k / spotPoints (0 none, 1 up, 2 down)
///        shock_i = spotShock x sMm x (2 i / (spotPoints - 1) - 1)       (sMm: the market's MM
///                  volatility scalar; e.g. -18% .. +18% in 9 points)
///        S'      = S x (1 + shock_i)
///        per option, scale = min((30 days / tau)^volPow, maxVolScale) (1 when tau >= 30 days)
///        sigma'  = j == 0: sigma;  j == 1: sigma x (1 + volUp x scale);
///                  j == 2: max(sigma x (1 - volDown x scale), minVol)
///        loss_u(k) = sum_perp  size x (S - S')                           (a perp's PnL is linear)
///                  + sum_opt   q x (v(S, sigma) - v(S', sigma'))
///        contingency_u = contPerp x |perp size| x S + contOption x S x max(0, -sum_opt q)
///        MM = sum_u max(max_k loss_u(k), 0) + contingency_u;  IM = MM x imFactor x sIm / sMm
///      Equity in portfolio mode counts long options at full mark (no haircut); perps and
///      collateral as in standard margin (collateral is not shocked: its haircut is its risk).
///
///      LIMITS (storage is packed for the margin checks): strikes <= 2^96 - 1 wad (7.9e10 USD),
///      positions and a series' open interest within int104 (+-1.0e13 units; SizeOutOfRange),
///      series ids < 2^24 - 1, at most 16 positions per subaccount and 32 live series.
///
///      WITNESS liquidation: a keeper names one scenario per underlying (8 bits per market id in
///      `witness`: scenario of market m = (witness >> (8 m)) & 0xff); the contract prices only
///      those: L = sum_u max(loss_u(k_u), 0) + contingency_u <= MM. equity < L proves the
///      account is below MM; the liquidation then uses L as the account's MM.
interface IOptions {
    struct Series {
        uint16 marketId; // the core market whose underlying (spot feed) the option is on
        bool isCall;
        uint40 expiry; // [s]
        uint128 strike; // [wad USD]
        uint128 settlementPrice; // [wad] 0 until settled
    }

    struct OptionsConfig {
        uint16 ivFeedId; // oracle router feed answering the implied vol [wad]
        bool enabled; // new risk allowed
        uint64 spreadWad; // trade price = mark x (1 +- spread)
        uint64 minFeeWad; // at least |q| x S x minFee away from the mark
        uint64 shortAWad; // standard: rate = max(shortA - OTM, shortB)
        uint64 shortBWad;
        uint64 optionMmFactorWad; // standard: MM = IM x this
        uint64 longHaircutWad; // standard: long options count at this share of their mark
    }

    struct PortfolioConfig {
        uint64 spotShockWad; // largest spot shock (0.18)
        uint8 spotPoints; // odd, 3..15 (9)
        uint64 volUpWad; // sigma x (1 + volUp x scale)
        uint64 volDownWad; // sigma x (1 - volDown x scale)
        uint64 volPowWad; // scale = (30 days / tau)^volPow
        uint64 maxVolScaleWad; // cap on scale
        uint64 minVolWad; // floor of a shocked-down vol
        uint64 contPerpWad; // contingency per unit of perp notional
        uint64 contOptionWad; // contingency per net short option, x spot
        uint64 imFactorWad; // IM = MM x imFactor (> 1)
    }

    /// @notice The options' part of (owner, sub)'s margin. Standard mode: the options' value,
    ///         IM, MM. Portfolio mode: the options' value at full mark and the whole
    ///         subaccount's IM and MM (perps read from the core). `witness` ==
    ///         type(uint256).max: the full grid; else one scenario per market (8 bits each) and
    ///         MM is the loss bound L.
    /// @return value [wad USD] contribution to equity
    /// @return im [wad USD]
    /// @return mm [wad USD]
    /// @return notional [wad USD] sum |q| x spot of the SHORT options, for the liquidation
    ///         penalty and close fraction (a long carries no requirement: issue 13, finding 5)
    /// @return untrustedFeed 0, or feedId + 1 of a spot or vol feed not graded OK
    /// @return status that feed's grade
    /// @return legPrices per position (in `positions` order): its mark | spot << 128 [wad], what
    ///         `liquidateFraction` closes at (the core passes them on; nothing is priced twice)
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
        );

    /// @notice The pool's options: value [wad USD] of its positions (minus the traders' open
    ///         interest) at their full mark (longs floor(q x v), shorts -ceil(|q| x v): the
    ///         share price), and their standard IM plus the long haircut
    ///         (floor(q x v) - floor(floor(q x v) x longHaircut): a risk measure, kept out of
    ///         the value); the first spot or vol feed (+1) not graded OK with its grade (LP
    ///         withdrawals wait for it). O(live series).
    function poolRisk() external view returns (int256 value, uint256 im, uint256 untrustedFeed, uint8 status);

    /// @notice Core only: closes `fraction` [wad] of every position at `legPrices` (from
    ///         `accountRisk` earlier in the same transaction); `notional`: the closed shorts'.
    function liquidateFraction(address owner, uint256 sub, uint256 fraction, uint256[] calldata legPrices)
        external
        returns (int256 realized, uint256 notional, bool hasOptions);
}
