"""The public facts of a run that every audit checks against, and how to build them from run.yaml.

facts = RunFacts.from_spec(spec, task=get_task(spec.task.name, **spec.task.params), domain=domain,
                           load_policy=lambda cid: (model, tokenizer),
                           checkpoint_of_epoch=lambda epoch: board.canonical(epoch).cid,
                           entered_round=lambda epoch, peer, contribution: ...)

There is one verification path: rollouts are drawn by seeded sampling (trainer.seeded_generation), so every
token is checked against the canonical checkpoint of its epoch; counts and lengths are capped by the
peer's assignment (`prompts_per_epoch` x `group_size`) and `max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coordination.attest.rollouts import RewardFn, task_reward

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
        from coordination.chain.signing import run_key

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
