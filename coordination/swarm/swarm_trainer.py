"""SwarmGRPOTrainer: TRL's GRPOTrainer whose optimizer step is one epoch of the run.

Every piece of the Trainer's step is made to agree with the swarm's epochs deliberately:

1. **Optimizer** (`create_optimizer`): a ConsensusOptimizer over the LoRA parameters only, built by
   the `optimizer_factory` you pass. One Trainer `optimizer.step()` = one epoch: the peer's whole
   assignment is accumulated, averaged with the group (bit-identical result on every member), and
   the model then holds the epoch's canonical state (coordination.swarm.consensus).
2. **Clipping**: the Trainer clips to `max_grad_norm` *before* `optimizer.step()`, i.e. before the
   gradients reach the averager; the robust aggregator bounds each coordinate by that norm.
3. **Accumulation**: `gradient_accumulation_steps` micro-batches make one epoch's contribution of
   per_device_train_batch_size * gradient_accumulation_steps completions.
4. **LR schedule** (`create_scheduler`): the LR of epoch k is `lr_at(spec, k)`, fixed by the run spec;
   the Trainer's `lr_scheduler.step()` is a no-op view (`EpochLRView`) that reports it for logging.
5. **Logging**: every log line gets `swarm/epoch` and the last round (group size, seconds, bytes
   estimate, whether our contribution entered it). Every epoch adds a row to `epoch_times`
   (coordination.swarm.epoch_timing: wall, generation, backward, the round's phases, utilization).
6. **Stopping**: `max_epochs` epochs of the run (a restarted peer continues, it does not redo epochs; one that
   catches up with a swarm already at `max_epochs` stops without a step).
7. **Assigned prompts** (`assignment`): each GRPO group is rewritten to the next slot of the peer's
   assignment for the current epoch, `assigned_indices(run id, epoch, peer address)`, so anyone can
   recompute which prompts a peer worked on and nobody picks easy ones (ranks of one peer take
   interleaved slots).
8. **Per-epoch hook**: when the epoch advances, `on_epoch_end(record: EpochRecord)` gets the epoch
   number, every rollout of it (prompt seed/index, prompt, completion, rewards), the seeded samples
   (`record.seeded`: slot, generation, prompt and completion token ids exactly as GRPO trained on them,
   their sampling log-probs, the reward), the LoRA state that generated them, the model (already
   updated) and the round's outcome (canonical CIDs, the contribution's CID, whether it entered the round).
9. **Seeded sampling** (`trainer.seeded_grpo.SeededGenerationMixin`): with an assignment, every completion
   is drawn by the verifiable sampler with seed `rollout_seed(run id, epoch, peer address, slot,
   generation)`, so a validator checks it with one forward pass under the epoch's canonical checkpoint.

Multi-process (`accelerate launch --num_processes k` inside one peer): only rank 0 talks to the
swarm. DDP averages gradients across local ranks first; rank 0 contributes them with the peer's
assignment weight; after each epoch rank 0 broadcasts the LoRA parameters to the other ranks
(which hold a zero-LR placeholder optimizer). One peer = one machine = one DHT identity.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from coordination.swarm.consensus_optimizer import ConsensusOptimizer, lora_parameters
from coordination.swarm.epoch_timing import PhaseTimer, epoch_time_row
from trainer.prompts import prompt_row
from trainer.seeded_grpo import SeededGenerationMixin, SeededSample

logger = logging.getLogger(__name__)


@dataclass
class Rollout:
    epoch: int  # epoch of the run during which it was generated (= whose update it contributes to)
    seed: int | None
    index: int | None
    prompt: str
    completion: str
    reward: float  # weighted sum over reward functions, as GRPO used it
    rewards: dict[str, float]  # per reward function name


@dataclass
class EpochRecord:
    epoch: int  # the epoch that just finished
    rollouts: list[Rollout]
    adapter_state: dict[str, torch.Tensor]  # LoRA tensors that generated these rollouts (start of epoch)
    model: torch.nn.Module  # the PEFT model, already updated to epoch + 1
    peer_id: str
    stats: dict = field(default_factory=dict)
    outcome: object = None  # consensus.EpochOutcome of the round that ended this epoch (rank 0)
    seeded: list[SeededSample] = field(default_factory=list)  # the epoch's seeded rollouts, as GRPO trained on them


@dataclass
class Assignment:
    """Which prompts a peer must work on: the run, the peer's address, the task and its seed."""

    run_id: str
    peer: str
    task: object
    task_seed: int
    tokenizer: object = None  # chat-template prompts for instruct bases (trainer.prompts.render_prompt)

    def row(self, epoch: int, slot: int) -> dict:
        """The dataset row of `slot` in `epoch`: `trainer.prompts.prompt_row` (as in `prompt_dataset`) + the slot."""
        from coordination.attest.assignment import assigned_indices

        index = assigned_indices(self.run_id, epoch, self.peer, slot + 1)[slot]
        sample = self.task.sample(self.task_seed, index)
        return {**prompt_row(self.task, sample, self.tokenizer), "slot": slot}

    def seeder(self, epoch_of: Callable[[], int]):
        """`rollout_seeder(row, generation)`: the public seed of the rollout at the row's slot in this epoch."""
        from coordination.attest.seeded_sampling import rollout_seed

        return lambda row, generation: rollout_seed(self.run_id, epoch_of(), self.peer, int(row["slot"]), generation)


