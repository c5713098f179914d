"""The threaded engine against real (tiny) models: batching must not change a single token."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from devkit.prompts import chat_ids

from deepseek_runtime.engine.config import EngineConfig
from deepseek_runtime.engine.protocol import (
    EngineError,
    EngineShuttingDownError,
    FinishedRequest,
    FinishReason,
    GenerationRequest,
    PromptTooLongError,
    QueueFullError,
    SamplingParams,
)
from deepseek_runtime.model.loader import LoadedModel, load_model
from deepseek_runtime.runner import cpu_kernels
from deepseek_runtime.runner.loop import LLMEngine, build_engine
from deepseek_runtime.runner.sampling import sample

pytestmark = pytest.mark.runtime

ARCH_FIXTURES = ["tiny_llama_dir", "tiny_qwen2_dir", "tiny_deepseek_v3_dir"]
PROMPT = (11, 42, 7, 99, 150)


@dataclasses.dataclass
class Result:
    tokens: list[int]
    text: str
    finish: FinishReason | None
    deltas: int


@pytest.fixture(scope="module")
def qwen2(tiny_qwen2_dir: Path) -> LoadedModel:
    return load_model(tiny_qwen2_dir)


@contextlib.contextmanager
def running(loaded: LoadedModel, **config: Any) -> Iterator[LLMEngine]:
    engine = LLMEngine(loaded, EngineConfig(**config)).start()
    assert engine.wait_ready(120)
    try:
        yield engine
    finally:
        engine.shutdown(drain=False)


def greedy(max_tokens: int | None, **params: Any) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, **params)


async def collect(
    engine: LLMEngine, prompt: Sequence[int], params: SamplingParams, pause_s: float = 0.0
) -> Result:
    out = Result([], "", None, 0)
    async for delta in engine.generate(GenerationRequest("r", tuple(prompt), params)):
        out.tokens += delta.token_ids
        out.text += delta.text
        out.finish = delta.finish_reason
        out.deltas += 1
        assert delta.completion_tokens == len(out.tokens)
        if pause_s:
            await asyncio.sleep(pause_s)
    return out


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def reference(loaded: LoadedModel, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
    ids = torch.tensor([list(prompt)])
    out = loaded.model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens
    )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("head", ["as loaded", "input-major"])
@pytest.mark.parametrize("model_dir", ARCH_FIXTURES)
def test_concurrent_greedy_matches_generate(
    model_dir: str, head: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 prompts of different lengths, more than fit at once: sequences join and leave the
    batch mid-flight, so padding, masks, positions and cache splicing are all exercised. The
    engine times the two lm_head layouts at start-up (cpu_kernels); both are forced here."""
    monkeypatch.setattr(cpu_kernels, "MIN_GAIN", float("inf") if head == "as loaded" else 0.0)
    loaded = load_model(request.getfixturevalue(model_dir))
    rng = random.Random(1)
    vocab = loaded.model.config.vocab_size
    prompts = [[rng.randrange(3, vocab) for _ in range(rng.randint(1, 40))] for _ in range(16)]
    lengths = [rng.randint(4, 12) for _ in prompts]
    expected = [reference(loaded, p, n) for p, n in zip(prompts, lengths, strict=True)]
    with running(loaded, max_num_seqs=6, max_num_batched_tokens=96) as engine:

        async def main() -> list[Result]:
            jobs = [collect(engine, p, greedy(n)) for p, n in zip(prompts, lengths, strict=True)]
            return await asyncio.gather(*jobs)

        results = asyncio.run(main())
    swapped = isinstance(loaded.model.get_output_embeddings(), cpu_kernels.InputMajorLinear)
    assert swapped == (head == "input-major")
    assert [r.tokens for r in results] == expected
    tokenizer = loaded.tokenizer
    assert [r.text for r in results] == [
        tokenizer.decode(e, skip_special_tokens=True) for e in expected
    ]


def test_seeded_sampling_is_reproducible(qwen2: LoadedModel) -> None:
    def params(seed: int) -> SamplingParams:
        return SamplingParams(max_tokens=12, temperature=1.5, top_p=0.95, top_k=50, seed=seed,
                              ignore_eos=True)  # fmt: skip

    with running(qwen2, max_num_seqs=16) as engine:

        async def main() -> list[Result]:
            jobs = [collect(engine, PROMPT, params(7)) for _ in range(3)]
            jobs += [collect(engine, PROMPT, params(seed)) for seed in range(8)]
            jobs += [collect(engine, PROMPT[:2], greedy(20))]  # other traffic in the batch
            return await asyncio.gather(*jobs)

        batched = asyncio.run(main())
        alone = asyncio.run(collect(engine, PROMPT, params(7)))
    assert batched[0].tokens == batched[1].tokens == batched[2].tokens == alone.tokens
    assert len({tuple(r.tokens) for r in batched[3:11]}) > 1


