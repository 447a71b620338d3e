"""Reasoning tasks and their registry.

    from trainer.tasks import get_task, TASKS
    task = get_task("arithmetic", digits=3)
    task = get_task("countdown", count=3, max_number=10)
    task = get_task("gsm8k", path="data/train.jsonl")
    task = get_task("gym", dataset="chain_sum", config="min_terms=2,max_terms=2")   # any reasoning-gym dataset

`get_task` raises `UnknownTaskError` (a ValueError) naming the known tasks for an unknown name,
and `TrainerConfigError` for parameters the task does not take.
"""

from __future__ import annotations

import inspect

from trainer.errors import TrainerConfigError, UnknownTaskError
from trainer.tasks.arithmetic import ArithmeticTask
from trainer.tasks.base import Sample, Task, extract_answer, split_reasoning
from trainer.tasks.countdown import CountdownTask
from trainer.tasks.gsm8k import GSM8KTask
from trainer.tasks.gym import GymTask

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (ArithmeticTask, CountdownTask, GSM8KTask, GymTask)}

__all__ = [
    "TASKS",
    "Task",
    "Sample",
    "get_task",
    "extract_answer",
    "split_reasoning",
    "ArithmeticTask",
    "CountdownTask",
    "GSM8KTask",
    "GymTask",
]


def get_task(name: str, **params) -> Task:
    """The task registered as `name`, constructed with `params`."""
    if name not in TASKS:
        raise UnknownTaskError(f"unknown task '{name}': choose one of {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(params) - accepted
    if unknown:
        raise TrainerConfigError(f"task '{name}' has no parameter(s) {sorted(unknown)}: it accepts {sorted(accepted)}")
    try:
        return cls(**params)
    except ValueError as exc:
        raise TrainerConfigError(str(exc)) from exc


def parse_task_params(text: str | list[str] | None) -> dict:
    """Parse "digits=3,terms=2" (or ["digits=3", "terms=2"]) into {"digits": 3, "terms": 2}; numbers become numbers."""
    items = text.split(",") if isinstance(text, str) else list(text or [])
    params = {}
    for item in filter(None, (i.strip() for i in items)):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainerConfigError(f"task parameter '{item}' is not key=value: write e.g. digits=3")
        params[key.strip()] = _number_or_text(value.strip())
    return params


def _number_or_text(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
