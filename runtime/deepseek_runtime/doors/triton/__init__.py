"""Triton's KServe v2 door through nvidia-pytriton: server (the tritonserver process and its two
models), models (the bound callables), tensors (inputs in, outputs out)."""
