#!/usr/bin/env bash
# Builds the Kubernetes control plane the local stack runs (kube-apiserver and etcd), and the kubectl that tests apply
# deploy/k8s with (its kustomize included), from Go modules, once: the binaries are cached outside the work tree
# under $SIDECARLESS_CACHE (default ~/.cache/sidecarless), named by version, so a second run only checks that they
# exist (a warm rebuild after a cache loss takes seconds). kubectl is built rather than expected on the machine: a
# fresh one has none, and this one is the API server's own release.
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

[ -x "$cache/kube-apiserver" ] && [ -x "$cache/etcd" ] && [ -x "$cache/kubectl" ] && { echo "$cache"; exit 0; }

# Kubernetes 1.35's go.mod needs Go 1.25 or newer; with GOTOOLCHAIN=local an older Go fails deep in the build.
go_version="$(go env GOVERSION 2>/dev/null || true)"
case "$go_version" in
  go1.2[5-9]*|go1.[3-9][0-9]*) ;;
  *) log "need Go 1.25 or newer to build kube-apiserver $kube_version (found: ${go_version:-no go}); install it and rerun"; exit 1 ;;
esac
mkdir -p "$cache"
rm -f "$cache"/*.partial # left by a build that was killed (a 2-core machine can run out of memory linking)
build_log="$cache/build.log"
: > "$build_log"
work="$(mktemp -d)"
# On failure, the end of the build's output says why (every step's output goes to the log, not to the terminal).
trap 'status=$?; rm -rf "$work"; if [ $status -ne 0 ]; then log "build failed; the end of $build_log:"; tail -n 30 "$build_log" >&2; fi' EXIT
# A vendored or offline setting inherited from the environment would break module resolution for these wrappers.
export GOFLAGS=-mod=mod

if [ ! -x "$cache/etcd" ]; then
  log "building etcd $etcd_version (about a minute on 2 cores)"
  mkdir -p "$work/etcd"
  cp "$here/etcd-main.go.txt" "$work/etcd/main.go"
  (cd "$work/etcd" && go mod init sidecarless.local/etcd &&
    go get "go.etcd.io/etcd/server/v3@$etcd_version" && go mod tidy &&
    go build -trimpath -ldflags "-s -w" -o "$cache/etcd.partial" . && mv "$cache/etcd.partial" "$cache/etcd") >>"$build_log" 2>&1
fi

# One wrapper module builds kube-apiserver and kubectl (k8s.io/kubernetes/cmd/kubectl: the same release as the API
# server, with its kustomize), so that a cache missing only kubectl reuses the downloaded modules.
if [ ! -x "$cache/kube-apiserver" ] || [ ! -x "$cache/kubectl" ]; then
  mkdir -p "$work/apiserver"
  cd "$work/apiserver"
  go mod init sidecarless.local/apiserver >>"$build_log" 2>&1
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
  # The packages the two commands import, so that `go mod tidy` keeps their modules (kubectl's: kustomize).
  printf 'package tools\n\nimport (\n\t_ "k8s.io/kubectl/pkg/cmd"\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n)\n' > tools.go
  go mod tidy >>"$build_log" 2>&1
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version"
  if [ ! -x "$cache/kube-apiserver" ]; then
    log "building kube-apiserver $kube_version (about 6 minutes on 2 cores, once)"
    go build -trimpath -ldflags "$ldflags" -o "$cache/kube-apiserver.partial" k8s.io/kubernetes/cmd/kube-apiserver >>"$build_log" 2>&1
    mv "$cache/kube-apiserver.partial" "$cache/kube-apiserver"
  fi
  if [ ! -x "$cache/kubectl" ]; then
    log "building kubectl $kube_version (about 2 minutes on 2 cores, once)"
    go build -trimpath -ldflags "$ldflags" -o "$cache/kubectl.partial" k8s.io/kubernetes/cmd/kubectl >>"$build_log" 2>&1
    mv "$cache/kubectl.partial" "$cache/kubectl"
  fi
fi
echo "$cache"
