"""The public facts of a run that every audit checks against, and how to build them from run.yaml.

    facts = facts_for_run(spec, domain=domain, store=CheckpointStore(), board=EpochBoard(dht=dht, run_id=...))

    facts = RunFacts.from_spec(spec, task=get_task(spec.task.name, **spec.task.params), domain=domain,
                               load_policy=lambda cid: (model, tokenizer),
                               checkpoint_of_epoch=lambda epoch: board.canonical(epoch).cid,
                               entered_round=lambda epoch, peer, contribution: ...)

There is one verification path: rollouts are drawn by seeded sampling (trainer.seeded_generation), so every
token is checked against the canonical checkpoint of its epoch; counts and lengths are capped by the
peer's assignment (`prompts_per_epoch` x `group_size`) and `max_new_tokens`.

`facts_for_run` checks against the run, not the peer: with the swarm's epoch board, every receipt is audited
under the canonical checkpoint of its epoch (`board.canonical(epoch).cid`; a receipt naming another checkpoint
is WRONG_CHECKPOINT) and paid only when its committed gradient contribution is a member of the canonical round
that ended the epoch (`board.round_of(epoch + 1)`: same address, same sha2-256; else NOT_IN_ROUND). Policies
come from one `PolicyPool` (one base model, adapters through a bounded LRU, adapters whose config differs from
the spec refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from coordination.attest.rollouts import RewardFn, task_reward
from coordination.verify.policy_pool import PolicyPool

logger = logging.getLogger(__name__)

PolicyLoader = Callable[[str], tuple]  # checkpoint CID -> (model, tokenizer)


# (cdf_tolerance, logprob_tolerance_milli) by the dtype the validator evaluates in (peers sample in fp32), from
# bench/attest_calibration.py over 10,240 honest rollouts per setting (mean token entropy 4.6 and 1.3 nats):
# fp32: largest honest CDF excursion 3.3e-8 (tolerance 3000x it), log-prob 1 milli-nat (rounding; 10x) -> 0 flagged.
# bf16: largest excursion 7.6e-3 (entropy 1.3) and 110 milli-nats (entropy 0.09: errors grow with peaked logits)
# -> tolerances >= 10x those. bf16 weights cost per-token power (a token within 0.1 of its uniform's interval
# passes): validate in fp32 unless memory forbids.
EVAL_TOLERANCES = {"fp32": (1e-4, 10), "bf16": (1e-1, 1200)}


# (epoch, peer address, contribution digest) -> whether it entered the canonical round; None: unknown
RoundCheck = Callable[[int, str, bytes], bool | None]


@dataclass(frozen=True)
class RunFacts:
    """What a validator needs to recompute a peer's epoch: run identity, task, reward, sampling, checkpoints."""

    run_id: str
    run_id_bytes32: bytes
    domain: dict
    task: object
    task_seed: int
    reward_fn: RewardFn
    group_size: int
    max_new_tokens: int
    temperature: float
    load_policy: PolicyLoader
    # the epoch's canonical checkpoint CID; None: accept any (offline re-checks of a records directory only)
    checkpoint_of_epoch: Callable[[int], str | None] = lambda epoch: None
    entered_round: RoundCheck = lambda epoch, peer, contribution: None  # None: the round cannot be checked
    prompts_per_epoch: int | None = None  # the assignment: prompts a peer works on per epoch (None: no cap)
    eos_token_ids: tuple[int, ...] = ()  # () : the policy tokenizer's eos_token_id
    vocab_size: int | None = None  # token ids must be below it (None: the policy's)
    top_k: int = 0
    top_p: float = 1.0
    logprob_tolerance_milli: int = 10  # |recomputed - claimed| per token, in milli-nats (bench/attest_calibration.py)
    cdf_tolerance: float = 1e-4
    # the prompt string of a task sample as peers train on it (trainer.prompts.render_prompt); None: task.prompt
    prompt_of: Callable | None = None  # slack on each token's CDF interval (bench/attest_calibration.py)

    def prompt(self, sample) -> str:
        return self.prompt_of(sample) if self.prompt_of is not None else self.task.prompt(sample)

    @classmethod
    def from_spec(
        cls, spec, *, task, domain: dict, load_policy: PolicyLoader, reward_fn: RewardFn | None = None, **overrides
    ) -> RunFacts:
        """Facts of a `coordination.swarm.runspec.RunSpec`; the on-chain run key is `run_key(spec.run_id)`."""
        from coordination.chain.eip712 import run_key

        fields = dict(
            run_id=spec.run_id,
            run_id_bytes32=run_key(spec.run_id),
            domain=domain,
            task=task,
            task_seed=spec.task.seed,
            reward_fn=reward_fn or task_reward(task),
            group_size=spec.grpo.num_generations,
            max_new_tokens=spec.grpo.max_completion_length,
            temperature=spec.grpo.temperature,
            load_policy=load_policy,
            prompts_per_epoch=spec.samples_per_local_step // spec.grpo.num_generations,
            top_k=int(getattr(spec.grpo, "top_k", 0) or 0),
            top_p=float(getattr(spec.grpo, "top_p", 1.0) or 1.0),
        )
        return cls(**{**fields, **overrides})


