"""What the tests, the benchmarks and the local cluster share: free ports, percentiles, and
(as they move here) runtime servers on free ports and tiny offline models.

A plain package under hack/: tests (tests/conftest.py) and benchmarks put hack/ on sys.path.
Standard library only at import time, so the cluster scripts can use it before `make install`.
"""
