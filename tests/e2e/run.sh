#!/usr/bin/env bash
# make e2e: build (or reuse) the toolchain, start a local control plane, run the
# end-to-end suite against it with the real pulumi CLI, stop the cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
toolchain=${TOOLCHAIN:-$root/../shared/toolchain}
toolchain=$(cd "$toolchain" && pwd) || { echo "e2e: no toolchain at $toolchain (see README)" >&2; exit 2; }

"$toolchain/ensure"
# shellcheck disable=SC1091
. "$toolchain/env.sh"

# Own port base and directory: a developer's cluster on the defaults is left alone.
export NAS_K8S_PORT_BASE=${NAS_K8S_PORT_BASE:-16480}
k8s=$(mktemp -d "${TMPDIR:-/tmp}/nas-e2e-k8s.XXXXXX")
cleanup() {
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "e2e: failed; cluster logs kept in $k8s/logs" >&2
    "$toolchain/cluster" down --keep-logs "$k8s" >/dev/null 2>&1 || true
  else
    "$toolchain/cluster" down "$k8s" >/dev/null 2>&1 || true
    rm -rf "$k8s"
  fi
}
trap cleanup EXIT
"$toolchain/cluster" up "$k8s" >/dev/null
export KUBECONFIG=$k8s/kubeconfig

# The toolchain's kwok holds and renews the node's Lease itself (every 40 s,
# like a kubelet). Nothing else may write it: kwok stops managing a node whose
# Lease another holder took, and its pods then stay Pending.

cd "$root"
start=$SECONDS
go test -tags e2e -count=1 -v -timeout 45m ./tests/e2e/ 2>&1 | tee "$k8s/e2e.log" | grep -E '^(=== RUN|--- |\s+\S+_test\.go:|ok|FAIL|PASS|panic)'
status=${PIPESTATUS[0]}
echo "e2e: finished in $((SECONDS - start)) s (exit $status)"
exit "$status"
