#!/usr/bin/env bash
# Build the local control plane from published Go modules, once, into a cache outside the repo.
#
# etcd, kube-apiserver/-controller-manager/-scheduler, kubelet, kube-proxy, kwok and helm are
# compiled with this machine's Go and module proxy (no release-binary downloads, no Docker). Each
# binary is built only when missing, so a warm cache makes this a quiet no-op. Versions are
# pinned in hack/versions.env, which the Makefile and the test fixtures read too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"

start_go_build build-control-plane "$(control_plane_bin)"

build_etcd() {
  build_needed etcd "etcd $ETCD_VERSION" || return 0
  # A wrapper module, because etcd's own go.mod has replace directives that `go install` refuses.
  local d="$work/etcd-$ETCD_VERSION"
  mkdir -p "$d" && cd "$d"
  [[ -f go.mod ]] || go mod init local/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  go build -trimpath -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$bin/etcd.tmp" "$bin/etcd"
}

build_kubernetes() {
  # The control plane, and the real node's kubelet and kube-proxy: one module, one version.
  local commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
  local missing=() c
  for c in "${commands[@]}"; do
    [[ -x "$bin/$c" ]] || missing+=("k8s.io/kubernetes/cmd/$c")
  done
  ((${#missing[@]})) || return 0
  built=1
  log "building ${missing[*]##*/} $K8S_VERSION (tens of minutes when cold)"
  local d="$work/kubernetes-$K8S_VERSION"
  mkdir -p "$d" && cd "$d"
  local staging="v0.${K8S_VERSION#v1.}"
  if [[ ! -f go.mod ]]; then
    # k8s.io/kubernetes points every staging module at ./staging; a wrapper module replaces each
    # with its published v0.X.Y twin. The list comes from the tag's own go.mod.
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    {
      echo "module local/kubernetes"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      grep -E '^\s*k8s\.io/[A-Za-z0-9._-]+ => \./staging/' "$gomod" |
        awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
    } >go.mod.tmp
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for c in "${commands[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
      printf ')\n'
    } >tools.go
    mv go.mod.tmp go.mod
    go mod tidy -e >/dev/null 2>&1 || true
  fi
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  go build -trimpath -ldflags "$ld" -o "$bin/" "${missing[@]}"
}

build_kwok() {
  build_needed kwok "kwok $KWOK_VERSION" || return 0
  GOBIN="$bin" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_helm() {
  build_needed helm "helm $HELM_VERSION" || return 0
  # Without the k8sVersion flags `helm template` and `helm lint` assume Kubernetes v1.20 (helm's
  # Makefile sets them the same way): charts with a kubeVersion constraint would not render.
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  GOBIN="$bin" go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# Small tools first: a failure in the long Kubernetes build should not hide them.
build_helm
build_kwok
build_etcd
build_kubernetes
# The LeaderWorkerSet controller the local cluster runs beside the control plane: its own script,
# its own cache folder (a version of its own).
bash "$here/build-lws.sh"
finish_go_build
