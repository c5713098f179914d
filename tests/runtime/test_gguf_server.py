"""`--quantization gguf` (model/gguf_weights.py) on the real SmolLM2 GGUF: the compact model
computing from the file's Q4_1 and Q8_0 blocks, sane through both doors; refused where it
cannot apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_smollm2_server import chat_answer, triton_stream

from deepseek_runtime.model.compact import CompactCausalLM
from deepseek_runtime.model.gguf_weights import BlockLinear
from deepseek_runtime.model.loader import load_model
from deepseek_runtime.model.quantization import UnsupportedQuantizationError

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def gguf_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from devkit.runtime_server import start_server

    server = start_server(tmp_path_factory.mktemp("gguf-server"), "--quantization", "gguf",
                          "--max-num-seqs", "4")  # fmt: skip
    yield server
    server.stop()


def test_every_linear_of_smollm2_runs_from_the_files_blocks(smollm2_gguf: Path) -> None:
    loaded = load_model(smollm2_gguf, quantization="gguf")
    model = loaded.model
    assert isinstance(model, CompactCausalLM) and loaded.quantization == "gguf"
    for layer in model.decoder_layers():
        for linear in (layer.qkv, layer.o_proj, layer.gate_up, layer.down):
            assert isinstance(linear, BlockLinear) and linear.m is not None  # Q4_1
    assert isinstance(model.lm_head, BlockLinear) and model.lm_head.m is None  # Q8_0 (tied)


def test_openai_door_knows_paris(gguf_server: Any) -> None:
    assert "Paris" in chat_answer(gguf_server)


def test_triton_door_knows_paris(gguf_server: Any) -> None:
    responses = triton_stream(gguf_server, "The capital of France is", 8, ignore_eos=False)
    assert "Paris" in "".join(r.as_numpy("text_output")[0].decode() for r in responses)


def test_gguf_needs_a_gguf_file(tiny_llama_dir: Path) -> None:
    with pytest.raises(UnsupportedQuantizationError, match=r"must be a \.gguf file"):
        load_model(tiny_llama_dir, quantization="gguf")
    with pytest.raises(UnsupportedQuantizationError, match="float32"):
        load_model(tiny_llama_dir, dtype="bfloat16", quantization="gguf")
