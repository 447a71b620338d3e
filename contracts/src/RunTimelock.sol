// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title RunTimelock
/// @notice OpenZeppelin TimelockController between RunGovernor and CheckpointRegistry: a succeeded vote is
/// queued here and can be executed (by anyone) only `minDelay` seconds later, so stakers see what will run
/// and can exit or counter-vote. Deployment grants the governor PROPOSER_ROLE and CANCELLER_ROLE, opens
/// EXECUTOR_ROLE to everyone, and the deployer then renounces the admin role.
contract RunTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
