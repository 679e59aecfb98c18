#!/usr/bin/env bash
# Real-cluster end-to-end run: creates a kind cluster (unless KUBECONFIG already points
# at one and SKIP_KIND=1), loads the runner image archive, applies manifests/, and runs
# the hermetic suite's scenarios with kubectl against whatever KUBECONFIG points at.
# Not run in CI (no container engine there). Needs: kind, kubectl, docker or podman.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="${KIND_CLUSTER:-kubectl-trace-e2e}"
IMAGE_TAR="${IMAGE_TAR:-$ROOT/target/trace-runner-image.tar}"
NS="${TRACE_NS:-kubectl-trace}"
WORK_NS="${WORK_NS:-e2e-workloads}"
PLUGIN="${PLUGIN:-$ROOT/target/release/kubectl-trace}"
export PATH="$(dirname "$PLUGIN"):$PATH"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "==> $*"; }

if [[ "${SKIP_KIND:-0}" != 1 ]]; then
  step "kind cluster $CLUSTER (2 nodes)"
  if ! kind get clusters | grep -qx "$CLUSTER"; then
    kind create cluster --name "$CLUSTER" --config - <<'KIND'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
KIND
  fi
  kubectl config use-context "kind-$CLUSTER"
  [[ -f "$IMAGE_TAR" ]] || (cd "$ROOT" && cargo xtask image)
  step "load $IMAGE_TAR"
  kind load image-archive "$IMAGE_TAR" --name "$CLUSTER"
fi

step "build the plugin"
(cd "$ROOT" && cargo build --release -p kubectl-trace)
IMAGE="${IMAGE:-$(kubectl-trace version 2>/dev/null | awk '/image/ {print $NF}')}"

step "apply manifests/"
kubectl apply -f "$ROOT/manifests/"
kubectl get ns "$NS" >/dev/null || kubectl create ns "$NS"
kubectl label ns "$NS" pod-security.kubernetes.io/enforce=privileged --overwrite

step "workloads: pod x and y, deployment web on two nodes"
kubectl create ns "$WORK_NS" --dry-run=client -o yaml | kubectl apply -f -
NODES=($(kubectl get nodes -o jsonpath='{.items[*].metadata.name}'))
A="${NODES[-1]}"; B="${NODES[-2]:-$A}"
# Each workload calls getppid N times whenever /tmp/go holds N, then getpgid once.
WORKLOAD='import os,time
while True:
    try:
        n=int(open("/tmp/go").read()); os.remove("/tmp/go")
        for _ in range(n): os.getppid()
        os.getpgid(0)
    except FileNotFoundError: time.sleep(0.2)'
for p in x y; do
  kubectl -n "$WORK_NS" run "$p" --image=python:3-alpine --restart=Never \
    --overrides="{\"spec\":{\"nodeName\":\"$A\"}}" -- python3 -c "$WORKLOAD" 2>/dev/null || true
done
kubectl -n "$WORK_NS" create deployment web --image=python:3-alpine --replicas=2 -- python3 -c "$WORKLOAD" 2>/dev/null || true
kubectl -n "$WORK_NS" patch deployment web --type merge -p \
  '{"spec":{"template":{"spec":{"topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":"DoNotSchedule","labelSelector":{"matchLabels":{"app":"web"}}}]}}}}'
kubectl -n "$WORK_NS" wait --for=condition=Ready pod/x pod/y --timeout=180s
kubectl -n "$WORK_NS" rollout status deployment/web --timeout=180s

COUNT_UNTIL_MARK='tracepoint:syscalls:sys_enter_getppid { @calls = count(); } tracepoint:syscalls:sys_enter_getpgid { exit(); }'
COUNT='tracepoint:syscalls:sys_enter_getppid { @calls = count(); }'
go() { kubectl -n "$WORK_NS" exec "$1" -- sh -c "echo $2 > /tmp/go"; }
trace() { kubectl trace -n "$NS" --target-namespace "$WORK_NS" "$@"; }

step "1. run pod/x -a counts exactly x's calls"
out=$(mktemp)
trace run pod/x -a -e "$COUNT_UNTIL_MARK" >"$out" 2>&1 &
pid=$!
until grep -q Attaching "$out"; do sleep 1; done; sleep 2
go y 700; go x 1000
wait $pid || fail "run pod/x: $(cat "$out")"
grep -qx '@calls: 1000' "$out" || fail "no exact count: $(cat "$out")"

