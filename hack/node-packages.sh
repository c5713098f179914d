#!/usr/bin/env bash
# What the real node needs from the distribution: containerd, runc, the CNI plugins, buildah and
# mmdebstrap (images), iptables (kube-proxy), ipset (kube-router's NetworkPolicy sets), gcc (the
# static pause binary). Debian's own packages, installed only when missing: a quiet no-op on a
# ready machine.
set -euo pipefail
declare -A provides=(
  [containerd]=containerd [runc]=runc [buildah]=buildah [mmdebstrap]=mmdebstrap
  [iptables]=iptables [ipset]=ipset [gcc]=gcc [ip]=iproute2
)
missing=()
for tool in "${!provides[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${provides[$tool]}")
done
[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
# glibc's static archive for `gcc -static`.
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
((${#missing[@]})) || exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "node-packages: needs root to install ${missing[*]}" >&2
  exit 1
fi
echo "node-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
