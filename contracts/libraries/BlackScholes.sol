// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMathLib as FPML} from "solady/utils/FixedPointMathLib.sol";

/// @title BlackScholes
/// @notice European option prices on the WAD (1e18) scale: the standard normal CDF, a plain
///         `price`, and a fast path for scenario grids (`prepare` once per option, then `priceAt`
///         / `priceAtLn` per scenario) for portfolio margin.
/// @dev Model: Black-Scholes with a continuously compounded rate and no dividends,
///          call = S N(d1) - K e^{-rT} N(d2),   put = K e^{-rT} N(-d2) - S N(-d1),
///          d1 = (ln(S/K) + r T) / (sigma sqrt T) + sigma sqrt T / 2,   d2 = d1 - sigma sqrt T,
///      with T = tau / 365 days. N(x) and N(-x) come from one evaluation and add up to exactly
///      WAD, so put-call parity holds to within 1 wei before the clamp at zero.
///      Accuracy (tests/risk_onchain/test_bs_accuracy.py, S/K 0.5-2, tau 1 day-2 years, vol
///      10%-300%, rate 0-10%, 3,024 options, plain and fast path alike): max |price - exact| =
///      5.7e-18 x spot against a 70-digit evaluation of the formula on the same integer inputs
///      (about 1 wei of output rounding); against the float64 (math.erfc) Black-Scholes the
///      requirement names, 4.8e-16 x spot, which is float64's own noise. Asserted: 1e-6 x spot
///      vs float64 and 1e-16 x spot + 2 wei vs exact.
///      Gas (bench/bs_gas.py -> bench/results/bs_gas.json, library code only, 160 options):
///      cdf 137-1,026 (median 1,012); price 2,836-5,127 (median 4,542); prepare 1,460-1,988;
///      priceAtLn 749-2,512 (median 1,932) and priceAt 1,384-3,147 per call/put pair; a
///      9 x 3 scenario grid all in (prepare, ln of spot and shocks, loop) 1,855-3,560 per scenario
///      (median 3,019).
library BlackScholes {
    /// @notice Inputs to the per-scenario formula that depend only on the option, not on the
    ///         scenario's spot and vol.
    /// @dev Build it with `prepare` only: `priceAt`/`priceAtLn` rely on the bounds `prepare`
    ///      enforces (strike, tau, rate) for their unchecked arithmetic and do not re-check them.
    struct Prepared {
        uint256 strike; // K [wad]
        uint256 discountedStrike; // K e^{-r T} [wad], rounded down
        int256 lnStrike; // ln K [wad] (solady lnWad; measured |error| <= 1.06 wei)
        int256 rateTau; // r T [wad], rounded toward zero
        uint256 sqrtTau; // sqrt(T) [wad], rounded down; 0 iff tau == 0
    }

    /// @notice Thrown when a spot price is zero or above MAX_PRICE.
    error InvalidSpot(uint256 spot);
    /// @notice Thrown when a strike is zero or above MAX_PRICE.
    error InvalidStrike(uint256 strike);
    /// @notice Thrown when an annualized vol is above MAX_VOL.
    error VolTooHigh(uint256 vol);
    /// @notice Thrown when a time to expiry is above MAX_TAU.
    error TauTooLong(uint256 tau);
    /// @notice Thrown when |rate| is above MAX_RATE.
    error RateOutOfRange(int256 rate);
    /// @notice Thrown when a caller-supplied ln(spot) is outside what lnWad returns for a valid spot.
    error LnSpotOutOfRange(int256 lnSpot);

    uint256 internal constant WAD = 1e18;
    int256 private constant IWAD = 1e18;
    uint256 internal constant YEAR = 365 days; // [s], T = tau / YEAR

    /// @notice Largest spot or strike [wad]: 1e18 USD per unit keeps every product below 2^200.
    uint256 internal constant MAX_PRICE = 1e36;
    /// @notice Largest annualized vol [wad]: 100,000%. Far above any implied vol a feed
    ///         quotes: a margin grid's shocked-up vol (up to 21 x the feed's: volUp 2, scale 10)
    ///         prices without reverting, and at this vol an option of an hour or more with
    ///         S / K in [1/20, 20] is within 1e-6 of its no-arbitrage bound (S for a call,
    ///         K e^{-rT} for a put): clamping a higher vol to MAX_VOL moves its price by at most
    ///         that much there.
    uint256 internal constant MAX_VOL = 1_000e18;
    /// @notice Longest time to expiry [s]: 10 years.
    uint256 internal constant MAX_TAU = 10 * YEAR;
    /// @notice Largest |rate| [wad per year]: 100%, so e^{-rT} stays within [e^-10, e^10].
    int256 internal constant MAX_RATE = 1e18;
    /// @notice Accepted ln(spot) range [wad]: ln of a spot in [1 wei, MAX_PRICE] is within +-41.45.
    int256 internal constant MAX_ABS_LN_SPOT = 42e18;

    // ------------------------------------------------------------------------------ normal CDF
    // W. J. Cody's rational Chebyshev approximations of the normal CDF (Cody, "Rational
    // Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-637; the
    // coefficients of his SPECFUN routine ANORM, 1992), scaled to WAD and rounded to nearest:
    //   |x| <= 0.66291:        N(x) = 1/2 + x A(x^2) / B(x^2)
    //   0.66291 < |x| <= v32:  N(-|x|) = e^{-x^2/2} C(|x|) / D(|x|)
    //   v32 < |x| < 9:         N(-|x|) = e^{-x^2/2} (1/sqrt(2 pi) - R(1/x^2)) / |x|
    //   |x| >= 9:              N(-|x|) = 0 (true value < 1.2e-19, below 1 wei)
    uint256 private constant THRESHOLD = 662_910_000_000_000_000; // 0.66291 [wad]
    uint256 private constant ROOT32 = 5_656_854_248_000_000_000; // sqrt(32) as in ANORM [wad]
    uint256 private constant CUTOFF = 9e18; // [wad]
    uint256 private constant SQRPI = 398_942_280_401_432_678; // 1/sqrt(2 pi) [wad]

    uint256 private constant A1 = 2_235_252_035_460_683_929;
    uint256 private constant A2 = 161_028_231_068_555_878_810;
    uint256 private constant A3 = 1_067_689_485_460_370_958_200;
    uint256 private constant A4 = 18_154_981_253_343_561_249_000;
    uint256 private constant A5 = 65_682_337_918_207_449;
    uint256 private constant B1 = 47_202_581_904_688_241_870;
    uint256 private constant B2 = 976_098_551_737_776_693_220;
    uint256 private constant B3 = 10_260_932_208_618_978_205_000;
    uint256 private constant B4 = 45_507_789_335_026_729_956_000;

    uint256 private constant C1 = 398_941_512_088_134_668;
    uint256 private constant C2 = 8_883_149_794_388_375_941;
    uint256 private constant C3 = 93_506_656_132_177_855_979;
    uint256 private constant C4 = 597_270_276_394_800_262_260;
    uint256 private constant C5 = 2_494_537_585_290_372_671_100;
    uint256 private constant C6 = 6_848_190_450_536_282_332_600;
    uint256 private constant C7 = 11_602_651_437_647_350_124_000;
    uint256 private constant C8 = 9_842_714_838_383_978_021_800;
    uint256 private constant C9 = 10_765_576_774;
    uint256 private constant D1 = 22_266_688_044_328_115_691;
    uint256 private constant D2 = 235_387_901_782_624_998_610;
    uint256 private constant D3 = 1_519_377_599_407_554_805_000;
    uint256 private constant D4 = 6_485_558_298_266_760_755_000;
    uint256 private constant D5 = 18_615_571_640_885_098_091_000;
    uint256 private constant D6 = 34_900_952_721_145_977_266_000;
    uint256 private constant D7 = 38_912_003_286_093_271_411_000;
    uint256 private constant D8 = 19_685_429_676_859_990_727_000;

    uint256 private constant P1 = 215_898_534_057_956_990;
    uint256 private constant P2 = 127_401_161_160_247_364;
    uint256 private constant P3 = 22_235_277_870_649_807;
    uint256 private constant P4 = 1_421_619_193_227_893;
    uint256 private constant P5 = 29_112_874_951_169;
    uint256 private constant P6 = 23_073_441_764_940_173;
    uint256 private constant Q1 = 1_284_260_096_144_911_210;
    uint256 private constant Q2 = 468_238_212_480_865_118;
    uint256 private constant Q3 = 65_988_137_868_928_552;
    uint256 private constant Q4 = 3_782_396_332_027_582;
    uint256 private constant Q5 = 72_975_155_508_397;

    /// @notice The standard normal CDF N(x) [wad].
    /// @dev Measured max |cdf(x) - N(x)| = 1.92e-18 (1.92 wei) against a 50-digit reference
    ///      (Python decimal) on every x in [-10, 10] with step 1e-3, 20,000 uniform random points
    ///      and each range boundary +-2 wei (40,043 points; tests/risk_onchain/test_bs_cdf.py
    ///      asserts <= MAX_CDF_ERROR = 5 wei). Rounding: not directed (truncations inside; the
    ///      result is within the bound either way). cdf(x) + cdf(-x) == WAD exactly. Monotone up
    ///      to the error bound, not to the wei. Gas: 427-446 for |x| <= 0.66, 1,001-1,026 up to 9
    ///      (expWad is about half of it), ~140 beyond.
    /// @param xWad x [wad]; any int256.
    /// @return N(x) [wad], in [0, WAD].
    function cdf(int256 xWad) internal pure returns (uint256) {
        (uint256 p,) = cdfPair(xWad);
        return p;
    }

    /// @notice Documented bound on |cdf(x) - N(x)| [wad]; the measured maximum is 1.92 wei.
    uint256 internal constant MAX_CDF_ERROR = 5;

    /// @notice N(x) and N(-x) [wad] from one evaluation; p + q == WAD exactly.
    /// @dev The tail (the smaller of the two) is computed directly, not as 1 - N, so it keeps
    ///      its accuracy far out: |error| <= MAX_CDF_ERROR on both.
    function cdfPair(int256 x) internal pure returns (uint256 p, uint256 q) {
        uint256 y; // |x| [wad]
        // Negation wraps only for type(int256).min, which maps to 2^255, above CUTOFF.
        unchecked {
            y = x < 0 ? uint256(-x) : uint256(x);
        }
        if (y >= CUTOFF) return x < 0 ? (uint256(0), WAD) : (WAD, uint256(0));

        if (y <= THRESHOLD) {
            // Horner in z = x^2 [wad], each step rounded down.
            // No overflow: y <= 0.67e18 and z <= 0.44e18, every partial sum stays below 5e22 and
            // every product below 3e40; t <= 0.25e18 < WAD / 2, so neither side underflows.
            unchecked {
                uint256 z = (y * y) / WAD;
                uint256 num = (A5 * z) / WAD;
                uint256 den = z;
                num = ((num + A1) * z) / WAD;
                den = ((den + B1) * z) / WAD;
                num = ((num + A2) * z) / WAD;
                den = ((den + B2) * z) / WAD;
                num = ((num + A3) * z) / WAD;
                den = ((den + B3) * z) / WAD;
                uint256 t = (y * (num + A4)) / (den + B4); // |N(x) - 1/2| [wad]
                p = x < 0 ? WAD / 2 - t : WAD / 2 + t;
                return (p, WAD - p);
            }
        }

        uint256 r; // e^{x^2/2} N(-|x|) [wad]
        if (y <= ROOT32) {
            // No overflow: y <= 5.66e18; num and den stay below 2e24, products below 2e43.
            unchecked {
                uint256 num = (C9 * y) / WAD;
                uint256 den = y;
                num = ((num + C1) * y) / WAD;
                den = ((den + D1) * y) / WAD;
                num = ((num + C2) * y) / WAD;
                den = ((den + D2) * y) / WAD;
                num = ((num + C3) * y) / WAD;
                den = ((den + D3) * y) / WAD;
                num = ((num + C4) * y) / WAD;
                den = ((den + D4) * y) / WAD;
                num = ((num + C5) * y) / WAD;
                den = ((den + D5) * y) / WAD;
                num = ((num + C6) * y) / WAD;
                den = ((den + D6) * y) / WAD;
                num = ((num + C7) * y) / WAD;
                den = ((den + D7) * y) / WAD;
                r = ((num + C8) * WAD) / (den + D8);
            }
        } else {
            // No overflow: 5.6e18 < y < 9e18, so w = 1/x^2 is in (0.012e18, 0.032e18) and every
            // partial sum is below 2e18; R(w) < 0.013e18 < SQRPI, so the subtraction is safe.
            unchecked {
                uint256 w = 1e54 / (y * y);
                uint256 num = (P6 * w) / WAD;
                uint256 den = w;
                num = ((num + P1) * w) / WAD;
                den = ((den + Q1) * w) / WAD;
                num = ((num + P2) * w) / WAD;
                den = ((den + Q2) * w) / WAD;
                num = ((num + P3) * w) / WAD;
                den = ((den + Q3) * w) / WAD;
                num = ((num + P4) * w) / WAD;
                den = ((den + Q4) * w) / WAD;
                r = (w * (num + P5)) / (den + Q5);
                r = ((SQRPI - r) * WAD) / y;
            }
        }
        // y < 9e18: y^2 / 2 < 4.1e37 fits, e^{-y^2/2} r < 1e36, and the tail is at most
        // N(-0.66) < 0.26e18 < WAD.
        unchecked {
            uint256 tail = (uint256(FPML.expWad(-int256((y * y) / (2 * WAD)))) * r) / WAD; // N(-|x|)
            return x < 0 ? (tail, WAD - tail) : (WAD - tail, tail);
        }
    }

    // ---------------------------------------------------------------------------------- prices

    /// @notice Call and put prices [wad USD] of one European option.
    /// @dev `prepare` + `priceAt`. Intrinsic value max(S - K e^{-rT}, 0) / max(K e^{-rT} - S, 0)
    ///      when tau == 0 or vol == 0 (or sigma sqrt T < 1 wei). Both prices >= 0, call <= S,
    ///      put <= K e^{-rT}; call - put = S - K e^{-rT} within 1 wei unless a price was clamped
    ///      at zero. Each product is rounded down. 2,836-5,127 gas (median 4,542).
    /// @param spot S [wad USD], in (0, MAX_PRICE].
    /// @param strike K [wad USD], in (0, MAX_PRICE].
    /// @param vol sigma [wad, annualized], <= MAX_VOL.
    /// @param tau time to expiry [s], <= MAX_TAU; annualized by 365 days.
    /// @param rate r [wad, continuously compounded per year], |r| <= MAX_RATE.
    function price(uint256 spot, uint256 strike, uint256 vol, uint256 tau, int256 rate)
        internal
        pure
        returns (uint256 call, uint256 put)
    {
        return priceAt(prepare(strike, tau, rate), spot, vol);
    }

    /// @notice The scenario-independent part of the formula for one option.
    /// @dev ln K (lnWad), sqrt(T) (floor), r T (toward zero), K e^{-rT} (floor). 1,460-1,988 gas.
    function prepare(uint256 strike, uint256 tau, int256 rate) internal pure returns (Prepared memory p) {
        // Bounded inputs keep every later product far from 2^255.
        if (strike == 0 || strike > MAX_PRICE) revert InvalidStrike(strike);
        if (tau > MAX_TAU) revert TauTooLong(tau);
        if (rate > MAX_RATE || rate < -MAX_RATE) revert RateOutOfRange(rate);
        p.strike = strike;
        p.lnStrike = FPML.lnWad(int256(strike));
        // |rate| <= 1e18 and tau <= 3.2e8: the product is below 3.2e26.
        p.rateTau = (rate * int256(tau)) / int256(YEAR);
        p.sqrtTau = sqrtTau(tau);
        // |r T| <= 10, so e^{-rT} <= 22,027e18 and the product stays below 2.3e58.
        p.discountedStrike = p.rateTau == 0 ? strike : (strike * uint256(FPML.expWad(-p.rateTau))) / WAD;
    }

    /// @notice sqrt(tau / 365 days) [wad], rounded down: the sqrt(T) of `prepare`.
    function sqrtTau(uint256 tau) internal pure returns (uint256) {
        if (tau > MAX_TAU) revert TauTooLong(tau);
        // tau * 1e36 <= 3.2e44.
        return FPML.sqrt((tau * 1e36) / YEAR);
    }

    /// @notice `prepare(strike, tau, 0)` with sqrt(T) = `sqrtTau(tau)` supplied by the caller:
    ///         options sharing an expiry share one square root. The same struct, field for field.
    function prepareZeroRate(uint256 strike, uint256 sqrtT) internal pure returns (Prepared memory p) {
        if (strike == 0 || strike > MAX_PRICE) revert InvalidStrike(strike);
        if (sqrtT > MAX_SQRT_TAU) revert TauTooLong(sqrtT);
        p.strike = strike;
        p.discountedStrike = strike;
        p.lnStrike = FPML.lnWad(int256(strike));
        p.sqrtTau = sqrtT;
    }

    /// @notice sqrtTau(MAX_TAU) [wad]: the bound `prepareZeroRate` enforces (TauTooLong carries
    ///         the offending sqrt(T) there).
    uint256 internal constant MAX_SQRT_TAU = 3_162_277_660_168_379_331;

    /// @notice Call and put [wad USD] at one (spot, vol) scenario of a prepared option.
    /// @dev `priceAtLn` with ln(spot) = lnWad(spot) (~640 gas more: median 2,567, max 3,147).
    function priceAt(Prepared memory p, uint256 spot, uint256 vol)
        internal
        pure
        returns (uint256 call, uint256 put)
    {
        if (spot == 0 || spot > MAX_PRICE) revert InvalidSpot(spot);
        return priceAtLn(p, spot, FPML.lnWad(int256(spot)), vol);
    }

    /// @notice Call and put [wad USD] at one scenario, with ln(spot) supplied by the caller.
    /// @dev The fast path of a scenario grid: ln(S0 f) = ln S0 + ln f, so a portfolio computes
    ///      lnWad once per spot shock f and once per underlying, not once per option and
    ///      scenario. An error e in lnSpot moves the prices by O(e^2) only (S n(d1) = K e^{-rT}
    ///      n(d2): the first-order terms cancel), so a few wei of rounding there do not matter;
    ///      lnSpot is not checked against spot beyond its range. Per scenario: one division,
    ///      two CDF evaluations, four products: 749-2,512 gas (median 1,932) for the pair.
    /// @param spot S [wad USD], in (0, MAX_PRICE].
    /// @param lnSpot ln S [wad], within a few wei of lnWad(spot).
    /// @param vol sigma [wad, annualized], <= MAX_VOL.
    function priceAtLn(Prepared memory p, uint256 spot, int256 lnSpot, uint256 vol)
        internal
        pure
        returns (uint256 call, uint256 put)
    {
        // Bounded inputs: every quantity below stays far from overflow.
        if (spot == 0 || spot > MAX_PRICE) revert InvalidSpot(spot);
        if (vol > MAX_VOL) revert VolTooHigh(vol);
        if (lnSpot < -MAX_ABS_LN_SPOT || lnSpot > MAX_ABS_LN_SPOT) revert LnSpotOutOfRange(lnSpot);
        uint256 kd = p.discountedStrike;
        uint256 sd; // sigma sqrt T [wad], rounded down
        // vol <= 1e21 and sqrtTau <= 3.2e18 (prepare bounds tau): the product is below 3.2e39.
        unchecked {
            sd = (vol * p.sqrtTau) / WAD;
        }
        if (sd == 0) return intrinsic(spot, kd);

        int256 d1;
        int256 d2;
        unchecked {
            // |lnSpot - lnK + rT| <= 42e18 + 41.5e18 + 10e18 (bounds above and in prepare), so
            // the product is below 1e38; 0 < sd <= 3.2e21. d1, d2 are far inside int256.
            int256 s = int256(sd);
            d1 = ((lnSpot - p.lnStrike + p.rateTau) * IWAD) / s + s / 2;
            d2 = d1 - s;
        }
        (uint256 n1, uint256 m1) = cdfPair(d1); // N(d1), N(-d1)
        (uint256 n2, uint256 m2) = cdfPair(d2); // N(d2), N(-d2)
        unchecked {
            // spot <= 1e36 and kd <= 2.3e40, each N <= 1e18: products below 2.3e58.
            uint256 sn = (spot * n1) / WAD;
            uint256 kn = (kd * n2) / WAD;
            uint256 km = (kd * m2) / WAD;
            uint256 sm = (spot * m1) / WAD;
            // Exact prices are positive; an approximation error of a few wei can make a
            // difference negative far out of the money, so clamp at zero instead of wrapping.
            call = sn > kn ? sn - kn : 0;
            put = km > sm ? km - sm : 0;
        }
    }

    /// @notice max(S - K e^{-rT}, 0) and max(K e^{-rT} - S, 0) [wad USD], the sigma -> 0 limit.
    function intrinsic(uint256 spot, uint256 discountedStrike) internal pure returns (uint256 call, uint256 put) {
        unchecked {
            // Each subtraction runs only when it cannot underflow.
            call = spot > discountedStrike ? spot - discountedStrike : 0;
            put = discountedStrike > spot ? discountedStrike - spot : 0;
        }
    }
}
