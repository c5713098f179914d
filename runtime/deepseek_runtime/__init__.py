"""DeepSeek runtime: Triton + a torch engine with continuous batching.

server/   the process: settings, flags, start-up checks, serving and draining, metrics
doors/    the front doors (openai/, triton/) and the path they share into the engine
guards/   API keys and roles, the audit log, weight integrity, the output filter
engine/   continuous batching: a torch-free scheduler and a torch runner
model/    finding, checking and loading weights (offline), quantization per machine
"""
