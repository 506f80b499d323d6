#!/usr/bin/env bash
# The parity check users run (`make parity`): the real `pulumi preview --json` of
# the dev and ocp stacks, on a throwaway copy of the project with a fresh file
# backend (so every PV/PVC is a planned create) and no cluster (definitions, not
# live state, are compared), then paritycheck compares what they plan.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v pulumi >/dev/null || { echo "parity: pulumi is not on PATH (README: Prerequisites)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/project" "$work/state"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/project")

export PULUMI_BACKEND_URL=file://$work/state
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE-}
export KUBECONFIG=$work/no-cluster.kubeconfig   # offline preview: never touch a real cluster
cd "$work/project"
for stack in dev ocp; do
  pulumi stack init "$stack" --non-interactive >/dev/null
  if ! pulumi preview --stack "$stack" --json --non-interactive >"$work/$stack.json" 2>"$work/$stack.err"; then
    echo "parity: pulumi preview --stack $stack failed:" >&2
    cat "$work/$stack.err" "$work/$stack.json" >&2
    exit 2
  fi
done
go run ./tools/parity/cmd/paritycheck "$work/dev.json" "$work/ocp.json"
