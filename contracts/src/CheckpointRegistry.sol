// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {Staking} from "./Staking.sol";

/// @title CheckpointRegistry
/// @notice Each run's lineage of promoted checkpoints. Only the governor address (the run's RunTimelock,
/// which executes what a RunGovernor vote decided, after its delay) can promote or roll back.
///
/// Promotion pipeline, one checkpoint at a time:
/// 1. `nominate(runId, cid, weightsHash)`: anyone names a checkpoint by its manifest CID and the sha2-256
///    content hash of its adapter weights. Nominations are deduplicated by weights hash, so K byte-different
///    manifests of the same weights make one nomination and one eval seed (no seed grinding).
/// 2. `fixSeed(runId, cid)`: anyone, from the block after the nomination's and within 256 blocks, fixes
///    the transparent-eval seed to the hash of the block *after* the nomination block, which nobody knew
///    when the nomination was sent.
/// 3. `recordEval(runId, cid, correct, total, recordsRoot, snapshot, signatures)`: the score of the transparent
///    eval and the Merkle root of its per-sample records go on chain, signed by a validator stake quorum at
///    `snapshot` (EIP-712 `EvalAttestation(checkpoint, seed, correct, total, recordsRoot)`, domain
///    ("HivetuneCheckpointEval", "1", chainid, this registry), checked by `Staking.requireQuorumAt`). The
///    registry itself derives the eval seed (`evalSeed`: 63 bits of keccak256(abi.encode(chain seed, runId,
///    cid))) and the eval digest keccak256(abi.encode(cid, evalSeed, correct, total, recordsRoot)), so a
///    recorded digest is bound to the chain's seed and to what validators attested. Voters read the score
///    here (`evalResult`), never from a proposal's description.
/// 4. `promote(runId, cid, evalDigest)` (governor only) accepts only a nominated CID whose seed is fixed and
///    whose `evalDigest` was recorded; `rollback(runId, index)` makes an earlier lineage entry current again.
contract CheckpointRegistry is EIP712 {
    bytes32 public constant EVAL_TYPEHASH = keccak256(
        "EvalAttestation(string checkpoint,uint256 seed,uint256 correct,uint256 total,bytes32 recordsRoot)"
    );

    struct Checkpoint {
        string cid;
        bytes32 evalDigest;
        uint64 promotedAt;
    }

    struct EvalResult {
        uint64 correct;
        uint64 total;
        bytes32 recordsRoot;
        bool recorded;
    }

    struct Nomination {
        bytes32 weightsHash;
        uint64 blockNumber;
        bytes32 seed;
        address nominator;
    }

    address private immutable _governor;
    Staking private immutable _staking;
    mapping(bytes32 runId => Checkpoint[]) private _lineage;
    mapping(bytes32 runId => mapping(bytes32 cidHash => bool)) private _promoted;
    mapping(bytes32 runId => mapping(bytes32 cidHash => Nomination)) private _nominations;
    mapping(bytes32 runId => mapping(bytes32 weightsHash => string cid)) private _cidOfWeights;
    mapping(bytes32 runId => mapping(bytes32 cidHash => mapping(bytes32 evalDigest => EvalResult))) private _evals;

    error NotGovernor(address caller);
    error ZeroAddress();
    error EmptyCid();
    error ZeroWeightsHash();
    error InvalidEvalScore(uint256 correct, uint256 total);
    error CheckpointAlreadyPromoted(bytes32 runId, string cid);
    error NoCheckpoint(bytes32 runId);
    error IndexOutOfRange(bytes32 runId, uint256 index, uint256 length);
    error AlreadyNominated(bytes32 runId, string cid, uint256 blockNumber);
    error WeightsAlreadyNominated(bytes32 runId, bytes32 weightsHash, string cid);
    error NotNominated(bytes32 runId, string cid);
    error SeedNotYetAvailable(bytes32 runId, string cid, uint256 seedBlock);
    error SeedAlreadyFixed(bytes32 runId, string cid, bytes32 seed);
    error SeedExpired(bytes32 runId, string cid, uint256 seedBlock);
    error SeedNotFixed(bytes32 runId, string cid);
    error EvalNotRecorded(bytes32 runId, string cid, bytes32 evalDigest);

    event CheckpointNominated(
        bytes32 indexed runId, string cid, bytes32 indexed weightsHash, address indexed nominator, uint256 blockNumber
    );
    event SeedFixed(bytes32 indexed runId, string cid, bytes32 seed, uint256 seedBlock);
    event EvalRecorded(
        bytes32 indexed runId, string cid, bytes32 evalDigest, uint256 correct, uint256 total, address indexed recorder
    );
    event CheckpointPromoted(
        bytes32 indexed runId, uint256 indexed index, string cid, bytes32 evalDigest, string parentCid
    );
    event CheckpointRolledBack(bytes32 indexed runId, uint256 indexed index, string cid, uint256 fromIndex);

    constructor(address governor_, Staking staking_) EIP712("HivetuneCheckpointEval", "1") {
        if (governor_ == address(0) || address(staking_) == address(0)) revert ZeroAddress();
        _governor = governor_;
        _staking = staking_;
    }

    modifier onlyGovernor() {
        if (msg.sender != _governor) revert NotGovernor(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- nomination and eval

    /// @notice Nominate `cid` (whose adapter weights hash to `weightsHash`) as a promotion candidate.
    function nominate(bytes32 runId, string calldata cid, bytes32 weightsHash) external {
        if (bytes(cid).length == 0) revert EmptyCid();
        if (weightsHash == bytes32(0)) revert ZeroWeightsHash();
        bytes32 cidHash = keccak256(bytes(cid));
        if (_promoted[runId][cidHash]) revert CheckpointAlreadyPromoted(runId, cid);
        uint256 previous = _nominations[runId][cidHash].blockNumber;
        if (previous != 0) revert AlreadyNominated(runId, cid, previous);
        string storage other = _cidOfWeights[runId][weightsHash];
        if (bytes(other).length != 0) revert WeightsAlreadyNominated(runId, weightsHash, other);
        _nominations[runId][cidHash] = Nomination(weightsHash, uint64(block.number), bytes32(0), msg.sender);
        _cidOfWeights[runId][weightsHash] = cid;
        emit CheckpointNominated(runId, cid, weightsHash, msg.sender, block.number);
    }

    /// @notice Fix `cid`'s eval seed to the hash of the block after its nomination block.
    function fixSeed(bytes32 runId, string calldata cid) external returns (bytes32 seed) {
        Nomination storage n = _nomination(runId, cid);
        if (n.seed != bytes32(0)) revert SeedAlreadyFixed(runId, cid, n.seed);
        uint256 seedBlock = uint256(n.blockNumber) + 1;
        if (block.number <= seedBlock) revert SeedNotYetAvailable(runId, cid, seedBlock);
        seed = blockhash(seedBlock);
        if (seed == bytes32(0)) revert SeedExpired(runId, cid, seedBlock);
        n.seed = seed;
        emit SeedFixed(runId, cid, seed, seedBlock);
    }

    /// @notice Record `cid`'s transparent-eval score on its fixed seed, attested by a validator stake quorum at
    /// `snapshot` (signers in increasing address order); returns the eval digest to promote with.
    function recordEval(
        bytes32 runId,
        string calldata cid,
        uint256 correct,
        uint256 total,
        bytes32 recordsRoot,
        uint256 snapshot,
        bytes[] calldata signatures
    ) external returns (bytes32 evalDigest) {
        if (total == 0 || correct > total || total > type(uint64).max) revert InvalidEvalScore(correct, total);
        uint256 seed = evalSeed(runId, cid);
        _staking.requireQuorumAt(evalAttestationDigest(cid, seed, correct, total, recordsRoot), signatures, snapshot);
        evalDigest = keccak256(abi.encode(cid, seed, correct, total, recordsRoot));
        _evals[runId][keccak256(bytes(cid))][evalDigest] = EvalResult(uint64(correct), uint64(total), recordsRoot, true);
        emit EvalRecorded(runId, cid, evalDigest, correct, total, msg.sender);
    }

    /// @notice The EIP-712 digest validators sign to attest an eval (`EvalAttestation`).
    function evalAttestationDigest(
        string calldata cid,
        uint256 seed,
        uint256 correct,
        uint256 total,
        bytes32 recordsRoot
    ) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(EVAL_TYPEHASH, keccak256(bytes(cid)), seed, correct, total, recordsRoot))
        );
    }

    /// @notice The transparent-eval seed of `cid`: 63 bits of keccak256(abi.encode(chain seed, runId, cid)).
    function evalSeed(bytes32 runId, string calldata cid) public view returns (uint256) {
        bytes32 chainSeed = _nomination(runId, cid).seed;
        if (chainSeed == bytes32(0)) revert SeedNotFixed(runId, cid);
        return uint256(keccak256(abi.encode(chainSeed, runId, cid))) >> 193;
    }

    // ---------------------------------------------------------------- governor only

    /// @notice Append `cid` to `runId`'s lineage; its parent is the previously current checkpoint.
    function promote(bytes32 runId, string calldata cid, bytes32 evalDigest) external onlyGovernor {
        if (bytes(cid).length == 0) revert EmptyCid();
        bytes32 cidHash = keccak256(bytes(cid));
        if (_promoted[runId][cidHash]) revert CheckpointAlreadyPromoted(runId, cid);
        Nomination storage n = _nomination(runId, cid);
        if (n.seed == bytes32(0)) revert SeedNotFixed(runId, cid);
        if (!_evals[runId][cidHash][evalDigest].recorded) revert EvalNotRecorded(runId, cid, evalDigest);
        Checkpoint[] storage lineage = _lineage[runId];
        string memory parent = lineage.length == 0 ? "" : lineage[lineage.length - 1].cid;
        _promoted[runId][cidHash] = true;
        lineage.push(Checkpoint(cid, evalDigest, uint64(block.timestamp)));
        emit CheckpointPromoted(runId, lineage.length - 1, cid, evalDigest, parent);
    }

    /// @notice Make lineage entry `index` current again (appended, so the history stays readable).
    function rollback(bytes32 runId, uint256 index) external onlyGovernor {
        Checkpoint[] storage lineage = _lineage[runId];
        uint256 length = lineage.length;
        if (index >= length) revert IndexOutOfRange(runId, index, length);
        Checkpoint memory target = lineage[index];
        lineage.push(Checkpoint(target.cid, target.evalDigest, uint64(block.timestamp)));
        emit CheckpointRolledBack(runId, length, target.cid, index);
    }

    // ---------------------------------------------------------------- views

    /// @notice The block `cid` was nominated in (the seed is the hash of the next block).
    function nominationBlock(bytes32 runId, string calldata cid) external view returns (uint256) {
        return _nomination(runId, cid).blockNumber;
    }

    function nominationOf(bytes32 runId, string calldata cid) external view returns (Nomination memory) {
        return _nomination(runId, cid);
    }

    /// @notice The CID nominated for `weightsHash` ("" if none).
    function cidOfWeights(bytes32 runId, bytes32 weightsHash) external view returns (string memory) {
        return _cidOfWeights[runId][weightsHash];
    }

    function evalResult(bytes32 runId, string calldata cid, bytes32 evalDigest)
        external
        view
        returns (EvalResult memory)
    {
        return _evals[runId][keccak256(bytes(cid))][evalDigest];
    }

    function governor() external view returns (address) {
        return _governor;
    }

    function staking() external view returns (Staking) {
        return _staking;
    }

    function lineageLength(bytes32 runId) external view returns (uint256) {
        return _lineage[runId].length;
    }

    function checkpointAt(bytes32 runId, uint256 index) external view returns (Checkpoint memory) {
        uint256 length = _lineage[runId].length;
        if (index >= length) revert IndexOutOfRange(runId, index, length);
        return _lineage[runId][index];
    }

    /// @notice The run's currently promoted checkpoint (the lineage's last entry).
    function current(bytes32 runId) external view returns (Checkpoint memory) {
        uint256 length = _lineage[runId].length;
        if (length == 0) revert NoCheckpoint(runId);
        return _lineage[runId][length - 1];
    }

    function isPromoted(bytes32 runId, string calldata cid) external view returns (bool) {
        return _promoted[runId][keccak256(bytes(cid))];
    }

    function _nomination(bytes32 runId, string calldata cid) private view returns (Nomination storage n) {
        n = _nominations[runId][keccak256(bytes(cid))];
        if (n.blockNumber == 0) revert NotNominated(runId, cid);
    }
}
