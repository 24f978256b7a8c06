# syntax=docker/dockerfile:1
# The sidecarless image: one image for every role (`sidecarless <role>`), as deploy/k8s runs it.
#
#   docker build -t sidecarless:0.1.0 .
#
# Stage 1 compiles the kernel programs (clang against the build host's BTF: CO-RE relocates them to each node's
# kernel at load) and the TypeScript, and installs the npm packages of package-lock.json. Stage 2 holds only what
# runs: Node 20, libbpf (loaded through koffi), the compiled code, the kernel objects, the schemas and the runtime
# packages. Base images pinned to exact Debian 12 releases of Node 20.
#
# Users: the image runs as 65532 (non-root), as the metadata role, the enricher and the init Job do. The collector
# and the enforcer run as uid 0 with only the capabilities their DaemonSets add (CAP_BPF, CAP_PERFMON,
# CAP_NET_ADMIN, CAP_SYS_NICE; the enforcer CAP_BPF and CAP_NET_ADMIN): the bpffs and tracefs directories they pin and open are root's
# (mode 0700), and Kubernetes gives added capabilities to uid 0 only. No role runs privileged.

FROM node:20.20.2-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang-16 llvm-16 libbpf-dev bpftool make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# `npm install`, not `npm ci`: the lock records one platform's build of chdb's native package, which `npm ci`
# refuses as out of sync (deploy/local/setup.sh); install still follows the lock's versions.
RUN npm install --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY bin bin
COPY bpf bpf
COPY schemas schemas
COPY src src
# tsconfig.json compiles bench/, test/ and grafana/ too: bench imports test helpers, which import grafana/schema/.
COPY bench bench
COPY test test
COPY grafana grafana
# Needs /sys/kernel/btf/vmlinux of the build host (bpf/Makefile makes vmlinux.h from it): build on a BTF kernel.
RUN make -s -C bpf && npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund --loglevel=error

FROM node:20.20.2-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libbpf1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/bin bin
# dist/bench and dist/test too: `sidecarless bench` imports both (a few MB).
COPY --from=build /app/dist dist
COPY --from=build /app/schemas schemas
COPY --from=build /app/bpf/.output/*.bpf.o bpf/.output/
# A named user: Node's os.homedir() (the metadata role's kubeconfig lookup) needs a passwd entry or HOME.
RUN groupadd --gid 65532 sidecarless && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sidecarless
USER 65532:65532
ENTRYPOINT ["node", "/app/bin/sidecarless.js"]
