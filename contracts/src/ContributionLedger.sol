// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {Staking} from "./Staking.sol";

/// @title ContributionLedger
/// @notice Settles attested compute: per (run, period) a Merkle root of `(address peer, uint256 units)`
/// over an explicit epoch range, signed by a validator quorum *by stake at the period's snapshot*;
/// after a challenge window bonded peers claim `reward * units / totalUnits` with a Merkle proof, once.
///
/// Rules that a dishonest validator minority or a peer cannot bend:
/// - Epoch ranges of a run never overlap: period N covers `[firstEpoch, lastEpoch]` and the next period
///   must start after it, so no epoch is paid twice (a voided last period frees its range again).
/// - `reward <= maxPeriodReward` (set per deployment, i.e. per run): a rogue quorum takes at most one cap.
/// - A peer is paid only if it held `minPeerBond` of active stake at the period's snapshot.
/// - Claims are open for `claimWindow` seconds after the challenge window; then anyone may `sweep`
///   the unclaimed remainder back to the pool.
/// - Leaves' units are bound to `totalUnits` by the signed digest, and claimed units can never exceed it.
///
/// Funding: `fund` tops up the pool; `submitPeriod` reserves `reward`; `voidPeriod` and `sweep` return
/// what is left; hence `token.balanceOf(ledger) == rewardPool() + outstandingRewards()`.
/// Leaves: OZ StandardMerkleTree `keccak256(bytes.concat(keccak256(abi.encode(peer, units))))`.
/// Signatures: EIP-712 domain ("HivetuneContributionLedger", "1", chainid, this contract) over
/// `Period(runId, period, firstEpoch, lastEpoch, root, totalUnits, reward, snapshot)` and
/// `VoidPeriod(runId, period, snapshot)`.
contract ContributionLedger is EIP712 {
    using SafeERC20 for IERC20;

    struct Period {
        bytes32 root;
        uint256 totalUnits;
        uint256 reward;
        uint256 paid;
        uint256 claimedUnits;
        uint64 firstEpoch;
        uint64 lastEpoch;
        uint64 snapshot;
        uint64 challengeEndsAt;
        bool voided;
        bool swept;
    }

    struct Settlement {
        bytes32 runId;
        uint256 period;
        uint64 firstEpoch;
        uint64 lastEpoch;
        bytes32 root;
        uint256 totalUnits;
        uint256 reward;
        uint64 snapshot;
    }

    bytes32 public constant PERIOD_TYPEHASH = keccak256(
        "Period(bytes32 runId,uint256 period,uint64 firstEpoch,uint64 lastEpoch,bytes32 root,uint256 totalUnits,uint256 reward,uint64 snapshot)"
    );
    bytes32 public constant VOID_TYPEHASH = keccak256("VoidPeriod(bytes32 runId,uint256 period,uint64 snapshot)");

    IERC20 private immutable _token;
    Staking private immutable _staking;
    uint64 private immutable _challengeWindow;
    uint64 private immutable _claimWindow;
    uint256 private immutable _maxPeriodReward;
    uint256 private immutable _minPeerBond;
    uint256 private _rewardPool;
    uint256 private _outstanding;

    mapping(bytes32 runId => mapping(uint256 period => Period)) private _periods;
    mapping(bytes32 runId => mapping(uint256 period => mapping(address peer => bool))) private _claimed;
    mapping(bytes32 runId => uint64) private _nextEpoch;

    error ZeroAmount();
    error ZeroTotalUnits();
    error ZeroRoot();
    error PeriodAlreadySubmitted(bytes32 runId, uint256 period);
    error PeriodNotFound(bytes32 runId, uint256 period);
    error PeriodIsVoided(bytes32 runId, uint256 period);
    error PeriodSwept(bytes32 runId, uint256 period);
    error InvalidEpochRange(uint64 firstEpoch, uint64 lastEpoch);
    error EpochRangeOverlaps(bytes32 runId, uint64 firstEpoch, uint64 nextFreeEpoch);
    error RewardAboveCap(uint256 reward, uint256 cap);
    error InsufficientRewardPool(uint256 available, uint256 needed);
    error ChallengeWindowOpen(uint256 endsAt, uint256 nowTime);
    error ChallengeWindowClosed(uint256 endedAt, uint256 nowTime);
    error ClaimWindowClosed(uint256 endedAt, uint256 nowTime);
    error ClaimWindowOpen(uint256 endsAt, uint256 nowTime);
    error AlreadyClaimed(bytes32 runId, uint256 period, address peer);
    error InvalidProof(bytes32 runId, uint256 period, address peer, uint256 units);
    error PeerNotBonded(address peer, uint256 bond, uint256 minBond);
    error UnitsExceedTotal(uint256 claimedUnits, uint256 totalUnits);
    error RewardExceeded(uint256 paid, uint256 reward);

    event RewardPoolFunded(address indexed funder, uint256 amount);
    event PeriodSubmitted(
        bytes32 indexed runId,
        uint256 indexed period,
        uint64 firstEpoch,
        uint64 lastEpoch,
        bytes32 root,
        uint256 totalUnits,
        uint256 reward,
        uint256 challengeEndsAt
    );
    event PeriodVoided(bytes32 indexed runId, uint256 indexed period, uint256 returnedToPool);
    event PeriodSweptToPool(bytes32 indexed runId, uint256 indexed period, uint256 returnedToPool);
    event RewardClaimed(bytes32 indexed runId, uint256 indexed period, address indexed peer, uint256 units, uint256 amount);

    constructor(
        Staking staking_,
        uint64 challengeWindow_,
        uint64 claimWindow_,
        uint256 maxPeriodReward_,
        uint256 minPeerBond_
    ) EIP712("HivetuneContributionLedger", "1") {
        _staking = staking_;
        _token = staking_.token();
        _challengeWindow = challengeWindow_;
        _claimWindow = claimWindow_;
        _maxPeriodReward = maxPeriodReward_;
        _minPeerBond = minPeerBond_;
    }

    /// @notice Add `amount` tokens (pulled from the caller) to the reward pool.
    function fund(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        _token.safeTransferFrom(msg.sender, address(this), amount);
        _rewardPool += amount;
        emit RewardPoolFunded(msg.sender, amount);
    }

    /// @notice Record a period's contribution root, signed by a validator quorum at `s.snapshot` (signers in
    /// increasing address order), reserving `s.reward` from the pool. Anyone may relay the signatures.
    function submitPeriod(Settlement calldata s, bytes[] calldata signatures) external {
        if (_periods[s.runId][s.period].root != bytes32(0)) revert PeriodAlreadySubmitted(s.runId, s.period);
        if (s.root == bytes32(0)) revert ZeroRoot();
        if (s.totalUnits == 0) revert ZeroTotalUnits();
        if (s.lastEpoch < s.firstEpoch) revert InvalidEpochRange(s.firstEpoch, s.lastEpoch);
        uint64 nextFree = _nextEpoch[s.runId];
        if (s.firstEpoch < nextFree) revert EpochRangeOverlaps(s.runId, s.firstEpoch, nextFree);
        if (s.reward > _maxPeriodReward) revert RewardAboveCap(s.reward, _maxPeriodReward);
        if (s.reward > _rewardPool) revert InsufficientRewardPool(_rewardPool, s.reward);
        _staking.requireQuorumAt(periodDigest(s), signatures, s.snapshot);
        uint64 endsAt = uint64(block.timestamp) + _challengeWindow;
        _periods[s.runId][s.period] =
            Period(s.root, s.totalUnits, s.reward, 0, 0, s.firstEpoch, s.lastEpoch, s.snapshot, endsAt, false, false);
        _nextEpoch[s.runId] = s.lastEpoch + 1;
        _rewardPool -= s.reward;
        _outstanding += s.reward;
        emit PeriodSubmitted(s.runId, s.period, s.firstEpoch, s.lastEpoch, s.root, s.totalUnits, s.reward, endsAt);
    }

    /// @notice Void a period during its challenge window, given a validator quorum at `snapshot` signing
    /// `VoidPeriod(runId, period, snapshot)`; its reward goes back to the pool. If it was the run's latest
    /// period its epoch range may be settled again.
    function voidPeriod(bytes32 runId, uint256 period, uint64 snapshot, bytes[] calldata signatures) external {
        Period storage p = _existingPeriod(runId, period);
        if (block.timestamp >= p.challengeEndsAt) revert ChallengeWindowClosed(p.challengeEndsAt, block.timestamp);
        _staking.requireQuorumAt(voidDigest(runId, period, snapshot), signatures, snapshot);
        p.voided = true;
        if (_nextEpoch[runId] == p.lastEpoch + 1) _nextEpoch[runId] = p.firstEpoch;
        _outstanding -= p.reward;
        _rewardPool += p.reward;
        emit PeriodVoided(runId, period, p.reward);
    }

    /// @notice Pay `peer` its share `reward * units / totalUnits` of a settled period, once, if it was
    /// bonded at the period's snapshot and the claim window is open.
    function claim(bytes32 runId, uint256 period, address peer, uint256 units, bytes32[] calldata proof)
        external
        returns (uint256 amount)
    {
        Period storage p = _existingPeriod(runId, period);
        if (block.timestamp < p.challengeEndsAt) revert ChallengeWindowOpen(p.challengeEndsAt, block.timestamp);
        uint256 claimEndsAt = uint256(p.challengeEndsAt) + _claimWindow;
        if (block.timestamp >= claimEndsAt) revert ClaimWindowClosed(claimEndsAt, block.timestamp);
        if (_claimed[runId][period][peer]) revert AlreadyClaimed(runId, period, peer);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(peer, units))));
        if (!MerkleProof.verifyCalldata(proof, p.root, leaf)) revert InvalidProof(runId, period, peer, units);
        uint256 bond = _staking.stakeAt(peer, p.snapshot);
        if (bond < _minPeerBond || bond == 0) revert PeerNotBonded(peer, bond, _minPeerBond);
        uint256 claimedUnits = p.claimedUnits + units;
        if (claimedUnits > p.totalUnits) revert UnitsExceedTotal(claimedUnits, p.totalUnits);
        amount = (p.reward * units) / p.totalUnits;
        if (p.paid + amount > p.reward) revert RewardExceeded(p.paid + amount, p.reward);
        _claimed[runId][period][peer] = true;
        p.claimedUnits = claimedUnits;
        p.paid += amount;
        _outstanding -= amount;
        _token.safeTransfer(peer, amount);
        emit RewardClaimed(runId, period, peer, units, amount);
    }

    /// @notice After the claim window, return a period's unclaimed remainder to the pool (anyone may call).
    function sweep(bytes32 runId, uint256 period) external returns (uint256 returned) {
        Period storage p = _existingPeriod(runId, period);
        uint256 claimEndsAt = uint256(p.challengeEndsAt) + _claimWindow;
        if (block.timestamp < claimEndsAt) revert ClaimWindowOpen(claimEndsAt, block.timestamp);
        p.swept = true;
        returned = p.reward - p.paid;
        _outstanding -= returned;
        _rewardPool += returned;
        emit PeriodSweptToPool(runId, period, returned);
    }

    // ---------------------------------------------------------------- digests and views

    function periodDigest(Settlement calldata s) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    PERIOD_TYPEHASH,
                    s.runId,
                    s.period,
                    s.firstEpoch,
                    s.lastEpoch,
                    s.root,
                    s.totalUnits,
                    s.reward,
                    s.snapshot
                )
            )
        );
    }

    function voidDigest(bytes32 runId, uint256 period, uint64 snapshot) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOID_TYPEHASH, runId, period, snapshot)));
    }

    function getPeriod(bytes32 runId, uint256 period) external view returns (Period memory) {
        return _periods[runId][period];
    }

    function isClaimed(bytes32 runId, uint256 period, address peer) external view returns (bool) {
        return _claimed[runId][period][peer];
    }

    /// @notice The first epoch of `runId` that a new period may cover.
    function nextEpoch(bytes32 runId) external view returns (uint64) {
        return _nextEpoch[runId];
    }

    function rewardPool() external view returns (uint256) {
        return _rewardPool;
    }

    function outstandingRewards() external view returns (uint256) {
        return _outstanding;
    }

    function challengeWindow() external view returns (uint256) {
        return _challengeWindow;
    }

    function claimWindow() external view returns (uint256) {
        return _claimWindow;
    }

    function maxPeriodReward() external view returns (uint256) {
        return _maxPeriodReward;
    }

    function minPeerBond() external view returns (uint256) {
        return _minPeerBond;
    }

    function staking() external view returns (Staking) {
        return _staking;
    }

    function token() external view returns (IERC20) {
        return _token;
    }

    function _existingPeriod(bytes32 runId, uint256 period) private view returns (Period storage p) {
        p = _periods[runId][period];
        if (p.root == bytes32(0)) revert PeriodNotFound(runId, period);
        if (p.voided) revert PeriodIsVoided(runId, period);
        if (p.swept) revert PeriodSwept(runId, period);
    }
}
