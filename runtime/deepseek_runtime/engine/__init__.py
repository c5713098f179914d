"""The engine: a pure scheduler and a torch runner.

Pure (no torch): protocol (the contract with the front doors), config, sequence, scheduler,
requests (admission), detokenizer, stream (engine -> consumer mailbox), output.
Torch: runner (prefill + batched decode), kvcache, sampling, engine (the thread; build_engine).
"""
