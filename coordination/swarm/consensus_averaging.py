"""One gradient-averaging round whose result is bit-identical on every peer of the group.

hivemind's butterfly all-reduce (`AllReduceRunner`) is kept: matchmaking, the part split, the
streams. Three things change, so that every member applies exactly the same vector:

1. **The reducer sends the aggregate itself, not a delta.** hivemind returns
   ``fp16(average - local_part)`` and each peer adds it to its own part, so every peer ends with a
   slightly different vector. Here the reducer of a part rounds the aggregate to the wire format once
   and sends that value; it uses the same rounded value for its own copy.
2. **The aggregate is deterministic and robust** (`coordination.swarm.aggregation`): the reducer
   waits for the part from every sender, then aggregates in float64 (order-independent), with each
   sender's weight taken from the round's gathered metadata and clamped to its public assignment
   (never from the weight field of a message); zero, negative and non-finite weights are refused.
3. **All or nothing.** If any sender or reducer fails mid-round, the round fails for everyone
   (hivemind would average the parts it got, or keep local values for a failed reducer: the members
   would diverge). The caller then retries or catches up with the canonical state; it never
   proceeds with local gradients.

Senders must put their contribution already rounded to the wire format into the averager
(`aggregation.to_wire`), so the value a reducer aggregates equals the contribution the sender commits
to and serves; anyone can recompute the round (`coordination.swarm.update_check`).

    averager = ConsensusAverager([buffer], dht=dht, prefix=f"{run_id}_consensus", rule=rule, start=True)
    averager.set_group_bits(epoch_group_bits(epoch))
    gathered = averager.step(gather={"weight": 64, ...}, weight=64, timeout=30)   # buffer now = aggregate
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import queue
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from hivemind.averaging import DecentralizedAverager
from hivemind.averaging.allreduce import AllreduceException, AllReduceRunner, AveragingMode
from hivemind.compression import deserialize_torch_tensor, serialize_torch_tensor
from hivemind.proto import averaging_pb2
from hivemind.utils import MSGPackSerializer, get_dht_time
from hivemind.utils.asyncio import aiter_with_timeout, amap_in_executor, as_aiter, attach_event_on_finished, azip

from coordination.swarm.aggregation import aggregate, clamp_weight

logger = logging.getLogger(__name__)

FLAGGED = "flagged peer"  # how every accusation a reducer makes starts in the log (a failed round is not one)
EPOCH_BITS = 40  # group key bits that carry the epoch: peers of different epochs never meet


def epoch_group_bits(epoch: int) -> str:
    """hivemind group bits for `epoch`: the group key is `{prefix}.0b{bits}`, one matchmaking key per epoch."""
    if epoch < 0 or epoch >= 2**EPOCH_BITS:
        raise ValueError(f"epoch {epoch} out of range")
    return format(epoch, f"0{EPOCH_BITS}b")


@dataclass(frozen=True)
class AggregationRule:
    """How a reducer turns the senders' parts into one (the run spec's `averaging` section)."""

    method: str = "trimmed_mean"
    trim_fraction: float = 0.25
    max_weight: float = 1.0  # a sender's public assignment (completions per epoch)
    value_bound: float | None = None  # |coordinate| bound of an honest contribution (the local clip norm)

    def combine(self, parts: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        return aggregate(
            parts, weights, method=self.method, trim_fraction=self.trim_fraction, value_bound=self.value_bound
        )


class FlagLog:
    """(peer id, reason) of senders a reducer excluded, clamped or trimmed, readable across hivemind's process
    boundary (the averager runs in its own process)."""

    def __init__(self):
        self._queue = mp.Queue()

    def record(self, peer_id, reason: str) -> None:
        logger.warning(f"{FLAGGED} {peer_id}: {reason}")
        self._queue.put((str(peer_id), reason))

    def drain(self) -> list[tuple[str, str]]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


def sender_weights(gathered: dict, sender_ids: Sequence, max_weight: float, flags: FlagLog | None = None):
    """Each sender's weight: the `weight` it announced in the round's metadata, clamped (0 = excluded)."""
    out = []
    for peer_id in sender_ids:
        meta = gathered.get(peer_id)
        claimed = meta.get("weight") if isinstance(meta, dict) else None
        weight = clamp_weight(claimed, max_weight)
        if flags is not None and weight == 0:
            flags.record(peer_id, f"weight {claimed!r} refused: its contribution is excluded")
        elif flags is not None and weight != claimed:
            flags.record(peer_id, f"weight {claimed!r} clamped to its assignment {max_weight:g}")
        out.append(weight)
    return out


def flag_outliers(slots, sender_ids, rule: AggregationRule, flags: FlagLog | None) -> None:
    """Name senders whose part is objectively impossible for an honest, clipped gradient: non-finite values, or a
    coordinate beyond the clip bound. (A norm-bounded outlier is bounded by the aggregator, not named: an honest
    gradient of other prompts can point anywhere; the attestation audit recomputes it from its rollouts.)"""
    if flags is None:
        return
    for peer_id, part in zip(sender_ids, slots, strict=True):
        if not torch.isfinite(part).all():
            flags.record(peer_id, "sent non-finite values (excluded coordinate by coordinate)")
        elif rule.value_bound is not None and float(part.abs().max()) > rule.value_bound * (1 + 1e-3):
            flags.record(peer_id, f"sent values beyond the clip bound {rule.value_bound:g} (clamped)")


class ConsensusPartReducer:
    """Collects every sender's copy of each part, then aggregates once (the same interface hivemind's runner uses)."""

    def __init__(
        self, part_shapes, num_senders: int, *, weights: Sequence[float], rule: AggregationRule, wire,
        sender_ids=(), flags: FlagLog | None = None,
    ):  # fmt: skip
        self.part_shapes, self.num_senders, self.num_parts = tuple(part_shapes), num_senders, len(part_shapes)
        self.weights, self.rule, self.wire = list(weights), rule, wire
        self.sender_ids, self.flags = list(sender_ids), flags
        self.finished = asyncio.Event()
        self._parts: dict[int, list] = {}
        self._futures: dict[int, asyncio.Future] = {}
        self._failure: str | None = None
        self.num_parts_received = [0] * num_senders

    def _future(self, part_index: int) -> asyncio.Future:
        if part_index not in self._futures:
            self._futures[part_index] = asyncio.get_event_loop().create_future()
        return self._futures[part_index]

    async def accumulate_part(self, sender_index: int, part_index: int, tensor_part: torch.Tensor, weight=None):
        if self._failure is not None or self.finished.is_set():
            raise AllreduceException(self._failure or "reducer already finished")
        if not (0 <= part_index < self.num_parts) or tuple(tensor_part.shape) != tuple(self.part_shapes[part_index]):
            raise AllreduceException(f"sender {sender_index} sent part {part_index} of a wrong shape")
        slots = self._parts.setdefault(part_index, [None] * self.num_senders)
        if slots[sender_index] is not None:
            raise AllreduceException(f"sender {sender_index} sent part {part_index} twice")
        slots[sender_index] = tensor_part.detach().float()
        self.num_parts_received[sender_index] += 1
        future = self._future(part_index)
        if all(slot is not None for slot in slots):
            del self._parts[part_index]
            if part_index == 0:  # once per round: name what this reducer sees
                flag_outliers(slots, self.sender_ids, self.rule, self.flags)
            future.set_result(self.wire(self.rule.combine(slots, self.weights)))
        return await asyncio.shield(future)

    def on_sender_failed(self, sender_index: int) -> None:
        """A sender that fails fails the round for everyone: no partial averages."""
        self._failure = f"sender {sender_index} failed during the round"
        for future in self._futures.values():
            if not future.done():
                future.set_exception(AllreduceException(self._failure))

    def finalize(self) -> None:
        if not self.finished.is_set():
            for future in self._futures.values():
                if not future.done():
                    future.cancel()
            self._parts.clear()
            self.finished.set()


class ConsensusAllReduceRunner(AllReduceRunner):
    """AllReduceRunner whose reducers return rounded aggregates and whose failures fail the round."""

    def __init__(self, *, weights: Sequence[float], rule: AggregationRule, compression, flags=None, **kwargs):
        super().__init__(compression=compression, **kwargs)
        self.wire_compression = compression
        self.tensor_part_container.return_deltas = False
        self.tensor_part_reducer.finished.set()  # hivemind's own reducer is replaced before it ever runs
        self.tensor_part_reducer = ConsensusPartReducer(
            tuple(part.shape for part in self.parts_for_local_averaging),
            len(self.sender_peer_ids),
            weights=weights,
            rule=rule,
            wire=self.round_to_wire,
            sender_ids=self.sender_peer_ids,
            flags=flags,
        )

    def round_to_wire(self, tensor: torch.Tensor) -> torch.Tensor:
        """What the receivers of a part get: the tensor after the wire format's compress + extract."""
        return deserialize_torch_tensor(serialize_torch_tensor(tensor, self.wire_compression.compression_type))

    async def _communicate_with_peer(self, peer_id):
        peer_index = self.ordered_peer_ids.index(peer_id)
        if peer_id != self.peer_id:
            return await self._receive_from_reducer(peer_id, peer_index)
        try:
            sender_index = self.sender_peer_ids.index(peer_id)
            for part_index, tensor_part in enumerate(self.parts_for_local_averaging):
                value = await self.tensor_part_reducer.accumulate_part(sender_index, part_index, tensor_part)
                self.tensor_part_container.register_processed_part(peer_index, part_index, value)
        except BaseException:
            self.tensor_part_container.register_failed_reducer(peer_index)
            raise

    async def _receive_from_reducer(self, peer_id, peer_index: int):
        try:
            done_sending = asyncio.Event()
            inputs = attach_event_on_finished(self._generate_input_for_peer(peer_index), done_sending)
            stream = await self._get_peer_stub(peer_id).rpc_aggregate_part(inputs)
            if self.should_delay_results(self.peer_id):
                await done_sending.wait()
            part_index = 0

            def _decode(msg):
                if msg.code != averaging_pb2.AVERAGED_PART:
                    raise AllreduceException(f"{peer_id} sent {averaging_pb2.MessageCode.Name(msg.code)}")
                return deserialize_torch_tensor(msg.tensor_part)

            async for value in amap_in_executor(
                _decode,
                aiter_with_timeout(stream, self.reducer_timeout),
                max_prefetch=self.tensor_part_container.prefetch,
            ):
                self.tensor_part_container.register_processed_part(peer_index, part_index, value)
                part_index += 1
            if part_index != self.tensor_part_container.num_parts_by_peer[peer_index]:
                raise AllreduceException(f"reducer {peer_id} sent {part_index} parts, expected more")
        except BaseException as exc:
            if isinstance(exc, Exception):
                logger.warning(f"reducer {peer_id} failed in this round: {exc!r}")
            self.tensor_part_container.register_failed_reducer(peer_index)
            raise

    async def _accumulate_parts_streaming(self, stream, sender_index: int):
        part_index = 0
        try:
            loop = asyncio.get_event_loop()
            async for tensor_part in amap_in_executor(
                lambda msg: deserialize_torch_tensor(msg.tensor_part),
                stream,
                max_prefetch=self.tensor_part_container.prefetch,
            ):
                value = await self.tensor_part_reducer.accumulate_part(sender_index, part_index, tensor_part)
                part_index += 1
                serialized = await loop.run_in_executor(
                    None, lambda v=value: serialize_torch_tensor(v, self.wire_compression.compression_type)
                )
                yield averaging_pb2.AveragingData(code=averaging_pb2.AVERAGED_PART, tensor_part=serialized)
        finally:
            if part_index != self.tensor_part_reducer.num_parts:
                await self._ban_sender(self.sender_peer_ids[sender_index])


