#!/usr/bin/env bash
# Build the real node's NetworkPolicy agent, kube-router (only its firewall controller runs), from
# its published Go module, once, into a cache outside the repository. Quiet when already built:
# `make control-plane` and `localcluster up --real-node` both call it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"

bin="$(kube_router_bin)"
[[ -x "$bin/kube-router" ]] && exit 0
mkdir -p "$bin"
export GOFLAGS="-mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=local
printf '[build-kube-router] building kube-router %s\n' "$KUBE_ROUTER_VERSION" >&2
start=$SECONDS
# `go install module@version` builds with the module's own go.mod (it has no replace directives).
# The version in the binary as kube-router's own Makefile sets it, so that its log names it.
ld="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
# A folder of its own per build: two builds at once (CI and a cluster start) each finish, and the
# rename into place is atomic.
tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" go install -trimpath -ldflags "$ld" \
  "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
mv -f "$tmp/kube-router" "$bin/kube-router"
printf '[build-kube-router] ready in %s after %ss\n' "$bin" "$((SECONDS - start))" >&2
