// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Votes} from "@openzeppelin/contracts/governance/utils/Votes.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title Staking
/// @notice Stake with an unbonding delay, validator registration, quorum-signed slashing, and a
/// non-transferable, vote-checkpointed stake balance (OZ `Votes`): voting power is staked power.
///
/// Clock: ERC-6372 `mode=timestamp`. The unbonding delay, the ledger's challenge window and the
/// governor's voting delay/period are all in seconds, so one clock rules the whole system.
///
/// Validator quorum: a set of EIP-712 signatures over a digest is accepted when the signers are
/// registered validators, listed in strictly increasing address order (so no signer counts twice),
/// and their combined *current* stake is at least `quorumBps / 10000` of all validators' stake.
/// A first stake self-delegates the account's votes; pending withdrawals carry no votes.
contract Staking is Votes, Ownable {
    using SafeERC20 for IERC20;

    struct PendingWithdrawal {
        uint256 amount;
        uint64 releaseAt;
    }

    bytes32 public constant SLASH_TYPEHASH = keccak256("Slash(address offender,uint256 amount,bytes32 evidence)");
    uint256 public constant BPS = 10_000;

    IERC20 private immutable _token;
    uint64 private immutable _unbondingDelay;
    uint256 private immutable _minValidatorStake;
    uint256 private immutable _quorumBps;
    address private _treasury;

    mapping(address account => uint256) private _stakes;
    mapping(address account => PendingWithdrawal) private _pending;
    mapping(address account => bool) private _isValidator;
    mapping(bytes32 evidence => bool) private _usedEvidence;
    uint256 private _totalStaked;
    uint256 private _totalPending;
    uint256 private _totalValidatorStake;
    uint256 private _validatorCount;

    error ZeroAmount();
    error ZeroAddress();
    error InvalidQuorumBps(uint256 quorumBps);
    error StakeTooLow(uint256 have, uint256 need);
    error NothingToWithdraw(address account);
    error StillUnbonding(uint256 releaseAt, uint256 nowTime);
    error AlreadyValidator(address account);
    error NotAValidator(address account);
    error SignersNotSorted(address previous, address signer);
    error NoSignatures();
    error QuorumNotReached(uint256 signedStake, uint256 requiredStake);
    error EvidenceAlreadyUsed(bytes32 evidence);
    error SlashExceedsStake(uint256 amount, uint256 available);

    event Staked(address indexed account, uint256 amount);
    event UnstakeRequested(address indexed account, uint256 amount, uint256 releaseAt);
    event Withdrawn(address indexed account, uint256 amount);
    event ValidatorRegistered(address indexed validator, uint256 stake);
    event ValidatorDeregistered(address indexed validator);
    event Slashed(address indexed offender, uint256 amount, bytes32 indexed evidence, address treasury);
    event TreasuryChanged(address indexed previous, address indexed current);

    constructor(
        IERC20 token_,
        uint64 unbondingDelay_,
        uint256 minValidatorStake_,
        uint256 quorumBps_,
        address treasury_,
        address owner_
    ) EIP712("HivetuneStaking", "1") Ownable(owner_) {
        if (address(token_) == address(0) || treasury_ == address(0)) revert ZeroAddress();
        if (quorumBps_ == 0 || quorumBps_ > BPS) revert InvalidQuorumBps(quorumBps_);
        _token = token_;
        _unbondingDelay = unbondingDelay_;
        _minValidatorStake = minValidatorStake_;
        _quorumBps = quorumBps_;
        _treasury = treasury_;
    }

    // ---------------------------------------------------------------- clock (ERC-6372)

    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    // ---------------------------------------------------------------- staking

    /// @notice Pull `amount` tokens from the caller (after `approve`) and add them to its stake.
    function stake(uint256 amount) external {
        _stake(msg.sender, amount);
    }

    /// @notice `stake` with an EIP-2612 permit instead of a prior `approve`.
    function stakeWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external {
        IERC20Permit(address(_token)).permit(msg.sender, address(this), amount, deadline, v, r, s);
        _stake(msg.sender, amount);
    }

    /// @notice Move `amount` from active stake to a pending withdrawal released after the unbonding delay.
    /// A new request adds to the pending amount and restarts its delay.
    function requestUnstake(uint256 amount) external {
        address account = msg.sender;
        uint256 have = _stakes[account];
        if (amount == 0) revert ZeroAmount();
        if (amount > have) revert StakeTooLow(have, amount);
        if (_isValidator[account] && have - amount < _minValidatorStake) {
            revert StakeTooLow(have - amount, _minValidatorStake);
        }
        _removeActive(account, amount);
        uint64 releaseAt = uint64(block.timestamp) + _unbondingDelay;
        _pending[account].amount += amount;
        _pending[account].releaseAt = releaseAt;
        _totalPending += amount;
        emit UnstakeRequested(account, amount, releaseAt);
    }

    /// @notice Pay out the caller's pending withdrawal once its unbonding delay has passed.
    function withdraw() external {
        address account = msg.sender;
        PendingWithdrawal memory p = _pending[account];
        if (p.amount == 0) revert NothingToWithdraw(account);
        if (block.timestamp < p.releaseAt) revert StillUnbonding(p.releaseAt, block.timestamp);
        delete _pending[account];
        _totalPending -= p.amount;
        _token.safeTransfer(account, p.amount);
        emit Withdrawn(account, p.amount);
    }

    // ---------------------------------------------------------------- validators

    /// @notice Register the caller as a validator; needs at least `minValidatorStake` staked.
    function registerValidator() external {
        address account = msg.sender;
        if (_isValidator[account]) revert AlreadyValidator(account);
        uint256 have = _stakes[account];
        if (have < _minValidatorStake || have == 0) revert StakeTooLow(have, _minValidatorStake);
        _isValidator[account] = true;
        _validatorCount += 1;
        _totalValidatorStake += have;
        emit ValidatorRegistered(account, have);
    }

    /// @notice Leave the validator set (the stake stays staked).
    function deregisterValidator() external {
        if (!_isValidator[msg.sender]) revert NotAValidator(msg.sender);
        _deregister(msg.sender);
    }

    /// @notice Revert unless `signatures` over `digest` come from a validator quorum; returns the signed stake.
    /// Used by ContributionLedger for its own EIP-712 digests, and by `slash`.
    function requireQuorum(bytes32 digest, bytes[] calldata signatures) public view returns (uint256 signedStake) {
        if (signatures.length == 0) revert NoSignatures();
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            address signer = ECDSA.recover(digest, signatures[i]);
            if (signer <= previous) revert SignersNotSorted(previous, signer);
            if (!_isValidator[signer]) revert NotAValidator(signer);
            signedStake += _stakes[signer];
            previous = signer;
        }
        uint256 required = requiredQuorumStake();
        if (signedStake < required) revert QuorumNotReached(signedStake, required);
    }

    // ---------------------------------------------------------------- slashing

    /// @notice Slash `amount` from `offender` (active stake first, then its pending withdrawal) to the
    /// treasury, given a validator quorum's EIP-712 signatures over `Slash(offender, amount, evidence)`.
    /// Each evidence hash can be used once.
    function slash(address offender, uint256 amount, bytes32 evidence, bytes[] calldata signatures) external {
        if (amount == 0) revert ZeroAmount();
        if (_usedEvidence[evidence]) revert EvidenceAlreadyUsed(evidence);
        requireQuorum(slashDigest(offender, amount, evidence), signatures);
        uint256 active = _stakes[offender];
        uint256 available = active + _pending[offender].amount;
        if (amount > available) revert SlashExceedsStake(amount, available);
        _usedEvidence[evidence] = true;
        uint256 fromActive = amount < active ? amount : active;
        if (fromActive > 0) _removeActive(offender, fromActive);
        uint256 fromPending = amount - fromActive;
        if (fromPending > 0) {
            _pending[offender].amount -= fromPending;
            _totalPending -= fromPending;
        }
        if (_isValidator[offender] && _stakes[offender] < _minValidatorStake) _deregister(offender);
        _token.safeTransfer(_treasury, amount);
        emit Slashed(offender, amount, evidence, _treasury);
    }

    /// @notice The EIP-712 digest validators sign to slash.
    function slashDigest(address offender, uint256 amount, bytes32 evidence) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(SLASH_TYPEHASH, offender, amount, evidence)));
    }

    function setTreasury(address treasury_) external onlyOwner {
        if (treasury_ == address(0)) revert ZeroAddress();
        address previous = _treasury;
        _treasury = treasury_;
        emit TreasuryChanged(previous, treasury_);
    }

    // ---------------------------------------------------------------- views

    function token() external view returns (IERC20) {
        return _token;
    }

    function unbondingDelay() external view returns (uint256) {
        return _unbondingDelay;
    }

    function minValidatorStake() external view returns (uint256) {
        return _minValidatorStake;
    }

    function quorumBps() external view returns (uint256) {
        return _quorumBps;
    }

    function treasury() external view returns (address) {
        return _treasury;
    }

    function stakeOf(address account) external view returns (uint256) {
        return _stakes[account];
    }

    function pendingWithdrawal(address account) external view returns (uint256 amount, uint256 releaseAt) {
        PendingWithdrawal memory p = _pending[account];
        return (p.amount, p.releaseAt);
    }

    function isValidator(address account) external view returns (bool) {
        return _isValidator[account];
    }

    function validatorCount() external view returns (uint256) {
        return _validatorCount;
    }

    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    function totalPending() external view returns (uint256) {
        return _totalPending;
    }

    function totalValidatorStake() external view returns (uint256) {
        return _totalValidatorStake;
    }

    function evidenceUsed(bytes32 evidence) external view returns (bool) {
        return _usedEvidence[evidence];
    }

    /// @notice Stake the signers of a quorum must hold together (rounded up).
    function requiredQuorumStake() public view returns (uint256) {
        uint256 required = (_totalValidatorStake * _quorumBps + BPS - 1) / BPS;
        return required == 0 ? 1 : required;
    }

    // ---------------------------------------------------------------- internals

    function _stake(address account, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        _token.safeTransferFrom(account, address(this), amount);
        if (delegates(account) == address(0)) _delegate(account, account);
        _stakes[account] += amount;
        _totalStaked += amount;
        if (_isValidator[account]) _totalValidatorStake += amount;
        _transferVotingUnits(address(0), account, amount);
        emit Staked(account, amount);
    }

    function _removeActive(address account, uint256 amount) private {
        _stakes[account] -= amount;
        _totalStaked -= amount;
        if (_isValidator[account]) _totalValidatorStake -= amount;
        _transferVotingUnits(account, address(0), amount);
    }

    function _deregister(address account) private {
        _isValidator[account] = false;
        _validatorCount -= 1;
        _totalValidatorStake -= _stakes[account];
        emit ValidatorDeregistered(account);
    }

    function _getVotingUnits(address account) internal view override returns (uint256) {
        return _stakes[account];
    }
}
