# nas-topology: the commands the README names, and the pieces CI runs.
# `make test` is THE test command (README, .ci/run).

SHELL    := bash
.SHELLFLAGS := -eo pipefail -c
GO       ?= go
PULUMI   ?= pulumi
TOOLCHAIN ?= ../shared/toolchain
FUZZTIME ?= 15s
# The file backend in Pulumi.yaml needs a passphrase; there are no secrets in
# the config, so an empty one is fine unless you add some.
export PULUMI_CONFIG_PASSPHRASE ?=

.PHONY: test deps vet unit fuzz bench bench-nfs up preview-dev preview-ocp parity stacks e2e drift lab lab-deps lab-bench lab-node up-lab need-pulumi preflight-dev program

## test: everything a clean checkout must pass (installs its apt deps when run as root)
test: deps vet unit fuzz

## deps: Debian packages the tests use (userspace NFS clients: the kernel here has none)
deps:
	@command -v nfs-ls >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnfs-utils >/dev/null; \
	  else echo "make deps: install libnfs-utils (apt-get install libnfs-utils)"; exit 1; fi; }

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

## fuzz: short runs of each fuzz target (added per package)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRecord$$' -fuzztime $(FUZZTIME) ./nasimage/rpc
	$(GO) test -run '^$$' -fuzz '^FuzzNFSArgs$$' -fuzztime $(FUZZTIME) ./nasimage/rpc

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# ARGS are passed to pulumi by up, preview-dev, preview-ocp and drift: make up ARGS='--yes'.
ARGS ?=
# The stack config the targets hand pulumi (--config-file): the stack file plus
# the encryptionsalt `pulumi stack init` made, in the git-ignored state
# directory. The committed stack files are never rewritten (stack init would
# add encryptionsalt and turn true into "true").
STACKCONF = .pulumi-state/config/Pulumi.$(1).yaml

## need-pulumi: one sentence instead of "pulumi: command not found"
need-pulumi:
	@command -v $(PULUMI) >/dev/null 2>&1 || { echo "make: the pulumi CLI ($(PULUMI)) is not on PATH: install Pulumi v3.274.x (https://www.pulumi.com/docs/install/), or on the build machines run ../shared/toolchain/ensure and then . ../shared/toolchain/env.sh." >&2; exit 127; }

## stacks: create the dev and ocp stacks in the local file backend if missing; dev is selected
stacks: need-pulumi
	@mkdir -p .pulumi-state/config
	@for s in dev ocp; do \
	  f=Pulumi.$$s.yaml; conf=$(call STACKCONF,$$s); salt=.pulumi-state/config/$$s.salt; \
	  if ! $(PULUMI) stack ls --json 2>/dev/null | grep -q "\"name\": \"$$s\""; then \
	    cp -p $$f $$conf.orig; \
	    $(PULUMI) stack init $$s --non-interactive >$$conf.log 2>&1 || { cat $$conf.log >&2; mv $$conf.orig $$f; exit 1; }; \
	    grep '^encryptionsalt:' $$f > $$salt || :; \
	    mv $$conf.orig $$f; \
	  fi; \
	  { cat $$f; grep -q '^encryptionsalt:' $$f || cat $$salt 2>/dev/null || :; } > $$conf; \
	done
	@$(PULUMI) stack select dev

## preflight-dev: what the dev stack needs from this machine (kube context, the image loader's tool)
preflight-dev:
	@$(GO) build -o bin/preflight ./cmd/preflight
	@bin/preflight dev

## program: compile the Pulumi program ahead of pulumi, as a visible step.
## The first build compiles the Pulumi and Kubernetes SDKs (minutes on 2
## cores; pulumi showed only dots meanwhile); the language host's own
## `go build` of the same package then finds everything in Go's build cache
## and only links. bin/nas-topology is not run by pulumi: a stale binary can
## never be deployed.
program:
	@echo "make: compiling the program (go build .; the first build compiles the Pulumi SDKs, minutes on 2 cores)..." >&2
	@$(GO) build -o bin/nas-topology . && echo "make: program compiled in $$SECONDS s; pulumi's own build is now a link" >&2

## up: THE main job: build the dev topology on Minikube (see README for the Minikube setup)
up: need-pulumi preflight-dev stacks program
	$(PULUMI) up --stack dev --config-file $(call STACKCONF,dev) $(ARGS)

## up-lab: the main job without Minikube (Linux, root): a real Kubernetes node in a user-mode-linux
## guest, the real pulumi up --stack dev onto it, then a shell in the guest (leaving it stops the guest)
up-lab: lab-deps
	$(TOOLCHAIN)/ensure
	$(GO) run ./tests/kernellab/cmd/up-lab

