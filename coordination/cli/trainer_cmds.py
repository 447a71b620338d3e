"""CLI commands of the single-peer trainer: synthetic data, evaluation, the tiny model, the pipeline.

    hivetune tiny-model --out outputs/tiny
    hivetune base-model smollm2-135m-instruct        # convert/cache the built-in base, print its dir and CID
    hivetune data generate --task arithmetic --param digits=2 --n 1000 --seed 0 --out traces.jsonl
    hivetune eval --model outputs/warm --adapter outputs/adapter --task arithmetic --n 200 --seed 0 --out outputs/eval
    hivetune train --config recipes/configs/single_peer_arith_tiny.yaml --seed 1

Trainer errors (ValueError subclasses of trainer/errors.py) become `ConfigError`, which the app
prints as one line with exit code 2. Heavy imports stay inside the command functions.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from coordination.cli.options import JsonOption, emit
from coordination.errors import ConfigError

data_app = typer.Typer(
    help="Generate synthetic reasoning data (teacher chain-of-thought traces).", no_args_is_help=True
)

TaskOption = Annotated[str, typer.Option("--task", help="Task name: arithmetic, countdown, gsm8k, gym.")]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", help="Task parameter key=value (repeatable), e.g. --param digits=3.")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed: record/sample i is (seed, i).")]


@contextmanager
def trainer_errors():
    """Turn the trainer's ValueErrors (bad task, config, model path, dataset) into one-line ConfigErrors."""
    from trainer.errors import TrainerConfigError

    try:
        yield
    except TrainerConfigError as exc:
        raise ConfigError(str(exc)) from None


def _task(name: str, params: list[str] | None):
    from trainer.tasks import get_task, parse_task_params

    return get_task(name, **parse_task_params(params))


def generate(
    out: Annotated[Path, typer.Option("--out", help="Output JSON-lines file.")],
    task: TaskOption = "arithmetic",
    n: Annotated[int, typer.Option("--n", min=1, help="Number of records.")] = 1000,
    seed: SeedOption = 0,
    split: Annotated[str, typer.Option("--split", help="train or eval (disjoint by construction).")] = "train",
    param: ParamOption = None,
) -> None:
    """Write N teacher traces as JSON lines: prompt, completion, answer, problem, seed, index."""
    with trainer_errors():
        from trainer.sft import teacher_records

        chosen = _task(task, param)
        records = teacher_records(chosen, seed=seed, n=n, split=split)  # a bad split fails before any file exists
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w") as sink:
            for record in records:
                sink.write(json.dumps(record) + "\n")
    typer.echo(f"wrote {n} {chosen.name} {split} records to {out}")


def eval_(
    model: Annotated[str, typer.Option("--model", help="Model directory or hub id (or `tiny`).")],
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="A PEFT adapter dir, or a checkpoint CID from the store.")
    ] = None,
    task: TaskOption = "arithmetic",
    n: Annotated[int, typer.Option("--n", min=1, help="Held-out samples.")] = 200,
    seed: SeedOption = 0,
    out: Annotated[Path, typer.Option("--out", help="Directory for eval.json and eval.png.")] = Path("outputs/eval"),
    param: ParamOption = None,
    as_json: JsonOption = False,
    max_new_tokens: Annotated[
        int | None, typer.Option("--max-new-tokens", help="Generation budget in tokens (default: the task's).")
    ] = None,
) -> None:
    """Greedy pass@1 of a model (optionally with an adapter) on a held-out seeded set; writes JSON + PNG."""
    with trainer_errors():
        from trainer.eval import evaluate, write_report
        from trainer.models import load_base_with_adapter

        chosen = _task(task, param)
        chosen.sample(seed, 0, "eval")  # fail on a bad dataset before loading any model
        if adapter is not None:
            from coordination.checkpoints import CheckpointStore, resolve_adapter

            adapter = resolve_adapter(adapter, CheckpointStore())  # a PEFT dir, or a CID from the local store
        net, tokenizer = load_base_with_adapter(model, adapter)
        result = evaluate(net, tokenizer, chosen, n=n, seed=seed, max_new_tokens=max_new_tokens)
        label = f"{Path(model).name}+{adapter.name}" if adapter else Path(model).name
        path = write_report({label: result}, out)
    emit(
        as_json,
        result,
        f"{label}: pass@1 {result['accuracy']:.3f} (format {result['format_rate']:.3f}) on {n} "
        f"held-out {chosen.name} samples, seed {seed} -> {path}",
    )


def tiny_model(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model to.")] = Path("outputs/tiny-model"),
    seed: Annotated[int, typer.Option("--seed", help="Initialisation seed.")] = 0,
) -> None:
    """Write the built-in tiny model (Llama-style, character tokenizer) as a hub-style directory."""
    from trainer.models import create_tiny_model

    path = create_tiny_model(out, seed=seed)
    typer.echo(f"wrote tiny model (seed {seed}) to {path}")


def base_model(
    base: Annotated[str, typer.Argument(help="A built-in base (smollm2-135m-instruct), `tiny`, a path or a hub id.")],
    revision: Annotated[str | None, typer.Option("--revision", help="Revision the spec pins.")] = None,
    expected_cid: Annotated[str | None, typer.Option("--cid", help="Refuse the base unless it has this CID.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Locate (converting a built-in once) a base model and print its directory and content address (CID)."""
    with trainer_errors():
        from trainer.base_models import base_dir_cid, verify_base_model

        path = verify_base_model(base, expected_cid=expected_cid, revision=revision)
        cid = base_dir_cid(path)
    emit(as_json, {"base": base, "path": str(path), "cid": cid}, f"{base}: {path}\nbase_cid: {cid}")


def train(
    config: Annotated[Path, typer.Option("--config", help="A single-peer pipeline config (YAML).")] = Path(
        "recipes/configs/single_peer_arith_tiny.yaml"
    ),
    seed: Annotated[int | None, typer.Option("--seed", help="Override the config's seed.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Override the config's output directory.")] = None,
) -> None:
    """Run the single-peer pipeline: SFT warm start -> eval -> GRPO + LoRA -> eval, with a summary."""
    with trainer_errors():
        from trainer.pipeline import load_pipeline_config, print_summary, run_single_peer

        settings = load_pipeline_config(config, seed=seed, output_dir=out)
        print_summary(run_single_peer(settings))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `hivetune` app."""
    data_app.command("generate")(generate)
    app.add_typer(data_app, name="data")
    app.command("eval")(eval_)
    app.command("tiny-model")(tiny_model)
    app.command("base-model")(base_model)
    app.command("train")(train)
