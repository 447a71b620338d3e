"""Multi-digit addition with a column-by-column chain of thought.

    task = ArithmeticTask(digits=3)          # operands of exactly 3 digits
    s = task.sample(seed=0, index=7)         # e.g. question "Q:472+389"
    task.teacher_trace(s)
    # '<t>2+9+0=11|1\n7+8+1=16|61\n4+3+1=8|861\n</t><a>861</a>'

Each reasoning line adds one column (ones first): `x+y+carry=sum|partial`, where `partial` is the
answer's digits so far; a final carry gets its own line `c1|partial`. `step_credit` is the fraction
of lines that match the canonical ones in position (partial credit for a GRPO reward).
`flawed_trace` is a teacher with a systematic bug (it forgets the final carry), used to warm-start
a student that RL with the verifier must then correct.
"""

from __future__ import annotations

import random
import re

from trainer.tasks.base import Sample, Task, extract_answer, split_reasoning

INT_RE = re.compile(r"-?\d{1,64}")


class ArithmeticTask(Task):
    """Add `terms` numbers of exactly `digits` digits each (the problem space: 9*10**(digits-1) per operand)."""

    name = "arithmetic"

    def __init__(self, digits: int = 2, terms: int = 2, eval_fraction: float = 0.1):
        if digits < 1 or terms < 2:
            raise ValueError(f"arithmetic needs digits >= 1 and terms >= 2, got digits={digits}, terms={terms}")
        self.digits, self.terms, self.eval_fraction = int(digits), int(terms), float(eval_fraction)

    def params(self) -> dict:
        return {"digits": self.digits, "terms": self.terms}

    def _generate(self, rng: random.Random):
        low, high = 10 ** (self.digits - 1), 10**self.digits - 1
        operands = [rng.randint(low, high) for _ in range(self.terms)]
        question = "Q:" + "+".join(map(str, operands))
        return question, str(sum(operands)), {"operands": operands}

    def reasoning_lines(self, sample: Sample) -> list[str]:
        """The canonical column-addition steps for `sample`."""
        operands, lines, carry, partial = sample.data["operands"], [], 0, ""
        for column in range(max(len(str(x)) for x in operands)):
            column_digits = [x // 10**column % 10 for x in operands]
            total = sum(column_digits) + carry
            partial = str(total % 10) + partial
            lines.append("+".join(map(str, column_digits)) + f"+{carry}={total}|{partial}")
            carry = total // 10
        if carry:
            partial = str(carry) + partial
            lines.append(f"c{carry}|{partial}")
        return lines

    def teacher_trace(self, sample: Sample) -> str:
        body = "".join(line + "\n" for line in self.reasoning_lines(sample))
        return f"<t>{body}</t><a>{sample.answer}</a>"

    def flawed_trace(self, sample: Sample) -> str | None:
        """The trace of a teacher that forgets the final carry (None when the sum has no final carry)."""
        lines = self.reasoning_lines(sample)
        if not lines[-1].startswith("c"):
            return None
        body = "".join(line + "\n" for line in lines[:-1])
        return f"<t>{body}</t><a>{lines[-2].split('|')[1]}</a>"

    def verify(self, completion: str, sample: Sample) -> bool:
        answer = extract_answer(completion) if isinstance(completion, str) else None
        return answer is not None and INT_RE.fullmatch(answer) is not None and int(answer) == int(sample.answer)

    def step_credit(self, completion: str, sample: Sample) -> float:
        parts = split_reasoning(completion) if isinstance(completion, str) else None
        if parts is None:
            return 0.0
        expected, written = self.reasoning_lines(sample), parts[0].strip().split("\n")
        hits = sum(1 for want, got in zip(expected, written, strict=False) if want == got.strip())
        return hits / max(len(expected), len(written))
