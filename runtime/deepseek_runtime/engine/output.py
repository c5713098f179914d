"""After each step: new tokens -> text (stop strings applied) -> each consumer's stream, and
the observer's metrics hooks. Runs on the engine thread. No torch here."""

from __future__ import annotations

import time
from typing import Any

from deepseek_runtime.engine.detokenizer import IncrementalDetokenizer
from deepseek_runtime.engine.protocol import EngineError, EngineObserver, FinishedRequest
from deepseek_runtime.engine.requests import notify
from deepseek_runtime.engine.scheduler import ScheduledBatch
from deepseek_runtime.engine.sequence import Sequence
from deepseek_runtime.engine.stream import RequestStream


class OutputProcessor:
    def __init__(self, tokenizer: Any, observer: EngineObserver | None = None) -> None:
        self.tokenizer = tokenizer
        self.observer = observer
        self.muted = False  # during warm-up, which is not traffic
        self.streams: dict[int, RequestStream] = {}  # added by submitters, removed here
        self._detokenizers: dict[int, IncrementalDetokenizer] = {}

    def _notify(self, hook: str, *args: Any) -> None:
        if not self.muted:
            notify(self.observer, hook, *args)

    def process(self, batch: ScheduledBatch) -> None:
        """Deliver what one step produced; a stop string may finish a sequence here."""
        self._notify("on_step", len(batch.seqs), batch.prefill_tokens, len(batch.decode))
        now = time.monotonic()
        for seq in batch.seqs:
            if seq.first_token_time is None:
                seq.first_token_time = now
                self._notify("on_first_token", now - seq.arrival_time)
            self._emit(seq)

    def _emit(self, seq: Sequence) -> None:
        detok = self._detokenizers.get(seq.seq_id)
        if detok is None:
            detok = IncrementalDetokenizer(self.tokenizer, seq.prompt_token_ids)
            self._detokenizers[seq.seq_id] = detok
        new = seq.output_token_ids[detok.consumed :]  # the step's token: no copy of the rest
        seq.add_text(detok.step(new, final=seq.is_finished))
        stream = self.streams.get(seq.seq_id)
        if stream is None:
            return
        text = seq.output.take(final=seq.is_finished)
        token = [seq.output_token_ids[-1]]
        if not stream.push(text, token, len(seq.output_token_ids), seq.finish_reason):
            seq.finish("abort")  # the consumer's event loop is gone

    def finish(self, seqs: list[Sequence]) -> None:
        """Forget finished sequences and report them (their final delta is already out)."""
        now = time.monotonic()
        for seq in seqs:
            self.streams.pop(seq.seq_id, None)
            self._detokenizers.pop(seq.seq_id, None)
            if seq.finish_reason is not None:
                finished = FinishedRequest(seq.prompt_len, len(seq.output_token_ids),
                                           now - seq.arrival_time, seq.finish_reason)  # fmt: skip
                self._notify("on_finish", finished)

    def abort(self, seq_id: int, seq: Sequence | None, deliver: bool) -> None:
        """A sequence was aborted: tell its consumer (at shutdown) or not (it left), then forget."""
        stream = self.streams.get(seq_id)
        if deliver and stream is not None and seq is not None:
            stream.push("", [], len(seq.output_token_ids), "abort")
        if seq is None:
            self.streams.pop(seq_id, None)
            self._detokenizers.pop(seq_id, None)
        else:
            self.finish([seq])

    def fail(self, seq_id: int, error: EngineError) -> None:
        stream = self.streams.get(seq_id)
        if stream is not None:
            stream.fail(error)
