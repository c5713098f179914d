# shellcheck shell=bash
# Sourced by hack/cluster-*.sh. localcluster needs only the standard library and `cryptography`;
# prefer the project's venv, but fall back to any python3 that has it, so the control plane can
# come up before (or without) `make install`.
cluster_python() {
  local repo candidate
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  for candidate in "$repo/.venv/bin/python" python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import cryptography' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "cluster: no python3 with the 'cryptography' package; run 'make install'" >&2
  return 1
}