class EpochLRView:
    """What the Trainer sees as its LR scheduler: step() does nothing, the LR comes from hivemind's epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer

    def step(self, *args, **kwargs) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def lora_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable (LoRA) tensors by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


class SwarmGRPOTrainer(SeededGenerationMixin, GRPOTrainer):
    """GRPOTrainer + hivemind (see module docstring). Extra keyword arguments:

    :param optimizer_factory: model -> ConsensusOptimizer (called on rank 0 only).
    :param max_epochs: stop after this many epoch of the runs (None: the Trainer's max_steps decides).
    :param on_epoch_end: called with an EpochRecord after every epoch of the run.
    :param on_local_step: called with the trainer after every local step (status line, DHT progress).
    :param assignment: the peer's epoch-aware prompt assignment (None: the dataset's prompts as they come).
    """

    def __init__(
        self,
        *args,
        optimizer_factory: Callable[[torch.nn.Module], ConsensusOptimizer],
        max_epochs: int | None = None,
        on_epoch_end: Callable[[EpochRecord], None] | None = None,
        on_local_step: Callable[[SwarmGRPOTrainer], None] | None = None,
        assignment: Assignment | None = None,
        **kwargs,
    ):
        self.optimizer_factory, self.max_epochs = optimizer_factory, max_epochs
        self.on_epoch_end, self.on_local_step = on_epoch_end, on_local_step
        self.swarm_optimizer: ConsensusOptimizer | None = None
        self._rollouts: list[Rollout] = []
        self._epoch_started_at, self._epoch_adapters = time.time(), {}  # compute epoch -> LoRA it started from
        self.compute_timer, self.epoch_times = PhaseTimer(), []  # epoch_times: epoch_timing.epoch_time_row per epoch
        self.assignment, self._assign_epoch, self._next_slot = assignment, None, 0
        super().__init__(*args, **kwargs)
        if assignment is not None:
            self.rollout_seeder = assignment.seeder(lambda: self.swarm_epoch)
        self._slot_offset, self._slot_stride = self.accelerator.process_index, self.accelerator.num_processes
        self.add_callback(_SwarmEpochCallback(self))

    def train(self, *args, **kwargs):
        """Join the swarm before the first step: a peer that (re)starts when the run already reached
        `max_epochs` adopts the final state and stops without a local step (that step's round would wait
        for peers that are done)."""
        if self.max_epochs is not None:
            self.create_optimizer()  # rank 0: joins the swarm's head epoch (fetches its state)
            if self.swarm_optimizer is not None:  # rank 0, delayed updates: a rejoined peer with no epoch left to
                self.swarm_optimizer.adopt_final_state()  # compute waits for the others' last round, adopts it
            epoch, _ = _broadcast_lora(self)
            if epoch >= self.max_epochs:
                from transformers.trainer_utils import TrainOutput

                logger.info(f"the run is at epoch {epoch} >= max_epochs {self.max_epochs}: nothing left to train")
                return TrainOutput(self.state.global_step, 0.0, {})
        return super().train(*args, **kwargs)

    # 1. optimizer
    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = model if model is not None else self.model
            if self.accelerator.is_main_process:
                self.swarm_optimizer = self.optimizer_factory(model)
                self.swarm_optimizer.stop_at = self.max_epochs  # delayed updates: the last round is waited for
                self.optimizer = self.swarm_optimizer
            else:
                self.optimizer = torch.optim.SGD(lora_parameters(model), lr=0.0)
        return self.optimizer

    # 4. LR schedule
    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            self.lr_scheduler = EpochLRView(optimizer if optimizer is not None else self.optimizer)
        return self.lr_scheduler

    @property
    def swarm_epoch(self) -> int:
        """This peer's epoch of the run (rank 0; other ranks get it broadcast after each step)."""
        return self.swarm_optimizer.local_epoch if self.swarm_optimizer is not None else 0

    @property
    def settled_epoch(self) -> int:
        """The epoch of the last canonical state rank 0 holds: the swarm epoch, or one behind it while a delayed
        round (``averaging.delayed_updates``) is in flight. Epochs below it have their round's outcome."""
        return self.swarm_optimizer.settled_epoch if self.swarm_optimizer is not None else 0

    def rollout_epoch(self) -> int:
        return self.swarm_epoch

    # 7. assigned prompts
    def _generate_and_score_completions(self, inputs):
        with self.compute_timer("generation"):
            if self.assignment is not None:
                inputs = self.assigned_inputs(inputs)
            return super()._generate_and_score_completions(inputs)

    def training_step(self, *args, **kwargs):
        with self.compute_timer("train_step"):  # TRL's step: generation (when due) + loss forward + backward
            return super().training_step(*args, **kwargs)

    def assigned_inputs(self, inputs: list[dict]) -> list[dict]:
        """TRL hands each prompt `num_generations` times in a row: every such group becomes the next slot."""
        epoch = self.swarm_epoch
        if epoch != self._assign_epoch:
            self._assign_epoch, self._next_slot = epoch, 0
        offset, stride = getattr(self, "_slot_offset", 0), getattr(self, "_slot_stride", 1)
        out, previous, row = [], object(), None
        for x in inputs:
            key = (x.get("index"), x.get("prompt"))
            if key != previous:
                row, previous = self.assignment.row(epoch, self._next_slot * stride + offset), key
                self._next_slot += 1
            out.append({**x, **row})
        return out

    # 8. rollouts, recorded where GRPO scores them
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        start = self.accelerator.process_index * len(prompts)
        local = rewards_per_func[start : start + len(prompts)].detach().cpu()
        weights = self.reward_weights.detach().cpu()
        totals = (local * weights.unsqueeze(0)).nansum(dim=1)
        for row, prompt, completion, per_func, total in zip(inputs, prompts, completions, local, totals, strict=True):
            self._rollouts.append(
                Rollout(
                    epoch=self.swarm_epoch,
                    seed=row.get("seed"),
                    index=row.get("index"),
                    prompt=prompt if isinstance(prompt, str) else str(prompt),
                    completion=completion if isinstance(completion, str) else str(completion),
                    reward=float(total),
                    rewards={name: float(v) for name, v in zip(self.reward_func_names, per_func, strict=True)},
                )
            )
        return rewards_per_func

    # 5. logging
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        logs.update(self.swarm_metrics())
        super().log(logs, start_time)

    def swarm_metrics(self) -> dict[str, float]:
        opt = self.swarm_optimizer
        if opt is None:
            return {}
        metrics = {"swarm/epoch": float(opt.local_epoch), "swarm/missed_rounds": float(opt.rejected_parts)}
        if opt.last_round is not None:
            metrics.update(
                {
                    "swarm/peers": float(opt.last_round.group_size),
                    "swarm/round_group_size": float(opt.last_round.group_size),
                    "swarm/round_seconds": float(opt.last_round.seconds),
                    "swarm/round_bytes_sent": float(opt.last_round.bytes_sent_estimate),
                }
            )
        return metrics

    def _end_compute_epoch(self, epoch: int, next_epoch: int) -> None:
        """The compute of `epoch` ended (its optimizer step returned): one `epoch_times` row (rank 0 only); the
        model now holds what `next_epoch` computes on."""
        ended_at = time.time()
        if not self.accelerator.is_main_process:
            self.compute_timer.take()
            return
        self._record_epoch_time(epoch, ended_at)
        self._epoch_started_at = ended_at
        self._epoch_adapters[next_epoch] = lora_state(self.model)

    def _finish_epochs(self, new_epoch: int) -> None:
        """Hand every rollout of epochs < new_epoch to on_epoch_end, one record per epoch (rank 0 only)."""
        if not self.accelerator.is_main_process:
            self._rollouts = []
            self._seeded_done = [s for s in self.__dict__.get("_seeded_done", []) if s.epoch >= new_epoch]
            return
        done = [r for r in self._rollouts if r.epoch < new_epoch]
        self._rollouts = [r for r in self._rollouts if r.epoch >= new_epoch]
        adapters = {e: self._epoch_adapters.pop(e) for e in list(self._epoch_adapters) if e < new_epoch}
        if self.on_epoch_end is not None:
            for epoch in sorted({r.epoch for r in done}) or [new_epoch - 1]:
                self.on_epoch_end(
                    EpochRecord(
                        epoch=epoch,
                        rollouts=[r for r in done if r.epoch == epoch],
                        adapter_state=adapters.get(epoch) or lora_state(self.model),
                        model=self.model,
                        peer_id=str(self.swarm_optimizer.dht.peer_id),
                        stats=self.swarm_metrics(),
                        outcome=self._outcome_of(epoch),
                        seeded=self.take_seeded_rollouts(epoch),
                    )
                )

    def _record_epoch_time(self, epoch: int, ended_at: float) -> None:
        last = self.swarm_optimizer.last_round
        row = epoch_time_row(epoch=epoch, started_at=self._epoch_started_at, ended_at=ended_at,
                             compute=self.compute_timer.take(), round_phases=last.phases if last else {},
                             round_spans=last.spans if last else {})  # fmt: skip
        self.epoch_times.append(row)
        phases = ", ".join(f"{k} {v:.2f}" for k, v in row["round_phases_s"].items())
        logger.info(f"epoch {epoch} time: wall {row['wall_s']:.2f} s = generation {row['generation_s']:.2f} + "
                    f"backward {row['backward_s']:.2f} + averaging {row['averaging_s']:.2f} ({phases}) + other "
                    f"{row['other_s']:.2f}; utilization {row['utilization']:.2f}")  # fmt: skip

    def _outcome_of(self, epoch: int):
        outcomes = self.swarm_optimizer.consensus.outcomes if self.swarm_optimizer is not None else []
        return next((o for o in reversed(outcomes) if o.epoch == epoch), None)


