"""The one log-prob function that peers and validators share.

`completion_logprobs` runs one forward pass (eval mode, no grad) over prompt + completion and
returns the log-probability of each completion token under the model, at temperature 1
unless told otherwise. Peers store these (quantized) in their rollout records; validators
recompute them under the epoch's checkpoint and compare within a tolerance.

    lp = completion_logprobs(model, tokenizer, "Q:12+30\n", completion_ids)   # list[float], one per token
"""

from __future__ import annotations

from collections.abc import Sequence


def encode_prompt(tokenizer, prompt: str | Sequence[int]) -> list[int]:
    """Prompt token ids: ids pass through; text is tokenized as TRL's GRPOTrainer does (`prompt_token_ids`)."""
    from trainer.seeded_generation import prompt_token_ids

    if not isinstance(prompt, str):
        return [int(t) for t in prompt]
    return prompt_token_ids(tokenizer, prompt)


def completion_logits(model, prompt_ids: Sequence[int], completion_ids: Sequence[int]):
    """float64 logits predicting each completion token, shape (len(completion_ids), vocab): one forward pass."""
    import torch

    if not prompt_ids:
        raise ValueError("prompt_ids is empty: a completion needs at least one conditioning token")
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)], dtype=torch.long, device=model.device)
    with _eval_mode(model), torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    start = len(prompt_ids) - 1
    return logits[start : start + len(completion_ids)].double().cpu()


def completion_logits_batch(model, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]):
    """`completion_logits` of several (prompt, completion) pairs with ONE right-padded forward pass (a list).

    Right padding keeps every real token at its natural position and, with causal attention, pads only
    follow the real tokens: each row's logits are those of its own unpadded forward (up to float
    round-off of the batched kernels, covered by the calibrated tolerances)."""
    import torch

    if any(not p for p in prompts):
        raise ValueError("prompt_ids is empty: a completion needs at least one conditioning token")
    rows = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r, dtype=torch.long), 1
    device = next(model.parameters()).device
    # the lm_head only where some row predicts a completion token: positions before the shortest prompt's
    # last token predict prompt tokens, which no check reads (a large vocabulary makes them a real cost)
    keep = {"logits_to_keep": width - (min(len(p) for p in prompts) - 1)}
    with _eval_mode(model), torch.no_grad():
        try:
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **keep).logits
        except TypeError as exc:  # a model without `logits_to_keep`: every position's logits
            if "logits_to_keep" not in str(exc):
                raise
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    dropped = width - logits.shape[1]  # leading positions the model did not project
    out = []
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        out.append(logits[i, len(p) - 1 - dropped : len(p) - 1 - dropped + len(c)].double().cpu())
    return out


class _eval_mode:
    """Eval mode for the duration (no dropout), the previous mode after; free when already in eval mode."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        if self.was_training:
            self.model.eval()

    def __exit__(self, *exc):
        if self.was_training:
            self.model.train(True)


def completion_logprobs(model, tokenizer, prompt, completion_ids: Sequence[int], *, temperature: float = 1.0):
    """Log-prob of each completion token given the prompt and the tokens before it (one forward pass)."""
    import torch

    if not completion_ids:
        return []
    logits = completion_logits(model, encode_prompt(tokenizer, prompt), completion_ids) / temperature
    logp = torch.log_softmax(logits, dim=-1)
    index = torch.tensor(list(completion_ids), dtype=torch.long).unsqueeze(1)
    return logp.gather(1, index).squeeze(1).tolist()
