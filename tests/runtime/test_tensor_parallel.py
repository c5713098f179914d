"""Tensor parallelism through real processes, gloo on CPU (issue 11): `serve
--tensor-parallel-size 2` in one pod (it starts its second rank itself), and a LeaderWorkerSet
group of two "pods" started as the LWS controller starts them (the same `serve`, told apart by
LWS_* variables, on loopback). Greedy output through the OpenAI door under concurrent batching
is token-for-token transformers' single-process `generate`; a rank that dies takes the server
down (not ready, then a non-zero exit), never a hang; what cannot be sharded is refused."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import torch
from devkit.ports import free_ports
from devkit.runtime_server import RuntimeServer, run_to_exit, serve_command, start_server

from deepseek_runtime.model.loader import load_model

pytestmark = pytest.mark.runtime

PROMPTS = [[40 + 7 * i + j for j in range(3 + 5 * i)] for i in range(6)]  # 3 to 28 tokens
NEW_TOKENS = [12, 7, 10, 5, 12, 9]
COMMON = ("--no-triton", "--tensor-parallel-size", "2", "--max-num-seqs", "4",
          "--max-model-len", "256", "--served-model-name", "tiny")  # fmt: skip


@dataclass
class Replica:
    arch: str
    model: Path
    server: RuntimeServer  # rank 0
    worker: subprocess.Popen[bytes] | None = None  # the second pod of an LWS group

    def rank1_pid(self) -> int:
        if self.worker is not None:
            return self.worker.pid
        pid = self.server.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children  # the one local rank serve started
        return int(children[0])

    def stop(self) -> None:
        self.server.stop()
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait()


def lws_env(index: int) -> dict[str, str]:
    return {"LWS_LEADER_ADDRESS": "127.0.0.1", "LWS_GROUP_SIZE": "2",
            "LWS_WORKER_INDEX": str(index)}  # fmt: skip


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_llama_dir: Path,
    tiny_qwen2_dir: Path,
    tiny_deepseek_v3_dir: Path,
) -> Iterator[dict[str, Replica]]:
    """Tiny Llama and DeepseekV3 in one pod each; tiny Qwen2 as a group of two pods. All
    start at once."""
    work = tmp_path_factory.mktemp("tensor-parallel")
    one_pod, group, deepseek_pod = free_ports(3)
    llama = start_server(work, "--model", str(tiny_llama_dir), *COMMON,
                         "--rendezvous-port", str(one_pod), wait=False)  # fmt: skip
    deepseek = start_server(work, "--model", str(tiny_deepseek_v3_dir), *COMMON,
                            "--rendezvous-port", str(deepseek_pod), wait=False)  # fmt: skip
    qwen_args = ("--model", str(tiny_qwen2_dir), *COMMON, "--rendezvous-port", str(group))
    qwen = start_server(work, *qwen_args, wait=False, env=lws_env(0))
    with (work / "worker-pod.log").open("wb") as out:
        worker = subprocess.Popen(
            serve_command(*qwen_args), stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **lws_env(1)},
        )  # fmt: skip
    started = {"llama": Replica("llama", tiny_llama_dir, llama),
               "qwen2": Replica("qwen2", tiny_qwen2_dir, qwen, worker),
               "deepseek_v3": Replica("deepseek_v3", tiny_deepseek_v3_dir, deepseek)}  # fmt: skip
    try:
        for replica in started.values():
            replica.server.wait_ready()
        yield started
    finally:
        for replica in started.values():
            replica.stop()


def reference(model: Path) -> list[str]:
    """Single-process transformers `generate`, greedy, one prompt at a time."""
    loaded = load_model(model)
    texts = []
    for prompt, new in zip(PROMPTS, NEW_TOKENS, strict=True):
        ids = torch.tensor([prompt])
        out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=new)  # fmt: skip
        texts.append(loaded.tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True))
    return texts


@pytest.mark.parametrize("arch", ["llama", "qwen2", "deepseek_v3"])
def test_two_ranks_give_generates_tokens_under_concurrent_batching(
    replicas: dict[str, Replica], arch: str
) -> None:
    """Six prompts of 3 to 28 tokens through four running slots: sequences join and leave the
    batch while others decode, on both ranks at once."""
    replica = replicas[arch]
    client = openai.OpenAI(base_url=replica.server.url("/v1"), api_key="none", max_retries=0)

    def complete(i: int) -> tuple[str, int]:
        r = client.completions.create(model="tiny", prompt=PROMPTS[i], max_tokens=NEW_TOKENS[i],
                                      temperature=0)  # fmt: skip
        assert r.usage is not None
        return r.choices[0].text, r.usage.completion_tokens

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        got = list(pool.map(complete, range(len(PROMPTS))))
    assert [text for text, _ in got] == reference(replica.model)
    assert [n for _, n in got] == NEW_TOKENS  # the random models never pick EOS this early
    assert replica.server.proc.poll() is None


def statuses_until_exit(server: RuntimeServer, timeout_s: float) -> tuple[set[int], float]:
    """Poll /ready until the process exits: the statuses seen, and how long the exit took."""
    seen: set[int] = set()
    start = time.monotonic()
    while server.proc.poll() is None and time.monotonic() - start < timeout_s:
        with contextlib.suppress(httpx.HTTPError):
            seen.add(httpx.get(server.url("/ready"), timeout=1).status_code)
        time.sleep(0.1)
    return seen, time.monotonic() - start


@pytest.mark.parametrize(
    ("arch", "within_s"),
    [("llama", 15.0), ("qwen2", 30.0)],  # a local child is watched; a remote pod heartbeats
    ids=["local-rank", "worker-pod"],
)
def test_a_rank_that_dies_takes_the_server_down(
    replicas: dict[str, Replica], arch: str, within_s: float
) -> None:
    server = replicas[arch].server
    assert httpx.get(server.url("/ready"), timeout=5).status_code == 200
    os.kill(replicas[arch].rank1_pid(), signal.SIGKILL)
    seen, took = statuses_until_exit(server, within_s + 30)
    assert server.proc.returncode not in (None, 0), server.tail()
    assert took < within_s, (took, server.tail())
    assert 503 in seen, (seen, server.tail())
    assert "tensor-parallel rank lost" in server.logs()


def test_sigterm_stops_every_rank_cleanly(replicas: dict[str, Replica]) -> None:
    """A drain is no lost rank: rank 0 tells the others to stop, and the exit code is 0."""
    replica = replicas["deepseek_v3"]
    child = replica.rank1_pid()
    assert replica.server.stop() == 0, replica.server.tail()
    assert "tensor-parallel rank lost" not in replica.server.logs()
    assert not Path(f"/proc/{child}").exists()  # stopped and reaped by rank 0


def test_what_cannot_be_sharded_is_refused_before_loading(
    tiny_llama_dir: Path, smollm2_gguf: Path
) -> None:
    bad_degree = run_to_exit(serve_command("--model", str(tiny_llama_dir), "--no-triton",
                                           "--tensor-parallel-size", "3"))  # fmt: skip
    assert bad_degree.returncode == 1
    assert "num_attention_heads = 4 of" in bad_degree.stderr
    assert "does not divide into 3 equal shards" in bad_degree.stderr
    gguf = run_to_exit(serve_command("--model", str(smollm2_gguf), "--no-triton",
                                     "--tensor-parallel-size", "2"))  # fmt: skip
    assert gguf.returncode == 1
    assert f"{smollm2_gguf.name} is a GGUF file" in gguf.stderr
    assert "Loading weights" not in bad_degree.stderr + gguf.stderr
