"""The retraining trigger behind a real Alertmanager, in front of the recording KFP double.

Alerts go into Debian's prometheus-alertmanager through its /api/v2/alerts API, exactly as Prometheus
sends them; Alertmanager groups them and posts its webhook to ``titans retrain-trigger`` (its own process,
the real CLI); the trigger talks to the KFP double through the real ``kfp.Client``. What a cluster would
receive is what the double recorded.
"""

from __future__ import annotations

import copy
import json
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_api_double import kfp_api_double
from monitoring_servers import http_json, post_alerts, start_alertmanager, start_trigger, wait_until

from pipelines.compile import TRAINING_YAML
from pipelines.retrain_trigger import MAX_CONNECTIONS
from titans.errors import UserError

RUNS_PATH = "/apis/v2beta1/runs"
PARAMS = {"source_uri": "s3://titans-exports/latest", "canary_percent": 10}
COOLDOWN = 3.0
TOKEN = "projected-token-for-pipelines.kubeflow.org"


def _alert(alertname: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": alertname, "severity": "warning", **labels},
            "annotations": {"summary": f"{alertname} on {labels.get('model_name')}"},
            "startsAt": datetime.now(UTC).isoformat()}


def _resolved(alert: dict[str, Any]) -> dict[str, Any]:
    return {**alert, "endsAt": datetime.now(UTC).isoformat()}


def _runs(recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recorded if r["method"] == "POST" and r["path"] == RUNS_PATH]


def test_alertmanager_alerts_submit_one_run_per_episode(tmp_path: Path) -> None:
    """One firing alert submits exactly one run; a repeat, a cooldown, a run in flight and resolutions do not."""
    spec_doc = next(yaml.safe_load_all(TRAINING_YAML.read_text()))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    states: dict[str, str] = {}
    drift_amount = _alert("TitansFeatureDrift", model_name="titans-anomaly", model_version="3", feature="amount")
    drift_hour = _alert("TitansFeatureDrift", model_name="titans-anomaly", model_version="3", feature="hour")
    shift = _alert("TitansPredictionShift", model_name="titans-category", model_version="2")
    decay = _alert("TitansLivePerformanceDecay", model_name="titans-anomaly", model_version="3", metric="recall")
    with (kfp_api_double(run_states=states) as (kfp_host, recorded),
          start_trigger(tmp_path, "--kfp-host", kfp_host, cooldown_seconds=COOLDOWN, params=PARAMS,
                        env={"KF_PIPELINES_SA_TOKEN_PATH": str(token)}) as trigger,
          start_alertmanager(trigger.webhook_url, tmp_path) as alertmanager):

        def decided(name: str, count: float) -> bool:
            return trigger.decisions().get(name, 0) >= count

        # 1. One firing drift alert -> exactly one run, with the configured parameters and the alert as reason.
        sent = time.time()
        post_alerts(alertmanager, [drift_amount])
        wait_until(lambda: _runs(recorded), 20, "the first run at the KFP double")
        latency = _runs(recorded)[0]["time"] - sent
        print(f"\nAlertmanager received the alert -> run recorded at KFP: {latency:.2f} s "
              "(group_wait 100ms, group_interval 500ms)")
        (run,) = [r["body"] for r in _runs(recorded)]
        # The committed IR, with caching sent off on every top-level step (pipelines/submit.py).
        uncached = copy.deepcopy(spec_doc)
        for task in uncached["root"]["dag"]["tasks"].values():
            task["cachingOptions"] = {}
        assert run["pipeline_spec"]["pipeline_spec"] == uncached
        parameters = run["runtime_config"]["parameters"]
        reason = parameters.pop("retrain_reason")
        assert parameters == PARAMS
        assert reason.startswith("TitansFeatureDrift (feature=amount, model_name=titans-anomaly, model_version=3")
        assert run["display_name"].startswith("titans-retrain-")
        assert _runs(recorded)[0]["headers"]["authorization"] == f"Bearer {TOKEN}"

        # 2. Another drift alert joins the group: Alertmanager resends the first (duplicate) with it (cooldown).
        post_alerts(alertmanager, [drift_hour])
        wait_until(lambda: decided("duplicate", 1) and decided("cooldown", 1), 20, "duplicate and cooldown")
        assert len(_runs(recorded)) == 1

        # 3. Cooldown over, but run-1 still RUNNING at KFP -> in flight, nothing submitted.
        submitted_at = json.loads(trigger.state_file.read_text())["last_submitted_at"]
        time.sleep(max(0.0, submitted_at + COOLDOWN - time.time()))
        post_alerts(alertmanager, [shift])
        wait_until(lambda: decided("in_flight", 1), 20, "the in-flight decision")
        assert len(_runs(recorded)) == 1
        assert any(r["path"] == f"{RUNS_PATH}/run-1" and r["method"] == "GET" for r in recorded)

        # 4. run-1 finished -> the next alert submits run-2.
        states["run-1"] = "SUCCEEDED"
        post_alerts(alertmanager, [decay])
        wait_until(lambda: len(_runs(recorded)) == 2, 20, "the second run")
        second = _runs(recorded)[1]["body"]["runtime_config"]["parameters"]["retrain_reason"]
        assert second.startswith("TitansLivePerformanceDecay (metric=recall, model_name=titans-anomaly")

        # 5. Everything resolves -> resolved notifications are ignored; no run.
        post_alerts(alertmanager, [_resolved(a) for a in (drift_amount, drift_hour, shift, decay)])
        wait_until(lambda: decided("ignored", 4), 20, "four resolved alerts ignored")
        time.sleep(1.0)  # one more group_interval: nothing late may arrive
        counts = trigger.decisions()
    assert len(_runs(recorded)) == 2
    assert counts == {"submitted": 2, "duplicate": 1, "cooldown": 1, "in_flight": 1, "ignored": 4, "failed": 0,
                      "rejected": 0}
    # One log line per decision, and the resolved alerts may start runs again when they next fire.
    assert len(trigger.decision_lines()) == 9
    assert json.loads(trigger.state_file.read_text())["seen"] == {}


