"""Call events (DESIGN §3b): the adapters on real and documented samples, calls in progress in the engine."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from engine.core import CustomerState, Engine
from engine.registry import parse_rules
from engine.runner import Runner
from streams.replay import replay_files
from tollguard.adapters.call_events import CallEventParser, read_call_events
from tollguard.adapters.kamailio_events import acc_transaction
from tollguard.calls import CallEvent
from tollguard.cdr import CallDetailRecord

FIXTURES = Path(__file__).parent / "fixtures"
RULES = parse_rules('customers:\n  acme:\n    dids:\n      "+390212345600": {}\n')
DID = "+390212345600"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _parsed(name: str) -> list[tuple[int, dict | None, str | None, str | None]]:
    parser = CallEventParser(RULES.ingest, RULES.owner_of, RULES.country_of)
    return [
        (p.line, p.event.to_json_dict() if p.event else None, p.reason, p.note)
        for p in read_call_events(FIXTURES / name, "auto", parser)
        if not (p.skipped and p.note is None)
    ]


def test_kamailio_acc_records_made_by_the_project_switch() -> None:
    rows = _parsed("kamailio_acc_events.log")
    events = [(line, e["call_id"], e["event"], e["at"], e["customer_id"], e["callee"]) for line, e, _, _ in rows if e]
    assert events == [
        (8, "1-27600@127.0.0.1", "answer", "2026-12-01T17:47:18Z", "acme", "+390612345678"),
        (9, "2-27600@127.0.0.1", "answer", "2026-12-01T17:47:18Z", "acme", "+97912345678"),
        (10, "2-27600@127.0.0.1", "end", "2026-12-01T17:47:20Z", "acme", ""),
    ]
    assert all(e is None and reason is None for line, e, reason, _ in rows if line not in (8, 9, 10))
    assert rows[-1][3] == "kamailio-acc: not an acc record"
    first = next(e for _, e, _, _ in rows if e)
    assert (first["direction"], first["did"], first["source_ip"], first["user_agent"]) == (
        "outbound", DID, "127.0.0.1", "SIPp tollguard-test")


def test_an_acc_line_is_read_by_the_cdr_adapters_parser() -> None:
    from tollguard.adapters import ctx_for

    line = "ACC: transaction failed: timestamp=1796147238;method=INVITE;call_id=x;code=486;reason=Busy"
    tx = acc_transaction(line, ctx_for(RULES.ingest))
    assert tx is not None
    assert (tx.method, tx.call_id, tx.code, tx.at.isoformat(), tx.extra["reason"]) == (
        "INVITE", "x", 486, "2026-12-01T17:47:18+00:00", "Busy")
    assert acc_transaction("INFO: <core> [main.c:2000]: listening", ctx_for(RULES.ingest)) is None
    parser = CallEventParser(RULES.ingest, RULES.owner_of, RULES.country_of)
    busy = parser.parse("ACC: transaction failed: timestamp=1796147238;method=INVITE;call_id=x;code=486;"
                        "reason=Busy;caller=+390212345600;callee=+390612345678", "kamailio-acc")
    assert (busy.event, busy.hangup_cause, busy.customer_id, busy.direction) == ("end", 17, "acme", "outbound")


def test_freeswitch_event_socket_json() -> None:
    rows = _parsed("freeswitch_esl_events.jsonl")
    assert [(line, e and (e["call_id"][-4:], e["event"], e["at"], e["customer_id"], e["direction"],
                          e.get("hangup_cause")), reason) for line, e, reason, _ in rows] == [
        (1, ("0001", "start", "2026-12-01T16:00:00Z", "acme", "outbound", None), None),
        (2, None, None),
        (3, ("0001", "answer", "2026-12-01T16:00:04.500000Z", "acme", "outbound", None), None),
        (4, ("0001", "end", "2026-12-01T17:00:04.500000Z", "acme", "outbound", 16), None),
        # no accountcode: the rules' owner of the DID called
        (5, ("0002", "start", "2026-12-01T16:01:00Z", "acme", "inbound", None), None),
        (6, ("0002", "end", "2026-12-01T16:01:15Z", "acme", "inbound", 19), None),
        (7, None, "freeswitch-esl-json: CHANNEL_ANSWER without Event-Date-Timestamp"),
    ]
    assert rows[1][3] == "freeswitch-esl-json: event CHANNEL_PROGRESS is not a call start, answer or end"


def test_asterisk_ami_events() -> None:
    rows = _parsed("asterisk_ami_events.txt")
    assert [(line, e and (e["call_id"], e["event"], e["at"], e.get("hangup_cause")), reason)
            for line, e, reason, _ in rows] == [
        (2, ("1796140800.18", "start", "2026-12-01T16:00:00.104512Z", None), None),
        (20, None, None),  # Newstate: no call event
        (29, ("1796140800.18", "start", "2026-12-01T16:00:00.312220Z", None), None),
        (44, ("1796140800.18", "answer", "2026-12-01T16:00:06.020031Z", None), None),
        (58, ("1796140800.18", "end", "2026-12-01T17:00:00.500000Z", 16), None),
        (71, None, "asterisk-ami: Hangup without Timestamp (set timestampevents = yes in manager.conf)"),
    ]


def test_no_account_and_no_owner_is_refused() -> None:
    parser = CallEventParser(RULES.ingest, RULES.owner_of, RULES.country_of)
    line = ("ACC: transaction answered: timestamp=1796147238;method=INVITE;call_id=y;code=200;"
            "caller=+390299999999;callee=+390612345678")
    try:
        parser.parse(line, "auto")
    except Exception as exc:
        assert str(exc) == (
            "kamailio-acc: no account code, and neither caller '+390299999999' nor callee '+390612345678' is a DID "
            "of a customer in the rules (customers.<id>.dids)")
    else:
        raise AssertionError("accepted")


# --------------------------------------------------------------------------- the engine


def _event(i: int, kind: str, at_s: float, **kw: object) -> CallEvent:
    fields: dict = {"call_id": f"c{i}", "customer_id": "acme", "direction": "inbound",
                    "caller": f"+39{10 + 3 * i}1234567", "callee": DID, "did": DID, "event": kind,
                    "at": T0 + timedelta(seconds=at_s)}
    fields.update(kw)
    return CallEvent(**fields)


def _cdr(i: int, start_s: float, end_s: float) -> CallDetailRecord:
    return CallDetailRecord(
        call_id=f"c{i}", customer_id="acme", direction="inbound", caller=f"+39{10 + 3 * i}1234567", callee=DID, did=DID,
        start=T0 + timedelta(seconds=start_s), answer=T0 + timedelta(seconds=start_s),
        end=T0 + timedelta(seconds=end_s), duration_s=end_s - start_s, billsec_s=end_s - start_s,
        disposition="ANSWERED", hangup_cause=16)


def test_did_capacity_increase_as_soon_as_the_21st_call_is_up_and_each_call_counted_once() -> None:
    runner = Runner(Engine(RULES))
    emitted = []
    for i in range(25):  # 25 calls to one DID, one a second, each lasting an hour
        out = runner.take_call_event(_event(i, "start", i), "events", i + 1)
        emitted += [(i, e) for e in out.events]
    ((at_call, event),) = emitted
    assert at_call == 20
    assert (event.type, event.observed_peak, event.current_capacity, event.proposed_capacity) == (
        "capacity_increase", 21, 20, 30)
    assert event.occurred_at == T0 + timedelta(seconds=20.001)
    assert event.first_exceeded_at == T0 + timedelta(seconds=20)
    assert len(runner.engine.calls_in_progress(runner.state("acme"))) == 25
    # the CDRs complete the calls: no second event, each call counted once
    for i in range(25):
        out = runner.take_record(_cdr(i, i, 3600 + 37 * i), "cdrs", i + 1, "")
        assert out.events == []
    assert runner.state("acme").calls == {}
    # when the CDRs settle the episode, its true peak follows, naming the first event
    (final,) = runner.flush().events
    assert (final.observed_peak, final.proposed_capacity, final.evidence["final_peak_of"]) == (
        25, 30, event.event_id)
    assert final.reason.endswith(
        f"This is the episode's true peak: event {event.event_id} reported 21 at 2026-11-02T09:00:20Z while "
        "its calls were still up; the proposed capacity is the same, so it is one raise, not two.")
    assert runner.counts.calls == 25
    late_event = runner.take_call_event(_event(3, "end", 3603), "events", 99)
    assert late_event.status == "completed"


def test_call_events_sent_after_their_cdrs_invent_no_concurrency() -> None:
    """Regression (a fresh user's run): a day of CDRs produced first, its call events after. The CDRs' ids
    are forgotten after the dedupe horizon, so old events looked like calls in progress: 22 "simultaneous"
    calls on a DID whose CDRs never passed 16. Events older than the reorder window are refused as late."""
    runner = Runner(Engine(RULES))
    for i in range(100):  # 100 short calls, one every 5 min (8 h 20 min), then one 10 h after the first
        assert runner.take_record(_cdr(i, 300 * i, 300 * i + 60), "cdrs", i, "").events == []
    runner.take_record(_cdr(100, 36_000, 36_000), "cdrs", 100, "")
    outs = [runner.take_call_event(_event(i, "start", 300 * i), "events", i, f"raw {i}") for i in range(25)]
    assert {o.status for o in outs} == {"unparsable"} and [e for o in outs for e in o.events] == []
    first = outs[0].rejects[0]
    assert (first.kind, first.raw, first.reason) == (
        "call_event", "raw 0",
        "late call event: start of call c0 at 2026-11-02T09:00:00Z, 36000 s before the newest record of customer "
        "acme (allowed lateness 300 s)")
    assert runner.counts.call_events_rejected == 25 and runner.state("acme").calls == {}
    assert [e.type for e in runner.flush().events] == []


def test_premium_calls_count_at_start_and_minutes_accrue() -> None:
    runner = Runner(Engine(RULES))
    kinds = []
    for i in range(3):  # three parallel calls to +979 placed a second apart: critical at 3 at once
        ev = _event(i, "start", i, direction="outbound", caller=DID, callee=f"+9791234567{i:02d}")
        kinds += [(i, e.type, e.detector, e.scope.value, e.occurred_at) for e in runner.take_call_event(
            ev, "events", i).events]
    assert kinds == [(2, "suspension", "premium_destination", "+979", T0 + timedelta(seconds=2.001))]


def test_answered_minutes_accrue_while_the_call_is_up() -> None:
    rules = parse_rules('customers:\n  acme:\n    dids:\n      "+390212345600": {}\n'
                        'detectors:\n  premium_destination:\n    critical_parallel_calls: 100\n'
                        '    critical_attempts: 100\n    warn_attempts: 100\n')
    runner = Runner(Engine(rules))
    ev = {"direction": "outbound", "caller": DID, "callee": "+97912345600"}
    assert runner.take_call_event(_event(1, "start", 0, **ev), "e", 1).events == []
    assert runner.take_call_event(_event(1, "answer", 5, **ev), "e", 2).events == []
    found = []
    for minute in range(1, 40):  # the customer's other (short) calls move its event time on
        for kind, at_s in (("start", 60 * minute), ("end", 60 * minute + 20)):
            other = _event(100 + minute, kind, at_s, direction="outbound", caller=DID, callee="+390612345678")
            found += [(minute, e.type, e.detector, e.occurred_at) for e in runner.take_call_event(other, "e", 0).events]
    # warning at 10 answered minutes, critical at 30, while the one call is still up: at the first
    # evaluation after them (every start, at most live_interval_s apart)
    assert found == [
        (11, "alert", "premium_destination", T0 + timedelta(seconds=660.001)),
        (25, "alert", "spend", T0 + timedelta(seconds=1500.001)),  # EUR 50 accrued at +979's rate
        (31, "suspension", "premium_destination", T0 + timedelta(seconds=1860.001)),
    ]


def test_a_call_whose_end_never_arrives_is_closed_with_a_reason() -> None:
    runner = Runner(Engine(RULES))
    runner.take_call_event(_event(1, "start", 0), "e", 1)
    out = runner.take_call_event(_event(2, "start", 4 * 3600 + 1), "e", 2)
    assert out.status == "accepted"
    assert runner.counts.calls_closed == 1
    state = runner.state("acme")
    assert "c1" not in state.calls and "c1" in state.pending


def test_open_calls_survive_a_state_round_trip() -> None:
    engine = Engine(RULES)
    state = engine.new_state("acme")
    engine.ingest_call(state, _event(1, "start", 0))
    engine.ingest_call(state, _event(1, "answer", 3))
    back = CustomerState.from_json_dict(orjson.loads(orjson.dumps(state.to_json_dict())))
    assert back.calls == state.calls and back.live_s == state.live_s
    assert engine.calls_in_progress(back) == [{
        "call_id": "c1", "customer_id": "acme", "direction": "inbound", "caller": "+39131234567", "callee": DID,
        "did": DID, "start": "2026-11-02T09:00:00Z", "answer": "2026-11-02T09:00:03Z", "state": "answered"}]


def test_replay_interleaves_call_events_with_cdrs(tmp_path: Path) -> None:
    cdrs, events = tmp_path / "cdrs.jsonl", tmp_path / "events.jsonl"
    cdrs.write_bytes(b"".join(orjson.dumps(_cdr(i, i, 600 + 37 * i).to_json_dict()) + b"\n" for i in range(25)))
    events.write_bytes(b"".join(orjson.dumps(_event(i, "start", i).to_json_dict()) + b"\n" for i in range(25))
                       + b"not an event\n")
    out, rejects = io.StringIO(), io.StringIO()
    summary = replay_files([cdrs], RULES, out, rejects, call_events=[events])
    lines = [orjson.loads(x) for x in out.getvalue().splitlines()]
    # at once when the 21st call is up; when its CDRs settle the episode, its true peak (25) follows
    assert [(e["type"], e["occurred_at"], e["observed_peak"], e["proposed_capacity"]) for e in lines] == [
        ("capacity_increase", "2026-11-02T09:00:20.001000Z", 21, 30),
        ("capacity_increase", "2026-11-02T09:24:48Z", 25, 30)]
    assert lines[1]["evidence"]["final_peak_of"] == lines[0]["event_id"]
    assert "calls_up_when_decided" not in lines[1]["evidence"]
    assert (summary.calls, summary.call_events, summary.call_events_rejected, summary.call_event_inputs) == (
        25, 25, 1, 26)
    (reject,) = [orjson.loads(x) for x in rejects.getvalue().splitlines()]
    assert (reject["kind"], reject["position"], reject["reason"]) == (
        "call_event", 26, "call-events-jsonl: bad JSON: invalid literal, expected 'null': line 1 column 1 (char 0)")
    # CDRs only: the peak is reported once the calls ended (after settle_s), still the true peak
    out2 = io.StringIO()
    replay_files([cdrs], RULES, out2, io.StringIO())
    (cdr_only,) = [orjson.loads(x) for x in out2.getvalue().splitlines()]
    assert (cdr_only["observed_peak"], cdr_only["event_id"] == lines[0]["event_id"]) == (25, True)
    assert cdr_only["occurred_at"] == lines[1]["occurred_at"]


def test_a_peak_rising_above_the_proposed_capacity_is_a_new_proposal_and_no_more() -> None:
    runner = Runner(Engine(RULES))
    emitted = []
    for i in range(32):
        emitted += [(i, e.observed_peak, e.proposed_capacity, e.evidence["calls_up_when_decided"])
                    for e in runner.take_call_event(_event(i, "start", i), "events", i + 1).events]
    assert emitted == [(20, 21, 30, 21), (30, 31, 40, 31)]
    for i in range(32):
        assert runner.take_record(_cdr(i, i, 3600 + 37 * i), "cdrs", i + 1, "").events == []
    # the true peak (32) once the CDRs settle it; proposals above 40 would be new events
    assert [(e.observed_peak, e.proposed_capacity) for e in runner.flush().events] == [(32, 40)]


def test_the_true_peak_follows_even_when_the_customer_goes_on_calling_for_hours() -> None:
    """Regression (a fresh user's run): the live proposal was forgotten after the alert expiry (1 h), before
    ``settle_s`` (2 h) let the CDRs settle the episode, so the true peak never came."""
    runner = Runner(Engine(RULES))
    first = [e for i in range(25) for e in runner.take_call_event(_event(i, "start", i), "events", i).events]
    assert [e.observed_peak for e in first] == [21]
    for i in range(25):
        runner.take_record(_cdr(i, i, 600 + 37 * i), "cdrs", i, "")
    finals = []
    for n in range(30):  # an ordinary call every 10 minutes for five hours
        other = _cdr(100 + n, 1800 + 600 * n, 1860 + 600 * n).model_copy(update={"did": None})
        finals += runner.take_record(other, "cdrs", 100 + n, "").events
    assert [(e.observed_peak, e.evidence["final_peak_of"]) for e in finals] == [(25, first[0].event_id)]
