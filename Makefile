# nas-topology: the commands the README names, and the pieces CI runs.
# `make test` is THE test command (README, .ci/run).

GO       ?= go
TOOLCHAIN ?= ../shared/toolchain
FUZZTIME ?= 15s

.PHONY: test deps vet unit fuzz bench

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

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
