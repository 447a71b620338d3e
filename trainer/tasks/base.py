"""The Task interface: seeded generators, a prompt format, strict verifiers, teacher traces.

A task turns `(seed, index, split)` into a `Sample` (reproducible by any peer, for any int index,
including indices up to 2**48), formats its prompt, verifies a completion strictly, and writes a
synthetic chain-of-thought "teacher" trace in the completion format

    <t>...reasoning...</t><a>final answer</a>

Train and eval are disjoint *by construction*: every problem has a canonical key, and a hash of
that key assigns it to exactly one split (`eval_fraction` of the problem space is eval-only). The
sampler rejects problems of the other split, so no eval problem can ever be drawn for training.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

SPLITS = ("train", "eval")
ANSWER_RE = re.compile(r"<a>(.*?)</a>", re.DOTALL)
FORMAT_RE = re.compile(r"\s*<t>(.*?)</t>\s*<a>(.*?)</a>\s*", re.DOTALL)
MAX_COMPLETION_CHARS = 4096  # verifiers look at no more than this (junk can be arbitrarily long)


@dataclass(frozen=True)
class Sample:
    """One problem: its question text, canonical answer, and task-specific fields in `data`."""

    task: str
    split: str
    seed: int
    index: int
    question: str
    answer: str
    data: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), suitable as a dataset column and for hashing."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Sample:
        return cls(**json.loads(text))


def stable_hash(*parts) -> int:
    """A 64-bit integer hash of `parts`, the same on every machine and Python version."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def split_of(task_key: str, problem_key: str, eval_fraction: float) -> str:
    """The split a problem belongs to, decided by a hash of its canonical key."""
    return "eval" if stable_hash("partition", task_key, problem_key) < eval_fraction * 2**64 else "train"


def extract_answer(completion: str) -> str | None:
    """The text inside the first `<a>...</a>`, or None."""
    match = ANSWER_RE.search(completion[:MAX_COMPLETION_CHARS])
    return match.group(1).strip() if match else None


def split_reasoning(completion: str) -> tuple[str, str] | None:
    """(reasoning, answer) when the completion is exactly `<t>..</t><a>..</a>` (whitespace aside), else None."""
    match = FORMAT_RE.fullmatch(completion[:MAX_COMPLETION_CHARS])
    return (match.group(1), match.group(2).strip()) if match else None


class Task(ABC):
    """A reasoning task with verifiable answers. Subclasses implement `_generate`, `verify`, `teacher_trace`."""

    name: str = "task"
    eval_fraction: float = 0.1
    max_attempts: int = 10_000

    def params(self) -> dict:
        """The parameters that define the problem distribution (part of every hash)."""
        return {}

    @property
    def key(self) -> str:
        return f"{self.name}:{json.dumps(self.params(), sort_keys=True)}"

    def sample(self, seed: int, index: int, split: str = "train") -> Sample:
        """The problem at `(seed, index)` of `split`; a pure function of its arguments and the task params."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        for attempt in range(self.max_attempts):
            rng = random.Random(stable_hash(self.key, split, seed, index, attempt))
            question, answer, data = self._generate(rng)
            if split_of(self.key, question, self.eval_fraction) == split:
                return Sample(self.name, split, int(seed), int(index), question, answer, data)
        raise RuntimeError(f"{self.name}: no {split} problem after {self.max_attempts} attempts")

    @abstractmethod
    def _generate(self, rng: random.Random) -> tuple[str, str, dict]:
        """Draw one candidate problem: (question, canonical answer, data)."""

    def prompt(self, sample: Sample) -> str:
        """The text the model is conditioned on; the completion starts with `<t>`."""
        return f"{sample.question}\n"

    def instruction(self, sample: Sample) -> str:
        """The user message an instruct model gets (see trainer.prompts.render_prompt): question + answer format."""
        return (
            f"{sample.question.removeprefix('Q:')}\n\nThink step by step inside <t></t>, then give only the final "
            "answer inside <a></a>, e.g. <t>...</t><a>42</a>."
        )

    def format_ok(self, completion: str) -> bool:
        """True iff the completion has this task's answer format (the `format` reward)."""
        return isinstance(completion, str) and split_reasoning(completion) is not None

    @abstractmethod
    def verify(self, completion: str, sample: Sample) -> bool:
        """True iff the completion's final answer is correct. Never raises on any string."""

    @abstractmethod
    def teacher_trace(self, sample: Sample) -> str:
        """A correct completion with visible reasoning: `<t>...</t><a>answer</a>`."""

    def flawed_trace(self, sample: Sample) -> str | None:
        """A trace with this task's typical systematic mistake (a flawed teacher), or None if it has none."""
        return None

    def step_credit(self, completion: str, sample: Sample) -> float:
        """Partial credit in [0, 1] for correct intermediate steps (0 when the task has none)."""
        return 0.0

    def max_completion_chars(self) -> int:
        """An upper bound on a good completion's length in characters (for generation budgets)."""
        probe = [self.teacher_trace(self.sample(0, i)) for i in range(64)]
        return max(map(len, probe)) + 8