class ConsensusAverager(DecentralizedAverager):
    """DecentralizedAverager whose rounds give every member the same robust aggregate (module docstring).

    :param rule: AggregationRule (method, trim fraction, per-sender max weight, value bound).
    Construct with `min_group_size=1` semantics decided by the caller; state sharing is off: peers
    catch up by fetching the canonical checkpoint by CID, never from a self-declared donor.
    """

    def __init__(self, averaged_tensors, dht, *, rule: AggregationRule, **kwargs):
        self.rule, self.flags = rule, FlagLog()
        kwargs.setdefault("allow_state_sharing", False)
        super().__init__(averaged_tensors, dht, **kwargs)

    def set_min_group_size(self, size: int) -> None:
        """The next rounds assemble only with at least `size` members (the peers known to be ready)."""
        from hivemind.utils.mpfuture import MPFuture

        future = MPFuture()
        self._outer_pipe.send(("_set_min_group_size", [], dict(size=int(size), future=future)))
        future.result()

    async def _set_min_group_size(self, size: int, future) -> None:
        self._matchmaking.min_group_size = max(1, size)
        future.set_result(None)

    async def _run_allreduce_inplace_(self, tensors: Sequence[torch.Tensor], group_info, group_id=None, **kwargs):
        group_id = group_info.group_id if group_id is None else group_id
        gathered = decode_gathered(group_info)
        kwargs.pop("weight", None)  # a sender's weight comes from the gathered metadata, clamped
        runner = ConsensusAllReduceRunner(
            p2p=self._p2p,
            servicer_type=type(self),
            prefix=self.prefix,
            tensors=tensors,
            group_id=group_id,
            ordered_peer_ids=group_info.peer_ids,
            weights=[],  # replaced below once the sender list is known
            rule=self.rule,
            flags=self.flags,
            **kwargs,
        )
        weights = sender_weights(gathered, runner.sender_peer_ids, self.rule.max_weight, self.flags)
        runner.tensor_part_reducer.weights = weights
        assert group_id in self._running_groups, f"Group id {group_id} was not registered"
        self._running_groups[group_id].set_result(runner)
        if runner.modes[group_info.peer_ids.index(self.peer_id)] == AveragingMode.AUX:
            async for _ in runner:
                raise ValueError("aux peers should not receive averaged tensors")
            return
        results = [value async for _, value in azip(as_aiter(*tensors), runner)]
        if runner.tensor_part_container.failed_size:
            raise AllreduceException("a reducer failed: the round is void for this peer")
        for tensor, value in zip(tensors, results, strict=True):
            tensor.copy_(value)
        self.last_updated = get_dht_time()
        self._state_updated.set()


def decode_gathered(group_info) -> dict:
    """peer_id -> the user metadata that peer gathered in this round (None where it does not decode)."""
    out = {}
    for peer_id, raw in zip(group_info.peer_ids, group_info.gathered, strict=True):
        try:
            _bandwidth, _mode, user_bytes = MSGPackSerializer.loads(raw)
            out[peer_id] = MSGPackSerializer.loads(user_bytes)
        except Exception:  # a malformed entry: that sender gets weight 0
            logger.warning(f"{FLAGGED} {peer_id}: malformed round metadata; its contribution is excluded")
            out[peer_id] = None
    return out