class _SwarmEpochCallback(TrainerCallback):
    """Detects epoch of the run changes after each local step; syncs ranks; stops at max_epochs."""

    def __init__(self, trainer: SwarmGRPOTrainer):
        self.trainer, self.seen_epoch, self.computing = trainer, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.computing, self.seen_epoch = _broadcast_lora(self.trainer)
        self.trainer._epoch_adapters = {self.computing: lora_state(self.trainer.model)}
        self.trainer._epoch_started_at = time.time()  # the first epoch starts now (not at start-up)
        self.trainer.compute_timer.take()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        trainer = self.trainer
        epoch, settled = _broadcast_lora(trainer)
        if epoch != self.computing:  # an optimizer step ended the compute of an epoch
            trainer._end_compute_epoch(self.computing, epoch)
            self.computing = epoch
        if settled != self.seen_epoch:  # rounds settled: hand over the epochs whose outcome is known
            trainer._finish_epochs(settled)
            self.seen_epoch = settled
        if trainer.on_local_step is not None:
            trainer.on_local_step(trainer)
        if trainer.max_epochs is not None and epoch >= trainer.max_epochs:
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        """Delayed updates, a run stopped by max_steps: wait for the round in flight and hand over its epochs."""
        trainer = self.trainer
        if trainer.swarm_optimizer is not None:
            trainer.swarm_optimizer.flush()
        if trainer.accelerator.num_processes == 1 and trainer.settled_epoch != self.seen_epoch:
            trainer._finish_epochs(trainer.settled_epoch)
            self.seen_epoch = trainer.settled_epoch
        return control


def _broadcast_lora(trainer: SwarmGRPOTrainer) -> tuple[int, int]:
    """Multi-process peers: rank 0 (the swarm member) sends its epochs and LoRA parameters to the other ranks.

    Returns (swarm epoch, settled epoch) as rank 0 sees them (so every rank stops at the same epoch)."""
    if trainer.accelerator.num_processes <= 1:
        return trainer.swarm_epoch, trainer.settled_epoch
    device = trainer.accelerator.device
    epochs = torch.tensor([trainer.swarm_epoch, trainer.settled_epoch], device=device)
    with torch.no_grad():
        torch.distributed.broadcast(epochs, src=0)
        for param in lora_parameters(trainer.model):
            torch.distributed.broadcast(param.data, src=0)
    return int(epochs[0].item()), int(epochs[1].item())
