// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title HiveToken
/// @notice The stake and reward token of a devnet: a fixed-supply ERC20 with EIP-2612 permit.
/// A real run may point Staking and ContributionLedger at any existing ERC20 instead.
contract HiveToken is ERC20, ERC20Permit {
    constructor(string memory name_, string memory symbol_, address holder, uint256 supply)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
    {
        _mint(holder, supply);
    }
}
