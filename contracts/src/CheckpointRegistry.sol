// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title CheckpointRegistry
/// @notice Each run's lineage of promoted checkpoints. Only the governor (RunGovernor, after a
/// successful stake vote) can promote. A checkpoint is named by its CID string (CIDv1, e.g. "bafy...")
/// and carries the digest of the eval attestations it was promoted on.
///
/// Nomination: anyone may `nominate` a checkpoint once per run; the block it is mined in is recorded,
/// and validators derive the transparent-eval seed from that block's hash, which nobody knew when the
/// nomination was sent. The registry does not require a nomination to promote: the vote decides,
/// and voters see the eval (and its seed) in the proposal.
contract CheckpointRegistry {
    struct Checkpoint {
        string cid;
        bytes32 evalDigest;
        uint64 promotedAt;
    }

    address private immutable _governor;
    mapping(bytes32 runId => Checkpoint[]) private _lineage;
    mapping(bytes32 runId => mapping(bytes32 cidHash => bool)) private _promoted;
    mapping(bytes32 runId => mapping(bytes32 cidHash => uint256 blockNumber)) private _nominatedAt;

    error NotGovernor(address caller);
    error ZeroAddress();
    error EmptyCid();
    error CheckpointAlreadyPromoted(bytes32 runId, string cid);
    error NoCheckpoint(bytes32 runId);
    error IndexOutOfRange(bytes32 runId, uint256 index, uint256 length);
    error AlreadyNominated(bytes32 runId, string cid, uint256 blockNumber);
    error NotNominated(bytes32 runId, string cid);

    event CheckpointPromoted(
        bytes32 indexed runId, uint256 indexed index, string cid, bytes32 evalDigest, string parentCid
    );

    event CheckpointNominated(bytes32 indexed runId, string cid, address indexed nominator, uint256 blockNumber);

    constructor(address governor_) {
        if (governor_ == address(0)) revert ZeroAddress();
        _governor = governor_;
    }

    /// @notice Append `cid` to `runId`'s lineage; its parent is the previously promoted checkpoint.
    function promote(bytes32 runId, string calldata cid, bytes32 evalDigest) external {
        if (msg.sender != _governor) revert NotGovernor(msg.sender);
        if (bytes(cid).length == 0) revert EmptyCid();
        bytes32 cidHash = keccak256(bytes(cid));
        if (_promoted[runId][cidHash]) revert CheckpointAlreadyPromoted(runId, cid);
        Checkpoint[] storage lineage = _lineage[runId];
        string memory parent = lineage.length == 0 ? "" : lineage[lineage.length - 1].cid;
        _promoted[runId][cidHash] = true;
        lineage.push(Checkpoint(cid, evalDigest, uint64(block.timestamp)));
        emit CheckpointPromoted(runId, lineage.length - 1, cid, evalDigest, parent);
    }

    /// @notice Record `cid` as a promotion candidate of `runId` at this block (once; promoted CIDs excluded).
    function nominate(bytes32 runId, string calldata cid) external {
        if (bytes(cid).length == 0) revert EmptyCid();
        bytes32 cidHash = keccak256(bytes(cid));
        if (_promoted[runId][cidHash]) revert CheckpointAlreadyPromoted(runId, cid);
        uint256 previous = _nominatedAt[runId][cidHash];
        if (previous != 0) revert AlreadyNominated(runId, cid, previous);
        _nominatedAt[runId][cidHash] = block.number;
        emit CheckpointNominated(runId, cid, msg.sender, block.number);
    }

    /// @notice The block `cid` was nominated in (its hash seeds the transparent eval).
    function nominationBlock(bytes32 runId, string calldata cid) external view returns (uint256) {
        uint256 blockNumber = _nominatedAt[runId][keccak256(bytes(cid))];
        if (blockNumber == 0) revert NotNominated(runId, cid);
        return blockNumber;
    }

    function governor() external view returns (address) {
        return _governor;
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
}
