// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";

/// @title OracleRouter
/// @notice One place where Chainlink answers become Plimsoll prices: decimals normalized to WAD,
///         staleness checked against a per-feed heartbeat, answers <= 0 or outside the feed's
///         bounds refused.
contract OracleRouter is IOracleRouter {
    struct Feed {
        AggregatorV3Interface aggregator;
        uint32 heartbeat; // [s] the oldest answer still accepted
        uint8 decimals; // the feed's own decimals (<= 18)
        uint128 minWad; // [wad] lowest plausible price
        uint128 maxWad; // [wad] highest plausible price
    }

    address public admin;
    mapping(uint256 feedId => Feed) public feeds;

    constructor(address admin_) {
        admin = admin_;
        emit AdminChanged(address(0), admin_);
    }

    function setAdmin(address next) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        emit AdminChanged(admin, next);
        admin = next;
    }

    /// @notice Adds or replaces feed `feedId`.
    function setFeed(uint256 feedId, address aggregator, uint32 heartbeat, uint128 minWad, uint128 maxWad) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        if (aggregator == address(0) || heartbeat == 0 || minWad == 0 || minWad >= maxWad) {
            revert InvalidFeedConfig(feedId);
        }
        uint8 dec = AggregatorV3Interface(aggregator).decimals();
        // Normalizing multiplies by 10**(18 - decimals); a feed above 18 decimals is refused.
        if (dec > 18) revert InvalidFeedConfig(feedId);
        feeds[feedId] = Feed(AggregatorV3Interface(aggregator), heartbeat, dec, minWad, maxWad);
        emit FeedSet(feedId, aggregator, dec, heartbeat, minWad, maxWad);
    }

    /// @inheritdoc IOracleRouter
    function price(uint256 feedId) external view returns (uint256 priceWad) {
        Feed memory f = feeds[feedId];
        if (address(f.aggregator) == address(0)) revert UnknownFeed(feedId);
        (, int256 answer,, uint256 updatedAt,) = f.aggregator.latestRoundData();
        if (answer <= 0) revert NonPositivePrice(feedId, answer);
        if (updatedAt + f.heartbeat < block.timestamp) revert StalePrice(feedId, updatedAt, f.heartbeat);
        priceWad = uint256(answer) * 10 ** (18 - f.decimals);
        if (priceWad < f.minWad || priceWad > f.maxWad) {
            revert PriceOutOfBounds(feedId, priceWad, f.minWad, f.maxWad);
        }
    }

    /// @inheritdoc IOracleRouter
    function tryPrice(uint256 feedId) external view returns (bool ok, uint256 priceWad) {
        try this.price(feedId) returns (uint256 p) {
            return (true, p);
        } catch {
            return (false, 0);
        }
    }
}
