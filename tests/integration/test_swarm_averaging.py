"""Real gradient averaging on loopback (hivemind test_grad_averager style): exact weighted mean, fault rejection.

Two peers, each with its own DHT and a RobustGradientAverager over the LoRA parameters of a tiny PEFT
model; peers accumulate gradients of different batch sizes, then run one all-reduce round.
"""

import multiprocessing as mp

import hivemind
import pytest
import torch
from hivemind.compression import NoCompression
from hivemind.utils import get_dht_time
from swarm_support import Fault, make_faulty, tiny_peft_model

from coordination.swarm.collaborative_optimizer import lora_parameters
from coordination.swarm.robust_averaging import RobustGradientAverager

pytestmark = [pytest.mark.network, pytest.mark.slow]

MAX_NORM = 1.0
BATCHES = (3, 5)  # samples per peer: the averaging weights; the last peer is the faulty one in fault tests


def local_gradients(model, seed: int, batch: int):
    torch.manual_seed(100 + seed)
    ids = torch.randint(0, 40, (batch, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    params = lora_parameters(model)
    torch.nn.utils.clip_grad_norm_(params, MAX_NORM)  # the Trainer clips before the averager sees anything
    return [p.grad.detach().clone() for p in params]


def peer_round(index, fault, initial_peers, ready, queue):
    """One peer in a forked child: own DHT + averager, accumulate one batch, one all-reduce round."""
    from hivemind.utils.crypto import RSAPrivateKey

    RSAPrivateKey._process_wide_key = None  # a forked child must not share the parent's DHT signing key
    torch.set_num_threads(1)
    dht = hivemind.DHT(start=True, host_maddrs=["/ip4/127.0.0.1/tcp/0"], initial_peers=initial_peers)
    model, batch = tiny_peft_model(seed=0), BATCHES[index]
    faulty = index == len(BATCHES) - 1 and fault is not Fault.NONE
    averager = RobustGradientAverager(
        lora_parameters(model),
        dht=dht,
        prefix="swarm_test",
        target_group_size=len(BATCHES),
        max_grad_norm=MAX_NORM,
        compression=NoCompression(),
        min_matchmaking_time=2.0,
        request_timeout=1.0,
        start=True,
    )
    if faulty:
        make_faulty(averager, fault)
    grads = local_gradients(model, index, batch)
    averager.accumulate_grads_(batch_size=batch)
    ready.wait(timeout=60)  # every peer has its gradients: all-reduce in 3 s
    control = averager.schedule_step(scheduled_time=get_dht_time() + 3, timeout=30)
    averager.step(control=control, wait=False)
    try:
        outcome = len(control.result(timeout=40))
    except Exception as exc:  # the faulty peer's own result check may fail its round
        outcome = repr(exc)
    with averager.get_tensors() as tensors:
        averaged = [t.clone() for t in tensors]
    queue.put(
        (
            index,
            grads,
            averaged,
            outcome,
            averager.rejections.count,
            averager.rejections.drain_peers(),
            str(dht.peer_id),
        )
    )
    averager.shutdown()
    dht.shutdown()


def run_round(fault: Fault):
    ctx = mp.get_context("fork")
    entry = hivemind.DHT(start=True, host_maddrs=["/ip4/127.0.0.1/tcp/0"])
    queue, procs = ctx.Queue(), []
    try:
        ready = ctx.Barrier(len(BATCHES))
        maddrs = [str(a) for a in entry.get_visible_maddrs()]
        for i in range(len(BATCHES)):
            procs.append(ctx.Process(target=peer_round, args=(i, fault, maddrs, ready, queue)))
            procs[-1].start()
        results = sorted((queue.get(timeout=60) for _ in procs), key=lambda r: r[0])
        return tuple(list(column) for column in zip(*results, strict=True))[1:]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        entry.shutdown()


def weighted_mean(grads, weights):
    total = sum(weights)
    return [sum(w * g[k] for g, w in zip(grads, weights, strict=True)) / total for k in range(len(grads[0]))]


def test_one_round_gives_the_exact_sample_weighted_mean_on_every_peer():
    grads, averaged, outcomes, rejections, _, _ = run_round(Fault.NONE)
    assert outcomes == [2, 2] and rejections == [0, 0]
    expected = weighted_mean(grads, BATCHES)
    for peer in averaged:
        for got, want in zip(peer, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fault", [Fault.NAN, Fault.HUGE_NORM])  # Inf: see the unit test
def test_faulty_peer_is_rejected_and_named_by_peer_id(fault):
    grads, averaged, outcomes, rejections, rejected_peers, peer_ids = run_round(fault)
    # the faulty peer's contribution gets weight 0: the honest peer keeps exactly its own gradient
    assert outcomes[0] == 2
    assert all(torch.isfinite(t).all() for t in averaged[0])
    for got, want in zip(averaged[0], grads[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert rejections[0] > 0
    assert set(rejected_peers[0]) == {peer_ids[1]}  # the honest peer names the culprit
