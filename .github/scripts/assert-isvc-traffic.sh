#!/usr/bin/env bash
# Wait until an InferenceService is Ready and its latest revision takes PERCENT% of the traffic, else fail.
#
#   assert-isvc-traffic.sh NAMESPACE NAME PERCENT [TIMEOUT_SECONDS]
#
# Why a poll: after `helm upgrade`, KServe creates a Knative revision and the traffic split in the status
# appears only once that revision is ready; reading it once would race. With PERCENT below 100 the
# previous revision must hold the rest, which is what a canary (10) or a rollback (0) means.
set -euo pipefail
namespace=$1 name=$2 want=$3 timeout=${4:-900}
deadline=$((SECONDS + timeout))
while :; do
    status=$(kubectl -n "$namespace" get inferenceservice "$name" -o json | jq -c '.status')
    ready=$(jq -r '[.conditions[]? | select(.type == "Ready")][0].status // "Unknown"' <<<"$status")
    latest=$(jq '[.components.predictor.traffic[]? | select(.latestRevision == true) | .percent // 0] | add // 0' <<<"$status")
    previous=$(jq '[.components.predictor.traffic[]? | select(.latestRevision != true) | .percent // 0] | add // 0' <<<"$status")
    if [ "$ready" = "True" ] && [ "$latest" -eq "$want" ] && [ $((latest + previous)) -eq 100 ]; then
        echo "$name: Ready, latest revision $latest%, previous $previous%"
        exit 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "$name: wanted Ready with latest $want%; got Ready=$ready latest=$latest% previous=$previous%" >&2
        jq '.components.predictor, .conditions' <<<"$status" >&2
        exit 1
    fi
    sleep 10
done
