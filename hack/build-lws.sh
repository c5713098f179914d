#!/usr/bin/env bash
# Build the LeaderWorkerSet controller manager (sigs.k8s.io/lws, its cmd/ package) once, into a
# cache outside the repo, from the module's own go.mod and go.sum: the dependency versions
# upstream releases with. Quiet no-op when the binary is cached. Version pinned in
# hack/versions.env (LWS_VERSION).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"

bin="$(lws_bin)"
target="$bin/lws-controller-manager"
[[ -x "$target" ]] && exit 0
mkdir -p "$bin"
# Two checkouts building at once would race on the same output: the second waits, then finds it.
exec 8>"$bin/.build.lock"
flock 8
[[ -x "$target" ]] && exit 0

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
printf '[build-lws] building the LeaderWorkerSet controller %s\n' "$LWS_VERSION" >&2
# `go install sigs.k8s.io/lws/cmd@VERSION` cannot be used: it also asks the module proxy for the
# module's version list (to report deprecations), which the proxy here refuses. Building inside
# the downloaded module (read-only, -mod=readonly) uses exactly its go.mod and go.sum instead.
module="$(cd "$bin" && go mod download -json "sigs.k8s.io/lws@$LWS_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
cd "$module"
go build -trimpath -ldflags "-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=$LWS_VERSION" \
  -o "$target.tmp" ./cmd
mv "$target.tmp" "$target"
printf '[build-lws] ready: %s\n' "$target" >&2
