"""Which sequences prefill and which decode, each step, within the limits. No torch here.

Prefill goes first (as in nano-vllm): a step either admits waiting sequences and runs their
prompts, or decodes one token for every running sequence. Each step is handed to the runner as
a StepInput (step.py): per sequence, the tokens to compute, their first position and the
sequence's block table.

The KV cache is paged (blocks.py): admission reserves the blocks a sequence may come to hold
(prompt + max_tokens, less the prompt's cached prefix) out of --kv-cache-tokens, so a running
sequence never has to be preempted, and the running set costs the sum of its reservations.
A prompt whose leading blocks are cached (an earlier turn of the same chat, a shared system
prompt, of the same tenant) only prefills its suffix.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from deepseek_runtime.engine.blocks import BLOCK_SIZE, BlockManager, blocks_for
from deepseek_runtime.engine.sequence import Sequence, SequenceStatus
from deepseek_runtime.engine.step import StepInput, WorkItem


@dataclass(slots=True)
class ScheduledBatch:
    prefill: list[Sequence] = field(default_factory=list)
    decode: list[Sequence] = field(default_factory=list)
    step: StepInput = field(default_factory=lambda: StepInput((), BLOCK_SIZE))

    @property
    def seqs(self) -> list[Sequence]:
        return self.prefill or self.decode

    @property
    def prefill_tokens(self) -> int:
        """Tokens the forward pass computes: uncached prompt suffixes, left-padded to the
        longest."""
        if not self.prefill:
            return 0
        return len(self.prefill) * max(s.prompt_len - s.cached_tokens for s in self.prefill)


class Scheduler:
    def __init__(
        self,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        kv_cache_tokens: int,
        block_size: int = BLOCK_SIZE,
        prefix_caching: bool = True,
    ):
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.kv_cache_tokens = kv_cache_tokens
        self.blocks = BlockManager(max(1, kv_cache_tokens // block_size), block_size,
                                   prefix_caching)  # fmt: skip
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    @property
    def block_size(self) -> int:
        return self.blocks.block_size

    @property
    def reserved_tokens(self) -> int:
        """KV tokens the running set may come to hold (whole blocks, shared ones once)."""
        return (self.blocks.num_blocks - self.blocks.available
                - self.blocks.usage().cached) * self.block_size  # fmt: skip

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, seq: Sequence) -> None:
        if blocks_for(seq.kv_reservation, self.block_size) > self.blocks.num_blocks:
            # It could never be admitted; the engine clamps max_tokens so this is a bug upstream.
            raise ValueError(
                f"sequence needs {seq.kv_reservation} KV tokens, budget is {self.kv_cache_tokens}"
            )
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def schedule(self) -> ScheduledBatch:
        admitted = self._admit()
        if admitted:
            items = [self._prefill_item(s) for s in admitted]
            return ScheduledBatch(prefill=admitted, step=StepInput(tuple(items), self.block_size))
        items = [self._decode_item(s) for s in self.running]
        return ScheduledBatch(decode=list(self.running),
                              step=StepInput(tuple(items), self.block_size))  # fmt: skip

    def _admit(self) -> list[Sequence]:
        admitted: list[Sequence] = []
        longest = 0
        while self.waiting and len(self.running) + len(admitted) < self.max_num_seqs:
            seq = self.waiting[0]
            hit = self.blocks.match(seq.tenant, seq.prompt_token_ids)
            if not self.blocks.can_admit(seq.kv_reservation, hit):
                break  # FIFO: later, smaller requests do not overtake the head
            suffix = seq.prompt_len - len(hit) * self.block_size
            padded = (len(admitted) + 1) * max(longest, suffix)
            # A prompt longer than the whole budget still runs, alone, rather than never.
            if admitted and padded > self.max_num_batched_tokens:
                break
            self.waiting.popleft()
            table = self.blocks.admit(seq.seq_id, seq.tenant, seq.prompt_token_ids,
                                      seq.kv_reservation, hit)  # fmt: skip
            seq.cached_tokens = table.cached_tokens
            seq.status = SequenceStatus.RUNNING
            longest = max(longest, suffix)
            admitted.append(seq)
        self.running.extend(admitted)
        return admitted

    def _prefill_item(self, seq: Sequence) -> WorkItem:
        table = self.blocks.ensure(seq.seq_id, seq.prompt_len)
        start = seq.cached_tokens
        return WorkItem(seq.seq_id, seq.prompt_token_ids[start:], start, tuple(table))

    def _decode_item(self, seq: Sequence) -> WorkItem:
        table = self.blocks.ensure(seq.seq_id, seq.num_tokens)
        return WorkItem(seq.seq_id, (seq.last_token_id,), seq.num_tokens - 1, tuple(table))

    def postprocess(self, batch: ScheduledBatch, token_ids: list[int]) -> None:
        """Append each sequence's new token; EOS and max_tokens finish it."""
        seqs = batch.seqs
        if len(seqs) != len(token_ids):
            raise ValueError(f"{len(seqs)} sequences but {len(token_ids)} tokens")
        for seq, token_id in zip(seqs, token_ids, strict=True):
            seq.append_token(token_id)
            # Every token but the one just sampled now has its KV: name the blocks it filled.
            computed = seq.num_tokens - 1
            if self.blocks.fills_a_block(seq.seq_id, computed):
                self.blocks.commit(seq.seq_id, seq.token_ids(computed))

    def reap(self) -> list[Sequence]:
        """Remove finished sequences from the running set (their KV is freed with them)."""
        finished = [s for s in self.running if s.is_finished]
        if finished:
            self.running = [s for s in self.running if not s.is_finished]
            for seq in finished:
                self.blocks.release(seq.seq_id)
        return finished

    def abort(self, seq_id: int) -> Sequence | None:
        """Drop a sequence wherever it is; return it (finished with "abort") or None if gone."""
        for seq in self.waiting:
            if seq.seq_id == seq_id:
                self.waiting.remove(seq)
                seq.finish("abort")
                return seq
        for seq in self.running:
            if seq.seq_id == seq_id:
                self.running.remove(seq)
                self.blocks.release(seq_id)
                seq.finish("abort")
                return seq
        return None

    def reset(self) -> None:
        """Drop every block (after a failed step; the running sequences were aborted)."""
        self.blocks.reset()
