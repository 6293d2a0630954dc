// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IOracleRouter
/// @notice Reads Chainlink `AggregatorV3Interface` feeds and returns one price scale:
///         WAD (1e18) USD per whole token, whatever the feed's decimals, graded by trust.
/// @dev Grades (`status`), from the reading of one feed at one block:
///        0 OK        the price can be used for everything, liquidations included;
///        1 SUSPECT   the latest answer jumped by more than the feed's jump bound against the
///                    round before it, and neither `confirmRounds` agreeing rounds nor
///                    `holdSeconds` have passed since: a possible wick;
///        2 STALE     the last update is older than the heartbeat;
///        3 SEQUENCER the L2 sequencer is down, or came back less than the grace period ago;
///        4 INVALID   the answer is <= 0 (price 0), outside the feed's bounds, or the feed
///                    cannot be read (price 0): not a price at all.
///      Anything but OK makes a market reduce-only and holds liquidations that need the price;
///      collateral counts at `collateralPrice` (never more than a trusted price, 0 when there
///      is none). Grading never reverts for a configured feed; `price` and `fillBounds`, which
///      hand out a price to act on, revert on INVALID with the reason.
interface IOracleRouter {
    /// @notice Thrown when `feedId` has no feed configured.
    error UnknownFeed(uint256 feedId);
    /// @notice Thrown when a feed answers zero or a negative number.
    error NonPositivePrice(uint256 feedId, int256 answer);
    /// @notice Thrown when a feed's last update is older than its heartbeat allows.
    error StalePrice(uint256 feedId, uint256 updatedAt, uint256 heartbeat);
    /// @notice Thrown when a normalized price lies outside the feed's configured bounds.
    error PriceOutOfBounds(uint256 feedId, uint256 priceWad, uint256 minWad, uint256 maxWad);
    /// @notice Thrown when `price` is asked for a feed whose answer is not OK (suspect jump,
    ///         sequencer down or in its grace period).
    error PriceNotTrusted(uint256 feedId, uint8 status);
    /// @notice Thrown when a feed's configuration is unusable (zero address, zero heartbeat,
    ///         more than 18 decimals, min >= max, breaker parameters out of range).
    error InvalidFeedConfig(uint256 feedId);
    /// @notice Thrown when the caller is not the admin.
    error NotAdmin(address caller);
    /// @notice Thrown by `priceAt` when `roundId` is not `feedId`'s first round at or after
    ///         `time` (or none was found in the walk back: name it).
    error NotFirstRoundAfter(uint256 feedId, uint256 roundId, uint256 time);

    /// @notice Emitted when a feed is added or replaced.
    event FeedSet(uint256 indexed feedId, address aggregator, uint8 decimals, uint32 heartbeat, uint128 minWad, uint128 maxWad);
    /// @notice Emitted when a feed's jump breaker is configured (jumpWad 0: off).
    event BreakerSet(uint256 indexed feedId, uint64 jumpWad, uint8 confirmRounds, uint32 holdSeconds);
    /// @notice Emitted when the L2 sequencer uptime feed is set (address 0: none).
    event SequencerSet(address feed, uint32 gracePeriod);
    /// @notice Emitted by `poke` when a feed's grade differs from the one last recorded.
    event FeedStatusChanged(uint256 indexed feedId, uint8 previous, uint8 status, uint256 priceWad);
    /// @notice Emitted when the admin hands over the role.
    event AdminChanged(address indexed previous, address indexed next);

    /// @notice The normalized latest answer of `feedId` and its grade (see the contract notes).
    /// @return priceWad USD per whole token [wad], the latest answer even when not OK
    /// @return status 0 OK, 1 SUSPECT, 2 STALE, 3 SEQUENCER, 4 INVALID (never reverts for a
    ///         configured feed)
    function priceInfo(uint256 feedId) external view returns (uint256 priceWad, uint8 status);

    /// @notice The range a reduce-only fill uses while `feedId` is not OK: the latest answer
    ///         and, while a jump is pending (SUSPECT), the last price before it; fills take the
    ///         end worse for the trader (buys hi, sells lo), so nobody closes at a wick's
    ///         expense of the pool. Both ends equal the answer in every other grade.
    /// @return lo [wad]   @return hi [wad]   @return status the grade (as priceInfo)
    function fillBounds(uint256 feedId) external view returns (uint256 lo, uint256 hi, uint8 status);

    /// @notice What one unit of collateral priced by `feedId` may count for: the answer when
    ///         OK, the lower of the answer and the pre-jump price while SUSPECT, 0 when STALE,
    ///         SEQUENCER or INVALID. Never reverts for a configured feed, so an untrusted
    ///         collateral price lowers an account's value instead of blocking its liquidation.
    /// @return priceWad [wad]   @return status the grade (as priceInfo)
    function collateralPrice(uint256 feedId) external view returns (uint256 priceWad, uint8 status);

    /// @notice The checked, normalized price of `feedId`; reverts unless its grade is OK.
    /// @return priceWad USD per whole token [wad]
    function price(uint256 feedId) external view returns (uint256 priceWad);

    /// @notice The normalized answer of `feedId`'s first round at or after `time` (e.g. an
    ///         option expiry): the round whose update time is >= `time` while its
    ///         predecessor's is < `time`. `roundId` names it; 0 walks back from the latest
    ///         round (at most PRICE_AT_WALK rounds). Bounded like the latest answer.
    /// @return priceWad [wad]   @return roundId the round used
    function priceAt(uint256 feedId, uint256 time, uint80 roundId) external view returns (uint256 priceWad, uint80);

    /// @notice The same checks as `price`, but reports failure instead of reverting.
    /// @return ok whether the price is readable and OK
    /// @return priceWad the normalized latest answer when readable (also when not OK), else 0
    function tryPrice(uint256 feedId) external view returns (bool ok, uint256 priceWad);
}
