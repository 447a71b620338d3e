"""Rollout records: what a peer did on one assigned prompt, and the Merkle tree over an epoch's records.

A `RolloutRecord` holds the prompt's position in the peer's assignment (`slot`), the task
seed and sample index it came from, a digest of the prompt text, the completion (text and
token ids), the reward, and the completion's token log-probs quantized to 1e-3 nats
(`logprobs_milli`). The Merkle leaf binds all of it through digests, with OpenZeppelin's
StandardMerkleTree leaf encoding, so a record's proof verifies with `MerkleProof.verify` on-chain.

    records = [RolloutRecord.build(slot=0, generation=0, task_seed=7, task_index=123, prompt="1+2=",
                                   completion="3", completion_ids=[5], reward=1.0, logprobs=[-0.1])]
    tree = rollouts_tree(records)
    tree.root                   # the receipt's rolloutsRoot
    record_proof(tree, 0)       # list[bytes32]
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

from coordination.chain.hashing import keccak
from coordination.chain.merkle import StandardMerkleTree, verify_proof

LOGPROB_SCALE = 1000  # log-probs are kept as integer milli-nats
REWARD_SCALE = 10**6  # rewards are compared as integer micro-units

RECORD_LEAF_TYPES = (
    "uint256",  # slot: position of the prompt in the peer's assignment for the epoch
    "uint256",  # generation: which completion of that prompt's GRPO group
    "uint256",  # taskSeed
    "uint256",  # taskIndex
    "bytes32",  # promptDigest
    "bytes32",  # completionDigest (text and token ids)
    "int256",  # reward in micro-units
    "uint256",  # completion token count
    "bytes32",  # logprobDigest
)


def quantize_logprobs(logprobs: Sequence[float]) -> list[int]:
    """Round log-probs to integer milli-nats (the form that is signed and compared)."""
    return [int(round(float(x) * LOGPROB_SCALE)) for x in logprobs]


def quantize_reward(reward: float) -> int:
    return int(round(float(reward) * REWARD_SCALE))


def text_digest(text: str) -> bytes:
    return keccak(text.encode("utf-8"))


def _word(value: int) -> bytes:
    """One ABI word: a 256-bit two's-complement integer."""
    return (value % 2**256).to_bytes(32, "big")


def _int_array_tail(values: Sequence[int]) -> bytes:
    """ABI tail of an int256[]/uint256[]: the length word, then one two's-complement word per value.

    `int.to_bytes(32, signed=True)` is `_word` for every value in int256 range (all token ids and
    milli-nat log-probs), at a fraction of its cost; anything outside falls back to `_word`'s modulo."""
    ints = [int(v) for v in values]
    try:
        return _word(len(ints)) + b"".join(v.to_bytes(32, "big", signed=True) for v in ints)
    except OverflowError:
        return _word(len(ints)) + b"".join(_word(v) for v in ints)


def logprob_digest(logprobs_milli: Sequence[int]) -> bytes:
    """keccak256(abi.encode(int256[] logprobs)), encoded by hand (eth_abi is ~50x slower on long arrays)."""
    return keccak(_word(32) + _int_array_tail(logprobs_milli))


def completion_digest(completion: str, completion_ids: Sequence[int]) -> bytes:
    """keccak256(abi.encode(string completion, uint256[] ids)), encoded by hand."""
    if completion_ids and min(map(int, completion_ids)) < 0:
        raise ValueError("token ids must be >= 0")
    text = completion.encode("utf-8")
    padded = text + b"\x00" * (-len(text) % 32)
    string_tail = _word(len(text)) + padded
    return keccak(_word(64) + _word(64 + len(string_tail)) + string_tail + _int_array_tail(completion_ids))


