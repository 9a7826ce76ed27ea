"""Enforcement at call setup (DESIGN §4b): the decision (engine/enforcement.py) and ``/v1/authorize``.

The decision is checked scope by scope on hand-written suspension rows, then on the
suspension the engine itself emits for a premium-destination episode (refused with that
suspension's id, allowed again once a cleared verdict reactivates it). The web side runs
in process (the views on a Faust app, served by aiohttp's test server): response shapes,
bad parameters (400), the worker not ready yet (503), and access: a bearer token (or HTTP
basic with the token as password) on every endpoint when ``TOLLGUARD_API_TOKEN`` is set,
loopback only when it is not.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

from engine.core import CustomerState, Engine
from engine.enforcement import Authorizer, NotReady, SuspensionIndex
from engine.registry import Rules, parse_rules
from engine.runner import Runner
from streams.auth import AuthConfigError
from streams.web import Metrics, WebAccessError, register_views, remember, web_access
from tollguard.cdr import CallDetailRecord
from tollguard.events import Verdict

TOKEN = "tg-test-token-0123456789"

RULES_YAML = """
version: authorize-test
customers:
  acme:
    country: IT
    dids:
      "+390212345600": {}
      "+390212345601": {}
  londonco:
    country: GB
"""


@pytest.fixture(scope="module")
def rules() -> Rules:
    return parse_rules(RULES_YAML)


def row(customer: str, kind: str, value: str, event_id: str = "", status: str = "active", first_s: float = 0.0):
    return {
        "customer_id": customer, "event_id": event_id or f"{customer}-{kind}", "scope_kind": kind,
        "scope_value": value, "status": status, "reason": f"{kind} {value} suspended", "first_s": first_s,
    }


# --------------------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("scope", "call", "allow"),
    [
        # account: every call of the customer, inbound too; emergency numbers always go through
        (("account", "acme"), ("+390212345600", "+390612345678", ""), False),
        (("account", "acme"), ("+441234567890", "+390212345600", "+390212345600"), False),
        (("account", "acme"), ("+390212345600", "112", ""), True),
        (("account", "acme"), ("+390212345600", "113", ""), True),
        # did: inbound to it, outbound presenting it; not another DID of the customer
        (("did", "+390212345600"), ("+441234567890", "+390212345600", "+390212345600"), False),
        (("did", "+390212345600"), ("+441234567890", "02 1234 5600", ""), False),  # inbound, inferred from the rules
        (("did", "+390212345600"), ("+390212345600", "+390612345678", ""), False),
        (("did", "+390212345600"), ("1001", "+390612345678", "0039 02 1234 5600"), False),  # did = the CLI presented
        (("did", "+390212345600"), ("+390212345601", "+390612345678", ""), True),
        (("did", "+390212345600"), ("+441234567890", "+390212345601", "+390212345601"), True),
        # cli: outbound calls presenting it, never inbound calls to it
        (("cli", "+390212345600"), ("0212345600", "0612345678", ""), False),
        (("cli", "+390212345600"), ("+441234567890", "+390212345600", "+390212345600"), True),
        (("cli", "+390212345600"), ("+390212345601", "+390612345678", ""), True),
        # outbound international: calls abroad (non-geographic included), not national ones, not inbound
        (("outbound_international", "acme"), ("+390212345600", "00441234567890", ""), False),
        (("outbound_international", "acme"), ("+390212345600", "+881612345678", ""), False),
        (("outbound_international", "acme"), ("+390212345600", "0612345678", ""), True),
        (("outbound_international", "acme"), ("+441234567890", "+390212345600", "+390212345600"), True),
        # destination prefix: outbound callee starting with it, in any written form
        (("destination_prefix", "+979"), ("+390212345600", "+97912345678", ""), False),
        (("destination_prefix", "+979"), ("+390212345600", "00 979 1234 5678", ""), False),
        (("destination_prefix", "+979"), ("+390212345600", "+390612345678", ""), True),
        (("destination_prefix", "+39899"), ("+390212345600", "899123456", ""), False),  # IT premium, national form
        (("destination_prefix", "+39899"), ("+390212345600", "+39898123456", ""), True),
        (("destination_prefix", "881"), ("+390212345600", "+881612345678", ""), False),  # a prefix written without +
    ],
)
def test_each_scope_refuses_exactly_its_calls(rules: Rules, scope, call, allow) -> None:
    kind, value = scope
    index = SuspensionIndex(rules, [row("acme", kind, value, event_id="s-1")])
    answer = index.authorize("acme", *call)
    assert answer.allow is allow, (scope, call)
    if not allow:
        assert answer.to_json_dict() == {
            "allow": False, "suspension_event_id": "s-1", "scope": {"kind": kind, "value": value},
            "reason": f"{kind} {value} suspended",
        }
    assert index.authorize("other", *call).allow  # another customer is never touched


def test_numbers_are_read_in_the_customers_country(rules: Rules) -> None:
    index = SuspensionIndex(rules, [
        row("londonco", "destination_prefix", "+44909"), row("londonco", "cli", "+442079460000", "gb-cli"),
    ])
    assert not index.authorize("londonco", "+442079460001", "0909 123 4567").allow  # GB national premium
    assert index.authorize("londonco", "+442079460001", "999").allow  # GB emergency
    assert index.authorize("londonco", "020 7946 0000", "0161 496 0000").suspension_event_id == "gb-cli"


def test_emergency_numbers_go_through_every_scope(rules: Rules) -> None:
    rows = [row("acme", kind, value) for kind, value in (
        ("account", "acme"), ("cli", "+390212345600"), ("outbound_international", "acme"),
        ("destination_prefix", "112"),
    )]
    index = SuspensionIndex(rules, rows)
    for dialled in ("112", "113", "118"):
        assert index.authorize("acme", "+390212345600", dialled).allow
    assert not index.authorize("acme", "+390212345600", "+390612345678").allow


def test_statuses_order_and_explicit_direction(rules: Rules) -> None:
    index = SuspensionIndex(rules, [
        row("acme", "cli", "+390212345600", "newer", first_s=200.0),
        row("acme", "cli", "+390212345600", "older", first_s=100.0),
        row("acme", "did", "+390212345601", "closed", status="cleared"),  # not in force: ignored
        row("acme", "outbound_international", "acme", "confirmed", status="confirmed"),  # still in force
    ])
    assert index.authorize("acme", "+390212345600", "0612345678").suspension_event_id == "older"
    assert index.authorize("acme", "+390212345601", "0612345678").allow
    assert index.authorize("acme", "+390212345601", "+441234567890").suspension_event_id == "confirmed"
    # the switch's word on the direction wins over the inference
    assert index.authorize("acme", "+390212345600", "0612345678", direction="inbound").allow
    assert index.size == 3


def test_authorizer_rebuilds_when_the_version_moves(rules: Rules) -> None:
    rows: list[dict[str, Any]] = []
    version = [0]
    ready = [False]
    now = [0.0]
    authorizer = Authorizer(rules, lambda: list(rows), version=lambda: version[0], ready=lambda: ready[0],
                            max_age_s=5.0, clock=lambda: now[0])
    with pytest.raises(NotReady):
        authorizer.authorize("acme", "+390212345600", "+97912345678")
    ready[0] = True
    assert authorizer.authorize("acme", "+390212345600", "+97912345678").allow
    rows.append(row("acme", "destination_prefix", "+979"))
    assert authorizer.authorize("acme", "+390212345600", "+97912345678").allow  # nothing said it changed
    version[0] += 1
    assert not authorizer.authorize("acme", "+390212345600", "+97912345678").allow
    rows.clear()
    authorizer.changed()
    ready[0] = False  # recovering: the last index keeps answering
    assert not authorizer.authorize("acme", "+390212345600", "+97912345678").allow
    ready[0] = True
    assert authorizer.authorize("acme", "+390212345600", "+97912345678").allow
    rows.append(row("acme", "account", "acme"))
    builds = authorizer.rebuilds
    for _ in range(100):
        assert authorizer.authorize("acme", "+390212345600", "+390612345678").allow  # no rebuild per call
    now[0] = 6.0  # the safety net: an index older than max_age_s is rebuilt
    assert not authorizer.authorize("acme", "+390212345600", "+390612345678").allow
    assert authorizer.rebuilds == builds + 1


# --------------------------------------------------------------------------- with the engine's own suspension

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def outbound(i: int, customer: str, cli: str, callee: str, minute: float, answered: bool = False) -> CallDetailRecord:
    start = T0 + timedelta(minutes=minute)
    end = start + timedelta(seconds=20)
    return CallDetailRecord(
        call_id=f"{customer}-{i}", customer_id=customer, direction="outbound", caller=cli, callee=callee, did=cli,
        start=start, answer=start if answered else None, end=end, duration_s=20.0, billsec_s=20.0 if answered else 0.0,
        disposition="ANSWERED" if answered else "NO ANSWER", hangup_cause=16 if answered else 19,
    )


def premium_episode() -> list[CallDetailRecord]:
    """acme dials 12 numbers of +979 (a high-risk range of the default rules) in 12 minutes; globex calls Rome."""
    calls = [outbound(i, "acme", "+390212345600", f"+9791234567{i:02d}", i) for i in range(12)]
    calls += [outbound(100 + i, "globex", "+390298765400", f"+3906123456{i:02d}", i, True) for i in range(12)]
    return sorted(calls, key=lambda c: c.end)


@pytest.fixture
def worked(rules: Rules) -> tuple[Engine, Runner, list[Any]]:
    engine = Engine(rules)
    runner = Runner(engine)
    events = []
    for cdr in premium_episode():
        events += runner.take_record(cdr, "test", None, "").events
    events += runner.flush(list(runner.store.customers())).events
    return engine, runner, events


def _states(runner: Runner) -> list[CustomerState]:
    return [s for s in (runner.store.get(c) for c in runner.store.customers()) if s is not None]


def test_the_engines_suspension_refuses_the_call_until_cleared(rules: Rules, worked) -> None:
    engine, runner, events = worked
    (suspension,) = [e for e in events if e.type == "suspension"]
    assert (suspension.customer_id, suspension.scope.kind, suspension.scope.value) == (
        "acme", "destination_prefix", "+979")
    authorizer = Authorizer(rules, lambda: [r for s in _states(runner) for r in engine.active_suspensions(s)])
    refused = authorizer.authorize("acme", "+390212345600", "+979123456799")
    (entry,) = engine.active_suspensions(runner.store.get("acme"))
    assert refused.to_json_dict() == {
        "allow": False, "suspension_event_id": suspension.event_id,
        "scope": {"kind": "destination_prefix", "value": "+979"}, "reason": entry["reason"],  # its latest evidence
    }
    assert "made 12 calls" in entry["reason"] and "made 10 calls" in suspension.reason
    assert authorizer.authorize("acme", "+390212345600", "+390612345678").allow  # selective
    assert authorizer.authorize("globex", "+390298765400", "+979123456799").allow
    verdict = Verdict(suspension_event_id=suspension.event_id, verdict="cleared", by="anna",
                      at=T0 + timedelta(hours=1))
    (reactivation,) = runner.take_verdict(verdict, "test", None, "acme").events
    assert reactivation.type == "reactivation"
    authorizer.changed()
    assert authorizer.authorize("acme", "+390212345600", "+979123456799").allow


# --------------------------------------------------------------------------- the web side, in process


class Worker:
    """The views of one worker on a bare Faust app, served by aiohttp's test server."""

    def __init__(
        self, rules: Rules, runner: Runner, engine: Engine, environ: dict[str, str], recovered: bool = True
    ) -> None:
        import faust

        self.app = faust.App(f"authorize-test-{id(self)}", broker="memory://", web_port=6066)  # never bound here
        self.metrics = Metrics()
        self.recent: deque[dict[str, Any]] = deque(maxlen=10)
        self.sent: list[tuple[Verdict, str]] = []
        self.runner = runner
        self.recovered = recovered

        async def send_verdict(verdict: Verdict, customer: str) -> None:
            self.sent.append((verdict, customer))

        self.authorizer = register_views(
            self.app, engine, lambda: _states(runner), self.recent, self.metrics, send_verdict, environ=environ
        )

    async def __aenter__(self) -> Any:
        from aiohttp.test_utils import TestClient, TestServer

        if self.recovered:  # as at Faust's "Worker ready": tables recovered
            self.app.tables.recovery.completed.set()
        self.client = TestClient(TestServer(self.app.web.web_app))
        await self.client.start_server()
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TOLLGUARD_API_TOKEN", raising=False)
    monkeypatch.delenv("TOLLGUARD_WEB_BIND", raising=False)
    yield


