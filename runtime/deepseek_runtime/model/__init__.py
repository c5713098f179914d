"""Finding and loading a model's weights, offline: source (where the weights are),
quantization (what this machine can run), loader (weights -> model + tokenizer).

Nothing here downloads. The switches below are set before anything imports transformers:
huggingface_hub reads them once, on import.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