def test_top_k_and_top_p_limit_the_choices() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 3).log()
    params = [SamplingParams(top_k=2), SamplingParams(top_p=0.6), SamplingParams(top_k=1)]
    shared = torch.Generator().manual_seed(0)
    seen: list[set[int]] = [set(), set(), set()]
    for _ in range(300):
        for row, token in enumerate(sample(logits, params, [None] * 3, shared)):
            seen[row].add(token)
    assert seen == [{0, 1}, {0, 1}, {0}]


def test_stop_strings_eos_and_max_tokens(qwen2: LoadedModel) -> None:
    with running(qwen2) as engine:
        full = asyncio.run(collect(engine, PROMPT, greedy(24, ignore_eos=True)))
        assert full.finish == "length" and len(full.tokens) == 24
        text = full.text
        stop = next(
            text[i : i + 2]
            for i in range(len(text) // 3, len(text) - 2)
            if text[i : i + 2].strip() and "\ufffd" not in text[i : i + 2]
        )
        params = greedy(24, ignore_eos=True, stop=("never in the output", stop))
        cut = asyncio.run(collect(engine, PROMPT, params))
    assert cut.finish == "stop" and cut.text == text[: text.find(stop)]

    marker = full.tokens[3]  # pretend the 4th token is the model's EOS
    with running(dataclasses.replace(qwen2, eos_token_ids=(marker,))) as engine:
        eos = asyncio.run(collect(engine, PROMPT, greedy(24)))
    assert eos.finish == "stop" and eos.tokens == full.tokens[: full.tokens.index(marker) + 1]


def test_the_max_tokens_policy(qwen2: LoadedModel) -> None:
    with running(qwen2, max_model_len=64, default_max_tokens=10) as engine:
        assert engine.max_model_len == 64
        with pytest.raises(PromptTooLongError, match="prompt is 64 tokens"):
            asyncio.run(collect(engine, [5] * 64, greedy(1)))
        with pytest.raises(PromptTooLongError, match="max_tokens=5 need 65"):
            asyncio.run(collect(engine, [5] * 60, greedy(5)))
        rest = asyncio.run(collect(engine, [5] * 60, greedy(None, ignore_eos=True)))
        capped = asyncio.run(collect(engine, [5] * 20, greedy(None, ignore_eos=True)))
    assert rest.finish == "length" and len(rest.tokens) == 4
    assert capped.finish == "length" and len(capped.tokens) == 10


def test_closing_or_cancelling_frees_the_slot(qwen2: LoadedModel) -> None:
    with running(qwen2, max_num_seqs=1) as engine:

        async def main() -> None:
            stream = engine.generate(GenerationRequest("a", PROMPT, greedy(400, ignore_eos=True)))
            await stream.__anext__()
            assert engine.stats().running == 1
            await stream.aclose()  # what a front door does when its client disconnects
            await until(lambda: engine.stats().running == 0)
            task = asyncio.create_task(collect(engine, PROMPT, greedy(400, ignore_eos=True)))
            await until(lambda: engine.stats().running == 1)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await until(lambda: engine.stats().running == 0)
            after = await collect(engine, PROMPT, greedy(3, ignore_eos=True))
            assert after.finish == "length"
            await until(lambda: engine.stats().kv_blocks_used == 0)  # its KV blocks are free too

        asyncio.run(main())


def test_waiting_gauge_rises_then_returns_to_zero_and_the_queue_is_bounded(
    qwen2: LoadedModel,
) -> None:
    with running(qwen2, max_num_seqs=2, max_queue=6) as engine:

        async def main() -> list[Result]:
            long = [asyncio.create_task(collect(engine, PROMPT, greedy(300, ignore_eos=True)))
                    for _ in range(2)]  # fmt: skip
            await until(lambda: engine.stats().running == 2)
            queued = [asyncio.create_task(collect(engine, PROMPT, greedy(5))) for _ in range(6)]
            await until(lambda: engine.stats().waiting == 6)
            with pytest.raises(QueueFullError) as excinfo:
                await collect(engine, PROMPT, greedy(5))
            assert excinfo.value.status_code == 429
            return await asyncio.gather(*long, *queued)

        results = asyncio.run(main())
        assert all(r.finish in ("stop", "length") for r in results)
        stats = engine.stats()
    assert (stats.waiting, stats.running, stats.max_running) == (0, 0, 2)
    assert stats.kv_cache_usage == 0.0


def test_any_event_loop_in_any_thread(qwen2: LoadedModel) -> None:
    prompts = [PROMPT[: i + 1] for i in range(5)]
    expected = [reference(qwen2, p, 6) for p in prompts]
    results: dict[int, list[list[int]]] = {}
    with running(qwen2, max_num_seqs=8) as engine:

        def client(k: int) -> None:
            async def main() -> list[Result]:
                return await asyncio.gather(*(collect(engine, p, greedy(6)) for p in prompts))

            results[k] = [r.tokens for r in asyncio.run(main())]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert results == {k: expected for k in range(3)}


def test_a_slow_consumer_gets_coalesced_deltas(qwen2: LoadedModel) -> None:
    with running(qwen2) as engine:
        slow = asyncio.run(collect(engine, PROMPT, greedy(60, ignore_eos=True), pause_s=0.1))
    assert len(slow.tokens) == 60 and slow.finish == "length"
    assert slow.deltas < 30  # one delta per read, not one per token


def test_observer_sees_steps_first_tokens_and_finishes(qwen2: LoadedModel) -> None:
    calls: list[tuple[str, Any]] = []

    class Recorder:
        def on_step(self, batch_size: int, prefill_tokens: int, decode_tokens: int) -> None:
            calls.append(("step", (batch_size, prefill_tokens, decode_tokens)))

        def on_first_token(self, seconds: float) -> None:
            calls.append(("first", seconds))

        def on_finish(self, finished: FinishedRequest) -> None:
            calls.append(("finish", (finished.prompt_tokens, finished.completion_tokens,
                                     finished.finish_reason)))  # fmt: skip

    engine = LLMEngine(qwen2, EngineConfig(), observer=Recorder()).start()
    engine.wait_ready()
    try:
        asyncio.run(collect(engine, PROMPT, greedy(4, ignore_eos=True)))
    finally:
        engine.shutdown()
    assert [c for c in calls if c[0] == "finish"] == [("finish", (5, 4, "length"))]
    assert len([c for c in calls if c[0] == "first"]) == 1
    steps = [c[1] for c in calls if c[0] == "step"]
    assert steps[0] == (1, 5, 0) and steps[1:] == [(1, 0, 1)] * 3


def test_shutdown_drains_or_aborts(qwen2: LoadedModel) -> None:
    for drain, reason in ((True, "length"), (False, "abort")):
        engine = LLMEngine(qwen2, EngineConfig())
        assert not engine.is_ready()  # not before the load and a warm-up generation
        assert engine.start().wait_ready(60) and engine.is_ready()

        async def main(engine: LLMEngine = engine, drain: bool = drain) -> list[Result]:
            params = greedy(30 if drain else 400, ignore_eos=True)
            tasks = [asyncio.create_task(collect(engine, PROMPT, params)) for _ in range(3)]
            await until(lambda: engine.stats().running == 3)
            await asyncio.to_thread(engine.shutdown, drain, 30.0)
            with pytest.raises(EngineShuttingDownError):
                await collect(engine, PROMPT, greedy(1))
            return await asyncio.gather(*tasks)

        results = asyncio.run(main())
        assert {r.finish for r in results} == {reason}
        assert not engine.is_ready()


def test_a_failed_step_fails_its_requests_and_serving_goes_on(qwen2: LoadedModel) -> None:
    with running(qwen2) as engine:
        original = engine.runner.run
        calls = []

        def flaky(batch: Any) -> list[int]:
            calls.append(batch)
            if len(calls) == 1:
                raise RuntimeError("boom")
            return original(batch)

        engine.runner.run = flaky  # type: ignore[method-assign]
        with pytest.raises(EngineError, match="boom"):
            asyncio.run(collect(engine, PROMPT, greedy(4)))
        assert asyncio.run(collect(engine, PROMPT, greedy(4, ignore_eos=True))).finish == "length"
        assert engine.stats().running == 0 and engine.is_ready()


def test_build_engine_loads_and_starts(tiny_llama_dir: Path) -> None:
    engine = build_engine(str(tiny_llama_dir), config=EngineConfig(max_num_seqs=2))
    try:
        assert engine.is_ready() and engine.model_name == tiny_llama_dir.name
        assert engine.tokenizer.chat_template
        assert asyncio.run(collect(engine, PROMPT, greedy(3, ignore_eos=True))).finish == "length"
    finally:
        engine.shutdown()


def test_smollm2_knows_the_capital_of_france(smollm2_loaded: LoadedModel) -> None:
    prompt = chat_ids(smollm2_loaded.tokenizer, "What is the capital of France?")
    with running(smollm2_loaded, max_model_len=512) as engine:
        answer = asyncio.run(collect(engine, prompt, greedy(24)))
        cut = asyncio.run(collect(engine, prompt, greedy(24, stop=("Paris",))))
    assert "Paris" in answer.text and answer.finish == "stop"
    assert cut.text == answer.text[: answer.text.index("Paris")] and cut.finish == "stop"
