#!/usr/bin/env python3
"""How far `--quantization int8` and `gguf` on CPU (compact_weights.py, gguf_weights.py)
move from fp32.

    .venv/bin/python bench/cpu_quality.py [--tokens 40]

On the bundled SmolLM2 GGUF: for each of four chat prompts, fp32's greedy continuation of
--tokens tokens (4 x 40 = 160 in all) is fed to both models at once (teacher forcing), and the
share of positions where each mode's top-1 token is fp32's is reported, with each model's answer to
"What is the capital of France?". Prints a small markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hack"))  # devkit
from devkit.prompts import chat_ids

PROMPTS = (
    "Write a short story about a robot who learns to paint.",
    "Explain how photosynthesis works.",
    "What is the capital of France?",
    "List three tips for staying healthy.",
)


def greedy(model: Any, config: Any, ids: list[int], n: int) -> list[int]:
    import torch
    from transformers import DynamicCache

    cache, out, x = DynamicCache(config=config), [], torch.tensor([ids])
    for _ in range(n):
        token = int(model(x, cache=cache, logits_to_keep=1).logits[0, -1].argmax())
        out.append(token)
        x = torch.tensor([[token]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=40)
    args = parser.parse_args()
    import torch

    from deepseek_runtime.model import gguf_weights
    from deepseek_runtime.model.compact import compact_model
    from deepseek_runtime.model.compact_weights import quantize_int8
    from deepseek_runtime.model.gguf_layer import fuse_layers
    from deepseek_runtime.model.gguf_weights import use_gguf_blocks
    from deepseek_runtime.model.loader import load_model
    from deepseek_runtime.model.source import default_model_path

    loaded = load_model()
    fp32, tokenizer = loaded.model, loaded.tokenizer
    modes = {
        "int8": quantize_int8(compact_model(fp32), tokenizer),  # type: ignore[arg-type]
        "gguf": fuse_layers(use_gguf_blocks(compact_model(fp32), default_model_path())),  # type: ignore[arg-type]
    }
    # Teacher forcing runs a whole conversation as one forward, which gguf would run as a
    # prefill (float GEMMs from DENSE_ROWS rows). Every position through the integer kernels
    # instead, as each decode step computes it: the conservative figure.
    gguf_weights.DENSE_ROWS = 1 << 30
    rows = ["| prompt | " + " | ".join(f"{m} top-1 agreement" for m in modes) + " |",
            "| --- |" + " ---: |" * len(modes)]  # fmt: skip
    agree = dict.fromkeys(modes, 0)
    total = 0
    with torch.inference_mode():
        for text in PROMPTS:
            ids = chat_ids(tokenizer, text)
            full = torch.tensor([ids + greedy(fp32, fp32.config, ids, args.tokens)])
            want = fp32(full, use_cache=False).logits[0, len(ids) - 1 : -1].argmax(-1)
            cells = []
            for name, model in modes.items():
                got = model(full, use_cache=False).logits[0, len(ids) - 1 : -1].argmax(-1)
                same = int((got == want).sum())
                agree[name] += same
                cells.append(f"{same / args.tokens:.0%}")
            total += args.tokens
            rows.append(f"| {text} | " + " | ".join(cells) + " |")
        rows.append(f"| all {total} tokens | "
                    + " | ".join(f"{agree[m] / total:.1%}" for m in modes) + " |")  # fmt: skip
        france = chat_ids(tokenizer, PROMPTS[2])
        answers = {}
        for name, model in (("fp32", fp32), *modes.items()):
            answer = greedy(model, fp32.config, france, 12)
            answers[name] = tokenizer.decode(answer, skip_special_tokens=True)
    print("\n".join(rows))
    for name, answer in answers.items():
        print(f"\n{name}: {answer!r}")


if __name__ == "__main__":
    main()
