"""Call the server with tritonclient (NVIDIA's V2 client) and print what it saw as JSON.

Why a script: tritonclient.grpc and kserve register the same protobuf message names
(``inference.ServerLiveRequest``...) in the process-wide descriptor pool, so this check runs
in a process that never imports kserve. Usage: triton_check.py http|grpc HOST:PORT MODEL...
"""

from __future__ import annotations

import json
import sys

import numpy as np
from serving_payloads import columns


def check(protocol: str, url: str, models: list[str]) -> dict:
    if protocol == "http":
        import tritonclient.http as triton
    else:
        import tritonclient.grpc as triton
    client = triton.InferenceServerClient(url=url)
    report = {}
    for model in models:
        metadata = client.get_model_metadata(model) if protocol == "http" else \
            client.get_model_metadata(model, as_json=True)
        inputs = []
        for name, (datatype, array) in columns(model, 3).items():
            tensor = triton.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = client.infer(model, inputs)
        outputs = {}
        for entry in metadata["outputs"]:
            values = result.as_numpy(entry["name"])
            outputs[entry["name"]] = np.vectorize(
                lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object]
            )(values).tolist() if values.dtype == object else values.tolist()
        report[model] = {
            "live": client.is_server_live(),
            "ready": client.is_model_ready(model),
            "inputs": [t["name"] for t in metadata["inputs"]],
            "outputs": outputs,
        }
    return report


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1], sys.argv[2], sys.argv[3:])))
