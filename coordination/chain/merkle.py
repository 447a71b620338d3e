"""OpenZeppelin StandardMerkleTree, in Python, bit-compatible with `@openzeppelin/merkle-tree`.

Leaves are `keccak256(bytes.concat(keccak256(abi.encode(values))))` (double hashing, so a
leaf can never be confused with an inner node); inner nodes hash the sorted pair, so proofs
verify with OpenZeppelin's `MerkleProof.verify` on-chain. Leaves are sorted by hash before
the tree is built, exactly as the JS library does by default.

    tree = StandardMerkleTree.of([("0xabc...", 10), ("0xdef...", 5)], ["address", "uint256"])
    tree.root            # bytes32 for ContributionLedger.submitPeriod
    tree.proof(0)        # list[bytes32] for ContributionLedger.claim
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode

from coordination.chain.hashing import keccak


def leaf_hash(types: Sequence[str], values: Sequence) -> bytes:
    """The OZ standard leaf: keccak256(keccak256(abi.encode(values)))."""
    return keccak(keccak(encode(list(types), list(values))))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """Commutative inner-node hash (OZ `Hashes.commutativeKeccak256`)."""
    return keccak(a + b) if a < b else keccak(b + a)


def verify_proof(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """Off-chain twin of `MerkleProof.verify(proof, root, leaf)`."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root


@dataclass(frozen=True)
class StandardMerkleTree:
    """A built tree: `tree` is the flat array layout of the JS library (root at index 0)."""

    tree: tuple[bytes, ...]
    types: tuple[str, ...]
    values: tuple[tuple, ...]
    tree_index: tuple[int, ...]  # tree_index[i] = position of values[i]'s leaf in `tree`

    @classmethod
    def of(cls, values: Sequence[Sequence], types: Sequence[str]) -> StandardMerkleTree:
        if not values:
            raise ValueError("a Merkle tree needs at least one leaf; got an empty list of values")
        return cls.from_leaves([leaf_hash(types, v) for v in values], types, values)

    @classmethod
    def from_leaves(cls, leaves: Sequence[bytes], types: Sequence[str], values: Sequence[Sequence]):
        """The tree over already-hashed leaves (`leaves[i]` = `leaf_hash(types, values[i])`, e.g. cached ones):
        leaves sorted by hash, flat array, root at index 0, as the JS library lays it out."""
        if not leaves or len(leaves) != len(values):
            raise ValueError(f"a Merkle tree needs one leaf per value; got {len(leaves)} leaves, {len(values)} values")
        hashed = sorted(((h, i) for i, h in enumerate(leaves)), key=lambda hv: hv[0])
        n = len(hashed)
        tree: list[bytes] = [b""] * (2 * n - 1)
        tree_index = [0] * n
        for pos, (h, i) in enumerate(hashed):
            tree[len(tree) - 1 - pos] = h
            tree_index[i] = len(tree) - 1 - pos
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        return cls(tuple(tree), tuple(types), tuple(tuple(v) for v in values), tuple(tree_index))

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def leaf(self, i: int) -> bytes:
        return self.tree[self.tree_index[i]]

    def proof(self, i: int) -> list[bytes]:
        """Sibling hashes from the leaf of `values[i]` up to the root."""
        index, path = self.tree_index[i], []
        while index > 0:
            path.append(self.tree[index + 1 if index % 2 == 1 else index - 1])
            index = (index - 1) // 2
        return path

    def verify(self, i: int, proof: Sequence[bytes] | None = None) -> bool:
        return verify_proof(self.root, self.leaf(i), self.proof(i) if proof is None else proof)
