"""The process: flags (generated from ../settings.py), cli, startup (checks before the model
loads), run (serving and draining), listeners (the OpenAI and metrics ports, one server), worker
(this pod's tensor-parallel ranks), drain."""
