"""Markdown the README carries, generated from the code so it cannot drift: the CR reference
(from the CRD schema) and the GPU sizing table (from sizing). ``make readme`` refreshes both;
a unit test fails when the README is stale."""

from __future__ import annotations

import re
from typing import Any

from deepseek_operator.api import DEFAULT_MAX_NODES
from deepseek_operator.catalog import GPUS, MODELS
from deepseek_operator.crd import crd
from deepseek_operator.sizing import DEFAULT_MAX_MODEL_LEN, SizingError, check_product, plan

SIZING_GPUS = [
    "NVIDIA-L4",
    "NVIDIA-A100-SXM4-40GB",
    "NVIDIA-A100-SXM4-80GB",
    "NVIDIA-H100-80GB-HBM3",
    "NVIDIA-H200",
]
SIZING_QUANTIZATIONS = ["bf16", "fp8", "int8", "int4"]
SIZING_MODELS = [
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
    "deepseek-ai/DeepSeek-V2-Lite",
    "deepseek-ai/DeepSeek-Coder-V2-Instruct",
    "deepseek-ai/DeepSeek-R1",
]
CONCURRENCY = 32


def _cell(model_id: str, quantization: str, product: str) -> str:
    model = MODELS[model_id.lower()]
    gpu = GPUS[product.lower()]
    try:
        check_product(gpu, model, quantization)
        return plan(
            model,
            quantization,
            gpu_memory_gib=gpu.memory_gib,
            product=gpu.product,
            concurrency=CONCURRENCY,
            max_nodes=DEFAULT_MAX_NODES,
        ).layout()
    except SizingError as exc:
        return "x" if "FP8" in str(exc) else "-"


def sizing_table() -> str:
    lines = [
        "| model | params | " + " | ".join(SIZING_GPUS) + " |",
        "|" + " --- |" * (2 + len(SIZING_GPUS)),
    ]
    for model_id in SIZING_MODELS:
        model = MODELS[model_id.lower()]
        cells = [
            " / ".join(_cell(model_id, q, g) for q in SIZING_QUANTIZATIONS) for g in SIZING_GPUS
        ]
        lines.append(
            f"| {model_id.split('/')[1]} | {model.parameters / 1e9:.1f}B | "
            + " | ".join(cells)
            + " |"
        )
    note = (
        f"Each cell: GPUs per replica in {' / '.join(SIZING_QUANTIZATIONS)}, for "
        f"{CONCURRENCY} concurrent sequences of {DEFAULT_MAX_MODEL_LEN} tokens. `8x4`: 8 GPUs "
        "on each of 4 nodes, a LeaderWorkerSet group per replica; `-`: more than "
        f"{DEFAULT_MAX_NODES} nodes of 8 GPUs (`resources.gpu.maxNodes`); `x`: the GPU has no "
        "FP8 tensor cores. Reproduce any cell with `deepseek-operator size MODEL -q Q --gpu "
        "PRODUCT`."
    )
    return "\n".join([*lines, "", note])


def _rows(node: dict[str, Any], path: str) -> list[str]:
    out = []
    for name, child in (node.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        kind = "int or 'auto'" if child.get("x-kubernetes-int-or-string") else child.get("type", "")
        if kind == "array":
            kind = f"[]{(child.get('items') or {}).get('type', '')}"
        default = child.get("default")
        default_text = "" if default in (None, {}) else f"`{default}`"
        enum = child.get("enum")
        description = re.sub(r"\s+", " ", child.get("description", "")).replace("|", "\\|")
        if enum:
            description += " One of: " + ", ".join(f"`{e}`" for e in enum) + "."
        out.append(f"| `{here}` | {kind} | {default_text} | {description} |")
        if child.get("type") == "object":
            out.extend(_rows(child, here))
        elif child.get("type") == "array" and (child.get("items") or {}).get("properties"):
            out.extend(_rows(child["items"], here + "[]"))
    return out


def cr_reference() -> str:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rows = _rows(schema, "spec")
    return "\n".join(
        ["| field | type | default | description |", "| --- | --- | --- | --- |", *rows]
    )


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {start} ... {end} block")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def refresh_readme(text: str) -> str:
    text = replace_block(text, "cr-reference", cr_reference())
    return replace_block(text, "sizing-table", sizing_table())
