"""Countdown: combine the given numbers with + - * / to reach a target.

    task = CountdownTask(count=3, max_number=10)
    s = task.sample(seed=0, index=0)          # question e.g. "Use 3 7 5 to make 26"
    task.teacher_trace(s)                     # '<t>3*7=21\n21+5=26\n</t><a>3*7+5</a>'

Targets are built from a random left-to-right combination of all numbers, so every problem is
solvable. `verify` parses the answer expression with `ast` (only integers, + - * / and
parentheses), requires each given number to be used at most once, and evaluates it exactly with
`Fraction`; anything else (junk, division by zero, unknown numbers) is simply wrong.

`step_credit` (the `steps` reward) checks the trace itself, line by line: `a op b = c` must use
numbers still available (the given ones, then earlier results, each once) and be exact arithmetic.
The credit is the run of right lines from the top over max(expected lines, written lines). A student
that writes the target as its last line without computing it (`4*3=24` then `24+8=96`) gets 0; one
that computes `4*3=12` and then misses gets half. The answer's correctness is `verify`'s alone.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from fractions import Fraction

from trainer.tasks.base import Task, extract_answer, split_reasoning

OPERATORS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
SYMBOLS = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult}
MAX_EXPRESSION_CHARS = 100
STEP_RE = re.compile(r"(-?\d{1,18})([-+*/])(-?\d{1,18})=(-?\d{1,36})")


def evaluate_expression(text: str) -> tuple[Fraction, list[int]] | None:
    """(exact value, integer literals used) of an arithmetic expression, or None if it is not one."""
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    used: list[int] = []
    try:
        return _evaluate(tree.body, used), used
    except (ZeroDivisionError, ValueError, RecursionError):
        return None


def _evaluate(node, used: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_evaluate(node.left, used), _evaluate(node.right, used))
    raise ValueError("not an arithmetic expression over non-negative integers")


class CountdownTask(Task):
    """`count` numbers in [1, max_number]; the target is a positive integer reachable from them."""

    name = "countdown"

    def __init__(self, count: int = 3, max_number: int = 10, eval_fraction: float = 0.1):
        if count < 2 or max_number < 2:
            raise ValueError(f"countdown needs count >= 2 and max_number >= 2, got {count}, {max_number}")
        self.count, self.max_number, self.eval_fraction = int(count), int(max_number), float(eval_fraction)

    def params(self) -> dict:
        return {"count": self.count, "max_number": self.max_number}

    def _generate(self, rng: random.Random):
        while True:
            numbers = [rng.randint(1, self.max_number) for _ in range(self.count)]
            ops = [rng.choice("+-*") for _ in range(self.count - 1)]
            value, steps, expression = numbers[0], [], str(numbers[0])
            for op, number in zip(ops, numbers[1:], strict=True):
                new = OPERATORS[SYMBOLS[op]](value, number)
                steps.append(f"{value}{op}{number}={new}")
                needs_parens = op == "*" and any(symbol in expression for symbol in "+-")
                expression = f"({expression}){op}{number}" if needs_parens else f"{expression}{op}{number}"
                value = new
            if value > 0:
                question = "Use " + " ".join(map(str, numbers)) + f" to make {value}"
                return question, str(value), {"numbers": numbers, "steps": steps, "expression": expression}

    def teacher_trace(self, sample) -> str:
        body = "".join(step + "\n" for step in sample.data["steps"])
        return f"<t>{body}</t><a>{sample.data['expression']}</a>"

    def verify(self, completion: str, sample) -> bool:
        answer = extract_answer(completion) if isinstance(completion, str) else None
        result = evaluate_expression(answer) if answer else None
        if result is None:
            return False
        value, used = result
        return value == int(sample.answer) and not (Counter(used) - Counter(sample.data["numbers"]))

    def step_credit(self, completion: str, sample) -> float:
        parts = split_reasoning(completion) if isinstance(completion, str) else None
        if parts is None:
            return 0.0
        written = [line.strip() for line in parts[0].split("\n") if line.strip()]
        available, hits = Counter(sample.data["numbers"]), 0
        for line in written:
            match = STEP_RE.fullmatch(line)
            if match is None:
                break
            a, op, b, c = int(match[1]), match[2], int(match[3]), int(match[4])
            if Counter((a, b)) - available or (op == "/" and (b == 0 or a % b)):
                break
            if OPERATORS[SYMBOLS.get(op, ast.Div)](Fraction(a), Fraction(b)) != c:
                break
            available -= Counter((a, b))
            available[c] += 1
            hits += 1
        return hits / max(self.count - 1, len(written))
