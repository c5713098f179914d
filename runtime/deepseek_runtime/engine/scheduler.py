"""Which sequences prefill and which decode, each step, within the limits. No torch here.

Prefill goes first (as in nano-vllm): a step either admits waiting sequences and runs their
prompts, or decodes one token for every running sequence.

Admission bounds what the runner's KV cache really costs, so a running sequence never has to
be preempted: that cache is one left-padded tensor in which every row is as long as the
longest, and it grows up to (never past) the longest row's reservation, prompt + max_tokens
(runner.py, kvcache.py). So the running set costs at most rows x the longest reservation
(`padded_kv_tokens`), and that must fit in --kv-cache-tokens. A paged cache (planned, with
prefix reuse) would cost the sum of the reservations instead: only this function and the
runner would change.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence as Sequence_
from dataclasses import dataclass, field

from deepseek_runtime.engine.sequence import Sequence, SequenceStatus


@dataclass(slots=True)
class ScheduledBatch:
    prefill: list[Sequence] = field(default_factory=list)
    decode: list[Sequence] = field(default_factory=list)

    @property
    def seqs(self) -> list[Sequence]:
        return self.prefill or self.decode

    @property
    def prefill_tokens(self) -> int:
        """Tokens the forward pass computes: prompts are left-padded to the longest."""
        return len(self.prefill) * max((s.prompt_len for s in self.prefill), default=0)


def padded_kv_tokens(seqs: Sequence_[Sequence]) -> int:
    """KV tokens the runner's left-padded cache may come to hold for `seqs`, growth included."""
    return len(seqs) * max((s.kv_reservation for s in seqs), default=0)


class Scheduler:
    def __init__(self, max_num_seqs: int, max_num_batched_tokens: int, kv_cache_tokens: int):
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.kv_cache_tokens = kv_cache_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    @property
    def reserved_tokens(self) -> int:
        """What the running set may come to cost in the KV cache (see the module's note)."""
        return padded_kv_tokens(self.running)

    def kv_tokens_in_use(self) -> int:
        """The padded cache's filled part now: rows x the longest row."""
        running = list(self.running)  # stats() reads this from other threads
        return len(running) * max((s.num_tokens for s in running), default=0)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, seq: Sequence) -> None:
        if seq.kv_reservation > self.kv_cache_tokens:
            # It could never be admitted; the engine clamps max_tokens so this is a bug upstream.
            raise ValueError(
                f"sequence needs {seq.kv_reservation} KV tokens, budget is {self.kv_cache_tokens}"
            )
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def schedule(self) -> ScheduledBatch:
        admitted = self._admit()
        if admitted:
            return ScheduledBatch(prefill=admitted)
        return ScheduledBatch(decode=list(self.running))

    def _admit(self) -> list[Sequence]:
        admitted: list[Sequence] = []
        longest = 0
        while self.waiting and len(self.running) + len(admitted) < self.max_num_seqs:
            seq = self.waiting[0]
            if padded_kv_tokens([*self.running, *admitted, seq]) > self.kv_cache_tokens:
                break  # FIFO: later, smaller requests do not overtake the head
            padded = (len(admitted) + 1) * max(longest, seq.prompt_len)
            # A prompt longer than the whole budget still runs, alone, rather than never.
            if admitted and padded > self.max_num_batched_tokens:
                break
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            longest = max(longest, seq.prompt_len)
            admitted.append(seq)
        self.running.extend(admitted)
        return admitted

    def postprocess(self, batch: ScheduledBatch, token_ids: list[int]) -> None:
        """Append each sequence's new token; EOS and max_tokens finish it."""
        seqs = batch.seqs
        if len(seqs) != len(token_ids):
            raise ValueError(f"{len(seqs)} sequences but {len(token_ids)} tokens")
        for seq, token_id in zip(seqs, token_ids, strict=True):
            seq.append_token(token_id)

    def reap(self) -> list[Sequence]:
        """Remove finished sequences from the running set (their KV is freed with them)."""
        finished = [s for s in self.running if s.is_finished]
        if finished:
            self.running = [s for s in self.running if not s.is_finished]
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
                seq.finish("abort")
                return seq
        return None