def test_authorize_endpoint_answers_and_refuses_bad_queries(rules: Rules, worked, clean_env) -> None:
    engine, runner, events = worked
    (suspension,) = [e for e in events if e.type == "suspension"]
    worker = Worker(rules, runner, engine, {})
    assert worker.app.conf.web_bind == "127.0.0.1"  # no token: loopback only

    async def scenario() -> None:
        async with worker as client:
            r = await client.get("/v1/authorize", params={
                "customer": "acme", "caller": "+390212345600", "callee": "+979123456799", "did": "+390212345600"})
            assert r.status == 200 and r.content_type == "application/json"
            body = await r.json()
            assert body == {
                "allow": False, "suspension_event_id": suspension.event_id,
                "scope": {"kind": "destination_prefix", "value": "+979"}, "reason": body["reason"],
            }
            assert body["reason"].startswith("Customer acme made 12 calls")
            # a "+" the switch did not percent-encode reads as a space: taken back as "+"
            r = await client.get("/v1/authorize?customer=acme&caller=+390212345600&callee=+979123456799")
            assert (await r.json())["allow"] is False
            for params in ({"customer": "globex", "caller": "+390298765400", "callee": "+979123456799"},
                           {"customer": "acme", "caller": "+390212345600", "callee": "0612345678"},
                           {"customer": "acme", "callee": "112"}):
                r = await client.get("/v1/authorize", params=params)
                assert (r.status, await r.json()) == (200, {"allow": True}), params
            for query, error in (
                ("callee=%2B979123", "parameter customer is required"),
                ("customer=acme", "parameter callee is required"),
                ("customer=acme&callee=1&calee=2", "unknown parameter(s) calee"),
                ("customer=acme&customer=globex&callee=1", "parameter customer given 2 times"),
                ("customer=acme&callee=1&direction=sideways", "direction must be one of inbound, outbound, internal"),
                ("customer=acme&callee=" + "1" * 300, "parameter callee is longer than 256 characters"),
            ):
                r = await client.get("/v1/authorize?" + query)
                assert r.status == 400 and (await r.json())["error"].startswith(error), query
            r = await client.get("/v1/calls", params={"customer": "acme"})
            body = await r.json()
            assert r.status == 200 and body["calls"] == [] and "call events" in body["note"]
            assert (await client.get("/v1/calls")).status == 400
            metrics = generate_latest(worker.metrics.registry).decode()  # what /metrics serves
            assert 'tollguard_authorize_total{result="refuse"} 2.0' in metrics
            assert 'tollguard_authorize_total{result="bad_request"} 6.0' in metrics

    run(scenario())


