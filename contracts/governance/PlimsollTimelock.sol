// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title PlimsollTimelock
/// @notice The admin of a Plimsoll deployment (the core, and through it the options market; the
///         oracle router): OpenZeppelin's TimelockController unchanged. Every admin change is
///         scheduled first (`CallScheduled`, public for `minDelay` seconds) and can only execute
///         after the delay; executing earlier reverts `TimelockUnexpectedOperationState`.
/// @dev The guardian's pauses and the risk keeper's volatility updates are separate roles of the
///      core and do not go through the timelock: a pause is immediate, and volatility updates
///      are bounded and rate-limited by the core itself. Hard bounds on every parameter stay in
///      the contracts whatever the admin schedules. Local chains deploy it with delay 0, public
///      chains with hours (the deploy script's `--timelock-delay`).
contract PlimsollTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
