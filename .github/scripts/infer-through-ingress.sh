#!/usr/bin/env bash
# One V2 inference through the cluster's ingress (Kourier on 127.0.0.1:8080, terraform/modules/kind-cluster):
#
#   infer-through-ingress.sh NAMESPACE NAME
#
# Why through the ingress: that is the path a client takes (Knative routing, the traffic split, the
# model server with its Feast enrichment); a port-forward to a pod would skip all but the last.
set -euo pipefail
namespace=$1 name=$2
host=$(kubectl -n "$namespace" get inferenceservice "$name" -o jsonpath='{.status.url}' | sed -E 's#^https?://##')
body='{"inputs": [
  {"name": "description", "shape": [1], "datatype": "BYTES", "data": ["Fuel for Vehicle"]},
  {"name": "merchant", "shape": [1], "datatype": "BYTES", "data": ["Shell"]},
  {"name": "amount", "shape": [1], "datatype": "FP64", "data": [-84.1]},
  {"name": "date", "shape": [1], "datatype": "BYTES", "data": ["2024-03-06"]},
  {"name": "payment_method", "shape": [1], "datatype": "BYTES", "data": ["debit_card"]},
  {"name": "account_id", "shape": [1], "datatype": "BYTES", "data": ["acct_001"]}]}'
response=$(curl --fail-with-body --silent --show-error --retry 5 --retry-all-errors --retry-delay 5 \
    -H "Host: $host" -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:8080/v2/models/$name/infer")
echo "$response" | jq -e '.outputs | length > 0' >/dev/null
echo "$name via $host: $(echo "$response" | jq -c '[.outputs[] | {name, data}]')"
