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
lease_pid=
cleanup() {
  status=$?
  [ -n "$lease_pid" ] && kill "$lease_pid" 2>/dev/null
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

# The toolchain's kwok keeps no node Lease (--node-lease-duration-seconds is 0)
# and posts node status every 10-20 minutes, so after the controller-manager's
# 40 s grace period the node turns NotReady, every pod on it is marked NotReady,
# and kwok never makes them Ready again: Deployments would never be Available.
# Renew the node's Lease the way a kubelet does, every 10 s.
renew_node_lease() {
  while :; do
    kubectl apply -f - >/dev/null 2>&1 <<LEASE
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: kwok-node-0, namespace: kube-node-lease}
spec: {holderIdentity: kwok-node-0, leaseDurationSeconds: 40, renewTime: "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"}
LEASE
    sleep 10
  done
}
renew_node_lease &
lease_pid=$!

cd "$root"
start=$SECONDS
go test -tags e2e -count=1 -v -timeout 45m ./tests/e2e/ 2>&1 | tee "$k8s/e2e.log" | grep -E '^(=== RUN|--- |\s+\S+_test\.go:|ok|FAIL|PASS|panic)'
status=${PIPESTATUS[0]}
echo "e2e: finished in $((SECONDS - start)) s (exit $status)"
exit "$status"
