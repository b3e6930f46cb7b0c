"""``titans retrain-trigger``: Alertmanager's webhook receiver that starts retraining runs.

Why the rule is in ``--help``: whoever wonders why a drift alert did (or did not) retrain should find the
order of the checks without opening the source.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import Any

from pipelines.submit import parse_params
from titans.errors import UserError
from titans.monitoring.trigger_policy import DEFAULT_ALERTS, TriggerPolicy
from titans.settings import load_settings

DEFAULT_LISTEN = "127.0.0.1:9097"
DEFAULT_COOLDOWN = 6 * 3600

EPILOG = """\
Each firing alert whose alertname is one of --alert is decided in this order:
  ignored    not a retraining alert, or resolved (a resolved alert may retrain again when it next fires)
  duplicate  this firing (fingerprint + startsAt) already started a run
  cooldown   a run was submitted less than --cooldown-seconds ago (global: one run retrains all models)
  in_flight  the last run has not finished (KFP: not SUCCEEDED/FAILED/SKIPPED/CANCELED; --local: alive)
  submitted  a run was started, with retrain_reason naming the alert
  failed     KFP could not be asked or refused the run (answered 503, so Alertmanager retries)
A malformed body is answered 400 and counted as rejected. Decisions: one log line each and
titans_retrain_triggers_total{decision} on GET /metrics. State (seen fingerprints, last run and its time)
is kept in --state-file, so a restart keeps the cooldown.
"""


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    # Here, not at the top: kfp (compile) and prometheus_client (the server) load only when the trigger runs.
    from pipelines.compile import TRAINING_YAML
    from pipelines.retrain_trigger import KfpRunner, LocalRunner, RetrainTrigger, make_server, parse_listen

    if bool(args.kfp_host) == bool(args.local):
        raise UserError("give exactly one of --kfp-host URL (Kubeflow Pipelines) or --local (this machine)")
    if args.cooldown_seconds < 0:
        raise UserError(f"--cooldown-seconds must be >= 0, got {args.cooldown_seconds}")
    host, port = parse_listen(args.listen)
    params = parse_params(args.param)
    home = load_settings().home
    runner: Any
    if args.local:
        runner = LocalRunner(params, home / "logs")
    else:
        runner = KfpRunner(args.kfp_host, Path(args.package) if args.package else TRAINING_YAML, args.experiment,
                           params)
    policy = TriggerPolicy(alertnames=frozenset(args.alert or DEFAULT_ALERTS),
                           cooldown_seconds=float(args.cooldown_seconds))
    state_file = Path(args.state_file) if args.state_file else home / "retrain-trigger" / "state.json"
    trigger = RetrainTrigger(runner, policy, state_file)
    try:
        server = make_server(trigger, host, port)
    except OSError as exc:
        raise UserError(f"--listen {args.listen}: {exc.strerror or exc}") from None
    # SIGTERM (a pod stopping) ends like Ctrl-C: the state file is written after every change already.
    signal.signal(signal.SIGTERM, _stop)
    log = logging.getLogger("titans.retrain_trigger")
    log.info("listening on http://%s:%d (POST /webhook, GET /metrics, GET /healthz); target %s; alerts %s; "
             "cooldown %d s; state %s", host, server.server_port, args.kfp_host or "local pipeline",
             ",".join(sorted(policy.alertnames)), args.cooldown_seconds, state_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``retrain-trigger``."""
    cmd = subparsers.add_parser(
        "retrain-trigger", help="Alertmanager webhook receiver that starts retraining pipeline runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Receive Alertmanager webhooks (POST /webhook) and start a training pipeline run for a "
                    "drift or decay alert: on Kubeflow Pipelines (--kfp-host) from the compiled package, or "
                    "the local pipeline (--local).",
        epilog=EPILOG)
    cmd.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                     help=f"address to serve on (default {DEFAULT_LISTEN}; port 0 picks a free one)")
    cmd.add_argument("--kfp-host", metavar="URL", help="KFP API endpoint, e.g. http://ml-pipeline.kubeflow:8888")
    cmd.add_argument("--local", action="store_true", help="run `titans pipeline run --local` instead of KFP")
    cmd.add_argument("--package", metavar="PATH",
                     help="compiled pipeline (default pipelines/compiled/training_pipeline.yaml)")
    cmd.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="pipeline parameter for every run (repeatable); retrain_reason is set from the alert")
    cmd.add_argument("--cooldown-seconds", type=float, default=DEFAULT_COOLDOWN, metavar="SECONDS",
                     help=f"no second run within this many seconds of a submission (default {DEFAULT_COOLDOWN})")
    cmd.add_argument("--alert", action="append", metavar="ALERTNAME",
                     help="alertname that retrains (repeatable; default TitansFeatureDrift, "
                          "TitansPredictionShift, TitansLivePerformanceDecay, TitansEstimatedAccuracyDrop)")
    cmd.add_argument("--state-file", metavar="PATH", help="JSON state kept across restarts "
                                          "(default $TITANS_HOME/retrain-trigger/state.json)")
    cmd.add_argument("--experiment", default="titans", metavar="NAME", help="KFP experiment (default titans)")
    cmd.set_defaults(handler=_serve)
