"""The only code that runs the model: one forward per step over the paged KV cache.

A step is a StepInput (step.py): work items, each one sequence's new tokens (a prompt's
uncached suffix, or its last sampled token), their first position and the sequence's block
table. The items' tokens are left-padded into one [items, longest] batch; explicit position_ids
give each its own positions, and an explicit 4-D mask lets query i of an item see exactly its
own context (cached prefix included) up to its position. That is the same attention `generate`
computes, so greedy tokens match it, with or without a reused prefix. transformers' own paged
continuous batching is not used: it fails on MLA (DeepseekV3), whose cache holds a latent of
another width than its rope key (see kvcache.py).

`forward_step` depends only on the StepInput: another rank holding a shard of the model can
run the same step from the same input. Sampling, which needs the sequences, happens after.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import torch

from deepseek_runtime.engine.scheduler import ScheduledBatch
from deepseek_runtime.engine.sequence import Sequence
from deepseek_runtime.engine.step import StepInput
from deepseek_runtime.runner import sampling
from deepseek_runtime.runner.kvcache import PagedCache, layout


class ModelRunner:
    def __init__(
        self,
        model: Any,
        num_blocks: int,
        block_size: int,
        pad_token_id: int = 0,
        seed: int | None = None,
    ):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        if not self.dtype.is_floating_point:
            self.dtype = torch.float32
        self.pad_token_id = pad_token_id
        self.cache = PagedCache(num_blocks, block_size)
        self._generators: dict[int, torch.Generator | None] = {}
        self._shared = torch.Generator(device=self.device)
        if seed is None:
            self._shared.seed()
        else:
            self._shared.manual_seed(seed)

    def allocated(self) -> tuple[int, int]:
        """(token slots, bytes) the KV pools hold now: at most the budget's blocks."""
        return self.cache.allocated()

    @torch.inference_mode()
    def run(self, batch: ScheduledBatch) -> list[int]:
        """One step: the forward, then a token for every item."""
        logits = self.forward_step(batch.step)
        for seq in batch.prefill:
            self._generators[seq.seq_id] = sampling.make_generator(seq.params, self.device)
        return self._sample(logits, batch.seqs)

    @torch.inference_mode()
    def forward_step(self, step: StepInput) -> torch.Tensor:
        """Logits of each item's last token, [items, vocab]; fills the items' KV slots."""
        items = step.items
        query_len = max(len(item.token_ids) for item in items)
        input_ids = torch.full((len(items), query_len), self.pad_token_id, dtype=torch.long)
        positions = torch.full((len(items), query_len), -1, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item.token_ids)
            input_ids[row, query_len - n :] = torch.tensor(item.token_ids, dtype=torch.long)
            positions[row, query_len - n :] = torch.arange(item.start, item.context_len)
        where = layout(step, query_len, self.device)
        self.cache.view.plan(step, where, self.device)
        positions = positions.to(self.device)
        mask = self._mask(positions, where.context)
        self.cache.shape.step = where
        try:
            out = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask,
                position_ids=positions.clamp(min=0),
                cache=self.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        finally:
            self.cache.shape.step = None
        return out.logits[:, -1, :]

    def _mask(self, positions: torch.Tensor, context: int) -> torch.Tensor:
        """[items, 1, queries, context] additive mask: a query sees keys at or before its
        position in its own context. Padding queries see key 0 only (a row with nothing to
        attend to would turn into NaN in some attention kernels); their output is unused."""
        keys = torch.arange(context, device=self.device).view(1, 1, -1)
        visible = keys <= positions.clamp(min=0).unsqueeze(-1)
        mask = torch.zeros(visible.shape, dtype=self.dtype, device=self.device)
        mask.masked_fill_(~visible, torch.finfo(self.dtype).min)
        return mask.unsqueeze(1)

    def release(self, seq_ids: Seq[int]) -> None:
        """Forget finished or aborted sequences' generators (blocks.py frees their KV)."""
        for seq_id in seq_ids:
            self._generators.pop(seq_id, None)

    def reset(self) -> None:
        """Forget every sequence (after a failed step; the block manager is reset too)."""
        self._generators.clear()
        self.cache.view.reset()

    def _sample(self, logits: torch.Tensor, seqs: Seq[Sequence]) -> list[int]:
        generators = [self._generators.get(s.seq_id) for s in seqs]
        return sampling.sample(logits, [s.params for s in seqs], generators, self._shared)
