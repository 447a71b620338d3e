"""GSM8K-format word problems loaded through `datasets` (for users who have the data).

    task = GSM8KTask(path="data/gsm8k_train.jsonl", eval_path="data/gsm8k_test.jsonl")
    task = GSM8KTask(path="openai/gsm8k")          # a hub id (config "main"); needs the hub or its cache

Records have `question` and `answer`, where `answer` ends with `#### <number>` (GSM8K's format).
Local `.json`/`.jsonl`/`.parquet` files are accepted; in a JSON-lines file a broken line raises one
`DatasetFormatError` naming the file and line. Without `eval_path`, questions are split by a hash
of their text (`eval_fraction` goes to eval), so train and eval never share a question.
`sample(seed, index)` picks row `(index + offset(seed)) mod n` of the split, so consecutive
indices walk a seed-dependent rotation of the rows without repeats within one pass.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

from trainer.errors import DatasetFormatError
from trainer.tasks.base import Sample, Task, extract_answer, split_of, stable_hash

FINAL_RE = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
CALCULATOR_RE = re.compile(r"<<[^>]*>>")
NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def parse_number(text: str) -> Fraction | None:
    """A GSM8K-style number ("1,234", "-5", "3.50", "$12") as an exact Fraction, or None."""
    cleaned = text.strip().replace(",", "").lstrip("$").rstrip(".") if isinstance(text, str) else ""
    return Fraction(cleaned) if NUMBER_RE.fullmatch(cleaned) else None


def check_jsonl(path: Path) -> None:
    """Raise `DatasetFormatError` at the first line that is not a JSON object with question+answer."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(
                    f"{path}:{number}: not valid JSON ({exc.msg}): fix or delete that line"
                ) from None
            if not isinstance(record, dict) or not {"question", "answer"} <= record.keys():
                raise DatasetFormatError(
                    f"{path}:{number}: a record needs string fields 'question' and 'answer' (GSM8K format)"
                )


def load_records(source: str, split: str = "train") -> list[dict]:
    """Rows {question, answer} from a local json/jsonl/parquet file or a hub dataset id."""
    path = Path(source)
    if path.suffix in {".jsonl", ".json", ".parquet"} or path.exists():
        return _load_local(path)
    import datasets

    try:
        table = datasets.load_dataset(source, "main", split=split)
    except Exception as exc:  # datasets raises many types for "not found / offline"
        raise DatasetFormatError(
            f"dataset '{source}' not found locally and the hub is unreachable: pass a local .jsonl/.parquet path"
        ) from exc
    return [{"question": r["question"], "answer": r["answer"]} for r in table]


def _load_local(path: Path) -> list[dict]:
    import datasets

    if not path.exists():
        raise DatasetFormatError(f"dataset file {path} does not exist: check the path")
    if path.suffix == ".jsonl" or path.suffix == ".json" and not path.read_text()[:1].lstrip().startswith("["):
        check_jsonl(path)
    builder = "parquet" if path.suffix == ".parquet" else "json"
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:
        raise DatasetFormatError(
            f"{path}: cannot be read as {builder} ({type(exc).__name__}): check the file"
        ) from exc
    missing = {"question", "answer"} - set(table.column_names)
    if missing:
        raise DatasetFormatError(f"{path}: missing column(s) {sorted(missing)}: GSM8K records need question+answer")
    return [{"question": str(r["question"]), "answer": str(r["answer"])} for r in table]


class GSM8KTask(Task):
    """Word problems with numeric answers; the teacher trace is the reference solution."""

    name = "gsm8k"

    def __init__(self, path: str = "openai/gsm8k", eval_path: str | None = None, eval_fraction: float = 0.1):
        self.path, self.eval_path, self.eval_fraction = str(path), eval_path, float(eval_fraction)
        self._rows: dict[str, list[dict]] | None = None

    def params(self) -> dict:
        return {"path": self.path, "eval_path": self.eval_path}

    def rows(self, split: str) -> list[dict]:
        """The records of `split`, loaded once."""
        if self._rows is None:
            self._rows = self._split_rows()
        if not self._rows[split]:
            raise DatasetFormatError(f"{self.path}: no usable '{split}' records (check the file and eval_fraction)")
        return self._rows[split]

    def _split_rows(self) -> dict[str, list[dict]]:
        train = [r for r in load_records(self.path, "train") if FINAL_RE.search(r["answer"])]
        if self.eval_path:
            evals = [r for r in load_records(self.eval_path, "test") if FINAL_RE.search(r["answer"])]
            return {"train": train, "eval": evals}
        by_split = {"train": [], "eval": []}
        for row in train:
            by_split[split_of(self.key, row["question"], self.eval_fraction)].append(row)
        return by_split

    def sample(self, seed: int, index: int, split: str = "train") -> Sample:
        rows = self.rows(split)
        row = rows[(index + stable_hash(self.key, split, seed)) % len(rows)]
        solution, final = FINAL_RE.split(row["answer"], maxsplit=1)[:2]
        data = {"solution": CALCULATOR_RE.sub("", solution).strip()}
        return Sample(self.name, split, int(seed), int(index), row["question"].strip(), final.strip(), data)

    def _generate(self, rng):
        raise TypeError("GSM8K problems come from data rows, not a generator: call sample(seed, index, split)")

    def teacher_trace(self, sample: Sample) -> str:
        return f"<t>{sample.data['solution']}</t><a>{sample.answer}</a>"

    def verify(self, completion: str, sample: Sample) -> bool:
        answer = extract_answer(completion) if isinstance(completion, str) else None
        got, want = (parse_number(answer) if answer else None), parse_number(sample.answer)
        return got is not None and got == want
