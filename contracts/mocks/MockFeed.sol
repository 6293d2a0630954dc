// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Chainlink's reference mock of AggregatorV3Interface, compiled with the project so local
// deployments and tests use the real interface. Prices move with `updateAnswer` and staleness is
// simulated with `updateRoundData(roundId, answer, timestamp, startedAt)`.
import {MockV3Aggregator} from "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol";

contract MockFeed is MockV3Aggregator {
    constructor(uint8 decimals_, int256 initialAnswer) MockV3Aggregator(decimals_, initialAnswer) {}
}
