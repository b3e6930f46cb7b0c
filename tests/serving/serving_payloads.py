"""Valid V2 requests for the five models, as kserve ``InferRequest``s and as plain JSON.

Why one place: the conformance, validation and metrics tests all start from a valid
request and change one thing; the rows look like the generator's transactions. kserve is
imported lazily: the tritonclient check runs in a process without it (their gRPC protos
declare the same message names and cannot share one protobuf pool).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ROWS = [
    {"description": "Software License", "merchant": "Adobe", "amount": -29.99, "date": "2024-03-05",
     "payment_method": "credit_card", "account_id": "acct_001", "category": "software"},
    {"description": "Fuel for Vehicle", "merchant": "Shell", "amount": -84.10, "date": "2024-03-06",
     "payment_method": "debit_card", "account_id": "acct_002", "category": "fuel"},
    {"description": "Client Dinner", "merchant": "Ruth's Chris", "amount": -212.00, "date": "2024-03-07T19:30:00",
     "payment_method": "credit_card", "account_id": "acct_001", "category": "meals_entertainment"},
]

# Small-business accounts of the generator (titans.data.small_accounts) and one it never made.
RECOMMEND_ACCOUNTS = ("acct_s0001", "acct_s0002", "acct_nobody")

INPUTS: dict[str, list[tuple[str, str]]] = {
    "titans-category": [("description", "BYTES"), ("merchant", "BYTES"), ("amount", "FP64"), ("date", "BYTES"),
                        ("payment_method", "BYTES"), ("account_id", "BYTES")],
    "titans-amount": [("description", "BYTES"), ("merchant", "BYTES"), ("category", "BYTES"),
                      ("payment_method", "BYTES"), ("date", "BYTES"), ("account_id", "BYTES")],
    "titans-anomaly": [("description", "BYTES"), ("merchant", "BYTES"), ("category", "BYTES"),
                       ("payment_method", "BYTES"), ("date", "BYTES"), ("account_id", "BYTES"), ("amount", "FP64")],
}


def columns(model: str, n: int) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (datatype, 1-D array) for ``n`` rows (the sample rows repeated)."""
    if model == "titans-recommend":  # a batch of accounts (one unknown: the cold start), k for the batch
        accounts = [RECOMMEND_ACCOUNTS[i % len(RECOMMEND_ACCOUNTS)] for i in range(n)]
        return {"account_id": ("BYTES", np.array(accounts, dtype=object)),
                "k": ("INT32", np.array([5], dtype=np.int32))}
    if model == "titans-cashflow":
        return {"account_id": ("BYTES", np.array(["acct_001"], dtype=object)),
                "horizon_days": ("INT32", np.array([14], dtype=np.int32))}
    rows = [ROWS[i % len(ROWS)] for i in range(n)]
    out = {}
    for name, datatype in INPUTS[model]:
        values = [row[name] for row in rows]
        out[name] = (datatype, np.array(values, dtype=object if datatype == "BYTES" else np.float64))
    return out


def infer_request(model: str, n: int = 3, binary: bool = False) -> Any:
    """A valid kserve ``InferRequest``; ``binary`` puts tensors in the binary extension / raw contents."""
    from kserve.protocol.infer_type import InferInput, InferRequest

    inputs = []
    for name, (datatype, array) in columns(model, n).items():
        tensor = InferInput(name=name, shape=list(array.shape), datatype=datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return InferRequest(model_name=model, infer_inputs=inputs, request_id="test-1")


def json_body(model: str, n: int = 3) -> dict[str, Any]:
    """The same request as a plain V2 JSON body (for hand-made invalid variants)."""
    inputs = []
    for name, (datatype, array) in columns(model, n).items():
        inputs.append({"name": name, "shape": [len(array)], "datatype": datatype, "data": array.tolist()})
    return {"id": "test-json", "inputs": inputs}


def replace_input(body: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    """A copy of ``body`` with input ``name`` changed (or removed when ``fields`` is empty)."""
    inputs = []
    for entry in body["inputs"]:
        if entry["name"] != name:
            inputs.append(dict(entry))
        elif fields:
            inputs.append({**entry, **fields})
    return {**body, "inputs": inputs}
