"""Wait for a Kubeflow Pipelines run to finish and fail unless it succeeded (the kind end-to-end job).

Why a script: ``titans pipeline submit`` returns as soon as the run is created, and the job must not go on
to deploy models a failed run never published. Usage: ``wait-kfp-run.py HOST RUN_ID [TIMEOUT_SECONDS]``.
"""

from __future__ import annotations

import sys

import kfp


def main(argv: list[str]) -> int:
    host, run_id = argv[0], argv[1]
    timeout = int(argv[2]) if len(argv) > 2 else 3600
    run = kfp.Client(host=host).wait_for_run_completion(run_id, timeout=timeout)
    state = str(getattr(run, "state", "UNKNOWN"))
    print(f"run {run_id}: {state}")
    return 0 if state == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
