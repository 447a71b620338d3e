"""reasoning-gym datasets behind the Task interface: any generator by name + config, its scorer as reward.

    task = get_task("gym", dataset="chain_sum", config="min_terms=2,max_terms=2,max_digits=2")
    s = task.sample(seed=0, index=3)          # question "State the final answer to ...: 41 + 7 ="
    task.verify("48", s)                       # True (reasoning-gym's own score_answer == 1)

Seeding: the problem at `(seed, index, split)` is item `H(task, split, seed, index, attempt)` of the
dataset built with seed 0; reasoning-gym's procedural generators draw item i from `Random(seed + i)`,
so any peer regenerates any problem and `(seed, index)` pairs never collide. Datasets that precompute
`size` items (e.g. gsm_symbolic) get a one-item dataset seeded with that hash instead. The
train/eval split is decided by a hash of the question (as for every Task).

Answer format (what `render_prompt` asks an instruct model for and the reward parses), by `style`:
"answer" (default) the final answer alone on one line; "reasoning" step-by-step text ending with a
line "Answer: X" (for models that can reason, e.g. Qwen2.5-0.5B-Instruct on gsm_symbolic).
`<answer>..</answer>` or `<a>..</a>` tags are also accepted, and so are "The answer is X." and
"2 + 3 = X" (what an instruct model writes before any training). With
`math_verify=True`, an answer the scorer rejects is accepted when math-verify finds it equal to the
gold (numbers and LaTeX: "0.50" vs "1/2").
"""

from __future__ import annotations

import json
import random
import re

from trainer.tasks.base import MAX_COMPLETION_CHARS, Task

TAG_RE = re.compile(r"<(answer|a)>(.*?)</\1>", re.DOTALL)
PREFIX_RE = re.compile(r"^(?:the\s+)?(?:final\s+)?(?:answer|result)\b.*?(?:\bis\b|[:=])\s*", re.IGNORECASE)
MAX_ANSWER_CHARS = 200
STYLES = {  # what the prompt asks for; the reward parses the same thing
    "answer": "Give only the final answer, alone on the last line, with no explanation.",
    "reasoning": "Think step by step. Then write the final answer alone on the last line, as: Answer: <answer>",
}
ANSWER_LINE_RE = re.compile(r"^answer:\s*\S", re.IGNORECASE)


def final_answer(completion: str) -> str | None:
    """The answer in a completion: inside <answer>/<a> tags, else its last non-empty line (prefix stripped)."""
    if not isinstance(completion, str):
        return None
    text = completion[:MAX_COMPLETION_CHARS]
    tagged = TAG_RE.search(text)
    if tagged:
        return tagged.group(2).strip()
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    answer = PREFIX_RE.sub("", lines[-1]).rsplit("=", 1)[-1].strip().rstrip(".").strip()
    return answer[:MAX_ANSWER_CHARS] or None


def parse_config(text: str | dict | None) -> dict:
    """ "min_terms=2,max_digits=2" (or a dict) -> {"min_terms": 2, "max_digits": 2}."""
    if isinstance(text, dict):
        return dict(text)
    from trainer.tasks import parse_task_params

    return parse_task_params((text or "").replace(";", ","))


class GymTask(Task):
    """One reasoning-gym dataset (`dataset` by name, `config` its config fields)."""

    name = "gym"

    def __init__(
        self,
        dataset: str = "chain_sum",
        config: str | dict = "",
        eval_fraction: float = 0.1,
        math_verify: bool = False,
        style: str = "answer",
    ):
        from trainer.errors import TrainerConfigError

        try:
            import reasoning_gym
        except ImportError as exc:
            raise TrainerConfigError("task 'gym' needs reasoning-gym: run `make setup`") from exc
        self.dataset, self.config = str(dataset), parse_config(config)
        if style not in STYLES:
            raise ValueError(f"gym style={style!r}: choose one of {sorted(STYLES)}")
        self.eval_fraction, self.math_verify, self.style = float(eval_fraction), bool(math_verify), style
        fields = {k: v for k, v in self.config.items() if k not in ("seed", "size")}
        self._fields = fields
        try:
            self._gym = reasoning_gym.create_dataset(self.dataset, seed=0, size=1, **fields)
        except (ValueError, TypeError, AssertionError) as exc:
            raise ValueError(f"reasoning-gym dataset '{dataset}' with config {fields}: {exc}") from exc
        self._procedural = _indexes_freely(self._gym)

    def params(self) -> dict:
        return {"dataset": self.dataset, "config": self.config, "math_verify": self.math_verify}

    def _generate(self, rng: random.Random):
        if self._procedural:  # item i comes from Random(seed + i): one dataset object serves every index
            entry = self._gym[rng.getrandbits(48)]
        else:  # a dataset that precomputes `size` items: build a one-item dataset per problem
            import reasoning_gym

            entry = reasoning_gym.create_dataset(self.dataset, seed=rng.getrandbits(48), size=1, **self._fields)[0]
        entry = json.loads(json.dumps(entry, default=str))  # JSON-clean: a Sample round-trips exactly
        return entry["question"], str(entry["answer"]), {"entry": entry}

    def instruction(self, sample) -> str:
        return f"{sample.question}\n\n{STYLES[self.style]}"

    def gym_score(self, completion: str, sample) -> float:
        """reasoning-gym's score of the completion's final answer (0 for junk; never raises)."""
        answer = final_answer(completion)
        if answer is None:
            return 0.0
        try:
            return float(self._gym.score_answer(answer, sample.data["entry"]))
        except Exception:  # noqa: BLE001 - a scorer must never crash training on a junk answer
            return 0.0

    def verify(self, completion: str, sample) -> bool:
        if self.gym_score(completion, sample) >= 1.0:
            return True
        return self.math_verify and _math_equal(sample.answer, final_answer(completion))

    def format_ok(self, completion: str) -> bool:
        """style answer: one answer line (or a tagged answer); style reasoning: ends with "Answer: ..."."""
        if not isinstance(completion, str) or final_answer(completion) is None:
            return False
        lines = completion[:MAX_COMPLETION_CHARS].strip().splitlines()
        if self.style == "reasoning":
            return bool(ANSWER_LINE_RE.match(lines[-1].strip()))
        return bool(TAG_RE.search(completion)) or len(lines) == 1

    def teacher_trace(self, sample) -> str:
        """The answer in the requested format (reasoning-gym has no reasoning traces: no CoT teacher)."""
        return sample.answer if self.style == "answer" else f"Answer: {sample.answer}"


def _indexes_freely(dataset) -> bool:
    """True when the dataset generates any index on the fly (not only indices below its size)."""
    try:
        dataset[2**40]
        return True
    except (IndexError, KeyError):
        return False


def _math_equal(gold: str, answer: str | None) -> bool:
    if not answer:
        return False
    try:
        from math_verify import parse, verify

        return bool(verify(parse(gold), parse(answer)))
    except Exception:  # noqa: BLE001
        return False
