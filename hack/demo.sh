#!/usr/bin/env bash
# The whole product on one machine, no Docker, no GPU:
#   local control plane (hack/cluster-up.sh) -> helm install of the operator chart -> the operator
#   running from the working tree -> examples/r1-distill-qwen-7b.yaml reconciled to Ready ->
#   the runtime serving its embedded SmolLM2 model locally, answering one chat request.
#
# Ctrl-C (or DEMO_EXIT=1, which exits once everything is printed) stops what this script started:
# the runtime, the operator and, if it was not already running, the cluster.
#
# Environment: DEMO_EXIT=1, DEMO_RUNTIME_PORT (default 8080), DEEPSEEK_CLUSTER_DIR,
# DEMO_SKIP_INSTALL=1 (the venv is known to be current; skips `make install`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bin="$repo/.venv/bin"
run_dir="${DEEPSEEK_CLUSTER_DIR:-$repo/.run/cluster}"
export DEEPSEEK_CLUSTER_DIR="$run_dir"
demo_dir="$repo/.run/demo"
port="${DEMO_RUNTIME_PORT:-8080}"
namespace=deepseek-demo
system_namespace=deepseek-system
example=examples/r1-distill-qwen-7b.yaml

operator_pid=""
runtime_pid=""
started_cluster=0

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

stop_pid() {
  # Only the pids this script started; SIGTERM first, SIGKILL if they outstay the grace period
  # (the runtime drains requests and stops its Triton server child: give it 30 s).
  local pid="$1" name="$2" grace="${3:-10}"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  echo "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((grace * 5))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - INT TERM EXIT
  say "cleaning up"
  stop_pid "$runtime_pid" runtime 30
  stop_pid "$operator_pid" operator
  if ((started_cluster)); then
    bash hack/cluster-down.sh
  elif [[ -f "$run_dir/kubeconfig" ]]; then
    # A cluster we found running stays up; only our objects go.
    "$bin/kubectl" --kubeconfig "$run_dir/kubeconfig" delete namespace "$namespace" \
      --wait=false --ignore-not-found >/dev/null 2>&1 || true
    if [[ -n "${helm:-}" ]]; then
      "$helm" --kubeconfig "$run_dir/kubeconfig" uninstall deepseek-operator \
        -n "$system_namespace" >/dev/null 2>&1 || true
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # url timeout-seconds what
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      echo "timed out waiting for $3 at $1" >&2
      return 1
    fi
    sleep 0.5
  done
}

free_port() {
  "$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [[ "${DEMO_SKIP_INSTALL:-0}" != 1 ]]; then
  say "installing (make install: .venv with the operator, the runtime and kubectl)"
  make --no-print-directory install
fi

say "local control plane"
if ! PYTHONPATH=hack "$bin/python" -m localcluster status >/dev/null 2>&1; then
  started_cluster=1
fi
bash hack/cluster-up.sh
export KUBECONFIG="$run_dir/kubeconfig"
export PATH="$bin:$PATH"
# shellcheck source=hack/versions.env
source hack/versions.env
helm="$(control_plane_bin)/helm"
mkdir -p "$demo_dir"

say "CRD and operator chart (helm install into $system_namespace, Pod Security: restricted)"
deepseek-operator crd | kubectl apply --server-side --force-conflicts -f - >/dev/null
kubectl wait --for=condition=Established crd/deepseekdeployments.deepseek.ai --timeout=60s
for ns in "$system_namespace" "$namespace"; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$ns" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
done
"$helm" upgrade --install deepseek-operator charts/deepseek-operator -n "$system_namespace" \
  --wait --timeout 120s
kubectl -n "$system_namespace" get pods -o wide

say "operator from the working tree (kwok only pretends to run the chart's pod)"
health_port="$(free_port)"
deepseek-operator run --liveness "http://127.0.0.1:$health_port/healthz" \
  >"$demo_dir/operator.log" 2>&1 &
operator_pid=$!
wait_http "http://127.0.0.1:$health_port/healthz" 60 "the operator"
echo "operator pid $operator_pid, log $demo_dir/operator.log"

say "kubectl apply -f $example"
# The example reads weights from PVC "models"; kwok's volume stages provision and bind it.
kubectl -n "$namespace" apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: models}
spec:
  accessModes: [ReadOnlyMany]
  resources: {requests: {storage: 100Gi}}
YAML
kubectl -n "$namespace" apply -f "$example"
name="$(kubectl -n "$namespace" create --dry-run=client -f "$example" -o jsonpath='{.metadata.name}')"
kubectl -n "$namespace" wait --for=jsonpath='{.status.phase}'=Ready "dsd/$name" --timeout=180s
kubectl -n "$namespace" get dsd,deploy,svc,hpa -o wide

say "the runtime, locally, on its embedded model (SmolLM2-135M-Instruct GGUF)"
deepseek-runtime serve --port "$port" >"$demo_dir/runtime.log" 2>&1 &
runtime_pid=$!
wait_http "http://127.0.0.1:$port/ready" 600 "the runtime to load its model"
model="$(curl -fsS "http://127.0.0.1:$port/v1/models" | "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')"
echo "runtime pid $runtime_pid serving model $model, log $demo_dir/runtime.log"

# Greedy decoding: a 135M model sampled at temperature 1 rambles; greedy gives the plain answer.
say "one chat request: What is the capital of France?"
request="$("$bin/python" -c 'import json, sys; print(json.dumps({"model": sys.argv[1], "max_tokens": 64, "temperature": 0, "messages": [{"role": "user", "content": "What is the capital of France?"}]}))' "$model")"
curl -fsS "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "$request" | "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].strip())'

cat <<EOF

Call it yourself:

  curl http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "$model", "temperature": 0, "messages": [{"role": "user", "content": "Hello!"}]}'

  .venv/bin/python - <<'PY'
  from openai import OpenAI
  client = OpenAI(base_url="http://127.0.0.1:$port/v1", api_key="unused")
  reply = client.chat.completions.create(
      model="$model", temperature=0, messages=[{"role": "user", "content": "Hello!"}])
  print(reply.choices[0].message.content)
  PY

In the cluster: KUBECONFIG=$KUBECONFIG kubectl -n $namespace get dsd
EOF

if [[ "${DEMO_EXIT:-0}" == 1 ]]; then
  exit 0
fi
say "running; Ctrl-C stops the runtime, the operator and the cluster"
while true; do
  # `wait` returns as soon as a trapped signal arrives; a foreground sleep would not.
  sleep 3600 &
  wait $! || true
done
