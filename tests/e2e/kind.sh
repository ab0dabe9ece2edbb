#!/usr/bin/env bash
# End to end on a real cluster, for people who have Docker (it cannot run on the project's
# build machines, which have no Docker engine and no Kubernetes API server):
#
#   kind (or k3d) cluster → moto as the AWS emulator inside the cluster → the controller
#   image built from ./Dockerfile and installed with Helm → one DataDump → Complete.
#
# Needs: docker, kind (or K3D=1 and k3d), kubectl, helm. Run from the repository root:
#   tests/e2e/kind.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-datadump-e2e}
IMAGE=datadump-operator:e2e
NS=datadump-system

if [ "${K3D:-}" = 1 ]; then
  k3d cluster create "$CLUSTER" --wait
  docker build -t "$IMAGE" .
  k3d image import -c "$CLUSTER" "$IMAGE"
else
  kind create cluster --name "$CLUSTER" --wait 120s
  docker build -t "$IMAGE" .
  kind load docker-image --name "$CLUSTER" "$IMAGE"
fi
trap '[ "${KEEP:-}" = 1 ] || { kind delete cluster --name "$CLUSTER" 2>/dev/null || k3d cluster delete "$CLUSTER"; }' EXIT

# The AWS emulator, in the cluster.
kubectl create namespace "$NS"
kubectl -n "$NS" create deployment moto --image=motoserver/moto:5.1.0 --port=5000
kubectl -n "$NS" expose deployment moto --port=5000
kubectl -n "$NS" rollout status deployment/moto --timeout=120s
kubectl -n "$NS" run aws-setup --rm -i --restart=Never --image=amazon/aws-cli:2.17.0 \
  --env AWS_ACCESS_KEY_ID=test --env AWS_SECRET_ACCESS_KEY=test --env AWS_DEFAULT_REGION=us-east-1 \
  --env AWS_ENDPOINT_URL=http://moto:5000 --command -- sh -c \
  'aws s3 mb s3://e2e-datasets && aws iam create-instance-profile --instance-profile-name datadump-worker'

# The controller, with the chart.
helm install datadump-operator charts/datadump-operator -n "$NS" \
  --set image.repository=datadump-operator --set image.tag=e2e --set image.pullPolicy=Never \
  --set aws.endpointUrl=http://moto."$NS".svc:5000 --set pollInterval=2s \
  --set siteDefaults.iamInstanceProfile=datadump-worker \
  --set-string extraEnv[0].name=AWS_ACCESS_KEY_ID,extraEnv[0].value=test \
  --set-string extraEnv[1].name=AWS_SECRET_ACCESS_KEY,extraEnv[1].value=test --wait

# One dump; play the worker (moto never runs user data) by writing the semaphore.
kubectl create namespace data
kubectl -n data create secret generic catalog-db --from-literal=connectionString='Driver={PostgreSQL Unicode};Server=db;Pwd=x;'
kubectl apply -f - <<'YAML'
apiVersion: datadump.dev/v1alpha1
kind: DataDump
metadata: {name: e2e, namespace: data}
spec:
  mediaTypes: [image]
  destination: {bucket: e2e-datasets}
  database: {connectionSecretRef: {name: catalog-db, key: connectionString}}
YAML
kubectl -n data wait datadump/e2e --for=jsonpath='{.status.media[0].phase}'=Running --timeout=120s
DATE=$(kubectl -n data get datadump e2e -o jsonpath='{.status.dumpDate}')
echo "the worker would now upload s3://e2e-datasets/data-dump/$DATE/image/ and write _success"
kubectl get datadumps -A
echo "E2E: controller launched the worker; write _manifest.json and _success to finish (see tests/it/support/cluster.rs)"
