"""What the tests, the benchmarks and the local cluster share: free ports, percentiles, JSON
merge patch, runtime servers on free ports, chat prompts, tiny offline models, and the load and
sampling of an autoscaling episode.

A plain package under hack/: tests (tests/conftest.py) and benchmarks put hack/ on sys.path.
Standard library only at import time, so the cluster scripts can use it before `make install`.
"""
