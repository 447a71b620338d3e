"""Supervised warm start on synthetic chain-of-thought traces (TRL `SFTTrainer`).

    from trainer.sft import ensure_warm_start
    path = ensure_warm_start("arithmetic", "outputs/warm/arith", task_params={"digits": 2}, max_steps=600)
    # trains once (full fine-tune of the base, default the tiny model), then returns the cached dir

The programmatic teacher (`task.teacher_trace`) writes `<t>reasoning</t><a>answer</a>` for
training-split samples; the model learns the format and some skill before RL. The dataset is in
TRL's prompt-completion form, so the loss covers completion tokens only and TRL appends EOS.
Prompts are rendered with `trainer.prompts.render_prompt` (chat template for instruct models).

The tiny model is fully fine-tuned (lr ~3e-3). Any other model gets LoRA SFT (`lora_r`, lr ~5e-4)
on the training device (CUDA when present, bf16 there), merged into the base before saving, so the
warm start is again a plain model directory.
Recipe: `python recipes/sft_warmstart.py --config recipes/configs/sft_arith_tiny.yaml`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from trainer.config import TEACHER_DATA_SEED, WarmStartSection
from trainer.errors import TrainerConfigError
from trainer.tasks import Task, get_task
from trainer.tasks.base import stable_hash

MARKER = "hivetune_warm_start.json"
WARM_START_FIELDS = {f.name for f in dataclasses.fields(WarmStartSection)}


def sft_dataset(task: Task, *, seed: int, n: int, teacher_flaw_rate: float = 0.0, tokenizer=None):
    """`n` training-split samples as a prompt-completion `datasets.Dataset` of teacher traces.

    With `teacher_flaw_rate` > 0 that fraction of the samples that admit the task's systematic mistake
    (`task.flawed_trace`) get the flawed trace instead: a deterministic, imperfect teacher.
    """
    from datasets import Dataset

    from trainer.prompts import render_prompt

    samples = [task.sample(seed, i, split="train") for i in range(n)]
    return Dataset.from_dict(
        {
            "prompt": [render_prompt(task, s, tokenizer) for s in samples],
            "completion": [teacher_completion(task, s, teacher_flaw_rate) for s in samples],
        }
    )


def teacher_completion(task: Task, sample, flaw_rate: float) -> str:
    """The teacher's trace for `sample`: flawed with probability `flaw_rate` (decided by a hash of the sample)."""
    flawed = task.flawed_trace(sample) if flaw_rate > 0 else None
    if flawed is not None and stable_hash("flaw", sample.to_json()) < flaw_rate * 2**64:
        return flawed
    return task.teacher_trace(sample)


def teacher_records(task: Task, *, seed: int, n: int, split: str = "train"):
    """`n` teacher traces of `split` as JSON-ready records (`hivetune data generate`): sample i is (seed, i)."""
    if split not in ("train", "eval"):
        raise TrainerConfigError(f"--split {split!r} is not a split: use train or eval")
    from trainer.prompts import prompt_row

    samples = (task.sample(seed, i, split) for i in range(n))
    return ({**prompt_row(task, s), "completion": task.teacher_trace(s)} for s in samples)  # the raw prompt


