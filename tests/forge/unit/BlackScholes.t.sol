// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {PRBTest} from "@prb/test/src/PRBTest.sol";
import {FixedPointMathLib as FPML} from "solady/utils/FixedPointMathLib.sol";
import {BlackScholes} from "../../../contracts/libraries/BlackScholes.sol";
import {BlackScholesHarness} from "../../../contracts/mocks/BlackScholesHarness.sol";

/// @notice Properties of the on-chain Black-Scholes library: CDF symmetry, range and
///         monotonicity, put-call parity, no-arbitrage bounds, monotonicity of prices in spot,
///         vol and strike, the fast path against the plain one, the sigma -> 0 / tau -> 0 limits,
///         reference values and input validation. Accuracy against high-precision references
///         over the pricing grid is in tests/risk_onchain (Python, on anvil).
///         Tolerances: the CDF is within MAX_CDF_ERROR (5 wei) of N(x) and monotone only up to
///         that, so price comparisons allow (S + K e^{-rT}) x 2 x MAX_CDF_ERROR / WAD plus a few
///         wei of output rounding.
contract BlackScholesTest is PRBTest {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant YEAR = 365 days;
    uint256 internal constant ERR = BlackScholes.MAX_CDF_ERROR;

    BlackScholesHarness internal harness;

    function setUp() public {
        harness = new BlackScholesHarness();
    }

    // ------------------------------------------------------------------ helpers

    struct Opt {
        uint256 spot; // [wad]
        uint256 strike; // [wad]
        uint256 vol; // [wad]
        uint256 tau; // [s]
        int256 rate; // [wad]
    }

    /// @dev x mapped into [lo, hi] (inclusive).
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        if (x >= lo && x <= hi) return x;
        return lo + x % (hi - lo + 1);
    }

    function boundInt(int256 x, int256 lo, int256 hi) internal pure returns (int256) {
        if (x >= lo && x <= hi) return x;
        uint256 span = uint256(hi - lo) + 1;
        uint256 ux = x >= 0 ? uint256(x) : uint256(-(x + 1)) + 1;
        return lo + int256(ux % span);
    }

    /// @dev A log-uniform-ish spot in [1e-6, 1e12] USD, a strike at S/K in [0.2, 5], vol in
    ///      [0, 500%], tau in [0, 5 years], rate in [-10%, +30%].
    function opt(uint256 s, uint256 k, uint256 v, uint256 t, int256 r) internal pure returns (Opt memory o) {
        uint256 decade = bound(s, 0, 18);
        o.spot = bound(s >> 8, 10 ** (12 + decade), 10 ** (13 + decade));
        o.strike = FPML.mulWad(o.spot, bound(k, 0.2e18, 5e18));
        o.vol = bound(v, 0, 5e18);
        o.tau = bound(t, 0, 5 * YEAR);
        o.rate = boundInt(r, -0.1e18, 0.3e18);
    }

    function priceOf(Opt memory o) internal pure returns (uint256 call, uint256 put) {
        return BlackScholes.price(o.spot, o.strike, o.vol, o.tau, o.rate);
    }

    /// @dev Slack for comparing two prices of options with spots/discounted strikes up to s, kd.
    function tol(uint256 s, uint256 kd) internal pure returns (uint256) {
        return 4 + ((s + kd) * 2 * ERR) / WAD;
    }

    // ------------------------------------------------------------------ normal CDF

    function test_cdf_reference_values() public {
        // N(x) to 21 digits, rounded to the wei.
        assertEq(BlackScholes.cdf(0), 0.5e18);
        assertAlmostEq(BlackScholes.cdf(1e18), 841_344_746_068_542_949, ERR);
        assertAlmostEq(BlackScholes.cdf(-1e18), 158_655_253_931_457_051, ERR);
        assertAlmostEq(BlackScholes.cdf(0.5e18), 691_462_461_274_013_104, ERR);
        assertAlmostEq(BlackScholes.cdf(-3e18), 1_349_898_031_630_095, ERR);
        assertAlmostEq(BlackScholes.cdf(-5e18), 286_651_571_879, ERR);
        assertAlmostEq(BlackScholes.cdf(-8e18), 622, ERR);
        assertEq(BlackScholes.cdf(9e18), WAD);
        assertEq(BlackScholes.cdf(-9e18), 0);
        assertEq(BlackScholes.cdf(type(int256).min), 0);
        assertEq(BlackScholes.cdf(type(int256).max), WAD);
    }

    function testFuzz_cdf_symmetric_to_the_wei(int256 x) public {
        x = boundInt(x, -1e30, 1e30);
        assertEq(BlackScholes.cdf(x) + BlackScholes.cdf(-x), WAD, "N(x) + N(-x) == 1");
        (uint256 p, uint256 q) = BlackScholes.cdfPair(x);
        assertEq(p, BlackScholes.cdf(x));
        assertEq(q, BlackScholes.cdf(-x));
    }

    function testFuzz_cdf_in_range_and_monotone(int256 a, int256 b) public {
        a = boundInt(a, -12e18, 12e18);
        b = boundInt(b, -12e18, 12e18);
        if (a > b) (a, b) = (b, a);
        uint256 na = BlackScholes.cdf(a);
        uint256 nb = BlackScholes.cdf(b);
        assertLte(nb, WAD);
        assertGte(nb + 2 * ERR, na, "monotone up to twice the error bound");
        // Far enough apart, the true increase exceeds the error: strictly increasing.
        if (b - a >= 1e15 && b < 7e18 && a > -7e18) assertGt(nb, na);
    }

    /// No jump where the approximation switches ranges: monotone up to the error bound on a fine
    /// grid (step 1e-8) around 0.66291, sqrt(32) and the cut-off at 9.
    function test_cdf_monotone_across_range_boundaries() public {
        int256[3] memory edges = [int256(0.66291e18), 5.656854248e18, 9e18];
        for (uint256 e; e < 3; ++e) {
            uint256 prev = BlackScholes.cdf(edges[e] - 1e12);
            for (int256 d = -1e12 + 1e10; d <= 1e12; d += 1e10) {
                uint256 cur = BlackScholes.cdf(edges[e] + d);
                assertGte(cur + 2 * ERR, prev);
                prev = cur;
            }
        }
    }

    // ------------------------------------------------------------------ prices

    function test_price_reference_values() public {
        // 70-digit evaluations of the formula (tests/risk_onchain/reference.py::bs_exact).
        (uint256 c, uint256 p) = BlackScholes.price(100e18, 100e18, 0.2e18, YEAR, 0.05e18);
        assertAlmostEq(c, 10_450_583_572_185_566_782, 1e4);
        assertAlmostEq(p, 5_573_526_022_256_967_691, 1e4);
        (c, p) = BlackScholes.price(2_000e18, 2_500e18, 0.8e18, 30 days, 0.03e18);
        assertAlmostEq(c, 45_650_696_205_077_709_619, 2e5);
        assertAlmostEq(p, 539_493_906_325_707_930_911, 2e5);
        (c, p) = BlackScholes.price(60_000e18, 40_000e18, 1.2e18, 7 days, 0);
        assertAlmostEq(c, 20_019_570_305_743_680_815_877, 6e6);
        assertAlmostEq(p, 19_570_305_743_680_815_877, 6e6);
    }

    function testFuzz_put_call_parity(uint256 s, uint256 k, uint256 v, uint256 t, int256 r) public {
        Opt memory o = opt(s, k, v, t, r);
        (uint256 c, uint256 p) = priceOf(o);
        uint256 kd = BlackScholes.prepare(o.strike, o.tau, o.rate).discountedStrike;
        // call - put == S - K e^{-rT}: exact up to 2 wei of rounding unless a price was clamped.
        assertAlmostEq(int256(c) - int256(p), int256(o.spot) - int256(kd), tol(o.spot, kd));
    }

    function testFuzz_no_arbitrage_bounds(uint256 s, uint256 k, uint256 v, uint256 t, int256 r) public {
        Opt memory o = opt(s, k, v, t, r);
        (uint256 c, uint256 p) = priceOf(o);
        uint256 kd = BlackScholes.prepare(o.strike, o.tau, o.rate).discountedStrike;
        assertLte(c, o.spot, "call <= S");
        assertLte(p, kd, "put <= K e^{-rT}");
        if (o.rate >= 0) assertLte(p, o.strike, "put <= K when r >= 0");
        // Never below discounted intrinsic value (up to the CDF error).
        if (o.spot > kd) assertGte(c + tol(o.spot, kd), o.spot - kd);
        else assertGte(p + tol(o.spot, kd), kd - o.spot);
    }

    function testFuzz_monotone_in_spot(uint256 s, uint256 k, uint256 v, uint256 t, int256 r, uint256 up) public {
        Opt memory o = opt(s, k, v, t, r);
        (uint256 c1, uint256 p1) = priceOf(o);
        o.spot = FPML.mulWad(o.spot, bound(up, 1e18, 3e18));
        (uint256 c2, uint256 p2) = priceOf(o);
        uint256 kd = BlackScholes.prepare(o.strike, o.tau, o.rate).discountedStrike;
        assertGte(c2 + tol(o.spot, kd), c1, "call rises with spot");
        assertLte(p2, p1 + tol(o.spot, kd), "put falls with spot");
    }

    function testFuzz_monotone_in_vol(uint256 s, uint256 k, uint256 v, uint256 t, int256 r, uint256 dv) public {
        Opt memory o = opt(s, k, v, t, r);
        (uint256 c1, uint256 p1) = priceOf(o);
        o.vol = bound(dv, o.vol, 5e18);
        (uint256 c2, uint256 p2) = priceOf(o);
        uint256 kd = BlackScholes.prepare(o.strike, o.tau, o.rate).discountedStrike;
        assertGte(c2 + tol(o.spot, kd), c1, "call rises with vol");
        assertGte(p2 + tol(o.spot, kd), p1, "put rises with vol");
    }

    function testFuzz_monotone_in_strike(uint256 s, uint256 k, uint256 v, uint256 t, int256 r, uint256 up)
        public
    {
        Opt memory o = opt(s, k, v, t, r);
        (uint256 c1, uint256 p1) = priceOf(o);
        o.strike = FPML.mulWad(o.strike, bound(up, 1e18, 3e18));
        (uint256 c2, uint256 p2) = priceOf(o);
        uint256 kd = BlackScholes.prepare(o.strike, o.tau, o.rate).discountedStrike;
        assertLte(c2, c1 + tol(o.spot, kd), "call falls with strike");
        assertGte(p2 + tol(o.spot, kd), p1, "put rises with strike");
    }

    /// The fast path with ln(S0 f) = ln S0 + ln f agrees with pricing floor(S0 f) from scratch:
    /// an error of a few wei in ln(spot) moves the price only to second order.
    function testFuzz_fast_path_matches_plain(uint256 s, uint256 k, uint256 v, uint256 t, int256 r, uint256 f)
        public
    {
        Opt memory o = opt(s, k, v, t, r);
        o.spot = bound(o.spot, 1e15, type(uint256).max); // 0.001 USD: floor(S0 f) exact to 1e-15
        o.vol = bound(o.vol, 0.01e18, 5e18);
        o.tau = bound(o.tau, 1 hours, 5 * YEAR);
        uint256 shock = bound(f, 0.5e18, 2e18);
        BlackScholes.Prepared memory pr = BlackScholes.prepare(o.strike, o.tau, o.rate);
        uint256 shocked = FPML.mulWad(o.spot, shock);
        int256 lnShocked = FPML.lnWad(int256(o.spot)) + FPML.lnWad(int256(shock));
        (uint256 c1, uint256 p1) = BlackScholes.priceAtLn(pr, shocked, lnShocked, o.vol);
        (uint256 c2, uint256 p2) = BlackScholes.price(shocked, o.strike, o.vol, o.tau, o.rate);
        (uint256 c3, uint256 p3) = BlackScholes.priceAt(pr, shocked, o.vol);
        assertEq(c3, c2, "priceAt is price");
        assertEq(p3, p2, "priceAt is price");
        uint256 slack = tol(shocked, pr.discountedStrike) + shocked / 1e15;
        assertAlmostEq(c1, c2, slack);
        assertAlmostEq(p1, p2, slack);
    }

    function testFuzz_intrinsic_at_expiry_and_zero_vol(uint256 s, uint256 k, uint256 v, uint256 t, int256 r)
        public
    {
        Opt memory o = opt(s, k, v, t, r);
        (uint256 c, uint256 p) = BlackScholes.price(o.spot, o.strike, o.vol, 0, o.rate);
        assertEq(c, o.spot > o.strike ? o.spot - o.strike : 0, "tau = 0: intrinsic");
        assertEq(p, o.strike > o.spot ? o.strike - o.spot : 0, "tau = 0: intrinsic");
        uint256 kd = BlackScholes.prepare(o.strike, o.tau, o.rate).discountedStrike;
        (c, p) = BlackScholes.price(o.spot, o.strike, 0, o.tau, o.rate);
        assertEq(c, o.spot > kd ? o.spot - kd : 0, "vol = 0: discounted intrinsic");
        assertEq(p, kd > o.spot ? kd - o.spot : 0, "vol = 0: discounted intrinsic");
    }

    function test_prepare_fields() public {
        BlackScholes.Prepared memory p = BlackScholes.prepare(2_000e18, YEAR / 4, 0.04e18);
        assertEq(p.strike, 2_000e18);
        assertEq(p.sqrtTau, 0.5e18);
        assertEq(p.rateTau, 0.01e18);
        assertEq(p.lnStrike, FPML.lnWad(2_000e18));
        assertEq(p.discountedStrike, (2_000e18 * uint256(FPML.expWad(-0.01e18))) / WAD);
        p = BlackScholes.prepare(1e18, 0, 0.04e18);
        assertEq(p.sqrtTau, 0);
        assertEq(p.discountedStrike, 1e18, "no discounting at expiry");
    }

    /// The portfolio grid's `prepareZeroRate(K, sqrtTau(tau))` is `prepare(K, tau, 0)`, field
    /// for field, on the whole accepted domain.
    function testFuzz_prepare_zero_rate_is_prepare(uint256 k, uint256 t) public {
        k = bound(k, 1, BlackScholes.MAX_PRICE);
        t = bound(t, 0, BlackScholes.MAX_TAU);
        BlackScholes.Prepared memory a = BlackScholes.prepare(k, t, 0);
        BlackScholes.Prepared memory b = BlackScholes.prepareZeroRate(k, BlackScholes.sqrtTau(t));
        assertEq(a.strike, b.strike);
        assertEq(a.discountedStrike, b.discountedStrike);
        assertEq(a.lnStrike, b.lnStrike);
        assertEq(a.rateTau, b.rateTau);
        assertEq(a.sqrtTau, b.sqrtTau);
    }

    function test_sqrt_tau_bound_is_the_max_tau_root() public {
        assertEq(BlackScholes.sqrtTau(BlackScholes.MAX_TAU), BlackScholes.MAX_SQRT_TAU);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.TauTooLong.selector, BlackScholes.MAX_TAU + 1));
        harness.sqrtTau(BlackScholes.MAX_TAU + 1);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.TauTooLong.selector, BlackScholes.MAX_SQRT_TAU + 1));
        harness.prepareZeroRate(1e18, BlackScholes.MAX_SQRT_TAU + 1);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.InvalidStrike.selector, 0));
        harness.prepareZeroRate(0, 1e18);
    }

    // ------------------------------------------------------------------ input validation

    function test_rejects_bad_inputs() public {
        uint256 max = BlackScholes.MAX_PRICE;
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.InvalidSpot.selector, 0));
        harness.price(0, 1e18, 1e18, 1 days, 0);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.InvalidSpot.selector, max + 1));
        harness.price(max + 1, 1e18, 1e18, 1 days, 0);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.InvalidStrike.selector, 0));
        harness.price(1e18, 0, 1e18, 1 days, 0);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.InvalidStrike.selector, max + 1));
        harness.price(1e18, max + 1, 1e18, 1 days, 0);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.VolTooHigh.selector, 1_000e18 + 1));
        harness.price(1e18, 1e18, 1_000e18 + 1, 1 days, 0);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.TauTooLong.selector, 10 * YEAR + 1));
        harness.price(1e18, 1e18, 1e18, 10 * YEAR + 1, 0);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.RateOutOfRange.selector, int256(1e18 + 1)));
        harness.price(1e18, 1e18, 1e18, 1 days, 1e18 + 1);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.RateOutOfRange.selector, -int256(1e18 + 1)));
        harness.price(1e18, 1e18, 1e18, 1 days, -1e18 - 1);

        BlackScholes.Prepared memory p = harness.prepare(1e18, 1 days, 0);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.LnSpotOutOfRange.selector, int256(43e18)));
        harness.priceAtLn(p, 1e18, 43e18, 1e18);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.LnSpotOutOfRange.selector, type(int256).min));
        harness.priceAtLn(p, 1e18, type(int256).min, 1e18);
        vm.expectRevert(abi.encodeWithSelector(BlackScholes.InvalidSpot.selector, 0));
        harness.priceAt(p, 0, 1e18);
    }

    /// The extremes of the accepted domain price without reverting or wrapping.
    function test_domain_corners_do_not_overflow() public {
        uint256 max = BlackScholes.MAX_PRICE;
        uint256[2] memory prices = [uint256(1), max];
        int256[3] memory rates = [-BlackScholes.MAX_RATE, int256(0), BlackScholes.MAX_RATE];
        for (uint256 i; i < 2; ++i) {
            for (uint256 j; j < 2; ++j) {
                for (uint256 l; l < 3; ++l) {
                    (uint256 c, uint256 p) =
                        BlackScholes.price(prices[i], prices[j], BlackScholes.MAX_VOL, BlackScholes.MAX_TAU, rates[l]);
                    assertLte(c, prices[i]);
                    uint256 kd = BlackScholes.prepare(prices[j], BlackScholes.MAX_TAU, rates[l]).discountedStrike;
                    assertLte(p, kd);
                }
            }
        }
    }
}