step "2. Ctrl-C prints the maps and leaves nothing running"
: >"$out"
trace run pod/x -a -e "$COUNT" >"$out" 2>&1 &
pid=$!
until grep -q Attaching "$out"; do sleep 1; done; sleep 2
go x 500; sleep 2
kill -INT $pid; wait $pid || true
grep -qx '@calls: 500' "$out" || fail "Ctrl-C: $(cat "$out")"
sleep 10
[[ -z "$(kubectl -n "$NS" get jobs -l app.kubernetes.io/name=kubectl-trace -o jsonpath='{.items[?(@.status.active)].metadata.name}')" ]] \
  || fail "a trace Job is still active"

step "3. deployment/web on two nodes: prefixed outputs"
: >"$out"
trace run deploy/web -a -e "$COUNT_UNTIL_MARK" >"$out" 2>&1 &
pid=$!
until [[ $(grep -c Attaching "$out") -ge 2 ]]; do sleep 1; done; sleep 2
PODS=($(kubectl -n "$WORK_NS" get pods -l app=web -o jsonpath='{.items[*].metadata.name}'))
go "${PODS[0]}" 300; go "${PODS[1]}" 500
wait $pid || fail "deploy: $(cat "$out")"
grep -q "\[pod/${PODS[0]}\] @calls: 300" "$out" && grep -q "\[pod/${PODS[1]}\] @calls: 500" "$out" \
  || fail "deploy outputs: $(cat "$out")"

step "4. scheduled trace to a PVC, two runs, logs --all-runs, logs -O"
kubectl -n "$NS" apply -f "$ROOT/manifests/"*pvc*.yaml 2>/dev/null || true
CLAIM="${CLAIM:-$(kubectl -n "$NS" get pvc -o jsonpath='{.items[0].metadata.name}')}"
id=$(kubectl trace -n "$NS" run "node/$A" --schedule '* * * * *' --deadline 5s --output "pvc:$CLAIM" \
  -e 'BEGIN { printf("run started\n"); } interval:ms:500 { @ticks = count(); }' | awk '/^trace/ {print $2}')
echo "waiting for two runs of $id (about 2 minutes)"
until [[ $(kubectl -n "$NS" get jobs -l "kubectl-trace/id=$id" -o jsonpath='{.items[?(@.status.succeeded==1)].metadata.name}' | wc -w) -ge 2 ]]; do sleep 10; done
kubectl trace -n "$NS" logs "$id" --all-runs >"$out" 2>&1 || fail "logs --all-runs: $(cat "$out")"
[[ $(grep -c 'run started' "$out") -ge 2 ]] || fail "logs --all-runs: $(cat "$out")"
dl=$(mktemp -d)
kubectl trace -n "$NS" logs "$id" -O "$dl/runs" >"$out" 2>&1 || fail "logs -O: $(cat "$out")"
[[ $(ls "$dl"/runs/*/output.txt | wc -l) -ge 2 && $(ls "$dl"/runs/*/meta.json | wc -l) -ge 2 ]] \
  || fail "logs -O: $(ls -R "$dl")"
kubectl trace -n "$NS" delete "$id"

step "5. a bad script creates nothing"
before=$(kubectl -n "$NS" get jobs,cronjobs,configmaps -o name | wc -l)
if kubectl trace -n "$NS" run "node/$A" -e 'tracepoint:syscalls:sys_enter_getppid { @ = count( }'; then fail "bad script accepted"; fi
[[ $(kubectl -n "$NS" get jobs,cronjobs,configmaps -o name | wc -l) == "$before" ]] || fail "bad script created objects"

step "6. a namespace enforcing baseline gets the explained error"
kubectl create ns e2e-locked --dry-run=client -o yaml | kubectl apply -f -
kubectl label ns e2e-locked pod-security.kubernetes.io/enforce=baseline --overwrite
if kubectl trace -n e2e-locked run "node/$A" -a -e "$COUNT" 2>"$out"; then fail "privileged pod admitted"; fi
grep -q 'pod-security.kubernetes.io/enforce=privileged' "$out" || fail "admission error: $(cat "$out")"

step "7. get and delete"
id=$(trace run pod/x -e "$COUNT" | awk '/^trace/ {print $2}')
sleep 5
kubectl trace -n "$NS" get | grep "$id" || fail "get does not show $id"
kubectl trace -n "$NS" delete "$id"
sleep 5
[[ -z "$(kubectl -n "$NS" get jobs,configmaps,pods -l "kubectl-trace/id=$id" -o name)" ]] || fail "delete left objects"

echo "all real-cluster scenarios passed"