def sft_config(
    out_dir: str | Path,
    *,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    max_length: int = 256,
    report_to: str | list[str] = "none",
    **overrides,
):
    """The `SFTConfig` of a warm start (cosine schedule, short warmup, no intermediate checkpoints)."""
    import torch
    from trl import SFTConfig

    on_cuda = torch.cuda.is_available()
    fields = dict(
        output_dir=str(out_dir),
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=min(50, max_steps // 10),
        seed=seed,
        max_length=max_length,
        logging_steps=max(1, max_steps // 20),
        save_strategy="no",
        report_to=report_to,
        use_cpu=not on_cuda,
        bf16=on_cuda,  # TRL defaults to bf16 autocast even on CPU: only on CUDA
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    return SFTConfig(**{**fields, **overrides})


def train_sft(
    model,
    tokenizer,
    task: Task,
    args,
    *,
    data_seed: int,
    n_samples: int,
    teacher_flaw_rate=0.0,
    callbacks=None,
    peft_config=None,
):
    """Run `SFTTrainer` on teacher traces; returns the trainer (its model is trained in place).

    With `peft_config` the SFT trains a LoRA adapter (the trainer's model is then a PeftModel).
    """
    from trl import SFTTrainer

    dataset = sft_dataset(task, seed=data_seed, n=n_samples, teacher_flaw_rate=teacher_flaw_rate, tokenizer=tokenizer)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=peft_config,
    )
    trainer.train()
    return trainer


def ensure_warm_start(
    task_name: str,
    out_dir: str | Path,
    *,
    task_params: dict | None = None,
    model: str = "tiny",
    seed: int = 0,
    data_seed: int = TEACHER_DATA_SEED,
    section: WarmStartSection | None = None,
    **cfg,
) -> Path:
    """A warm-started model dir for `task_name` at `out_dir`: trained on first call, reused when the config matches.

    The settings are `section` (`trainer.config.WarmStartSection`: its defaults are the only ones), with
    any of its fields also accepted as keyword arguments (max_steps=60 runs in seconds); anything else
    goes to `SFTConfig`. The tiny model is fully fine-tuned; a real model gets LoRA SFT (`lora_r`), by
    default at `LORA_WARM_START_LR`.
    """
    from trainer.models import is_tiny_model, library_versions, load_model_and_tokenizer, load_tokenizer

    out = Path(out_dir)
    given = {k: cfg.pop(k) for k in list(cfg) if k in WARM_START_FIELDS}
    section = dataclasses.replace(section or WarmStartSection(), **given)
    tiny = is_tiny_model(load_tokenizer(model))
    settings = {
        "model": model,
        "max_steps": section.max_steps,
        "batch_size": section.batch_size,
        "learning_rate": section.learning_rate_for(tiny=tiny),
        "seed": seed,
        "n_samples": section.n_samples,
        "data_seed": data_seed,
        "teacher_flaw_rate": section.teacher_flaw_rate,
        **({} if tiny else {"lora_r": section.lora_r}),  # part of the cached settings (not an SFTConfig field)
        **cfg,
        "task": task_name,
        "task_params": task_params or {},
        "versions": library_versions(),  # other releases train other weights from the same seed: rebuild
    }
    if (out / MARKER).exists() and json.loads((out / MARKER).read_text()) == settings:
        return out
    task = get_task(task_name, **(task_params or {}))
    model, tokenizer = load_model_and_tokenizer(settings["model"])
    work = out.with_name(out.name + ".partial")
    args = sft_config(
        work,
        max_steps=settings["max_steps"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        seed=settings["seed"],
        **cfg,  # what is left: SFTConfig fields
    )
    peft_config = None if tiny else sft_lora_config(section.lora_r)
    trainer = train_sft(
        model,
        tokenizer,
        task,
        args,
        data_seed=settings["data_seed"],
        n_samples=section.traces(),
        teacher_flaw_rate=settings["teacher_flaw_rate"],
        peft_config=peft_config,
    )
    if trainer.accelerator.is_main_process:
        trained = trainer.model.merge_and_unload() if peft_config is not None else trainer.model
        _save_atomically(trained, tokenizer, work, out, settings)
    trainer.accelerator.wait_for_everyone()  # other ranks load `out` next
    return out


def sft_lora_config(r: int):
    """The LoRA of a real model's warm start: every linear layer, alpha = 2r."""
    from trainer.config import LoraSection

    return LoraSection(r=r, alpha=2 * r, target_modules="all-linear").peft_config()


def _save_atomically(model, tokenizer, work: Path, out: Path, settings: dict) -> None:
    from trainer.models import drop_writer_metadata

    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    drop_writer_metadata(work)
    (work / MARKER).write_text(json.dumps(settings))
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
