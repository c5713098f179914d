#!/usr/bin/env bash
# Start the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok and two
# fake GPU nodes) in $DEEPSEEK_CLUSTER_DIR (default .run/cluster). Idempotent: a healthy cluster is
# reused. Prints the KUBECONFIG export on stderr; `eval "$(cd hack && python3 -m localcluster env)"`
# sets it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster-python.sh
source "$here/cluster-python.sh"
py="$(cluster_python)"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m localcluster up "$@"
