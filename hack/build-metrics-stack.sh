#!/usr/bin/env bash
# Build the autoscaling metrics chain from published Go modules, once, into a cache outside the
# repo: Prometheus (the server only) and prometheus-adapter. Each binary is built only when
# missing, so a warm cache makes this a quiet no-op. Versions are pinned in hack/versions.env.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"

start_go_build build-metrics-stack "$(metrics_stack_bin)"

build_prometheus() {
  build_needed prometheus \
    "prometheus $PROMETHEUS_VERSION (kubernetes discovery only, no web UI assets)" || return 0
  local t0=$SECONDS
  # remove_all_sd + enable_kubernetes_sd drops the cloud discoveries (AWS, Azure, GCE, ...), most
  # of the dependency graph; without the builtinassets tag the React UI is not embedded. The API
  # (/api/v1/query) that the adapter and the tests use is all there.
  # The module's v0.3XX.Y is Prometheus 3.XX.Y: `prometheus --version` should say the latter.
  local minor="${PROMETHEUS_VERSION#v0.}"; minor="${minor%%.*}"
  local ld="-s -w -X github.com/prometheus/common/version.Version=3.$((10#$minor - 300)).${PROMETHEUS_VERSION##*.}"
  GOBIN="$bin" go install -trimpath -tags remove_all_sd,enable_kubernetes_sd -ldflags "$ld" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
  log "prometheus built in $((SECONDS - t0))s"
}

build_adapter() {
  build_needed prometheus-adapter "prometheus-adapter $PROMETHEUS_ADAPTER_VERSION" || return 0
  local t0=$SECONDS
  # A wrapper module with the exact version written down: `go install pkg@version` also asks the
  # proxy for the module's version list (for deprecation notices), which the proxy refuses here.
  local d="$work/prometheus-adapter-$PROMETHEUS_ADAPTER_VERSION"
  mkdir -p "$d" && cd "$d"
  if [[ ! -f go.mod ]]; then
    printf 'module local/adapter\n\ngo 1.26\n\nrequire sigs.k8s.io/prometheus-adapter %s\n' \
      "$PROMETHEUS_ADAPTER_VERSION" >go.mod.tmp
    printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/prometheus-adapter/cmd/adapter"\n' \
      >tools.go
    mv go.mod.tmp go.mod
    go mod tidy >/dev/null || { rm -f go.mod; exit 1; }
  fi
  go build -trimpath -ldflags "-s -w" -o "$bin/prometheus-adapter.tmp" \
    sigs.k8s.io/prometheus-adapter/cmd/adapter
  mv "$bin/prometheus-adapter.tmp" "$bin/prometheus-adapter"
  log "prometheus-adapter built in $((SECONDS - t0))s"
}

build_adapter
build_prometheus
finish_go_build