@dataclass(frozen=True)
class RolloutRecord:
    """One rollout: a completion for an assigned prompt, with its reward and quantized log-probs."""

    slot: int
    generation: int
    task_seed: int
    task_index: int
    prompt_digest: str  # 0x-hex keccak of the prompt text
    completion: str
    completion_ids: tuple[int, ...]
    reward: float
    logprobs_milli: tuple[int, ...]

    @classmethod
    def build(cls, *, slot, generation, task_seed, task_index, prompt, completion, completion_ids, reward, logprobs):
        """Make a record from raw values: hashes the prompt and quantizes the log-probs."""
        if len(logprobs) != len(completion_ids):
            raise ValueError(
                f"{len(logprobs)} log-probs for {len(completion_ids)} completion tokens; pass one per token"
            )
        return cls(
            slot,
            generation,
            task_seed,
            task_index,
            "0x" + text_digest(prompt).hex(),
            completion,
            tuple(int(t) for t in completion_ids),
            float(reward),
            tuple(quantize_logprobs(logprobs)),
        )

    @property
    def completion_tokens(self) -> int:
        return len(self.completion_ids)

    def leaf_values(self) -> tuple:
        return self._leaf_values

    @cached_property
    def _leaf_values(self) -> tuple:
        return (
            self.slot,
            self.generation,
            self.task_seed,
            self.task_index,
            bytes.fromhex(self.prompt_digest[2:]),
            completion_digest(self.completion, self.completion_ids),
            quantize_reward(self.reward),
            self.completion_tokens,
            logprob_digest(self.logprobs_milli),
        )

    @cached_property
    def _leaf(self) -> bytes:
        """OZ leaf keccak(keccak(abi.encode(values))); every leaf type is one static word, so encoded by hand."""
        words = b"".join(v if isinstance(v, bytes) else _word(v) for v in self.leaf_values())
        return keccak(keccak(words))

    def leaf(self) -> bytes:
        return self._leaf

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RolloutRecord:
        """Strict parse of network input: exact keys and types, bounded sizes; MalformedRecord otherwise."""
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise MalformedRecord(f"record keys {sorted(data) if isinstance(data, dict) else type(data).__name__}")
        ints = {k: _uint(data[k], k) for k in ("slot", "generation", "task_seed", "task_index")}
        ids, lps = data["completion_ids"], data["logprobs_milli"]
        if not isinstance(ids, list | tuple) or not isinstance(lps, list | tuple) or len(ids) > MAX_RECORD_TOKENS:
            raise MalformedRecord("completion_ids / logprobs_milli must be lists of at most MAX_RECORD_TOKENS ints")
        digest, completion, reward = data["prompt_digest"], data["completion"], data["reward"]
        if not (isinstance(digest, str) and len(digest) == 66 and digest.startswith("0x") and _is_hex(digest[2:])):
            raise MalformedRecord(f"prompt_digest {str(digest)[:80]!r} is not a 0x bytes32")
        if not isinstance(completion, str) or len(completion) > 64 * MAX_RECORD_TOKENS:
            raise MalformedRecord("completion is not a string of bounded size")
        if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
            raise MalformedRecord(f"reward {reward!r} is not a finite number")
        return cls(
            ints["slot"], ints["generation"], ints["task_seed"], ints["task_index"], digest, completion,
            _uints(ids, "completion_ids"), float(reward), _ints(lps, "logprobs_milli"),
        )  # fmt: skip


class MalformedRecord(ValueError):
    """A rollout record from the network that does not have the record's exact shape."""


MAX_RECORD_TOKENS = 1 << 16


_HEX = re.compile("[0-9a-fA-F]*")


def _is_hex(text: str) -> bool:
    return _HEX.fullmatch(text) is not None


def _int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**255) <= value < 2**255:
        raise MalformedRecord(f"{name}: {str(value)[:40]!r} is not an int256")
    return value


def _ints(values, name: str) -> tuple[int, ...]:
    """`_int` of every value: plain ints (what JSON gives) are range-checked at once, anything else one by one."""
    if set(map(type, values)) <= {int} and (not values or -(2**255) <= min(values) and max(values) < 2**255):
        return tuple(values)
    return tuple(_int(v, name) for v in values)


def _uints(values, name: str) -> tuple[int, ...]:
    out = _ints(values, name)
    if out and min(out) < 0:
        raise MalformedRecord(f"{name}: {min(out)} is negative")
    return out


def _uint(value, name: str) -> int:
    if _int(value, name) < 0:
        raise MalformedRecord(f"{name}: {value} is negative")
    return value


def rollouts_tree(records: Sequence[RolloutRecord]) -> StandardMerkleTree:
    """The OZ StandardMerkleTree over the records' leaves (order-independent root), from their cached leaves."""
    if not records:
        raise ValueError("a Merkle tree needs at least one leaf; got an empty list of records")
    values = [tuple(r.leaf_values()) for r in records]
    return StandardMerkleTree.from_leaves([r.leaf() for r in records], RECORD_LEAF_TYPES, values)


def record_proof(tree: StandardMerkleTree, i: int) -> list[bytes]:
    return tree.proof(i)


def verify_record(root: bytes, record: RolloutRecord, proof: Sequence[bytes]) -> bool:
    """True when `record` is a leaf of the tree whose root is `root`."""
    return verify_proof(root, record.leaf(), proof)


def records_to_jsonl(records: Sequence[RolloutRecord]) -> str:
    return "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records)