# -- the facts of a run.yaml --------------------------------------------------------------------------------------


NO_CANONICAL = "<no canonical checkpoint>"  # what a receipt is compared to when the board has none for its epoch


def facts_for_run(spec, *, domain: dict, store=None, dht=None, board=None, max_adapters: int = 4,
                  eval_dtype: str = "fp32", **overrides) -> RunFacts:  # fmt: skip
    """The run's facts; with `board` (an EpochBoard) receipts are checked against the run's canonical epochs.

    `eval_dtype` (fp32 | bf16) is what the validator recomputes in; its calibrated tolerances come with it."""
    from trainer.tasks import get_task

    if eval_dtype not in EVAL_TOLERANCES:
        raise ValueError(f"eval_dtype={eval_dtype!r}: use one of {sorted(EVAL_TOLERANCES)}")
    task = get_task(spec.task.name, **spec.task.params)
    pool = overrides.pop("load_policy", None) or PolicyPool(
        spec, store=store, dht=dht, max_adapters=max_adapters, dtype=eval_dtype
    )
    cdf, milli = EVAL_TOLERANCES[eval_dtype]
    checks = board_checks(board, spec) if board is not None else {}
    fields = {"cdf_tolerance": cdf, "logprob_tolerance_milli": milli, **checks, **model_limits(spec), **overrides}
    return RunFacts.from_spec(spec, task=task, domain=domain, load_policy=pool, **fields)


def board_checks(board, spec=None) -> dict:
    """`checkpoint_of_epoch` and `entered_round` for RunFacts, read (once per epoch) from an EpochBoard. The
    checkpoint of epoch k is the canonical state its rollouts came from: k's, or with the run's delayed updates
    k-1's (`rollout_state_epoch`)."""
    from coordination.attest.receipts import NO_CONTRIBUTION, contribution_digest
    from coordination.swarm.training_state import rollout_state_epoch

    @lru_cache(maxsize=256)
    def canonical(epoch: int) -> str:
        try:
            found = board.canonical(epoch if spec is None else rollout_state_epoch(spec, epoch))
        except Exception as exc:  # DHT input we could not read: no canonical checkpoint for this epoch
            logger.warning(f"epoch {epoch}: reading the canonical checkpoint failed: {exc!r}")
            found = None
        return found.cid if found is not None else NO_CANONICAL

    @lru_cache(maxsize=256)
    def members(epoch: int) -> frozenset:
        try:
            found = board.round_of(epoch + 1)
        except Exception as exc:  # DHT input we could not read: nobody provably entered that round
            logger.warning(f"epoch {epoch}: reading the round failed: {exc!r}")
            found = None
        out = set()
        for m in (found or {}).get("members", []):
            try:
                if m.get("contribution") is not None:  # a member without a contribution CID vouches for nothing
                    out.add((str(m.get("address")).lower(), contribution_digest(m.get("contribution"))))
            except (ValueError, TypeError, AttributeError):
                continue  # an announcer's malformed member entry counts for nobody
        return frozenset(out)

    def entered(epoch: int, peer: str, contribution: bytes) -> bool:
        return bytes(contribution) != NO_CONTRIBUTION and (peer.lower(), bytes(contribution)) in members(epoch)

    return {"checkpoint_of_epoch": canonical, "entered_round": entered}


def model_limits(spec) -> dict:
    """EOS ids, vocabulary size and prompt rendering of the run's base model (cheap: tokenizer + config)."""
    from transformers import AutoConfig

    from trainer.models import load_tokenizer, resolve_model_path
    from trainer.prompts import render_prompt
    from trainer.tasks import get_task

    try:
        tokenizer = load_tokenizer(spec.model.base)
        vocab = AutoConfig.from_pretrained(resolve_model_path(spec.model.base)).get_text_config().vocab_size
    except Exception as exc:  # the drawn checks fall back to the policy's own tokenizer and embeddings
        logger.warning(
            f"could not read the base model's EOS / vocabulary ({exc}); length checks only on drawn records"
        )
        return {}
    task = get_task(spec.task.name, **spec.task.params)
    return {
        "eos_token_ids": eos_ids(tokenizer, spec.model.base),
        "vocab_size": int(vocab),
        "prompt_of": lambda sample: render_prompt(task, sample, tokenizer),  # as peers render it
    }


def eos_ids(tokenizer, base: str) -> tuple[int, ...]:
    """The ids TRL stops generation at: the tokenizer's EOS plus the generation config's (as GRPOTrainer does)."""
    from transformers import GenerationConfig

    from trainer.models import resolve_model_path

    ids = [int(tokenizer.eos_token_id)]
    try:
        extra = GenerationConfig.from_pretrained(resolve_model_path(base)).eos_token_id
    except OSError:
        extra = None
    for t in [extra] if isinstance(extra, int) else list(extra or []):
        if int(t) not in ids:
            ids.append(int(t))
    return tuple(ids)
