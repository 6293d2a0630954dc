// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IOracleRouter
/// @notice Reads Chainlink `AggregatorV3Interface` feeds and returns one price scale:
///         WAD (1e18) USD per whole token, whatever the feed's decimals.
interface IOracleRouter {
    /// @notice Thrown when `feedId` has no feed configured.
    error UnknownFeed(uint256 feedId);
    /// @notice Thrown when a feed answers zero or a negative number.
    error NonPositivePrice(uint256 feedId, int256 answer);
    /// @notice Thrown when a feed's last update is older than its heartbeat allows.
    error StalePrice(uint256 feedId, uint256 updatedAt, uint256 heartbeat);
    /// @notice Thrown when a normalized price lies outside the feed's configured bounds.
    error PriceOutOfBounds(uint256 feedId, uint256 priceWad, uint256 minWad, uint256 maxWad);
    /// @notice Thrown when a feed's configuration is unusable (zero address, zero heartbeat,
    ///         more than 18 decimals, min >= max).
    error InvalidFeedConfig(uint256 feedId);
    /// @notice Thrown when the caller is not the admin.
    error NotAdmin(address caller);

    /// @notice Emitted when a feed is added or replaced.
    event FeedSet(uint256 indexed feedId, address aggregator, uint8 decimals, uint32 heartbeat, uint128 minWad, uint128 maxWad);
    /// @notice Emitted when the admin hands over the role.
    event AdminChanged(address indexed previous, address indexed next);

    /// @notice The checked, normalized price of `feedId`.
    /// @return priceWad USD per whole token [wad]
    function price(uint256 feedId) external view returns (uint256 priceWad);

    /// @notice The same checks as `price`, but reports failure instead of reverting.
    /// @return ok whether the price passed every check
    /// @return priceWad the normalized answer (0 when the feed could not be read)
    function tryPrice(uint256 feedId) external view returns (bool ok, uint256 priceWad);
}
