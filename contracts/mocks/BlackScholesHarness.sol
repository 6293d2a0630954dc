// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMathLib as FPML} from "solady/utils/FixedPointMathLib.sol";
import {BlackScholes} from "../libraries/BlackScholes.sol";

/// @notice Test and benchmark harness: BlackScholes' internal functions as external views, batch
///         versions for accuracy sweeps over eth_call, and `gas*` twins that also return the gas
///         the library call used (gasleft() before and after; ABI decoding, the external call and
///         memory for the arguments are outside the window). Not part of the protocol.
contract BlackScholesHarness {
    /// @notice One option of a batch: spot, strike [wad USD], vol [wad], tau [s], rate [wad].
    struct Option {
        uint256 spot;
        uint256 strike;
        uint256 vol;
        uint256 tau;
        int256 rate;
    }

    function cdf(int256 x) external pure returns (uint256) {
        return BlackScholes.cdf(x);
    }

    function cdfPair(int256 x) external pure returns (uint256 p, uint256 q) {
        return BlackScholes.cdfPair(x);
    }

    function cdfBatch(int256[] calldata xs) external pure returns (uint256[] memory out) {
        out = new uint256[](xs.length);
        for (uint256 i; i < xs.length; ++i) {
            out[i] = BlackScholes.cdf(xs[i]);
        }
    }

    function price(uint256 spot, uint256 strike, uint256 vol, uint256 tau, int256 rate)
        external
        pure
        returns (uint256 call, uint256 put)
    {
        return BlackScholes.price(spot, strike, vol, tau, rate);
    }

    function priceBatch(Option[] calldata opts) external pure returns (uint256[] memory calls, uint256[] memory puts) {
        calls = new uint256[](opts.length);
        puts = new uint256[](opts.length);
        for (uint256 i; i < opts.length; ++i) {
            Option calldata o = opts[i];
            (calls[i], puts[i]) = BlackScholes.price(o.spot, o.strike, o.vol, o.tau, o.rate);
        }
    }

    function prepare(uint256 strike, uint256 tau, int256 rate) external pure returns (BlackScholes.Prepared memory) {
        return BlackScholes.prepare(strike, tau, rate);
    }

    function prepareZeroRate(uint256 strike, uint256 sqrtT) external pure returns (BlackScholes.Prepared memory) {
        return BlackScholes.prepareZeroRate(strike, sqrtT);
    }

    function sqrtTau(uint256 tau) external pure returns (uint256) {
        return BlackScholes.sqrtTau(tau);
    }

    function priceAt(BlackScholes.Prepared memory p, uint256 spot, uint256 vol)
        external
        pure
        returns (uint256 call, uint256 put)
    {
        return BlackScholes.priceAt(p, spot, vol);
    }

    function priceAtLn(BlackScholes.Prepared memory p, uint256 spot, int256 lnSpot, uint256 vol)
        external
        pure
        returns (uint256 call, uint256 put)
    {
        return BlackScholes.priceAtLn(p, spot, lnSpot, vol);
    }

    /// @notice The fast path as portfolio margin uses it: one `prepare`, then for each spot shock
    ///         f [wad] the shocked spot floor(spot f / WAD) with ln = lnWad(spot) + lnWad(f), and
    ///         for each vol a `priceAtLn`. Result index: i * vols.length + j (shock i, vol j).
    function scenarioGrid(
        uint256 spot,
        uint256 strike,
        uint256 tau,
        int256 rate,
        uint256[] calldata shocks,
        uint256[] calldata vols
    ) external pure returns (uint256[] memory calls, uint256[] memory puts) {
        (calls, puts) = _grid(spot, BlackScholes.prepare(strike, tau, rate), shocks, vols);
    }

    // ------------------------------------------------------------------------------------- gas

    function gasCdf(int256 x) external view returns (uint256 value, uint256 gasUsed) {
        uint256 g = gasleft();
        value = BlackScholes.cdf(x);
        gasUsed = g - gasleft();
    }

    function gasPrice(uint256 spot, uint256 strike, uint256 vol, uint256 tau, int256 rate)
        external
        view
        returns (uint256 call, uint256 put, uint256 gasUsed)
    {
        uint256 g = gasleft();
        (call, put) = BlackScholes.price(spot, strike, vol, tau, rate);
        gasUsed = g - gasleft();
    }

    function gasPrepare(uint256 strike, uint256 tau, int256 rate) external view returns (uint256 gasUsed) {
        uint256 g = gasleft();
        BlackScholes.Prepared memory p = BlackScholes.prepare(strike, tau, rate);
        gasUsed = g - gasleft();
        if (p.strike == 0) revert(); // keeps the call from being optimized away
    }

    function gasPriceAt(BlackScholes.Prepared memory p, uint256 spot, uint256 vol)
        external
        view
        returns (uint256 call, uint256 put, uint256 gasUsed)
    {
        uint256 g = gasleft();
        (call, put) = BlackScholes.priceAt(p, spot, vol);
        gasUsed = g - gasleft();
    }

    function gasPriceAtLn(BlackScholes.Prepared memory p, uint256 spot, int256 lnSpot, uint256 vol)
        external
        view
        returns (uint256 call, uint256 put, uint256 gasUsed)
    {
        uint256 g = gasleft();
        (call, put) = BlackScholes.priceAtLn(p, spot, lnSpot, vol);
        gasUsed = g - gasleft();
    }

    /// @notice Gas of a whole scenario grid for one option: `prepare`, ln of the spot and of each
    ///         shock, the loop and the writes of the results included.
    function gasScenarioGrid(
        uint256 spot,
        uint256 strike,
        uint256 tau,
        int256 rate,
        uint256[] calldata shocks,
        uint256[] calldata vols
    ) external view returns (uint256 gasUsed) {
        uint256 g = gasleft();
        (uint256[] memory calls,) = _grid(spot, BlackScholes.prepare(strike, tau, rate), shocks, vols);
        gasUsed = g - gasleft();
        if (calls.length != shocks.length * vols.length) revert();
    }

    function _grid(uint256 spot, BlackScholes.Prepared memory p, uint256[] calldata shocks, uint256[] calldata vols)
        private
        pure
        returns (uint256[] memory calls, uint256[] memory puts)
    {
        uint256 n = vols.length;
        calls = new uint256[](shocks.length * n);
        puts = new uint256[](shocks.length * n);
        int256 lnSpot = FPML.lnWad(int256(spot));
        for (uint256 i; i < shocks.length; ++i) {
            uint256 s = (spot * shocks[i]) / 1e18;
            int256 ls = lnSpot + FPML.lnWad(int256(shocks[i]));
            for (uint256 j; j < n; ++j) {
                (calls[i * n + j], puts[i * n + j]) = BlackScholes.priceAtLn(p, s, ls, vols[j]);
            }
        }
    }
}