def test_state_survives_a_restart_and_bad_bodies_get_400(tmp_path: Path) -> None:
    """A restarted trigger still knows the alert it acted on and the cooldown; malformed webhooks are named."""
    firing = {"status": "firing", "labels": {"alertname": "TitansFeatureDrift", "model_name": "titans-amount",
                                             "model_version": "1", "feature": "amount"},
              "annotations": {}, "fingerprint": "0f1e2d3c4b5a6978", "startsAt": "2026-12-03T12:00:00Z"}
    other = {**firing, "labels": {**firing["labels"], "feature": "hour"}, "fingerprint": "1a2b3c4d5e6f7081"}
    unknown = {**firing, "labels": {"alertname": "KubePodCrashLooping"}, "fingerprint": "99"}

    def webhook(url: str, *alerts: dict[str, Any]) -> list[str]:
        status, body = http_json("POST", url, {"version": "4", "status": "firing", "alerts": list(alerts)})
        assert status == 200, body
        return [d["decision"] for d in body["decisions"]]

    with kfp_api_double() as (kfp_host, recorded):
        with start_trigger(tmp_path, "--kfp-host", kfp_host) as trigger:
            assert webhook(trigger.webhook_url, firing) == ["submitted"]
            for bad, message in [
                (b"{not json", "body is not JSON"),
                ({"version": "3", "alerts": []}, "version: expected '4'"),
                ({"alerts": [{**firing, "status": "pending"}]}, "alerts[0].status"),
                ({"alerts": [{**firing, "fingerprint": ""}]}, "alerts[0].fingerprint"),
                ({"alerts": [{**firing, "labels": {"feature": "amount"}}]}, "alerts[0].labels.alertname"),
            ]:
                status, body = http_json("POST", trigger.webhook_url, bad)
                assert status == 400 and message in body["error"], (bad, body)
            assert trigger.decisions()["rejected"] == 5
        with start_trigger(tmp_path, "--kfp-host", kfp_host) as restarted:
            assert webhook(restarted.webhook_url, firing, other, unknown) == ["duplicate", "cooldown", "ignored"]
            assert http_json("GET", f"{restarted.url}/nowhere")[0] == 404
    assert len(_runs(recorded)) == 1


