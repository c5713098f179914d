"""DeepSeek runtime: Triton + a torch engine with continuous batching."""
