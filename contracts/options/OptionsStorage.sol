// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IOptions} from "../interfaces/IOptions.sol";
import {IPlimsoll} from "../interfaces/IPlimsoll.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {OptionsRisk} from "./OptionsRisk.sol";
import {BlackScholes} from "../libraries/BlackScholes.sol";

/// @dev The core's `marketConfig` decoded to its first field only (feedId).
interface ICoreFeedId {
    function marketConfig(uint256 marketId) external view returns (uint16 feedId);
}

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

/// @title OptionsStorage
/// @notice The options market's state, errors, events and the helpers on its packed storage
///         (OptionsMarket = OptionsStorage + OptionsMargin's checks and liquidation hook + trading).
/// @dev Storage is laid out for the margin checks: a series' hot data (market, type, expiry,
///      strike, open interest) is one slot, and an account's positions are packed two per
///      slot (series id + 1: 24 bits, size: int104), so a check of a 16-option account reads
///      16 + 8 slots and a liquidation writes the same slots back.
abstract contract OptionsStorage is IOptions {

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
    /// @dev Market's implied-vol feed id (a copy of _cfg's ivFeedId in its own slot: a check
    ///      reads one word, not the config). The spot feed id is the core's (_spotFeed).
    mapping(uint256 marketId => uint16) internal _volFeedIds;
    PortfolioConfig internal _pm;
    /// @dev Positions of (owner, sub): dense, two 128-bit legs per slot, leg = id + 1 | size << 24.
    mapping(address owner => mapping(uint256 sub => uint256[BOOK_SLOTS])) internal _book;
    /// @dev How many subaccounts hold a position (long or short) in a series: a settled series
    ///      leaves the live list (and the pool's books) only when this is 0, never on a net
    ///      open interest of 0 (a long and a short that net out are still two claims on the pool).
    mapping(uint256 seriesId => uint256) internal _holders;

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

    // ------------------------------------------------------------------ internals

    function _checkSeries(uint256 id) internal view returns (uint256) {
        if (id >= _series.length) revert UnknownSeries(id);
        return id;
    }

    /// @dev Series `id` as a leg of size 0 (its settlement price read only from expiry on).
    ///      One read of the series slot, decoded in place (`id` must be listed).
    function _seriesLeg(uint256 id) internal view returns (OptionsRisk.Leg memory l) {
        uint256 sw = _sload(_seriesSlot(id));
        l.id = id;
        l.marketId = uint8(sw);
        (l.isCall, l.expiry, l.strike) = _decodeSeries(sw);
        if (block.timestamp >= l.expiry) l.settlementPrice = _settlement[id];
    }

    /// @dev A series slot's option terms (the bit layout of SeriesSlot: marketId 0-7, isCall
    ///      8-15, expiry 16-55, strike 56-151; the market id is `uint8(sw)`).
    function _decodeSeries(uint256 sw) internal pure returns (bool isCall, uint256 expiry, uint256 strike) {
        return (uint8(sw >> 8) != 0, uint40(sw >> 16), uint96(sw >> 56));
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
        ++_holders[id];
        return n + 1;
    }

    /// @dev Removes a whole position of `closed` [wad] from `l`'s series (the traders' open
    ///      interest; the pool takes the other side) and from its holders.
    function _closeInSeries(OptionsRisk.Leg memory l, int256 closed) internal {
        SeriesSlot storage s = _series[l.id];
        s.openInterest = _toInt104(s.openInterest - closed);
        _leaveSeries(l.id);
    }

    /// @dev One subaccount's position in series `id` is gone: a settled series that nobody
    ///      holds any more retires (every long and short has been paid).
    function _leaveSeries(uint256 id) internal {
        uint256 h = _holders[id] - 1; // the position was counted when it was opened
        _holders[id] = h;
        if (h == 0 && _settlement[id] != 0) _retire(id);
    }

    function _toInt104(int256 x) internal pure returns (int104) {
        if (x > type(int104).max || x < type(int104).min) revert SizeOutOfRange(x);
        return int104(x);
    }

    /// @dev The spot feed id of market `m`, read from the core at every use: the core's
    ///      market config is the one source of truth (a later `configureMarket` that moves the
    ///      market to another feed moves its options with it). MarketConfig is a static
    ///      struct whose first word is feedId: only that word is decoded.
    function _spotFeed(uint256 m) internal view returns (uint16) {
        return ICoreFeedId(address(core)).marketConfig(m);
    }

    /// @dev The implied-vol feed id of market `m` (the options market's own configuration).
    function _volFeed(uint256 m) internal view returns (uint16) {
        return _volFeedIds[m];
    }

    /// @dev Spot and implied vol of market `m`, with the first feed not graded OK (+1) and its grade.
    function _marketInputs(uint256 m) internal view returns (uint256 spot, uint256 vol, uint256 bad, uint8 status) {
        uint16 sf = _spotFeed(m);
        uint16 vf = _volFeed(m);
        (spot, status) = oracle.priceInfo(sf);
        if (status != 0) bad = uint256(sf) + 1;
        uint8 vs;
        (vol, vs) = oracle.priceInfo(vf);
        if (vol > BlackScholes.MAX_VOL) vol = BlackScholes.MAX_VOL; // a valid answer never reverts a check
        if (vs != 0 && bad == 0) (bad, status) = (uint256(vf) + 1, vs);
    }

    /// @dev Drops a settled series that nobody holds from the live list.
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
