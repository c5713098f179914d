#!/usr/bin/env bash
# Build KEDA's operator and metrics API server (cmd/operator, cmd/adapter of
# github.com/kedacore/keda/v2) once, into a cache outside the repo, with its CRDs beside them.
# Quiet no-op when cached. Version pinned in hack/versions.env (KEDA_VERSION).
#
# Why trimmed: KEDA compiles all of its ~75 scalers into one Go package (pkg/scalers), so the
# stock build compiles every cloud and database SDK they talk to: 3,710 packages, against 1,959
# for the trimmed tree (`go list -deps ./cmd/operator ./cmd/adapter`, v2.21.0).
# The operator writes one trigger type, prometheus (operator/.../manifests/scaling.py), so a
# copy of the module keeps that scaler (and cpu/memory, which cost nothing) and drops the rest:
# hack/localcluster/keda_trim.py, which stops with an error if a release changes the shape it
# edits. The admission webhooks (cmd/webhooks) are not built: the local cluster does not need
# them to run ScaledObjects.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"

bin="$(keda_bin)"
[[ -x "$bin/keda-operator" && -x "$bin/keda-adapter" && -d "$bin/crds" ]] && exit 0
lock_cache "$bin"
[[ -x "$bin/keda-operator" && -x "$bin/keda-adapter" && -d "$bin/crds" ]] && exit 0

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
log() { printf '[build-keda] %s\n' "$*" >&2; }
log "building KEDA $KEDA_VERSION (operator + metrics server, prometheus/cpu/memory scalers only)"
t0=$SECONDS
# Not `go install ...@VERSION`: that also asks the proxy for the version list, which it refuses
# here. The downloaded module (read-only) is copied so it can be trimmed; its go.mod and go.sum
# stay as released.
module="$(cd "$bin" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
work="$DEEPSEEK_CACHE/build/keda-$KEDA_VERSION"
rm -rf "$work"
mkdir -p "$(dirname "$work")"
cp -r "$module" "$work"
chmod -R u+w "$work"
PYTHONPATH="$here" python3 -m localcluster.keda_trim "$work"
cd "$work"
ld="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
go build -trimpath -ldflags "$ld" -o "$bin/keda-operator.tmp" ./cmd/operator
go build -trimpath -ldflags "$ld" -o "$bin/keda-adapter.tmp" ./cmd/adapter
rm -rf "$bin/crds.tmp" && mkdir "$bin/crds.tmp"
cp config/crd/bases/*.yaml "$bin/crds.tmp/"
mv "$bin/keda-operator.tmp" "$bin/keda-operator"
mv "$bin/keda-adapter.tmp" "$bin/keda-adapter"
rm -rf "$bin/crds" && mv "$bin/crds.tmp" "$bin/crds"
cd / && rm -rf "$work"
log "ready in $bin after $((SECONDS - t0))s"