preview-dev: stacks program
	$(PULUMI) preview --stack dev --config-file $(call STACKCONF,dev) $(ARGS)

preview-ocp: stacks program
	$(PULUMI) preview --stack ocp --config-file $(call STACKCONF,ocp) $(ARGS)

## parity: the real previews of dev and ocp plan identical PVs/PVCs but for nfs.server (needs pulumi; no cluster)
parity:
	tools/parity/preview.sh

## drift: PV/PVC fields where live production differs from the shared definition (needs the ocp cluster)
drift: stacks program
	$(PULUMI) preview --stack ocp --config-file $(call STACKCONF,ocp) --refresh --json --non-interactive $(ARGS) | $(GO) run ./tools/parity/cmd/driftreport

## e2e: real pulumi CLI + Kubernetes provider + local API server (../shared/toolchain)
e2e:
	TOOLCHAIN=$(TOOLCHAIN) tests/e2e/run.sh

## bench-nfs: nasd vs nfs-ganesha vs stock go-nfs, each its own process, driven by nfsload (a C client on
## Debian's libnfs) at depths 1/8/32, interleaved runs, medians, ratios, server CPU and peak RSS. As root it
## installs its packages and runs in a private network namespace (ganesha's rpcbind needs port 111 there).
BENCH_PACKAGES := nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-dev gcc libc6-dev iproute2 util-linux
BENCH_ARGS ?=
bench-nfs:
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make bench-nfs: install $$missing (apt-get install $$missing) or run as root"; exit 1; fi; fi
	$(GO) build -o bin/nasd ./nasimage/cmd/nasd
	$(GO) build -o bin/nfsbench ./nasimage/cmd/nfsbench
	gcc -O2 -Wall -o bin/nfsload nasimage/cmd/nfsbench/libnfs/nfsload.c -lnfs
	@if [ "$$(id -u)" = 0 ]; then \
	  unshare --net --mount --propagation private sh -c 'ip link set lo up && mount -t tmpfs tmpfs /run && exec bin/nfsbench -netns $(BENCH_ARGS)'; \
	else bin/nfsbench -ganesha off $(BENCH_ARGS); fi

## bench-sync: sync engine latency (change -> readable on the other side, p50/p99 over 100 changes,
## both directions, 1 KiB and 10 MiB, default settings) and CPU/RSS of a rescan of 100,000 files
bench-sync:
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkLatency' -benchtime 100x -timeout 30m ./nasimage/sync/
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkRescan100k' -benchtime 1x -timeout 30m ./nasimage/sync/

## lab: the kernel lab: a real Linux 6.1 kernel (user-mode-linux) with the kernel NFS client mounting
## every PV as rendered, a minikube-mount-style 9p share, nasd pods and knfsd (tests/kernellab)
LAB_PACKAGES := user-mode-linux kmod iproute2 iptables nfs-common nfs-kernel-server diod e2fsprogs util-linux mount dmsetup git sqlite3 gcc libc6-dev \
                containerd runc containernetworking-plugins busybox-static
LAB_RUN ?=
LAB_SKIP ?=
lab: lab-deps
	cd tests/kernellab && LAB_RUN='$(LAB_RUN)' LAB_SKIP='$(LAB_SKIP)' $(GO) test -tags kernellab -count=1 -timeout 60m -v -run '^TestKernelLab$$' .

## lab-node: a real Kubernetes node in the lab's guest (toolchain control plane, kubelet, kube-proxy;
## Debian containerd, runc, CNI) and the real `pulumi up --stack dev` onto it (tests/kernellab/realnode)
lab-node: lab-deps
	$(TOOLCHAIN)/ensure
	cd tests/kernellab && LAB_RUN='$(LAB_RUN)' $(GO) test -tags kernellab -count=1 -timeout 60m -v -run '^TestRealNode$$' .

## lab-bench: the lab's benchmarks through the kernel client: latency (Windows <-> app) and
## throughput against nasd, knfsd and nfs-ganesha (LAB_BENCH narrows them, as -bench does)
LAB_BENCH ?= .
LAB_BENCH_PACKAGES := nfs-ganesha nfs-ganesha-vfs
lab-bench: lab-deps
	@$(MAKE) --no-print-directory LAB_PACKAGES='$(LAB_BENCH_PACKAGES)' lab-deps
	cd tests/kernellab && LAB_RUN='^$$' LAB_BENCH='$(LAB_BENCH)' LAB_BENCHTIME=$${LAB_BENCHTIME:-20x} $(GO) test -tags kernellab -count=1 -timeout 60m -v -run '^TestKernelLab$$' .

lab-deps:
	@missing=$$(for p in $(LAB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make lab: install $$missing (apt-get install $$missing) or run as root"; exit 1; fi; fi
