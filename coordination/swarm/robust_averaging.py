"""Gradient averaging that a faulty peer cannot poison: bounded, finite parts only.

Every honest peer clips its local gradient to `max_grad_norm` before it reaches the averager and
sends the *mean* of its clipped local steps, so every honest vector (and every slice of it, and any
weighted mean of such vectors) has norm <= max_grad_norm. That gives two exact checks:

1. Reducer side (names the culprit): a part received from a sender that is not finite or whose
   norm exceeds `factor * max_grad_norm` enters the mean with weight 0, and the sender's peer id
   is logged. The other senders' parts are averaged as if it had not sent.
2. Result side (catches a faulty *reducer*): after the round the averaged gradient must be finite
   and within the same bound; otherwise the round fails and hivemind falls back to this peer's
   local gradients ("Averaging gradients failed ... Proceeding with local gradients").

    averager = RobustGradientAverager(params, dht=dht, prefix="run_grad", max_grad_norm=1.0, start=True)

hivemind.Optimizer takes it via `grad_averager_factory=partial(RobustGradientAverager, max_grad_norm=...)`.
The averager runs in hivemind's averager process; rejections are logged there (logger
`coordination.swarm.robust_averaging`) and recorded in `averager.rejections` (a RejectionLog:
`.count`, `.drain_peers()`), readable from the training process.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
from collections.abc import Sequence

import torch
from hivemind.averaging.allreduce import AllreduceException, AllReduceRunner, AveragingMode
from hivemind.averaging.partition import TensorPartReducer
from hivemind.optim.grad_averager import GradientAverager
from hivemind.optim.state_averager import TrainingStateAverager
from hivemind.utils import get_dht_time
from hivemind.utils.asyncio import as_aiter, azip

logger = logging.getLogger(__name__)


def part_is_acceptable(part: torch.Tensor, max_norm: float | None) -> tuple[bool, str]:
    """(ok, reason): a part is acceptable iff finite and (when bounded) its L2 norm is <= max_norm."""
    if not torch.isfinite(part).all():
        return False, "non-finite values"
    if max_norm is not None:
        norm = float(part.float().norm())
        if norm > max_norm:
            return False, f"norm {norm:.3g} > bound {max_norm:.3g}"
    return True, ""


def part_is_close(part: torch.Tensor, reference: torch.Tensor, max_relative: float) -> tuple[bool, str]:
    """(ok, reason): a received *parameter* part must stay within max_relative * ||ours|| (+ a small floor) of ours.

    Peers whose parameters are in sync differ by compression rounding only; a part far from ours comes
    from a faulty (or badly out-of-sync) peer and would drag everyone's parameters away.
    """
    distance = float((part.float() - reference.float()).norm())
    allowed = max_relative * float(reference.float().norm()) + 1e-2 * reference.numel() ** 0.5
    if distance > allowed:
        return False, f"parameters {distance:.3g} away from ours (allowed {allowed:.3g})"
    return True, ""


class RejectionLog:
    """Counts rejected parts and remembers their senders across hivemind's averager process boundary."""

    def __init__(self):
        self._count, self._peers = mp.Value("i", 0), mp.Queue()

    def record(self, peer_id: str) -> None:
        with self._count.get_lock():
            self._count.value += 1
        self._peers.put(peer_id)

    @property
    def count(self) -> int:
        return int(self._count.value)

    def drain_peers(self) -> list[str]:
        """Peer ids of rejected parts since the last call (one entry per rejected part)."""
        out = []
        while True:
            try:
                out.append(self._peers.get_nowait())
            except queue.Empty:
                return out


class BoundedTensorPartReducer(TensorPartReducer):
    """TensorPartReducer that averages only acceptable parts; a rejected part counts with weight 0."""

    def __init__(
        self, part_shapes, num_senders, *, sender_peer_ids, max_part_norm, rejections=None, reference_parts=None,
        max_relative_deviation=None,
    ):  # fmt: skip
        super().__init__(part_shapes, num_senders)
        self.sender_peer_ids, self.max_part_norm, self.rejections = list(sender_peer_ids), max_part_norm, rejections
        self.reference_parts, self.max_relative_deviation = reference_parts, max_relative_deviation

    async def accumulate_part(self, sender_index, part_index, tensor_part, weight=1.0):
        ok, reason = part_is_acceptable(tensor_part, self.max_part_norm)
        if ok and self.reference_parts is not None and self.max_relative_deviation is not None:
            ok, reason = part_is_close(tensor_part, self.reference_parts[part_index], self.max_relative_deviation)
        if not ok:
            logger.warning(
                f"rejected gradient part {part_index} from peer {self.sender_peer_ids[sender_index]}: {reason}"
            )
            if self.rejections is not None:
                self.rejections.record(str(self.sender_peer_ids[sender_index]))
            tensor_part, weight = torch.zeros_like(tensor_part), 0.0
        return await super().accumulate_part(sender_index, part_index, tensor_part, weight=weight)

    def check_current_part_finished(self):
        if self.current_part_accumulated_from == self.num_current_senders and self.denominator == 0:
            self.denominator = 1.0  # every sender was rejected: the mean of nothing is zero, not NaN
        super().check_current_part_finished()