def test_unknown_customers_and_unreadable_callees_are_allowed_with_the_reason(rules: Rules) -> None:
    index = SuspensionIndex(rules, [row("acme", "destination_prefix", "+979")], known=["globex"])
    unknown = index.authorize("initech", "+390298765400", "+979123456799")
    assert unknown.to_json_dict() == {"allow": True, "reason": (
        "unknown customer: this worker holds no state for it and the rules do not name it, so the call is allowed "
        "(fail open); with several workers, ask the one that holds the customer")}
    assert unknown.fail_open == "unknown_customer"
    for known in ("globex", "londonco"):  # a state held here, a customer of the rules: a plain allow
        assert index.authorize(known, "", "+979123456799").to_json_dict() == {"allow": True}
    unreadable = index.authorize("acme", "+390212345600", "sip:bob@example.com")
    assert unreadable.to_json_dict() == {"allow": True, "reason": (
        "callee is not a phone number, so the customer's suspended destinations could not be checked; the call "
        "is allowed (fail open)")}
    assert unreadable.fail_open == "unreadable_callee"
    assert index.authorize("acme", "+390212345600", "0612345678").to_json_dict() == {"allow": True}
    assert not index.authorize("acme", "+390212345600", "+979123456799").allow
    # nothing suspended that the callee decides (a CLI scope only): an unreadable callee is a plain allow
    cli_only = SuspensionIndex(rules, [row("acme", "cli", "+390212345601")], known=[])
    assert cli_only.authorize("acme", "+390212345600", "sip:bob@example.com").to_json_dict() == {"allow": True}
    assert SuspensionIndex(rules, []).authorize("initech", "", "+979123").to_json_dict() == {"allow": True}


