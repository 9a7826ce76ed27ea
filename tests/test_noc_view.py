"""The NOC's customer view without a broker: the web API's answers over states the engine built.

The input is the autodialer scenario of the browser test (``tollguard simulate --scenario
autodialer --customers 3 --seed 2``: Tuesday 2025-03-11, UTC), run through the engine as replay
runs it; the web API (:class:`streams.web.WebApi`) answers over the resulting states. The
expected figures are counted from the simulated records themselves, or literal.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from engine.core import CustomerState, Engine
from engine.registry import Rules
from streams.web import Metrics, WebApi
from tollguard import simulate
from tollguard.cdr import CallDetailRecord

CAMPAIGN = "cust-001"  # the autodialer's customer in this scenario


def run(rules: Any) -> tuple[list[CallDetailRecord], dict[str, CustomerState], WebApi]:
    records = list(simulate.run_scenario("autodialer", customers=3, seed=2).records())
    engine = Engine(rules)
    states: dict[str, CustomerState] = {}
    recent: deque[dict[str, Any]] = deque(maxlen=200)
    for record in records:
        state = states.setdefault(record.customer_id, engine.new_state(record.customer_id))
        recent.extend(e.to_json_dict() for e in engine.ingest(state, record).events)
    for state in states.values():
        recent.extend(e.to_json_dict() for e in engine.flush(state))
    api = WebApi(SimpleNamespace(), engine, lambda: list(states.values()), recent, Metrics(), send_verdict=None)
    return records, states, api


@pytest.fixture(scope="module")
def day() -> tuple[list[CallDetailRecord], dict[str, CustomerState], WebApi]:
    return run(Rules())


def get(api_call: Any, url: str) -> tuple[int, Any]:
    reply = api_call(make_mocked_request("GET", url))
    return reply.status, reply.data


def test_the_customer_view_shows_the_campaign_its_suspension_and_a_point_per_minute(day):
    records, _states, api = day
    status, view = get(api.customer, f"/api/customer?id={CAMPAIGN}")
    assert status == 200
    mine = [r for r in records if r.customer_id == CAMPAIGN]
    points = view["series"]["points"]
    # one point per minute from the first to the last minute with traffic (the day fits the 24 h kept)
    first_m = min(int(r.start.timestamp() // 60) for r in mine)
    last_m = max(int(r.end.timestamp() // 60) for r in mine if r.answered)
    assert len(points) == last_m - first_m + 1 == 1338
    assert [p["minute_s"] for p in points] == list(range(first_m * 60, (last_m + 1) * 60, 60))
    # attempts: every call of the customer at the minute it started
    starts = Counter(int(r.start.timestamp() // 60) * 60 for r in mine)
    assert {p["minute_s"]: p["attempts"] for p in points if p["attempts"]} == dict(starts)
    assert sum(p["attempts"] for p in points) == len(mine) == 1137
    # answered minutes: all the talk time of the day, spread over the minutes it was carried in
    talk_min = sum((r.end - (r.answer or r.end)).total_seconds() for r in mine if r.answered) / 60
    assert sum(p["answered_min"] for p in points) == pytest.approx(talk_min, abs=0.01 * len(points))
    # the campaign is the spike: 10:00-10:20 UTC holds the busiest minutes
    busiest = max(points, key=lambda p: p["attempts"])
    assert datetime.fromtimestamp(busiest["minute_s"], UTC).strftime("%H:%M") >= "10:00"
    assert datetime.fromtimestamp(busiest["minute_s"], UTC).strftime("%H:%M") < "10:21"
    # its one event, the suspension, marked on the chart and listed with scope and evidence
    (suspension,) = view["suspensions"]
    assert (suspension["detector"], suspension["scope_kind"], suspension["scope_value"], suspension["status"]) == (
        "autodialer", "cli", "+390519290901", "active")
    assert [(m["type"], m["detector"], m["at"], m["event_id"]) for m in view["markers"]] == [
        ("suspension", "autodialer", "2025-03-11T10:01:12Z", suspension["event_id"])]
    assert [e["event_id"] for e in view["events"]] == [suspension["event_id"]]
    assert view["as_of"] == "2025-03-11T22:50:11Z"  # the newest CDR end of the customer (22:50:11.875)
    assert [(c["window"], c["estimated_cost"], c["currency"], c["calls"]) for c in view["cost"]] == [
        ("hour", 0.0, "EUR", 0), ("day", 0.0, "EUR", 0)]
    # the inbound DIDs; at the end of input no call is retained any more
    assert view["concurrency"] == [
        {"did": did, "peak": 0, "capacity": 20, "proposed_capacity": None, "calls": 0, "customer_id": CAMPAIGN}
        for did in ("+390519290900", "+390519290902")]
    assert view["calls_held"] == 200


def test_the_calls_behind_an_event_are_those_its_evidence_names(day):
    records, _states, api = day
    _, view = get(api.customer, f"/api/customer?id={CAMPAIGN}")
    event_id = view["suspensions"][0]["event_id"]
    status, body = get(api.cdrs, f"/api/cdrs?customer={CAMPAIGN}&event={event_id}")
    assert status == 200
    sample = view["suspensions"][0]["evidence"]["sample_call_ids"]
    assert body["call_ids"] == sample and len(sample) == 10
    # the campaign's calls of 10:01 left the newest 200 calls and the one-hour dedupe memory long ago
    assert [(c["call_id"], c["held"]) for c in body["calls"]] == [(cid, "no") for cid in sample]
    # the newest call is held whole
    newest = max((r for r in records if r.customer_id == CAMPAIGN), key=lambda r: (r.end, r.call_id))
    status, body = get(api.cdrs, f"/api/cdrs?customer={CAMPAIGN}&call_id={newest.call_id}")
    assert status == 200
    line = newest.to_json_dict()  # the record as the jsonl format writes it
    assert body["calls"] == [dict({k: line.get(k) for k in (
        "call_id", "direction", "caller", "callee", "did", "start", "answer", "end", "billsec_s", "disposition")},
        held="recent")]
    assert body["calls"][0]["end"] == "2025-03-11T22:50:11.875000Z"


def test_with_more_calls_kept_the_evidence_opens_on_the_cdrs_themselves():
    rules = Rules(detectors={"traffic": {"recent_calls": 2000}})
    records, _states, api = run(rules)
    _, view = get(api.customer, f"/api/customer?id={CAMPAIGN}")
    suspension = view["suspensions"][0]
    _, body = get(api.cdrs, f"/api/cdrs?customer={CAMPAIGN}&event={suspension['event_id']}")
    by_id = {r.call_id: r for r in records}
    assert [(c["call_id"], c["held"], c["caller"], c["callee"], c["disposition"]) for c in body["calls"]] == [
        (cid, "recent", by_id[cid].caller, by_id[cid].callee, str(by_id[cid].disposition))
        for cid in suspension["evidence"]["sample_call_ids"]]
    assert {c["caller"] for c in body["calls"]} == {suspension["scope_value"]}
    assert view["calls_held"] == 1137


def test_bad_queries_get_a_reason_not_a_traceback(day):
    _, _, api = day
    assert get(api.customer, "/api/customer") == (400, {"error": "parameter id is required"})
    assert get(api.customer, "/api/customer?id=cust-404")[0] == 404
    assert get(api.cdrs, f"/api/cdrs?customer={CAMPAIGN}") == (
        400, {"error": "give one of the parameters event or call_id"})
    assert get(api.cdrs, f"/api/cdrs?customer={CAMPAIGN}&event=nope")[0] == 404
    assert get(api.cdrs, f"/api/cdrs?customer={CAMPAIGN}&call_id=nope")[1]["calls"] == [
        {"call_id": "nope", "held": "no"}]


def test_the_figures_count_the_suspensions_and_customers(day):
    _, _, api = day
    first = api.overview()
    assert {k: first[k] for k in ("cdrs_processed", "cdrs_per_s", "consumer_lag", "suspensions_active",
                                  "suspensions_confirmed", "customers")} == {
        "cdrs_processed": 0, "cdrs_per_s": None, "consumer_lag": 0, "suspensions_active": 1,
        "suspensions_confirmed": 0, "customers": 3}
    assert "traffic" not in first["detectors"] and "autodialer" in first["detectors"]
    api.metrics.cdrs.inc(10)
    assert api.overview()["cdrs_processed"] == 10


def test_the_series_keeps_series_s_of_event_time_and_the_newest_calls():
    from detectors.traffic import TrafficDetector
    from tollguard.testing import BASE_TIME, make_cdr

    ctx = Rules(detectors={"traffic": {"series_s": 3600, "recent_calls": 3}}).context("c1")
    det, state = TrafficDetector(), TrafficDetector().initial_state()
    # a 30 s answered call every 10 minutes for 3 hours, then a 2-hour call that ends last
    for i in range(18):
        det.update(state, make_cdr(call_id=f"c{i}", start_s=i * 600, end_s=i * 600 + 30), ctx)
    det.update(state, make_cdr(call_id="long", start_s=3 * 3600 - 7200, end_s=3 * 3600), ctx)
    rows = det.report(state, ctx)
    minutes = [(r["minute_s"] - rows[0]["minute_s"], r["attempts"], r["answered_min"])
               for r in rows if r["kind"] == "minute"]
    # (from 09:00 UTC) the last hour before 12:00, the newest end: the minutes from 11:01 on (the long call's
    # attempt at 10:00 is out), each carrying a minute of the long call, those of 11:10 ... 11:50 half a minute more
    assert len(minutes) == 59 and minutes[0] == (0, 0, 1.0)
    assert [m for m in minutes if m[1]] == [(540, 1, 1.5), (1140, 1, 1.5), (1740, 1, 1.5), (2340, 1, 1.5),
                                             (2940, 1, 1.5)]
    assert sum(m[2] for m in minutes) == 59 + 5 * 0.5
    assert [r["call_id"] for r in rows if r["kind"] == "call"] == ["long", "c17", "c16"]
    assert state["floor"] * 60 == BASE_TIME.timestamp() + 2 * 3600 + 60  # 11:01, the oldest minute kept