class RobustAllReduceRunner(AllReduceRunner):
    """AllReduceRunner whose reducer rejects non-finite / over-norm parts (see module docstring)."""

    def __init__(self, *, max_part_norm: float | None, rejections=None, max_relative_deviation=None, **kwargs):
        super().__init__(**kwargs)
        self.tensor_part_reducer = BoundedTensorPartReducer(
            tuple(part.shape for part in self.parts_for_local_averaging),
            len(self.sender_peer_ids),
            sender_peer_ids=self.sender_peer_ids,
            max_part_norm=max_part_norm,
            rejections=rejections,
            reference_parts=self.parts_for_local_averaging if max_relative_deviation is not None else None,
            max_relative_deviation=max_relative_deviation,
        )


class RobustGradientAverager(GradientAverager):
    """GradientAverager with per-sender rejection and a post-round sanity check.

    :param max_grad_norm: the local clip every honest peer applies (TrainingArguments.max_grad_norm);
        None checks finiteness only.
    :param reject_norm_factor: slack over max_grad_norm for compression error (fp16: 1.01 is plenty;
        8-bit quantization: keep >= 1.1).
    """

    def __init__(self, *args, max_grad_norm: float | None = None, reject_norm_factor: float = 1.1, **kwargs):
        self.max_vector_norm = None if max_grad_norm is None else max_grad_norm * reject_norm_factor
        self.rejections = RejectionLog()
        super().__init__(*args, **kwargs)

    async def _run_allreduce_inplace_(self, tensors: Sequence[torch.Tensor], group_info, group_id=None, **kwargs):
        await run_checked_allreduce(self, tensors, group_info, group_id, max_part_norm=self.max_vector_norm, **kwargs)


class RobustStateAverager(TrainingStateAverager):
    """TrainingStateAverager (parameters + optimizer state) that ignores non-finite parts and parameter parts
    further than `max_relative_deviation` * ||ours|| from ours; a non-finite result fails the round."""

    def __init__(self, *args, max_relative_deviation: float = 1.0, **kwargs):
        self.max_relative_deviation, self.max_vector_norm = max_relative_deviation, None
        self.rejections = RejectionLog()
        super().__init__(*args, **kwargs)

    async def _run_allreduce_inplace_(self, tensors: Sequence[torch.Tensor], group_info, group_id=None, **kwargs):
        await run_checked_allreduce(
            self, tensors, group_info, group_id, max_part_norm=None,
            max_relative_deviation=self.max_relative_deviation, **kwargs,
        )  # fmt: skip


async def run_checked_allreduce(averager, tensors, group_info, group_id=None, **kwargs) -> None:
    """DecentralizedAverager._run_allreduce_inplace_ with a RobustAllReduceRunner and a result check."""
    group_id = group_info.group_id if group_id is None else group_id
    runner = RobustAllReduceRunner(
        p2p=averager._p2p,
        servicer_type=type(averager),
        prefix=averager.prefix,
        tensors=tensors,
        group_id=group_id,
        ordered_peer_ids=group_info.peer_ids,
        rejections=averager.rejections,
        **kwargs,
    )
    assert group_id in averager._running_groups, f"Group id {group_id} was not registered"
    averager._running_groups[group_id].set_result(runner)
    if runner.modes[group_info.peer_ids.index(averager.peer_id)] == AveragingMode.AUX:
        async for _ in runner:
            raise ValueError("aux peers should not receive averaged tensors")
        return
    async for tensor, update in azip(as_aiter(*tensors), runner):
        tensor.add_(update, alpha=averager._averaging_alpha)
    check_result(tensors, group_info.peer_ids, averager.max_vector_norm)
    averager.last_updated = get_dht_time()
    averager._state_updated.set()


def check_result(tensors: Sequence[torch.Tensor], peer_ids, max_norm: float | None) -> None:
    flat = torch.cat([t.detach().float().reshape(-1) for t in tensors])
    ok, reason = part_is_acceptable(flat, max_norm)
    if not ok:
        logger.warning(f"averaged result from group {[str(p) for p in peer_ids]} rejected: {reason}")
        raise AllreduceException(f"averaged result rejected ({reason}); keeping local values")