def test_startup_refuses_what_would_fail_at_the_first_alert(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An unknown pipeline parameter, a hand-set reason or a missing package stop the start with one line."""
    from titans.cli import main

    for args, message in [
        (["--kfp-host", "http://127.0.0.1:9", "--param", "no_such=1"], "unknown pipeline parameters: no_such"),
        (["--kfp-host", "http://127.0.0.1:9", "--param", "retrain_reason=x"], "set by the trigger"),
        (["--kfp-host", "http://127.0.0.1:9", "--package", str(tmp_path / "none.yaml")], "compiled pipeline not found"),
        (["--local", "--param", "gate_config={}"], "not settable with --local"),
        (["--local", "--kfp-host", "http://127.0.0.1:9"], "exactly one of"),
    ]:
        with pytest.raises(UserError, match=message):
            from titans.cli import build_parser

            parsed = build_parser().parse_args(["retrain-trigger", "--state-file", str(tmp_path / "s.json"), *args])
            parsed.handler(parsed)
    assert main(["retrain-trigger", "--local", "--listen", "nonsense", "--state-file", str(tmp_path / "s.json")]) == 2
    # A damaged state file stops the start: starting without it would forget the cooldown.
    (tmp_path / "damaged.json").write_text('{"seen": {"0f1e": ')
    assert main(["retrain-trigger", "--local", "--state-file", str(tmp_path / "damaged.json")]) == 2
    assert "damaged.json is unreadable" in capsys.readouterr().err


def test_local_mode_is_in_flight_while_the_pipeline_process_lives(tmp_path: Path) -> None:
    """--local: the run is the child process; in flight while it is alive, also for a restarted trigger."""
    from pipelines.retrain_trigger import LocalRunner
    from titans.cli import build_parser

    default = LocalRunner({"rows": 500, "n_estimators": 20}, tmp_path)
    # The command the trigger would start is one the real CLI accepts, with the reason passed through.
    parsed = build_parser().parse_args([*default.command[3:], "--retrain-reason", "TitansFeatureDrift (...)"])
    assert (parsed.rows, parsed.n_estimators, parsed.retrain_reason) == (500, 20, "TitansFeatureDrift (...)")

    waiting = tmp_path / "release"
    script = f"import pathlib, sys, time\nwhile not pathlib.Path({str(waiting)!r}).exists(): time.sleep(0.05)"
    runner = LocalRunner({}, tmp_path, command=[sys.executable, "-c", script])
    run_id = runner.submit("reason", "titans-retrain-test")
    assert runner.in_flight(run_id)
    assert LocalRunner({}, tmp_path).in_flight(run_id), "a restarted trigger must see the process by its id"
    waiting.touch()
    wait_until(lambda: not runner.in_flight(run_id), 10, "the child process to end")
    assert (tmp_path / "titans-retrain-test.log").exists()


def test_a_kfp_api_that_never_answers_is_a_failed_decision_not_a_hang(tmp_path: Path) -> None:
    """KFP accepting connections but never answering: the call times out, the alert is failed and not marked
    as seen (so Alertmanager's retry of the 503 may still submit), and the decision lock is free again."""
    import socket

    from pipelines import retrain_trigger
    from titans.monitoring.trigger_policy import Alert, TriggerPolicy

    alert = Alert("firing", {"alertname": "TitansFeatureDrift"}, {}, "0f1e2d3c", "2026-12-03T12:00:00Z")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nobody ever reads or writes
        runner = retrain_trigger.KfpRunner(f"http://127.0.0.1:{silent.getsockname()[1]}", TRAINING_YAML, "titans",
                                           {}, timeout_seconds=1)
        trigger = retrain_trigger.RetrainTrigger(runner, TriggerPolicy(), tmp_path / "state.json")
        started = time.monotonic()
        try:
            (decision,) = trigger.handle([alert])
        finally:
            retrain_trigger._bound_kfp_requests(retrain_trigger.KFP_TIMEOUT_SECONDS)
        elapsed = time.monotonic() - started
    assert decision.decision == "failed" and decision.detail.startswith("submission failed"), decision
    assert elapsed < 20, f"a silent KFP held the trigger {elapsed:.0f} s"
    assert trigger.state.seen == {} and not (tmp_path / "state.json").exists()


def test_stalled_floods_and_nested_bodies_are_bounded(tmp_path: Path) -> None:
    """Stalled connections are dropped after the timeout and never hold more than the bounded slots; a deeply
    nested body is a 400 counted as rejected, not a crash without an answer."""
    with kfp_api_double() as (kfp_host, _), start_trigger(
            tmp_path, "--kfp-host", kfp_host, env={"TITANS_CONNECTION_TIMEOUT_SECONDS": "2"}) as trigger:
        host, port = trigger.url.removeprefix("http://").split(":")
        nested = b'{"alerts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        status, body = http_json("POST", trigger.webhook_url, nested)
        assert status == 400 and "nested too deeply" in body["error"], body
        stalled = []
        for _ in range(MAX_CONNECTIONS + 8):  # more than the slots, each sending half a request line
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Le")
            stalled.append(sock)
        time.sleep(0.5)
        # Past the slots a connection is answered at once with a 503 (and counted), not queued behind the stalls.
        assert http_json("GET", f"{trigger.url}/healthz")[0] == 503
        # The stalled clients are dropped after the timeout: the server answers again, with no restart.
        wait_until(lambda: http_json("GET", f"{trigger.url}/healthz")[0] == 200 or None, 10, "/healthz after stalls")
        assert all(sock.recv(1) == b"" for sock in stalled[:MAX_CONNECTIONS])  # closed by the server
        for sock in stalled:
            sock.close()
        assert trigger.decisions()["rejected"] >= 1 + 8
