"""Replay ≡ stream for CDRs plus call events (DESIGN §3b), on the real broker.

Twenty-five calls to one DID start a second apart; their call events go to ``call-events``
first, and the worker reports the ``capacity_increase`` while the calls are still up (no CDR
sent yet) and lists them on ``GET /v1/calls``; then their CDRs complete them (with ``--flush``).
The stream's events are replay's (same event ids, same fields but ``emitted_at``), and a bad
call event is dead-lettered with replay's reason.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from kafka_fixtures import (
    DEAD_LETTER,
    EVENT_TOPICS,
    WorkerProcess,
    free_port,
    read_topics,
    run_cli,
    unique_names,
    wait_for_lag_zero,
)
from test_stream import assert_same_events, events_of

from tollguard.calls import CallEvent
from tollguard.cdr import CallDetailRecord

pytestmark = pytest.mark.kafka

DID = "+390212345600"
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)


def _files(d: Path) -> tuple[Path, Path]:
    events, cdrs = d / "events.jsonl", d / "cdrs.jsonl"
    lines = []
    for i in range(25):
        lines.append(orjson.dumps(CallEvent(
            call_id=f"live-{i}", customer_id="acme", direction="inbound", caller=f"+39{10 + 3 * i}1234567",
            callee=DID, did=DID, event="start", at=T0 + timedelta(seconds=i)).to_json_dict()))
    lines.insert(5, b'{"call_id": "broken", "event": "start"}')
    events.write_bytes(b"\n".join(lines) + b"\n")
    rows = []
    for i in range(25):
        start, end = T0 + timedelta(seconds=i), T0 + timedelta(seconds=600 + 37 * i)
        rows.append(orjson.dumps(CallDetailRecord(
            call_id=f"live-{i}", customer_id="acme", direction="inbound", caller=f"+39{10 + 3 * i}1234567",
            callee=DID, did=DID, start=start, answer=start, end=end, duration_s=(end - start).total_seconds(),
            billsec_s=(end - start).total_seconds(), disposition="ANSWERED", hangup_cause=16).to_json_dict()))
    cdrs.write_bytes(b"\n".join(rows) + b"\n")
    return events, cdrs


def test_stream_with_call_events_equals_replay(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOLLGUARD_API_TOKEN", raising=False)
    monkeypatch.delenv("TOLLGUARD_WEB_BIND", raising=False)
    events_file, cdrs_file = _files(tmp_path)
    out, rej = tmp_path / "replay-events.jsonl", tmp_path / "replay-rejects.jsonl"
    run_cli(["replay", str(cdrs_file), "--call-events", str(events_file), "--out", str(out), "--rejects", str(rej),
             "-q"], ok=(1,))
    expected = [json.loads(x) for x in out.read_text().splitlines()]
    (reject,) = [json.loads(x) for x in rej.read_text().splitlines()]
    # at the 21st call up, then the episode's true peak once its CDRs settle it
    assert [(e["type"], e["occurred_at"], e["observed_peak"]) for e in expected] == [
        ("capacity_increase", (T0 + timedelta(seconds=20.001)).isoformat().replace("+00:00", "Z"), 21),
        ("capacity_increase", expected[1]["occurred_at"], 25)]
    assert expected[1]["evidence"]["final_peak_of"] == expected[0]["event_id"]
    assert (reject["kind"], reject["position"]) == ("call_event", 6)

    prefix, app_id = unique_names("calls")
    port = free_port()
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "worker",
                           extra_args=("--web-port", str(port))).start()
    try:
        run_cli(["produce", str(events_file), "--topic", f"{prefix}call-events", "-q"], kafka_bootstrap)
        wait_for_lag_zero(kafka_bootstrap, app_id, [f"{prefix}call-events", f"{prefix}cdrs-by-customer"],
                          timeout=120, worker=worker)
        live = read_topics(kafka_bootstrap, [f"{prefix}capacity-increases"], idle_s=1.0)[f"{prefix}capacity-increases"]
        assert [json.loads(r.value)["event_id"] for r in live] == [expected[0]["event_id"]]  # no CDR sent yet
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/calls?customer=acme", timeout=10) as response:
            calls = json.loads(response.read())["calls"]
        assert [c["call_id"] for c in calls] == [f"live-{i}" for i in range(25)]
        assert (calls[0]["start"], calls[0]["state"]) == (T0.isoformat().replace("+00:00", "Z"), "ringing")

        run_cli(["produce", str(cdrs_file), "--topic", f"{prefix}cdrs", "--flush", "-q"], kafka_bootstrap)
        wait_for_lag_zero(kafka_bootstrap, app_id, [f"{prefix}cdrs", f"{prefix}cdrs-by-customer"], timeout=120,
                          worker=worker)
        outputs = read_topics(kafka_bootstrap, [f"{prefix}{t}" for t in (*EVENT_TOPICS, DEAD_LETTER)], idle_s=2.0)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert_same_events(events_of(outputs, prefix), expected)
    (dead,) = [json.loads(r.value) for r in outputs[f"{prefix}{DEAD_LETTER}"]]
    assert (dead["kind"], dead["reason"], dead["raw"]) == ("call_event", reject["reason"], reject["raw"])
