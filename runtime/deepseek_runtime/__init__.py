"""DeepSeek runtime: Triton + a torch engine with continuous batching.

server/      the process: CLI, flags, start-up checks, serving and draining, tensor-parallel ranks
settings.py  ServerSettings, loaded and validated once (the one source of every `serve` flag)
metrics.py   Prometheus metrics (the HPA's queue gauge among them)
doors/       the front doors (openai/, triton/) and the path they share into the engine
guards/      API keys and roles, the audit log, weight integrity, the output filter
parallel/    tensor parallelism: one process per rank, rank 0 sends each step to the others
runner/      the torch side of the engine: its thread, the forward pass, KV pools, sampling
engine/      the torch-free side: the doors' contract, scheduler, KV blocks, sequences, streams
model/       finding, checking and loading weights (offline), quantization per machine
"""
