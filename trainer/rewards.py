"""Reward functions with TRL's signature `f(prompts, completions, **kwargs) -> list[float]`.

    from trainer.rewards import reward_functions, score
    funcs = reward_functions(task)              # [correctness, format, steps] for GRPOTrainer
    score(task, sample, completion)             # {"correctness": 1.0, "format": 1.0, "steps": 1.0}

- correctness: 1.0 iff `task.verify` accepts the completion, else 0.0.
- format: 1.0 iff `task.format_ok` (default: exactly `<t>...</t><a>...</a>`; gym tasks: one answer line).
- steps: `task.step_credit` (fraction of intermediate steps right), for partial credit.

The functions read the problem from the dataset column `problem` (a `Sample` as JSON, written by
`trainer.grpo.prompt_dataset`), so a validator can recompute any reward exactly from a rollout
record. Any junk (non-strings, chat-message lists, huge strings, control bytes) scores 0, never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trainer.tasks import Sample, Task

REWARD_NAMES = ("correctness", "format", "steps")
DEFAULT_WEIGHTS = {"correctness": 1.0, "format": 0.1, "steps": 0.5}


def completion_text(completion) -> str:
    """The text of a completion as TRL passes it: a string, or a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else ""
    return ""


def correctness(task: Task, sample: Sample, completion) -> float:
    return 1.0 if task.verify(completion_text(completion), sample) else 0.0


def format_score(task: Task, sample: Sample, completion) -> float:
    return 1.0 if task.format_ok(completion_text(completion)) else 0.0


def step_score(task: Task, sample: Sample, completion) -> float:
    return float(task.step_credit(completion_text(completion), sample))


SCORERS = {"correctness": correctness, "format": format_score, "steps": step_score}


def score(task: Task, sample: Sample, completion) -> dict[str, float]:
    """Every reward component of one completion (what a validator recomputes)."""
    return {name: scorer(task, sample, completion) for name, scorer in SCORERS.items()}


def weighted_reward(task: Task, sample: Sample, completion, weights: dict[str, float] | None = None) -> float:
    """The scalar GRPO reward: the weighted sum of the components (DEFAULT_WEIGHTS unless given)."""
    weights = DEFAULT_WEIGHTS if weights is None else weights
    return sum(weights.get(name, 0.0) * value for name, value in score(task, sample, completion).items())


def make_reward_function(task: Task, name: str) -> Callable[..., list[float]]:
    """The TRL reward function for component `name`; reads samples from the `problem` column."""
    scorer = SCORERS[name]

    def reward(prompts, completions, problem=None, **kwargs) -> list[float]:
        if problem is None:
            raise ValueError("reward functions need the dataset column 'problem': build it with prompt_dataset()")
        return [scorer(task, Sample.from_json(p), c) for p, c in zip(problem, completions, strict=True)]

    reward.__name__ = f"{name}_reward"
    return reward


def reward_functions(task: Task, names: Sequence[str] = REWARD_NAMES) -> list[Callable[..., list[float]]]:
    """TRL reward functions for `task`, in `names` order (pair with `reward_weights` in GRPOConfig)."""
    unknown = set(names) - set(SCORERS)
    if unknown:
        raise ValueError(f"unknown reward(s) {sorted(unknown)}: choose from {list(SCORERS)}")
    return [make_reward_function(task, name) for name in names]


def default_weights(names: Sequence[str] = REWARD_NAMES) -> list[float]:
    return [DEFAULT_WEIGHTS[name] for name in names]
