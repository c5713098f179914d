"""The only code that runs the model: prefill and batched decode over one left-padded KV cache.

The running sequences share one cache (kvcache.py) whose rows are left-padded to a common
length; a 2-D attention mask hides the padding and explicit position_ids give every row its own
positions, which is exactly what `generate` does for a padded batch, so greedy tokens match it.
New sequences prefill as their own left-padded batch and are then spliced into the running
cache; finished ones are cut out (and all-padding columns trimmed). This works the same for
Llama, Qwen2 and DeepseekV3 (MLA + MoE), unlike transformers' paged continuous batching, which
fails on MLA.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from deepseek_runtime.engine import kvcache, sampling
from deepseek_runtime.engine.scheduler import ScheduledBatch
from deepseek_runtime.engine.sequence import Sequence


class ModelRunner:
    def __init__(self, model: Any, pad_token_id: int = 0, seed: int | None = None):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.pad_token_id = pad_token_id
        self._rows: list[int] = []  # seq_id of each cache row
        self._reservations: dict[int, int] = {}  # seq_id -> prompt + max_tokens
        self._limit = kvcache.LengthLimit()  # caps the cache's growth (kvcache.py)
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # [rows, cache length], 1 = real token
        self._generators: dict[int, torch.Generator | None] = {}
        self._shared = torch.Generator(device=self.device)
        if seed is None:
            self._shared.seed()
        else:
            self._shared.manual_seed(seed)

    @property
    def num_rows(self) -> int:
        """Sequences whose KV the runner holds (0 once everything finished or was aborted)."""
        return len(self._rows)

    def allocated(self) -> tuple[int, int]:
        """(token slots, bytes) the KV cache holds now: at most rows x the longest reservation."""
        return kvcache.allocated(self._cache) if self._cache is not None else (0, 0)

    def _set_limit(self) -> None:
        self._limit.tokens = max(self._reservations.values(), default=0)

    @torch.inference_mode()
    def run(self, batch: ScheduledBatch) -> list[int]:
        if batch.prefill:
            return self.prefill(batch.prefill)
        return self.decode(batch.decode)

    def prefill(self, seqs: Seq[Sequence]) -> list[int]:
        longest = max(s.prompt_len for s in seqs)
        input_ids = torch.full((len(seqs), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), longest), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, longest - seq.prompt_len :] = torch.tensor(seq.prompt_token_ids)
            mask[row, longest - seq.prompt_len :] = 1
        mask = mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        for seq in seqs:
            self._reservations[seq.seq_id] = seq.kv_reservation
        self._set_limit()
        cache = kvcache.new_cache(self._limit)
        logits = self._forward(input_ids.to(self.device), mask, positions, cache)
        for seq in seqs:
            self._generators[seq.seq_id] = sampling.make_generator(seq.params, self.device)
        tokens = self._sample(logits, seqs)
        self._splice_in([s.seq_id for s in seqs], cache, mask)
        return tokens

    def decode(self, seqs: Seq[Sequence]) -> list[int]:
        if self._mask is None or self._cache is None:
            raise RuntimeError("decode with no running sequences")
        by_id = {s.seq_id: s for s in seqs}
        if set(by_id) != set(self._rows):
            raise RuntimeError("decode batch differs from the cache rows")
        ordered = [by_id[seq_id] for seq_id in self._rows]
        input_ids = torch.tensor([[s.last_token_id] for s in ordered], device=self.device)
        # The new token's position is the number of real tokens already cached for its row.
        positions = self._mask.sum(-1, keepdim=True)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(ordered), 1))], dim=-1)
        logits = self._forward(input_ids, self._mask, positions, self._cache)
        by_row = dict(zip(self._rows, self._sample(logits, ordered), strict=True))
        return [by_row[s.seq_id] for s in seqs]

    def release(self, seq_ids: Seq[int]) -> None:
        """Cut finished or aborted sequences out of the cache (unknown ids are ignored)."""
        gone = set(seq_ids) & set(self._rows)
        for seq_id in seq_ids:
            self._generators.pop(seq_id, None)
            self._reservations.pop(seq_id, None)
        self._set_limit()
        if not gone or self._mask is None or self._cache is None:
            return
        keep = [i for i, seq_id in enumerate(self._rows) if seq_id not in gone]
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache, self._mask = None, None
            return
        mask = self._mask[keep]
        # Columns that are padding in every remaining row cost compute and hide nothing.
        start = int((mask.sum(0) > 0).nonzero()[0])
        kvcache.keep_rows(self._cache, torch.tensor(keep, device=self.device), start)
        self._mask = mask[:, start:]

    def reset(self) -> None:
        """Forget every row (after a failed step left the cache in an unknown state)."""
        self._rows, self._cache, self._mask = [], None, None
        self._generators.clear()
        self._reservations.clear()

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
    ) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :]

    def _sample(self, logits: torch.Tensor, seqs: Seq[Sequence]) -> list[int]:
        generators = [self._generators.get(s.seq_id) for s in seqs]
        return sampling.sample(logits, [s.params for s in seqs], generators, self._shared)

    def _splice_in(self, seq_ids: list[int], cache: DynamicCache, mask: torch.Tensor) -> None:
        if self._cache is None or self._mask is None:
            self._rows, self._cache, self._mask = list(seq_ids), cache, mask
            return
        length = max(self._mask.shape[1], mask.shape[1])
        kvcache.concat(self._cache, cache, length)
        self._mask = torch.cat([_left_pad_mask(self._mask, length), _left_pad_mask(mask, length)])
        self._rows.extend(seq_ids)


def _left_pad_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    return mask if mask.shape[1] == length else F.pad(mask, (length - mask.shape[1], 0))
