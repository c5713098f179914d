"""The engine-to-consumer mailbox: coalescing, cross-thread wakeups, errors (no torch)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from deepseek_runtime.engine.protocol import EngineError
from deepseek_runtime.engine.stream import RequestStream


def test_a_slow_consumer_gets_one_coalesced_delta() -> None:
    async def main() -> None:
        stream = RequestStream(asyncio.get_running_loop(), prompt_tokens=3)
        for i in range(5):  # five engine steps before the consumer looks
            assert stream.push(f"t{i}", [i], i + 1)
        delta = await stream.next_delta()
        assert delta.token_ids == [0, 1, 2, 3, 4] and delta.text == "t0t1t2t3t4"
        assert delta.completion_tokens == 5 and delta.prompt_tokens == 3
        assert delta.finish_reason is None and not stream.closed
        stream.push("", [5], 6, "length")
        last = await stream.next_delta()
        assert last.token_ids == [5] and last.finish_reason == "length" and stream.closed

    asyncio.run(main())


def test_pushes_from_another_thread_wake_the_loop() -> None:
    async def main() -> list[int]:
        stream = RequestStream(asyncio.get_running_loop(), prompt_tokens=1)

        def engine() -> None:
            for i in range(100):
                stream.push("x", [i], i + 1, "stop" if i == 99 else None)

        threading.Thread(target=engine).start()
        got: list[int] = []
        while not stream.closed:
            got += (await stream.next_delta()).token_ids
        return got

    assert asyncio.run(main()) == list(range(100))


def test_first_token_at_once_then_every_n_tokens() -> None:
    async def main() -> None:
        stream = RequestStream(asyncio.get_running_loop(), 1, wake_every=3)
        stream.push("a", [1], 1)
        assert (await stream.next_delta()).text == "a"  # time to first token is not delayed
        stream.push("b", [2], 2)
        stream.push("c", [3], 3)
        await asyncio.sleep(0)
        assert not stream.event.is_set()  # not yet due
        stream.push("d", [4], 4)
        assert (await stream.next_delta()).text == "bcd"

    asyncio.run(main())


def test_errors_reach_the_consumer() -> None:
    async def main() -> None:
        stream = RequestStream(asyncio.get_running_loop(), 1)
        stream.fail(EngineError("boom"))
        with pytest.raises(EngineError, match="boom"):
            await stream.next_delta()
        assert stream.closed

    asyncio.run(main())


def test_a_closed_loop_tells_the_engine_to_abort() -> None:
    loop = asyncio.new_event_loop()
    stream = RequestStream(loop, 1)
    loop.close()
    assert stream.push("x", [1], 1) is False
