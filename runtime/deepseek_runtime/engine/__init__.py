"""The engine: a pure scheduler and a torch runner.

Pure (no torch): protocol (the contract with the front doors), config, sequence, scheduler,
blocks (the KV block manager and prefix reuse), step (the runner's per-step input), requests
(admission), detokenizer, stream (engine -> consumer mailbox), output.
Torch: runner (one forward per step), kvcache (the paged KV pools), sampling, engine (the
thread; build_engine).
"""
