#!/usr/bin/env bash
# Stop the local control plane: only the pids recorded in the run dir, SIGTERM then SIGKILL after
# a grace period, then remove the run dir. Idempotent: nothing to stop is not an error.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster-python.sh
source "$here/cluster-python.sh"
py="$(cluster_python)"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m localcluster down "$@"
