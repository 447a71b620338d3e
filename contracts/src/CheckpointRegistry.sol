// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title CheckpointRegistry
/// @notice Each run's lineage of promoted checkpoints. Only the governor (RunGovernor, after a
/// successful stake vote) can promote. A checkpoint is named by its CID string (CIDv1, e.g. "bafy...")
/// and carries the digest of the eval attestations it was promoted on.
contract CheckpointRegistry {
    struct Checkpoint {
        string cid;
        bytes32 evalDigest;
        uint64 promotedAt;
    }

    address private immutable _governor;
    mapping(bytes32 runId => Checkpoint[]) private _lineage;
    mapping(bytes32 runId => mapping(bytes32 cidHash => bool)) private _promoted;

    error NotGovernor(address caller);
    error ZeroAddress();
    error EmptyCid();
    error CheckpointAlreadyPromoted(bytes32 runId, string cid);
    error NoCheckpoint(bytes32 runId);
    error IndexOutOfRange(bytes32 runId, uint256 index, uint256 length);

    event CheckpointPromoted(
        bytes32 indexed runId, uint256 indexed index, string cid, bytes32 evalDigest, string parentCid
    );

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
