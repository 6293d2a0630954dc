// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title WadMath
/// @notice Fixed-point helpers on the one scale Plimsoll uses for ratios, prices and USD values:
///         WAD = 1e18. The rounding direction is part of every name (`Down` toward zero for
///         unsigned values, `Floor` toward minus infinity for signed ones, `Up` away from zero).
///         Token amounts stay in the token's own decimals at the edges; `toWad`/`fromWad*`
///         are the only conversions.
library WadMath {
    uint256 internal constant WAD = 1e18;

    // The products below are checked: x * y must fit 256 bits (Panic 0x11 otherwise). Every
    // Plimsoll quantity stays far inside that (wad USD values and sizes below 1e40, rates and
    // prices below 1e36: products below 1e76 < 2^256 = 1.16e77), so one multiplication and one
    // division replace a 512-bit mulDiv on the hot paths (portfolio-margin grids run hundreds).

    /// @dev floor(x * y / WAD)
    function mulWadDown(uint256 x, uint256 y) internal pure returns (uint256) {
        return x * y / WAD;
    }

    /// @dev ceil(x * y / WAD)
    function mulWadUp(uint256 x, uint256 y) internal pure returns (uint256 z) {
        z = x * y;
        // z / WAD < 2^256 / 1e18, so adding 1 cannot overflow.
        unchecked {
            z = z / WAD + (z % WAD == 0 ? 0 : 1);
        }
    }

    /// @dev floor(x * WAD / y); y == 0 panics (0x12).
    function divWadDown(uint256 x, uint256 y) internal pure returns (uint256) {
        return x * WAD / y;
    }

    /// @dev ceil(x * WAD / y); y == 0 panics (0x12).
    function divWadUp(uint256 x, uint256 y) internal pure returns (uint256 z) {
        uint256 n = x * WAD;
        z = n / y;
        // z < 2^256 - 1 whenever there is a remainder (then y >= 2), so ++z cannot overflow.
        unchecked {
            if (n % y != 0) ++z;
        }
    }

    /// @dev floor(x * y / WAD) for a signed x, rounding toward minus infinity.
    function mulWadFloor(int256 x, uint256 y) internal pure returns (int256) {
        if (x >= 0) return SafeCastLib.toInt(mulWadDown(uint256(x), y));
        return -SafeCastLib.toInt(mulWadUp(abs(x), y));
    }

    /// @dev ceil(x * y / WAD) for a signed x, rounding toward plus infinity.
    function mulWadCeil(int256 x, uint256 y) internal pure returns (int256) {
        if (x >= 0) return SafeCastLib.toInt(mulWadUp(uint256(x), y));
        return -SafeCastLib.toInt(mulWadDown(abs(x), y));
    }

    /// @dev x * y / WAD for signed x and y, rounded toward plus infinity (what a payer owes).
    function smulWadCeil(int256 x, int256 y) internal pure returns (int256) {
        uint256 m = abs(x) * abs(y);
        if ((x < 0) == (y < 0)) {
            // ceil(m / WAD) <= m, no overflow.
            unchecked {
                return SafeCastLib.toInt(m / WAD + (m % WAD == 0 ? 0 : 1));
            }
        }
        return -SafeCastLib.toInt(m / WAD);
    }

    /// @dev x * y / WAD for signed x and y, rounded toward minus infinity.
    function smulWadFloor(int256 x, int256 y) internal pure returns (int256) {
        return -smulWadCeil(-x, y);
    }

    /// @dev |x| as uint256 (type(int256).min is out of every range Plimsoll stores).
    function abs(int256 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }

    /// @dev A token amount in `decimals` (<= 18) scaled to WAD; exact.
    function toWad(uint256 amount, uint8 decimals) internal pure returns (uint256) {
        return amount * 10 ** (18 - decimals);
    }

    /// @dev A WAD amount in token units, rounded down (what the protocol pays out).
    function fromWadDown(uint256 wad, uint8 decimals) internal pure returns (uint256) {
        return wad / 10 ** (18 - decimals);
    }

    /// @dev A WAD amount in token units, rounded up (what the protocol takes in).
    function fromWadUp(uint256 wad, uint8 decimals) internal pure returns (uint256) {
        return Math.ceilDiv(wad, 10 ** (18 - decimals));
    }
}

/// @dev Minimal checked casts (OpenZeppelin's SafeCast names the bit width in every error; these
///      are the three Plimsoll needs).
library SafeCastLib {
    error CastOverflow(uint256 value);

    function toInt(uint256 x) internal pure returns (int256) {
        if (x > uint256(type(int256).max)) revert CastOverflow(x);
        return int256(x);
    }

    function toInt128(int256 x) internal pure returns (int128) {
        if (x > type(int128).max || x < type(int128).min) revert CastOverflow(WadMath.abs(x));
        return int128(x);
    }

    function toUint128(uint256 x) internal pure returns (uint128) {
        if (x > type(uint128).max) revert CastOverflow(x);
        return uint128(x);
    }
}