def test_the_endpoint_says_why_it_allowed_on_missing_data_and_counts_it(rules: Rules, worked, clean_env) -> None:
    engine, runner, _ = worked
    worker = Worker(rules, runner, engine, {})

    async def scenario() -> None:
        async with worker as client:
            answers = []
            for params in ({"customer": "initech", "caller": "+390298765400", "callee": "+979123456799"},
                           {"customer": "initech", "callee": "0612345678"},
                           {"customer": "acme", "caller": "+390212345600", "callee": "sip:bob@example.com"},
                           {"customer": "globex", "caller": "+390298765400", "callee": "+979123456799"}):
                r = await client.get("/v1/authorize", params=params)
                body = await r.json()
                assert r.status == 200 and body["allow"] is True, params
                answers.append(body.get("reason", "").split(":")[0].split(",")[0])
            assert answers == ["unknown customer", "unknown customer", "callee is not a phone number", ""]
            metrics = generate_latest(worker.metrics.registry).decode()
            assert 'tollguard_authorize_total{result="allow"} 4.0' in metrics
            assert 'tollguard_authorize_fail_open_total{why="unknown_customer"} 2.0' in metrics
            assert 'tollguard_authorize_fail_open_total{why="unreadable_callee"} 1.0' in metrics

    run(scenario())


