// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Votes} from "@openzeppelin/contracts/governance/utils/Votes.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

/// @title Staking
/// @notice Stake with an unbonding delay, validators with an activation delay, stake snapshots,
/// quorum-signed slashing in basis points, and a non-transferable, vote-checkpointed stake balance
/// (OZ `Votes`): voting power is staked power.
///
/// Clock: ERC-6372 `mode=timestamp`. Every delay (unbonding, activation, the ledger's challenge window,
/// the governor's voting delay/period) is in seconds.
///
/// Snapshots: every account's active stake and every validator's weight are checkpointed (OZ
/// `Checkpoints.Trace208`) at each change. A validator's weight is its active stake while it is an
/// *activated* validator and 0 otherwise; `registerValidator` starts an activation delay and the stake
/// only counts from `activateValidator` on, so a newcomer cannot sign alone the moment it arrives.
///
/// Quorum (`requireQuorumAt`): EIP-712 signatures over a digest, signers in strictly increasing address
/// order, whose weights *at a past timepoint* add up to at least `quorumBps / 10000` of all validator
/// weight at that timepoint. The timepoint is part of what the validators sign, so everyone's signature
/// counts the same stake (changing one's stake between signings changes nothing), and it must be younger
/// than the unbonding delay (stake that signed is still at risk).
///
/// Slashing: `bps` of the offender's active *and* unbonding stake, once per evidence hash, so unstaking
/// after cheating does not escape a slash for the length of the unbonding delay.
contract Staking is Votes, Ownable {
    using SafeERC20 for IERC20;
    using Checkpoints for Checkpoints.Trace208;

    struct PendingWithdrawal {
        uint256 amount;
        uint64 releaseAt;
    }

    bytes32 public constant SLASH_TYPEHASH =
        keccak256("Slash(address offender,uint256 bps,bytes32 evidence,uint256 snapshot)");
    uint256 public constant BPS = 10_000;

    IERC20 private immutable _token;
    uint64 private immutable _unbondingDelay;
    uint64 private immutable _activationDelay;
    uint256 private immutable _minValidatorStake;
    uint256 private immutable _quorumBps;
    address private _treasury;

    mapping(address account => uint256) private _stakes;
    mapping(address account => PendingWithdrawal) private _pending;
    mapping(address account => bool) private _isValidator;
    mapping(address account => uint64) private _activatesAt;
    mapping(bytes32 evidence => bool) private _usedEvidence;
    mapping(address account => Checkpoints.Trace208) private _stakeTrace;
    mapping(address account => Checkpoints.Trace208) private _weightTrace;
    Checkpoints.Trace208 private _totalWeightTrace;
    uint256 private _totalStaked;
    uint256 private _totalPending;
    uint256 private _validatorCount;

    error ZeroAmount();
    error ZeroAddress();
    error InvalidQuorumBps(uint256 quorumBps);
    error InvalidSlashBps(uint256 bps);
    error StakeTooLow(uint256 have, uint256 need);
    error NothingToWithdraw(address account);
    error NothingToSlash(address offender);
    error StillUnbonding(uint256 releaseAt, uint256 nowTime);
    error AlreadyValidator(address account);
    error NotAValidator(address account);
    error NotRegistered(address account);
    error ActivationPending(address account, uint256 activatesAt, uint256 nowTime);
    error SignersNotSorted(address previous, address signer);
    error NoSignatures();
    error QuorumNotReached(uint256 signedStake, uint256 requiredStake);
    error SnapshotNotPast(uint256 snapshot, uint256 nowTime);
    error SnapshotTooOld(uint256 snapshot, uint256 oldest);
    error EvidenceAlreadyUsed(bytes32 evidence);

    event Staked(address indexed account, uint256 amount);
    event UnstakeRequested(address indexed account, uint256 amount, uint256 releaseAt);
    event Withdrawn(address indexed account, uint256 amount);
    event ValidatorRegistered(address indexed validator, uint256 stake, uint256 activatesAt);
    event ValidatorActivated(address indexed validator, uint256 stake);
    event ValidatorDeregistered(address indexed validator);
    event Slashed(address indexed offender, uint256 amount, uint256 bps, bytes32 indexed evidence, address treasury);
    event TreasuryChanged(address indexed previous, address indexed current);

    constructor(
        IERC20 token_,
        uint64 unbondingDelay_,
        uint64 activationDelay_,
        uint256 minValidatorStake_,
        uint256 quorumBps_,
        address treasury_,
        address owner_
    ) EIP712("HivetuneStaking", "1") Ownable(owner_) {
        if (address(token_) == address(0) || treasury_ == address(0)) revert ZeroAddress();
        if (quorumBps_ == 0 || quorumBps_ > BPS) revert InvalidQuorumBps(quorumBps_);
        _token = token_;
        _unbondingDelay = unbondingDelay_;
        _activationDelay = activationDelay_;
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
    /// A new request adds to the pending amount and restarts its delay. Pending stake stays slashable.
    function requestUnstake(uint256 amount) external {
        address account = msg.sender;
        uint256 have = _stakes[account];
        if (amount == 0) revert ZeroAmount();
        if (amount > have) revert StakeTooLow(have, amount);
        if (_isValidator[account] && have - amount < _minValidatorStake) {
            revert StakeTooLow(have - amount, _minValidatorStake);
        }
        _setStake(account, have - amount);
        _totalStaked -= amount;
        _transferVotingUnits(account, address(0), amount);
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

    /// @notice Register the caller as a validator; needs `minValidatorStake` staked. Its stake counts in
    /// quorums only after `activateValidator`, which is allowed `activationDelay` seconds from now.
    function registerValidator() external {
        address account = msg.sender;
        if (_isValidator[account] || _activatesAt[account] != 0) revert AlreadyValidator(account);
        uint256 have = _stakes[account];
        if (have < _minValidatorStake || have == 0) revert StakeTooLow(have, _minValidatorStake);
        uint64 activation = uint64(block.timestamp) + _activationDelay;
        _activatesAt[account] = activation;
        emit ValidatorRegistered(account, have, activation);
    }

    /// @notice Start counting a registered validator's stake (anyone may call once the delay has passed).
    function activateValidator(address account) external {
        uint64 activation = _activatesAt[account];
        if (activation == 0) revert NotRegistered(account);
        if (_isValidator[account]) revert AlreadyValidator(account);
        if (block.timestamp < activation) revert ActivationPending(account, activation, block.timestamp);
        uint256 have = _stakes[account];
        if (have < _minValidatorStake) revert StakeTooLow(have, _minValidatorStake);
        _isValidator[account] = true;
        _validatorCount += 1;
        _setWeight(account, have);
        emit ValidatorActivated(account, have);
    }

    /// @notice Leave the validator set, or withdraw a registration not yet activated (the stake stays staked).
    function deregisterValidator() external {
        if (!_isValidator[msg.sender] && _activatesAt[msg.sender] == 0) revert NotAValidator(msg.sender);
        _deregister(msg.sender);
    }

    /// @notice Revert unless `signatures` over `digest` come from validators holding a quorum of validator
    /// weight at `snapshot` (a past timestamp younger than the unbonding delay); returns the signed weight.
    function requireQuorumAt(bytes32 digest, bytes[] calldata signatures, uint256 snapshot)
        public
        view
        returns (uint256 signedStake)
    {
        _checkSnapshot(snapshot);
        if (signatures.length == 0) revert NoSignatures();
        uint48 t = uint48(snapshot);
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            address signer = ECDSA.recover(digest, signatures[i]);
            if (signer <= previous) revert SignersNotSorted(previous, signer);
            uint256 weight = _weightTrace[signer].upperLookupRecent(t);
            if (weight == 0) revert NotAValidator(signer);
            signedStake += weight;
            previous = signer;
        }
        uint256 required = requiredQuorumStakeAt(snapshot);
        if (signedStake < required) revert QuorumNotReached(signedStake, required);
    }

    // ---------------------------------------------------------------- slashing

    /// @notice Slash `bps` of `offender`'s active + unbonding stake (active first) to the treasury, given
    /// a validator quorum at `snapshot` signing `Slash(offender, bps, evidence, snapshot)`.
    /// Each evidence hash (one per receipt and kind of fraud) can be used once.
    function slash(address offender, uint256 bps, bytes32 evidence, uint256 snapshot, bytes[] calldata signatures)
        external
        returns (uint256 amount)
    {
        if (bps == 0 || bps > BPS) revert InvalidSlashBps(bps);
        if (_usedEvidence[evidence]) revert EvidenceAlreadyUsed(evidence);
        requireQuorumAt(slashDigest(offender, bps, evidence, snapshot), signatures, snapshot);
        uint256 active = _stakes[offender];
        amount = ((active + _pending[offender].amount) * bps) / BPS;
        if (amount == 0) revert NothingToSlash(offender);
        _usedEvidence[evidence] = true;
        uint256 fromActive = amount < active ? amount : active;
        if (fromActive > 0) {
            _setStake(offender, active - fromActive);
            _totalStaked -= fromActive;
            _transferVotingUnits(offender, address(0), fromActive);
        }
        uint256 fromPending = amount - fromActive;
        if (fromPending > 0) {
            _pending[offender].amount -= fromPending;
            _totalPending -= fromPending;
        }
        if (_isValidator[offender] && _stakes[offender] < _minValidatorStake) _deregister(offender);
        _token.safeTransfer(_treasury, amount);
        emit Slashed(offender, amount, bps, evidence, _treasury);
    }

    /// @notice The EIP-712 digest validators sign to slash.
    function slashDigest(address offender, uint256 bps, bytes32 evidence, uint256 snapshot)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(SLASH_TYPEHASH, offender, bps, evidence, snapshot)));
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

    function activationDelay() external view returns (uint256) {
        return _activationDelay;
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

    /// @notice Active stake of `account` at past timestamp `timepoint` (peer bonds are read this way).
    function stakeAt(address account, uint256 timepoint) external view returns (uint256) {
        return _stakeTrace[account].upperLookupRecent(SafeCast.toUint48(timepoint));
    }

    /// @notice Quorum weight of `account` at `timepoint`: its stake while an activated validator, else 0.
    function validatorStakeAt(address account, uint256 timepoint) external view returns (uint256) {
        return _weightTrace[account].upperLookupRecent(SafeCast.toUint48(timepoint));
    }

    function totalValidatorStakeAt(uint256 timepoint) public view returns (uint256) {
        return _totalWeightTrace.upperLookupRecent(SafeCast.toUint48(timepoint));
    }

    function pendingWithdrawal(address account) external view returns (uint256 amount, uint256 releaseAt) {
        PendingWithdrawal memory p = _pending[account];
        return (p.amount, p.releaseAt);
    }

    /// @notice Activated validator (its stake counts in quorums from now on).
    function isValidator(address account) external view returns (bool) {
        return _isValidator[account];
    }

    /// @notice When a registered validator may be activated (0: not registered).
    function activatesAt(address account) external view returns (uint256) {
        return _activatesAt[account];
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
        return _totalWeightTrace.latest();
    }

    function evidenceUsed(bytes32 evidence) external view returns (bool) {
        return _usedEvidence[evidence];
    }

    /// @notice Weight the signers of a quorum at `timepoint` must hold together (rounded up, at least 1).
    function requiredQuorumStakeAt(uint256 timepoint) public view returns (uint256) {
        uint256 required = (totalValidatorStakeAt(timepoint) * _quorumBps + BPS - 1) / BPS;
        return required == 0 ? 1 : required;
    }

    // ---------------------------------------------------------------- internals

    function _checkSnapshot(uint256 snapshot) private view {
        if (snapshot >= block.timestamp) revert SnapshotNotPast(snapshot, block.timestamp);
        uint256 oldest = block.timestamp > _unbondingDelay ? block.timestamp - _unbondingDelay : 0;
        if (snapshot < oldest) revert SnapshotTooOld(snapshot, oldest);
    }

    function _stake(address account, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        _token.safeTransferFrom(account, address(this), amount);
        if (delegates(account) == address(0)) _delegate(account, account);
        _setStake(account, _stakes[account] + amount);
        _totalStaked += amount;
        _transferVotingUnits(address(0), account, amount);
        emit Staked(account, amount);
    }

    /// Set `account`'s active stake, checkpointing it and (for an activated validator) its weight.
    function _setStake(address account, uint256 amount) private {
        _stakes[account] = amount;
        _stakeTrace[account].push(clock(), SafeCast.toUint208(amount));
        if (_isValidator[account]) _setWeight(account, amount);
    }

    function _setWeight(address account, uint256 weight) private {
        uint256 old = _weightTrace[account].latest();
        _weightTrace[account].push(clock(), SafeCast.toUint208(weight));
        uint256 total = _totalWeightTrace.latest() + weight - old;
        _totalWeightTrace.push(clock(), SafeCast.toUint208(total));
    }

    function _deregister(address account) private {
        bool active = _isValidator[account];
        _isValidator[account] = false;
        delete _activatesAt[account];
        if (active) {
            _validatorCount -= 1;
            _setWeight(account, 0);
        }
        emit ValidatorDeregistered(account);
    }

    function _getVotingUnits(address account) internal view override returns (uint256) {
        return _stakes[account];
    }
}
