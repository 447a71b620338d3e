"""GRPO whose rollouts are drawn by seeded, verifiable sampling (trainer.seeded_generation).

`SeededGenerationMixin` replaces TRL 1.16's one generation call, `GRPOTrainer._generate_single_turn`,
with `seeded_generate`, so that:

1. every completion is a deterministic function of (model, prompt ids, seed): a validator checks all of
   its tokens with one forward pass;
2. the sampled token ids are what GRPO trains on AND what the peer records (no decode/encode between
   generation and records);
3. the per-token log-probs are those of the sampling distribution (softmax(logits / temperature));
4. the spec's temperature, top-k, top-p, `max_completion_length` and EOS ids (`self.eos_token_ids`)
   are honoured.

The seed of each rollout comes from `trainer.rollout_seeder(row, generation) -> bytes` where `row` is
the dataset row (after any rewriting in `_generate_and_score_completions`) and `generation` its position
in its GRPO group; `rollout_epoch()` tags samples (the swarm trainer returns the epoch of the run).
`take_seeded_rollouts(epoch)` hands back (and forgets) the `SeededSample`s of an epoch, rewards included.
Without a seeder (or with vLLM / tools / images) TRL's own generation runs unchanged.

    class MyTrainer(SeededGenerationMixin, GRPOTrainer): ...
    trainer = SeededGRPOTrainer(model=..., ...); trainer.rollout_seeder = lambda row, g: sha256(...).digest()
    trainer.train(); samples = trainer.take_seeded_rollouts(0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trl import GRPOTrainer

from trainer.seeded_generation import seeded_generate

RolloutSeeder = Callable[[dict, int], bytes]


@dataclass
class SeededSample:
    """One seeded rollout as the trainer drew it."""

    epoch: int
    row: dict  # the dataset row (prompt, seed, index, slot ...)
    generation: int  # position in its GRPO group
    seed: bytes
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # log softmax(logits / temperature) of each sampled token
    reward: float | None = None  # weighted reward, as GRPO used it


def group_generations(rows: list[dict], group_size: int) -> list[int]:
    """Position of each row in its GRPO group: consecutive rows with the same prompt, counted modulo G."""
    out, previous, run = [], object(), 0
    for row in rows:
        key = (row.get("slot"), row.get("index"), str(row.get("prompt")))
        run = run + 1 if key == previous else 0
        previous = key
        out.append(run % group_size)
    return out


class SeededGenerationMixin:
    """Mix in before GRPOTrainer (module docstring)."""

    rollout_seeder: RolloutSeeder | None = None

    def rollout_epoch(self) -> int:
        return 0

    def _generate_and_score_completions(self, inputs):
        self._seeded_rows, self._seeded_batch = list(inputs), []
        return super()._generate_and_score_completions(inputs)

    def _seeded_enabled(self, images) -> bool:
        return (
            self.rollout_seeder is not None
            and self.model.training  # training rollouts only (TRL's eval generation keeps its own sampler)
            and not getattr(self, "use_vllm", False)
            and not getattr(self, "use_transformers_continuous_batching", False)
            and not getattr(self, "tools", None)
            and not images
        )

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        rows = getattr(self, "_seeded_rows", None)
        if not self._seeded_enabled(images) or rows is None or len(rows) != len(prompt_ids):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)  # fmt: skip
        unsupported = {k: v for k, v in (("min_p", getattr(self.args, "min_p", None)),
                                         ("repetition_penalty", getattr(self.args, "repetition_penalty", 1.0)))
                       if v not in (None, 1.0)}  # fmt: skip
        if unsupported:
            raise ValueError(f"seeded sampling honours temperature, top_k and top_p only; unset {unsupported}")
        generations = group_generations(rows, self.num_generations)
        seeds = [self.rollout_seeder(row, g) for row, g in zip(rows, generations, strict=True)]
        model = self.accelerator.unwrap_model(self.model)
        completion_ids, logprobs = seeded_generate(
            model,
            prompt_ids,
            seeds,
            max_new_tokens=self.max_completion_length,
            temperature=self.temperature,
            eos_token_ids=list(self.eos_token_ids),
            pad_token_id=self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0,
            top_k=int(getattr(self.args, "top_k", 0) or 0),
            top_p=float(getattr(self.args, "top_p", 1.0) or 1.0),
        )
        epoch = self.rollout_epoch()
        self._seeded_batch = [
            SeededSample(epoch, dict(row), g, seed, list(p), ids, lp)
            for row, g, seed, p, ids, lp in zip(
                rows, generations, seeds, prompt_ids, completion_ids, logprobs, strict=True
            )  # fmt: skip
        ]
        self._seeded_rows = None  # one generation call per batch; a tool loop's second call goes to TRL
        return completion_ids, logprobs

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        batch = getattr(self, "_seeded_batch", [])
        if batch and len(batch) == len(prompts):
            start = self.accelerator.process_index * len(prompts)
            local = rewards_per_func[start : start + len(prompts)].detach().cpu()
            totals = (local * self.reward_weights.detach().cpu().unsqueeze(0)).nansum(dim=1)
            for sample, total in zip(batch, totals.tolist(), strict=True):
                sample.reward = float(total)
            self.__dict__.setdefault("_seeded_done", []).extend(batch)
            self._seeded_batch = []
        return rewards_per_func

    def take_seeded_rollouts(self, epoch: int) -> list[SeededSample]:
        """The scored seeded samples of `epoch`, in generation order; they are forgotten here."""
        done = self.__dict__.get("_seeded_done", [])
        taken = [s for s in done if s.epoch == epoch]
        self._seeded_done = [s for s in done if s.epoch != epoch]
        return taken


class SeededGRPOTrainer(SeededGenerationMixin, GRPOTrainer):
    """TRL's GRPOTrainer with seeded generation once `rollout_seeder` is set."""
