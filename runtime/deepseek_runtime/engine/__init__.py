"""The engine's torch-free side (import-linter holds it to that, the whole package):
protocol (the contract with the front doors), config, sequence, scheduler, blocks (the KV block
manager and prefix reuse), step (the runner's per-step input), requests (admission), detokenizer,
stream (engine -> consumer mailbox), output. The torch side that drives it is ../runner/.
"""
