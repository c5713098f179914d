"""Next-token choice per row: greedy, or temperature / top-k / top-p with a per-request generator.

What counts as greedy (including temperatures and nuclei too small to sample from) is
SamplingParams.greedy, in protocol.py.

Each sampled row draws from its own torch.Generator, so a seeded request gets the same tokens
whatever else shares its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deepseek_runtime.engine.protocol import SamplingParams
from deepseek_runtime.runner.cpu_kernels import argmax_rows


def make_generator(params: SamplingParams, device: torch.device) -> torch.Generator | None:
    """A seeded generator for a seeded request; None means the runner's shared one."""
    if params.seed is None or params.greedy:
        return None
    return torch.Generator(device=device).manual_seed(params.seed)


def filter_logits(
    logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (descending) logits with tokens outside top-k / top-p set to -inf, and their ids."""
    sorted_logits, sorted_ids = logits.sort(dim=-1, descending=True)
    ranks = torch.arange(logits.shape[-1], device=logits.device).expand_as(sorted_logits)
    k = torch.where(top_k > 0, top_k, logits.shape[-1]).unsqueeze(-1)
    sorted_logits = sorted_logits.masked_fill(ranks >= k, float("-inf"))
    probs = sorted_logits.softmax(dim=-1)
    # Drop a token when the tokens ranked above it already reach top_p (the first always stays).
    outside_p = probs.cumsum(dim=-1) - probs >= top_p.unsqueeze(-1)
    return sorted_logits.masked_fill(outside_p, float("-inf")), sorted_ids


def sample(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator | None],
    shared: torch.Generator | None = None,
) -> list[int]:
    """One token id per row of `logits` ([rows, vocab])."""
    chosen: list[int] = argmax_rows(logits).tolist()
    rows = [i for i, p in enumerate(params) if not p.greedy]
    if not rows:
        return chosen
    device = logits.device
    sub = logits[rows].float()
    temperature = torch.tensor([params[i].temperature for i in rows], device=device)
    top_k = torch.tensor([params[i].top_k for i in rows], device=device)
    top_p = torch.tensor([params[i].top_p for i in rows], device=device)
    sorted_logits, sorted_ids = filter_logits(sub / temperature.unsqueeze(-1), top_k, top_p)
    probs = sorted_logits.softmax(dim=-1)
    for j, i in enumerate(rows):
        generator = generators[i] or shared
        pick = torch.multinomial(probs[j], 1, generator=generator)
        chosen[i] = int(sorted_ids[j, pick])
    return chosen
