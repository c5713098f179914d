"""A real Kubernetes cluster on this machine, for the tests, the benchmarks and the demo.

etcd, kube-apiserver, controller-manager, scheduler, kwok (two fake 8-GPU nodes) and the
LeaderWorkerSet controller (lws), built from their Go modules by hack/build-control-plane.sh.
Standard library plus `cryptography` only, so it runs before (or without) `make install`.

    python3 -m localcluster up      # from hack/: idempotent, reuses a healthy cluster
    python3 -m localcluster down    # stops only the pids recorded in the run dir, removes it
    python3 -m localcluster status  # exit 0 when the recorded cluster answers /readyz
    python3 -m localcluster env     # prints `export KUBECONFIG=...`
    python3 -m localcluster up --real-node  # plus a real node running the project's images
    python3 -m localcluster images  # builds them (and loads them into a running real node)
    python3 -m localcluster up --real-node --metrics --keda  # plus KEDA (keda-up/keda-down
                                    # add it to, or take it from, a running cluster)

Modules: config (paths, versions, address ranges), pki (certificates), processes (start, wait,
stop by pid), api (a client without a client library), nodes (the fake GPU nodes), control_plane
(the components and their flags), images (buildah), node_config and realnode (the real
node: containerd, kubelet, kube-proxy on a bridge of its own), netpol (its NetworkPolicy agent,
kube-router's firewall controller), lws (LeaderWorkerSet: CRD, controller, webhooks on loopback),
metrics (Prometheus, prometheus-adapter), keda (KEDA's operator and metrics server; keda_trim
trims its source for the build), lifecycle (up/down), cli.
"""
