#!/usr/bin/env bash
# Builds the Kubernetes control plane the local stack runs (kube-apiserver and etcd) from Go modules, once: the
# binaries are cached outside the work tree under $SIDECARLESS_CACHE (default ~/.cache/sidecarless), named by
# version, so a second run only checks that they exist (a warm rebuild after a cache loss takes seconds).
#
# Why wrapper modules: `go install k8s.io/kubernetes/cmd/kube-apiserver@v…` is refused because k8s.io/kubernetes's
# go.mod has replace directives (its staging modules); a module of our own that requires it and repeats those
# replaces (each staging module at its published v0 version) builds. etcd's server module is refused the same way;
# a five-line main calling etcdmain.Main builds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kube_version=v1.35.4
staging_version=v0.35.4
etcd_version=v3.6.16
cache="${SIDECARLESS_CACHE:-$HOME/.cache/sidecarless}/kube-$kube_version-etcd-$etcd_version"
log() { printf '[kube] %s\n' "$*" >&2; }

[ -x "$cache/kube-apiserver" ] && [ -x "$cache/etcd" ] && { echo "$cache"; exit 0; }
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -x "$cache/etcd" ]; then
  log "building etcd $etcd_version (about a minute on 2 cores)"
  mkdir -p "$work/etcd"
  cp "$here/etcd-main.go.txt" "$work/etcd/main.go"
  (cd "$work/etcd" && go mod init sidecarless.local/etcd >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1 &&
    go build -trimpath -ldflags "-s -w" -o "$cache/etcd.partial" . && mv "$cache/etcd.partial" "$cache/etcd")
fi

if [ ! -x "$cache/kube-apiserver" ]; then
  log "building kube-apiserver $kube_version (about 6 minutes on 2 cores, once)"
  mkdir -p "$work/apiserver"
  cd "$work/apiserver"
  go mod init sidecarless.local/apiserver >/dev/null 2>&1
  # The staging modules k8s.io/kubernetes $kube_version replaces with its own directories (its go.mod).
  staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap
    code-generator component-base component-helpers controller-manager cri-api cri-client csi-translation-lib
    dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin
    sample-controller)
  {
    echo "require k8s.io/kubernetes $kube_version"
    for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $staging_version"; done
  } >> go.mod
  printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n' > tools.go
  go mod tidy >/dev/null 2>&1
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kube_version" \
    -o "$cache/kube-apiserver.partial" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$cache/kube-apiserver.partial" "$cache/kube-apiserver"
fi
echo "$cache"
