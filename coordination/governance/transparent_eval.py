"""Transparent evaluation of a checkpoint proposed for promotion.

1. The eval seed is fixed by the chain *after* the checkpoint is nominated: `CheckpointRegistry.fixSeed`
   stores the hash of the block after the nomination block, and `eval_seed` hashes it with the run id
   and CID. Nominations are deduplicated by the adapter weights' hash, so nobody can nominate K
   byte-different manifests of one adapter and keep the luckiest of K seeds.
   The problems (`eval_problems`) come from that seed and only from the task's eval split, which is
   disjoint from the training partition by construction (a hash of each problem's key decides its
   split; the trainer's sampler rejects eval problems): a checkpoint tuned on a fixed public eval set
   meets problems nobody knew before the seed, and training never draws from this space.
2. A validator runs greedy pass@1 on `n` held-out samples at that seed and commits to every
   per-sample record (prompt, reasoning trace, extracted answer, verdict) in an OZ
   StandardMerkleTree (leaf: `(uint256 index, bytes32 keccak(prompt), bytes32 keccak(completion), bool verdict)`).
3. It signs `EvalAttestation(checkpoint, seed, correct, total, recordsRoot)` (EIP-712, domain bound
   to the chain id and the registry). Greedy decoding makes the commitment a pure function of
   (weights, task, seed, n), so honest validators produce identical roots and scores.
4. Anyone can spot-check sample N: its Merkle proof against the signed root, and its verdict
   recomputed from the task (`hivetune eval verify CID --sample N`).

    bundle = run_transparent_eval(model, tokenizer, task, cid=cid, seed=seed, n=64)
    bundle.attest(validator_key, domain)
    bundle.save(path)                         # JSON: records, root, score, attestations
    verify_sample(EvalBundle.load(path), 3, task)   # -> SampleCheck(ok=True, ...)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from coordination.chain.eip712 import attest_domain, recover_struct_signer, sign_struct
from coordination.chain.merkle import StandardMerkleTree, leaf_hash, verify_proof
from coordination.errors import AttestationError

EVAL_LEAF_TYPES = ("uint256", "bytes32", "bytes32", "bool")
EVAL_ATTESTATION_FIELDS = (
    ("checkpoint", "string"),
    ("seed", "uint256"),
    ("correct", "uint256"),
    ("total", "uint256"),
    ("recordsRoot", "bytes32"),
)
EVAL_DOMAIN_NAME = "HivetuneCheckpointEval"


def eval_domain(chain_id: int, registry_address: str) -> dict:
    """EIP-712 domain of eval attestations: one chain, one CheckpointRegistry."""
    return attest_domain(chain_id=chain_id, verifying_contract=registry_address, name=EVAL_DOMAIN_NAME)


def eval_seed(block_hash: bytes, run_key: bytes, cid: str) -> int:
    """The eval seed of a nominated checkpoint: 63 bits of keccak(chain seed, run, cid).

    `block_hash` is the registry's fixed seed (`RegistryClient.eval_seed`): the hash of the block after
    the nomination's.
    """
    return (
        int.from_bytes(keccak(encode(["bytes32", "bytes32", "string"], [bytes(block_hash), run_key, cid]))[:8], "big")
        >> 1
    )


@dataclass(frozen=True)
class EvalRecord:
    """One evaluated sample, as committed to in the Merkle tree."""

    index: int
    prompt: str
    completion: str
    answer: str | None
    verdict: bool

    def leaf_values(self) -> tuple:
        return (self.index, keccak(text=self.prompt), keccak(text=self.completion), self.verdict)


@dataclass
class EvalBundle:
    """A checkpoint's eval at one seed: records, their root, the score, and validators' signatures."""

    cid: str
    task: str
    seed: int
    records: list[EvalRecord]
    attestations: list[dict] = field(default_factory=list)  # {"validator": addr, "signature": hex}

    @property
    def total(self) -> int:
        return len(self.records)

    @property
    def correct(self) -> int:
        return sum(r.verdict for r in self.records)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    def tree(self) -> StandardMerkleTree:
        return StandardMerkleTree.of([r.leaf_values() for r in self.records], EVAL_LEAF_TYPES)

    @property
    def root(self) -> bytes:
        return self.tree().root

    def message(self) -> dict:
        return {
            "checkpoint": self.cid,
            "seed": self.seed,
            "correct": self.correct,
            "total": self.total,
            "recordsRoot": self.root,
        }

    @property
    def digest(self) -> bytes:
        """The eval digest promoted with the checkpoint: keccak(abi.encode(cid, seed, correct, total, root))."""
        m = self.message()
        return keccak(
            encode(
                ["string", "uint256", "uint256", "uint256", "bytes32"],
                [m["checkpoint"], m["seed"], m["correct"], m["total"], m["recordsRoot"]],
            )
        )

    def attest(self, private_key, domain: dict) -> dict:
        """Sign this eval as a validator and keep the attestation in the bundle."""
        from eth_account import Account

        signature = sign_struct(private_key, domain, "EvalAttestation", EVAL_ATTESTATION_FIELDS, self.message())
        entry = {"validator": Account.from_key(private_key).address, "signature": "0x" + signature.hex()}
        self.attestations.append(entry)
        return entry

    def to_json(self) -> dict:
        return {
            "cid": self.cid,
            "task": self.task,
            "seed": self.seed,
            "correct": self.correct,
            "total": self.total,
            "records_root": "0x" + self.root.hex(),
            "eval_digest": "0x" + self.digest.hex(),
            "records": [asdict(r) for r in self.records],
            "attestations": self.attestations,
        }

    def save(self, path: str | Path) -> Path:
        """Atomic JSON write (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalBundle:
        try:
            data = json.loads(Path(path).read_text())
            records = [EvalRecord(**r) for r in data["records"]]
            return cls(data["cid"], data["task"], int(data["seed"]), records, list(data.get("attestations", [])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AttestationError(
                f"cannot read eval bundle {path}: {exc}; re-download it or re-run the eval"
            ) from exc


def merge_bundles(paths: list[str | Path]) -> EvalBundle:
    """One bundle carrying every validator's attestation (`hivetune propose --eval A --eval B`).

    All bundles must commit to the same checkpoint, seed and records; a disagreeing one is an AttestationError.
    """
    bundles = [EvalBundle.load(p) for p in paths]
    first = bundles[0]
    for other, path in zip(bundles[1:], paths[1:], strict=True):
        if (other.cid, other.seed, other.root) != (first.cid, first.seed, first.root):
            raise AttestationError(
                f"{path} evaluates {other.cid} on seed {other.seed} with other records than {paths[0]}: "
                "validators disagree; re-run the eval or drop the outlier"
            )
        first.attestations.extend(other.attestations)
    return first


def bundle_task(bundle: EvalBundle):
    """The task a bundle was evaluated on, rebuilt from its `name:{params}` key."""
    from trainer.tasks import get_task

    name, _, params = bundle.task.partition(":")
    return get_task(name, **json.loads(params or "{}"))


def load_checkpoint_model(spec, cid: str, *, store: str | Path | None = None, initial_peers=()):
    """(model, tokenizer, task) to evaluate checkpoint `cid` of the run `spec`.

    The adapter comes from the local block store, else (with `initial_peers`) from the swarm, verified
    by CID either way; the base is the run's pinned base (a different one is refused).
    """
    from coordination.checkpoints import CheckpointStore, resolve_adapter
    from trainer.base_models import load_pinned_base
    from trainer.tasks import get_task

    blocks = CheckpointStore(store)
    dht = None
    if initial_peers:
        from coordination.swarm.dht_node import start_dht

        dht = start_dht(initial_peers=list(initial_peers), client_mode=True)
    try:
        adapter = resolve_adapter(cid, blocks, dht=dht, prefix=spec.run_id if dht else None)
    finally:
        if dht is not None:
            dht.shutdown()
    model, tokenizer = load_pinned_base(**spec.model.pins, adapter_dir=adapter)  # refuses a base not the run's
    return model, tokenizer, get_task(spec.task.name, **spec.task.params)


def eval_problems(task, seed: int, n: int) -> list:
    """`n` problems of `task`'s eval split drawn at `seed` (never a training-partition problem)."""
    samples = [task.sample(seed, i, split="eval") for i in range(n)]
    assert all(s.split == "eval" for s in samples), "the task returned a problem outside its eval split"
    return samples


def run_transparent_eval(
    model, tokenizer, task, *, cid: str, seed: int, n: int, batch_size: int = 64, generate=None
) -> EvalBundle:
    """Greedy pass@1 on `n` eval problems at `seed`; every sample kept as a committed record.

    `generate(prompts) -> completions` replaces greedy decoding of `model` (tests, other backends).
    """
    from trainer.prompts import completion_token_budget, render_prompt
    from trainer.tasks.base import extract_answer

    samples = eval_problems(task, seed, n)
    prompts = [render_prompt(task, s, tokenizer) for s in samples]  # chat template for instruct bases
    if generate is None:
        from trainer.eval import generate_greedy

        completions = generate_greedy(
            model, tokenizer, prompts, max_new_tokens=completion_token_budget(task, tokenizer), batch_size=batch_size
        )
    else:
        completions = list(generate(prompts))
    records = [
        EvalRecord(i, p, c, extract_answer(c), bool(task.verify(c, s)))
        for i, (s, p, c) in enumerate(zip(samples, prompts, completions, strict=True))
    ]
    return EvalBundle(cid, task.key, seed, records)


def attestation_signers(bundle: EvalBundle, domain: dict) -> list[str]:
    """The address that signed each attestation over exactly this bundle's (cid, seed, score, root)."""
    signers = []
    for att in bundle.attestations:
        sig = bytes.fromhex(str(att.get("signature", "")).removeprefix("0x"))
        signer = recover_struct_signer(domain, "EvalAttestation", EVAL_ATTESTATION_FIELDS, bundle.message(), sig)
        if signer != to_checksum_address(att.get("validator", "0x" + "00" * 20)):
            raise AttestationError(
                f"eval attestation claims validator {att.get('validator')} but was signed by {signer}: "
                "it is forged or for another checkpoint/seed/score; ask the validator to re-sign"
            )
        signers.append(signer)
    return signers


def validator_signers(bundle: EvalBundle, domain: dict, is_validator) -> list[str]:
    """`attestation_signers`, refused (AttestationError) if any signer is not a registered validator."""
    signers = attestation_signers(bundle, domain)
    outsiders = [s for s in signers if not is_validator(s)]
    if outsiders:
        raise AttestationError(f"eval bundle signed by non-validators {outsiders}: do not trust its score")
    return signers


def check_attestations(
    bundle: EvalBundle, *, cid: str, seed: int, domain: dict, stakes: Mapping[str, int], required: int
) -> list[str]:
    """Raise AttestationError unless `bundle` is for `cid` at `seed` and signed by `required` validator stake.

    `stakes`: validator -> weight at a recent snapshot (`StakingClient.validator_stakes_at`); a signer
    with no weight is not a validator. Weighed by stake, never by the number of signatures.
    """
    if bundle.cid != cid:
        raise AttestationError(f"eval bundle is for checkpoint {bundle.cid}, not {cid}: attach the eval of {cid}")
    if bundle.seed != seed:
        raise AttestationError(
            f"eval bundle used seed {bundle.seed} but the chain fixed seed {seed} for {cid}: "
            f"re-run the eval on seed {seed}"
        )
    if not bundle.attestations:
        raise AttestationError(f"eval of {cid} has no validator attestations: run `hivetune validate` or attach them")
    signers = attestation_signers(bundle, domain)
    if len(set(signers)) != len(signers):
        raise AttestationError(f"eval of {cid} lists validator(s) twice: {sorted(signers)}; drop the duplicates")
    stakes = {to_checksum_address(a): int(w) for a, w in stakes.items()}
    outsiders = [s for s in signers if stakes.get(s, 0) <= 0]
    if outsiders:
        raise AttestationError(f"eval of {cid} is signed by non-validators {outsiders}: only staked validators count")
    weight = sum(stakes[s] for s in signers)
    if weight < required:
        raise AttestationError(f"eval of {cid} is signed by {weight} validator stake, needs {required}")
    return signers


@dataclass(frozen=True)
class SampleCheck:
    index: int
    in_commitment: bool
    prompt_matches: bool
    verdict_matches: bool
    record: EvalRecord

    @property
    def ok(self) -> bool:
        return self.in_commitment and self.prompt_matches and self.verdict_matches


def verify_sample(
    bundle: EvalBundle, index: int, task, *, signed_root: bytes | None = None, tokenizer=None
) -> SampleCheck:
    """Prove record `index` is in the committed eval and recompute its prompt (rendered for the base's
    `tokenizer`, as the eval did) and verdict from the task."""
    if not 0 <= index < bundle.total:
        raise AttestationError(f"sample {index} is out of range: the eval has samples 0..{bundle.total - 1}")
    tree = bundle.tree()
    root = tree.root if signed_root is None else signed_root
    record = bundle.records[index]
    in_commitment = verify_proof(root, leaf_hash(EVAL_LEAF_TYPES, record.leaf_values()), tree.proof(index))
    sample = task.sample(bundle.seed, record.index, split="eval")
    from trainer.prompts import render_prompt

    prompt_matches = render_prompt(task, sample, tokenizer) == record.prompt
    verdict_matches = bool(task.verify(record.completion, sample)) == record.verdict
    return SampleCheck(index, in_commitment, prompt_matches, verdict_matches, record)
