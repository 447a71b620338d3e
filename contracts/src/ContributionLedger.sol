// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {Staking} from "./Staking.sol";

/// @title ContributionLedger
/// @notice Settles attested compute: per (run, period) a Merkle root of `(address peer, uint256 units)`
/// signed by a stake-weighted validator quorum; after a challenge window peers claim
/// `reward * units / totalUnits` with a Merkle proof, once (the merkle-distributor pattern).
///
/// Funding: rewards are paid in the staking token (`staking.token()`). The ledger holds a reward pool
/// that anyone tops up with `fund` (approve first).
/// `submitPeriod` reserves `reward` from the pool; `voidPeriod` returns what was reserved; claims pay
/// out of the reservation. Hence `token.balanceOf(ledger) == rewardPool() + outstandingRewards()`.
///
/// Leaves use the OZ StandardMerkleTree encoding `keccak256(bytes.concat(keccak256(abi.encode(peer, units))))`.
/// runId and period are *not* in the leaf: the root is signed together with (runId, period) and
/// stored under that key, so a proof only verifies against its own period's root.
/// Signatures: EIP-712 with domain ("HivetuneContributionLedger", "1", chainid, this contract), over
/// `Period(runId, period, root, totalUnits, reward)` to submit and `VoidPeriod(runId, period)` to void.
/// A (runId, period) can be submitted once, ever: a voided period stays voided (settle the next one).
contract ContributionLedger is EIP712 {
    using SafeERC20 for IERC20;

    struct Period {
        bytes32 root;
        uint256 totalUnits;
        uint256 reward;
        uint256 paid;
        uint64 challengeEndsAt;
        bool voided;
    }

    bytes32 public constant PERIOD_TYPEHASH =
        keccak256("Period(bytes32 runId,uint256 period,bytes32 root,uint256 totalUnits,uint256 reward)");
    bytes32 public constant VOID_TYPEHASH = keccak256("VoidPeriod(bytes32 runId,uint256 period)");

    IERC20 private immutable _token;
    Staking private immutable _staking;
    uint64 private immutable _challengeWindow;
    uint256 private _rewardPool;
    uint256 private _outstanding;

    mapping(bytes32 runId => mapping(uint256 period => Period)) private _periods;
    mapping(bytes32 runId => mapping(uint256 period => mapping(address peer => bool))) private _claimed;

    error ZeroAmount();
    error ZeroTotalUnits();
    error ZeroRoot();
    error PeriodAlreadySubmitted(bytes32 runId, uint256 period);
    error PeriodNotFound(bytes32 runId, uint256 period);
    error PeriodIsVoided(bytes32 runId, uint256 period);
    error InsufficientRewardPool(uint256 available, uint256 needed);
    error ChallengeWindowOpen(uint256 endsAt, uint256 nowTime);
    error ChallengeWindowClosed(uint256 endedAt, uint256 nowTime);
    error AlreadyClaimed(bytes32 runId, uint256 period, address peer);
    error InvalidProof(bytes32 runId, uint256 period, address peer, uint256 units);
    error RewardExceeded(uint256 paid, uint256 reward);

    event RewardPoolFunded(address indexed funder, uint256 amount);
    event PeriodSubmitted(
        bytes32 indexed runId,
        uint256 indexed period,
        bytes32 root,
        uint256 totalUnits,
        uint256 reward,
        uint256 challengeEndsAt
    );
    event PeriodVoided(bytes32 indexed runId, uint256 indexed period, uint256 returnedToPool);
    event RewardClaimed(bytes32 indexed runId, uint256 indexed period, address indexed peer, uint256 units, uint256 amount);

    constructor(Staking staking_, uint64 challengeWindow_) EIP712("HivetuneContributionLedger", "1") {
        _staking = staking_;
        _token = staking_.token();
        _challengeWindow = challengeWindow_;
    }

    /// @notice Add `amount` tokens (pulled from the caller) to the reward pool.
    function fund(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        _token.safeTransferFrom(msg.sender, address(this), amount);
        _rewardPool += amount;
        emit RewardPoolFunded(msg.sender, amount);
    }

    /// @notice Record a period's contribution root, signed by a validator quorum (signers in increasing
    /// address order), reserving `reward` from the pool. Anyone may relay the signatures.
    function submitPeriod(
        bytes32 runId,
        uint256 period,
        bytes32 root,
        uint256 totalUnits,
        uint256 reward,
        bytes[] calldata signatures
    ) external {
        if (_periods[runId][period].root != bytes32(0)) revert PeriodAlreadySubmitted(runId, period);
        if (root == bytes32(0)) revert ZeroRoot();
        if (totalUnits == 0) revert ZeroTotalUnits();
        if (reward > _rewardPool) revert InsufficientRewardPool(_rewardPool, reward);
        _staking.requireQuorum(periodDigest(runId, period, root, totalUnits, reward), signatures);
        uint64 endsAt = uint64(block.timestamp) + _challengeWindow;
        _periods[runId][period] = Period(root, totalUnits, reward, 0, endsAt, false);
        _rewardPool -= reward;
        _outstanding += reward;
        emit PeriodSubmitted(runId, period, root, totalUnits, reward, endsAt);
    }

    /// @notice Void a period during its challenge window, given a validator quorum's signatures over
    /// `VoidPeriod(runId, period)`; its reward goes back to the pool.
    function voidPeriod(bytes32 runId, uint256 period, bytes[] calldata signatures) external {
        Period storage p = _existingPeriod(runId, period);
        if (block.timestamp >= p.challengeEndsAt) revert ChallengeWindowClosed(p.challengeEndsAt, block.timestamp);
        _staking.requireQuorum(voidDigest(runId, period), signatures);
        p.voided = true;
        _outstanding -= p.reward;
        _rewardPool += p.reward;
        emit PeriodVoided(runId, period, p.reward);
    }

    /// @notice Pay `peer` its share `reward * units / totalUnits` of a settled period, once.
    function claim(bytes32 runId, uint256 period, address peer, uint256 units, bytes32[] calldata proof)
        external
        returns (uint256 amount)
    {
        Period storage p = _existingPeriod(runId, period);
        if (block.timestamp < p.challengeEndsAt) revert ChallengeWindowOpen(p.challengeEndsAt, block.timestamp);
        if (_claimed[runId][period][peer]) revert AlreadyClaimed(runId, period, peer);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(peer, units))));
        if (!MerkleProof.verifyCalldata(proof, p.root, leaf)) revert InvalidProof(runId, period, peer, units);
        amount = (p.reward * units) / p.totalUnits;
        if (p.paid + amount > p.reward) revert RewardExceeded(p.paid + amount, p.reward);
        _claimed[runId][period][peer] = true;
        p.paid += amount;
        _outstanding -= amount;
        _token.safeTransfer(peer, amount);
        emit RewardClaimed(runId, period, peer, units, amount);
    }

    // ---------------------------------------------------------------- digests and views

    function periodDigest(bytes32 runId, uint256 period, bytes32 root, uint256 totalUnits, uint256 reward)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(PERIOD_TYPEHASH, runId, period, root, totalUnits, reward)));
    }

    function voidDigest(bytes32 runId, uint256 period) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOID_TYPEHASH, runId, period)));
    }

    function getPeriod(bytes32 runId, uint256 period) external view returns (Period memory) {
        return _periods[runId][period];
    }

    function isClaimed(bytes32 runId, uint256 period, address peer) external view returns (bool) {
        return _claimed[runId][period][peer];
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
    }
}
