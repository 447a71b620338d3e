"""StandardMerkleTree: proofs verify, any change to a leaf breaks them, layout matches OZ's."""

from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from coordination.chain.merkle import StandardMerkleTree, hash_pair, leaf_hash, verify_proof

ADDR = ["0x" + f"{i:040x}" for i in range(1, 40)]


def test_single_leaf_root_is_the_leaf():
    tree = StandardMerkleTree.of([(ADDR[0], 7)], ["address", "uint256"])
    assert tree.root == leaf_hash(["address", "uint256"], [ADDR[0], 7])
    assert tree.proof(0) == []


def test_two_leaves_root_is_sorted_pair_hash():
    tree = StandardMerkleTree.of([(ADDR[0], 1), (ADDR[1], 2)], ["address", "uint256"])
    a = leaf_hash(["address", "uint256"], [ADDR[0], 1])
    b = leaf_hash(["address", "uint256"], [ADDR[1], 2])
    assert tree.root == keccak(min(a, b) + max(a, b))
    assert tree.root == hash_pair(b, a)


@given(st.lists(st.integers(min_value=0, max_value=2**64), min_size=1, max_size=len(ADDR)))
def test_every_proof_verifies_and_a_changed_value_does_not(units):
    values = [(ADDR[i], u) for i, u in enumerate(units)]
    tree = StandardMerkleTree.of(values, ["address", "uint256"])
    for i, (addr, u) in enumerate(values):
        proof = tree.proof(i)
        assert tree.verify(i, proof)
        forged = leaf_hash(["address", "uint256"], [addr, u + 1])
        assert not verify_proof(tree.root, forged, proof)
