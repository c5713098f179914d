#!/usr/bin/env bash
# The whole product on one machine, no Docker, no GPU, every part in a real pod:
#   local cluster with a real node (hack/cluster-up.sh --real-node: containerd, kubelet,
#   kube-proxy; the operator and runtime images built from their Dockerfiles with buildah) ->
#   helm install of the operator chart, running the operator image under the chart's RBAC ->
#   examples/smollm2-local.yaml reconciled to Ready by that pod -> the runtime pod serving
#   SmolLM2-135M-Instruct on the node's CPU -> one chat request through the Service.
#
# Ctrl-C (or DEMO_EXIT=1, which exits once everything is printed) removes what this script made
# and, if it started the cluster, stops the cluster.
#
# Environment: DEMO_EXIT=1, DEEPSEEK_CLUSTER_DIR, DEMO_SKIP_INSTALL=1 (the venv is known to be
# current; skips `make install`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bin="$repo/.venv/bin"
run_dir="${DEEPSEEK_CLUSTER_DIR:-$repo/.run/cluster}"
export DEEPSEEK_CLUSTER_DIR="$run_dir"
namespace=deepseek-demo
system_namespace=deepseek-system
example=examples/smollm2-local.yaml
started_cluster=0

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
  local status=$?
  trap - INT TERM EXIT
  # The waiting `sleep` below would outlive us, holding whatever file descriptors we hold.
  jobs -p | xargs -r kill 2>/dev/null || true
  say "cleaning up"
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

if [[ "${DEMO_SKIP_INSTALL:-0}" != 1 ]]; then
  say "installing (make install: .venv with the operator, the runtime and kubectl)"
  make --no-print-directory install
fi

say "local cluster with a real node (first run: builds the images, tens of minutes)"
if ! PYTHONPATH=hack "$bin/python" -m localcluster status >/dev/null 2>&1; then
  started_cluster=1
fi
bash hack/cluster-up.sh --real-node
export KUBECONFIG="$run_dir/kubeconfig"
export PATH="$bin:$PATH"
# shellcheck source=hack/versions.env
source hack/versions.env
helm="$(control_plane_bin)/helm"
images="$(PYTHONPATH=hack "$bin/python" -m localcluster images)"
operator_image="$(sed -n 's/^operator=//p' <<<"$images")"
runtime_image="$(sed -n 's/^runtime=//p' <<<"$images")"
echo "operator image $operator_image"
echo "runtime image  $runtime_image"
kubectl get nodes -o wide

say "CRD and operator chart (helm install into $system_namespace, Pod Security: restricted)"
deepseek-operator crd | kubectl apply --server-side --force-conflicts -f - >/dev/null
kubectl wait --for=condition=Established crd/deepseekdeployments.deepseek.ai --timeout=60s
for ns in "$system_namespace" "$namespace"; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$ns" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
done
"$helm" upgrade --install deepseek-operator charts/deepseek-operator -n "$system_namespace" \
  --set image.repository="${operator_image%:*}" --set image.tag="${operator_image##*:}" \
  --set image.pullPolicy=Never \
  --set-json 'nodeSelector={"deepseek.ai/real-node": "true"}' \
  --set-json 'tolerations=[{"key": "deepseek.ai/real-node", "operator": "Exists", "effect": "NoSchedule"}]' \
  --wait --timeout 300s
kubectl -n "$system_namespace" get pods -o wide

say "kubectl apply -f $example (the operator's pod reconciles it; the runtime pod loads SmolLM2)"
sed "s|RUNTIME_IMAGE|$runtime_image|" "$example" | kubectl -n "$namespace" apply -f -
kubectl -n "$namespace" wait --for=jsonpath='{.status.phase}'=Ready dsd/smollm2 --timeout=600s
kubectl -n "$namespace" get dsd,deploy,pods,svc -o wide

service_ip="$(kubectl -n "$namespace" get service smollm2 -o jsonpath='{.spec.clusterIP}')"
url="http://$service_ip:8080"
model="$(curl -fsS "$url/v1/models" | "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')"

# Greedy decoding: a 135M model sampled at temperature 1 rambles; greedy gives the plain answer.
say "one chat request through Service smollm2 ($url): What is the capital of France?"
request="$("$bin/python" -c 'import json, sys; print(json.dumps({"model": sys.argv[1], "max_tokens": 64, "temperature": 0, "messages": [{"role": "user", "content": "What is the capital of France?"}]}))' "$model")"
curl -fsS "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "$request" | "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].strip())'

cat <<EOF

Call it yourself (the Service's cluster IP is reachable from this machine only):

  curl $url/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "$model", "temperature": 0, "messages": [{"role": "user", "content": "Hello!"}]}'

  .venv/bin/python - <<'PY'
  from openai import OpenAI
  client = OpenAI(base_url="$url/v1", api_key="unused")
  reply = client.chat.completions.create(
      model="$model", temperature=0, messages=[{"role": "user", "content": "Hello!"}])
  print(reply.choices[0].message.content)
  PY

In the cluster: KUBECONFIG=$KUBECONFIG kubectl -n $namespace get dsd,pods
EOF

if [[ "${DEMO_EXIT:-0}" == 1 ]]; then
  exit 0
fi
say "running; Ctrl-C removes the demo (and the cluster, if this script started it)"
while true; do
  # `wait` returns as soon as a trapped signal arrives; a foreground sleep would not.
  sleep 3600 &
  wait $! || true
done