def test_a_reactivation_reaches_the_answer_without_delay(rules: Rules, worked, clean_env) -> None:
    engine, runner, events = worked
    (suspension,) = [e for e in events if e.type == "suspension"]
    worker = Worker(rules, runner, engine, {})
    query = {"customer": "acme", "caller": "+390212345600", "callee": "+979123456799"}

    async def scenario() -> None:
        async with worker as client:
            assert (await (await client.get("/v1/authorize", params=query)).json())["allow"] is False
            verdict = Verdict(suspension_event_id=suspension.event_id, verdict="cleared", by="anna",
                              at=T0 + timedelta(hours=1))
            (reactivation,) = runner.take_verdict(verdict, "test", None, "acme").events
            remember(worker.recent, worker.metrics, reactivation)  # what the worker does with every event it emits
            assert (await (await client.get("/v1/authorize", params=query)).json()) == {"allow": True}

    run(scenario())


def test_not_ready_until_the_tables_are_recovered(rules: Rules, worked, clean_env) -> None:
    engine, runner, _ = worked
    worker = Worker(rules, runner, engine, {}, recovered=False)
    query = {"customer": "acme", "callee": "+979123456799"}

    async def scenario() -> None:
        async with worker as client:
            r = await client.get("/v1/authorize", params=query)
            assert r.status == 503 and r.headers["Retry-After"] == "1"
            assert "recovering" in (await r.json())["error"]
            worker.app.tables.recovery.completed.set()
            r = await client.get("/v1/authorize", params=query)
            assert r.status == 200 and (await r.json())["allow"] is False
            worker.app.rebalancing = True  # a rebalance: the last index keeps answering
            runner.store.states.clear()
            worker.authorizer.changed()
            assert (await (await client.get("/v1/authorize", params=query)).json())["allow"] is False
            worker.app.rebalancing = False
            assert (await (await client.get("/v1/authorize", params=query)).json())["allow"] is True

    run(scenario())


def test_with_a_token_every_endpoint_asks_for_it(rules: Rules, worked, clean_env) -> None:
    engine, runner, _ = worked
    worker = Worker(rules, runner, engine, {"TOLLGUARD_API_TOKEN": TOKEN})
    assert worker.app.conf.web_bind == "127.0.0.1"  # tokens alone do not open it to the network
    query = {"customer": "acme", "caller": "+390212345600", "callee": "+979123456799"}
    basic = "Basic " + base64.b64encode(f"noc-anna:{TOKEN}".encode()).decode()

    async def scenario() -> None:
        async with worker as client:
            r = await client.get("/v1/authorize", params=query)
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "authentication required" in (await r.json())["error"]
            r = await client.get("/v1/authorize", params=query, headers={"Authorization": "Bearer wrong"})
            assert r.status == 401 and (await r.json())["error"].startswith("unknown token")
            r = await client.get("/v1/authorize", params=query, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status == 200 and (await r.json())["allow"] is False
            r = await client.get("/noc/")
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")  # the browser asks
            assert (await client.get("/noc/", headers={"Authorization": basic})).status == 200
            r = await client.post("/api/verdicts", json={"suspension_event_id": "x", "verdict": "cleared", "by": "e"})
            assert r.status == 401 and worker.sent == []
            assert (await client.get("/metrics")).status == 401  # (refused before the view runs)
            assert (await client.get("/v1/calls", params={"customer": "acme"})).status == 401

    run(scenario())


def test_access_settings() -> None:
    assert web_access({}) == ("127.0.0.1", None)
    assert web_access({"TOLLGUARD_WEB_BIND": "::1"}) == ("::1", None)
    assert web_access({"TOLLGUARD_API_TOKEN": TOKEN})[0] == "127.0.0.1"  # tokens alone: still the host only
    bind, tokens = web_access({"TOLLGUARD_API_TOKEN": TOKEN, "TOLLGUARD_WEB_BIND": "10.0.0.5"})
    assert bind == "10.0.0.5" and tokens is not None and tokens.authenticate(f"Bearer {TOKEN}") is not None
    with pytest.raises(WebAccessError, match="without TOLLGUARD_API_TOKEN"):
        web_access({"TOLLGUARD_WEB_BIND": "0.0.0.0"})
    with pytest.raises(AuthConfigError, match="shorter than 16"):
        web_access({"TOLLGUARD_API_TOKEN": "short"})
