"""The worker's web side: the NOC page, its JSON endpoints and Prometheus metrics.

Served by each worker's Faust web server (``--web-port``). A worker shows the customers
of the partitions it holds; with several workers, each page shows its share.

Endpoints
---------
``GET /noc/``               the page (figures; active suspensions with clear / confirm, recent events, DID
                            concurrency, filtered by customer, detector, type); ``/noc/?customer=ID``: one
                            customer's view, with its traffic chart
``GET /api/suspensions``    suspensions in force (active, or confirmed: termination recommended) with their evidence
``GET /api/events``         recent events emitted by this worker (newest first)
``GET /api/concurrency``    per DID: peak of the retained calls, capacity
``GET /api/overview``       figures for the top of the page: CDRs processed and per second, consumer lag,
                            suspensions in force, customers held
``GET /api/customer``       ``?id=…``: one customer's view: suspensions in force, recent events, estimated
                            cost, DID concurrency, traffic per minute of event time with its events marked
``GET /api/cdrs``           ``?customer=…&event=…`` (or ``&call_id=…``): the calls behind an event's evidence
                            (its ``sample_call_ids``), as far as the worker still holds them
``POST /api/verdicts``      ``{"suspension_event_id", "verdict", "by", "note"?}`` → ``verifications`` topic
                            (with tokens, ``by`` is the token's name)
``GET /api/whoami``         ``{"name", "role"}`` of the caller's token (nulls without tokens)
``GET /metrics``            Prometheus text format
``GET /v1/authorize``       ``?customer=…&caller=…&callee=…&did=…[&direction=…]``: may the switch route this
                            call? ``{"allow": true}`` or ``{"allow": false, "suspension_event_id", "scope",
                            "reason"}`` (DESIGN §4b, :mod:`engine.enforcement`); an allow on missing data
                            (unknown customer, callee no number) carries its ``reason`` and is counted
``GET /v1/calls``           ``?customer=…``: the customer's calls in progress (from call events)

Access
------
Tokens with roles (:mod:`streams.auth`: ``--tokens-file`` / ``TOLLGUARD_API_TOKENS_FILE``, and
``TOLLGUARD_API_TOKEN`` as one ``noc`` token): with any token configured, every endpoint, Faust's
own pages included, asks for one: ``Authorization: Bearer <token>`` (switches, Prometheus), or
HTTP basic authentication with the token as the password and any user name (a browser on the
NOC page); 401 without a known token, 403 when its role may not (``noc``: read and post
verdicts, ``switch``: ``/v1/authorize``, ``viewer``: read). A posted verdict's ``by`` is the
token's name, and every posted verdict is written to the audit log. The server binds to
``127.0.0.1`` unless ``TOLLGUARD_WEB_BIND`` names another address, which needs tokens (a switch
or a NOC browser on another host, e.g. ``0.0.0.0``); without tokens nothing is asked, and
``TOLLGUARD_WEB_BIND`` may only name another loopback address (any other stops the worker with
the reason): only processes of the host reach it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from detectors.base import iso
from detectors.traffic import MINUTE_S, call_row
from engine.core import CustomerState, Engine
from engine.enforcement import DIRECTIONS, Authorizer, Direction, NotReady
from streams.auth import (
    TOKEN_ENV,
    TOKENS_FILE_ENV,
    AuditLog,
    AuthConfigError,
    TokenRegistry,
    auth_middleware,
    identity_of,
    token_registry,
)
from tollguard.events import Event, EventType, Verdict

log = logging.getLogger("tollguard.web")

NOC_HTML = (Path(__file__).with_name("noc.html")).read_text(encoding="utf-8")

#: Environment: the web server's bind address (tokens: :mod:`streams.auth`).
BIND_ENV = "TOLLGUARD_WEB_BIND"
#: The enforcement index is rebuilt at least this often (s), whatever the change signals say.
AUTHORIZE_INDEX_MAX_AGE_S = 5.0
#: Longest value of an authorize / calls query parameter (characters).
MAX_PARAM_CHARS = 256
#: What ``/v1/calls`` says until call events (DESIGN §3b) feed calls in progress.
NO_CALL_EVENTS_NOTE = (
    "calls in progress come from call events (DESIGN §3b: the call-events topic); this worker has no "
    "call-event input yet, so it knows calls only from their CDRs, once they have ended"
)

#: The CDRs-per-second figure of ``/api/overview`` is the rate over at most this many seconds (wall clock).
RATE_WINDOW_S = 30.0

#: A customer's calls in progress (rows for ``/v1/calls``), given by the call-events input when there is one.
CallsInProgress = Callable[[str], list[dict[str, Any]]]


class WebAccessError(AuthConfigError):
    """The web server's access settings are unsafe or invalid (the worker does not start)."""


def web_access(
    environ: Mapping[str, str] | None = None, tokens_file: str | Path | None = None
) -> tuple[str, TokenRegistry | None]:
    """``(bind address, tokens or None)`` from the tokens settings (:func:`streams.auth.token_registry`)
    and ``TOLLGUARD_WEB_BIND``.

    Raises
    ------
    WebAccessError
        A non-loopback bind address without tokens.
    streams.auth.AuthConfigError
        Unusable tokens settings.

    >>> web_access({})
    ('127.0.0.1', None)
    >>> bind, tokens = web_access({"TOLLGUARD_API_TOKEN": "s3cret-s3cret-s3cret"}); bind, tokens.identities
    ('127.0.0.1', [Identity(name='noc', role='noc')])
    >>> web_access({"TOLLGUARD_API_TOKEN": "s3cret-s3cret-s3cret", "TOLLGUARD_WEB_BIND": "0.0.0.0"})[0]
    '0.0.0.0'
    """
    env = os.environ if environ is None else environ
    tokens = token_registry(env, tokens_file)
    bind = (env.get(BIND_ENV) or "").strip()
    if tokens is not None:
        return bind or "127.0.0.1", tokens  # another address (a switch on another host) only when configured
    bind = bind or "127.0.0.1"
    if not _loopback(bind):
        raise WebAccessError(
            f"{BIND_ENV}={bind} without {TOKEN_ENV} or {TOKENS_FILE_ENV}: the web API (verdicts, call "
            f"authorization) would be open to the network; configure tokens or bind to 127.0.0.1"
        )
    return bind, None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Metrics:
    """Prometheus metrics of one worker (own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cdrs = Counter("tollguard_cdrs_processed_total", "CDRs given to the detectors", registry=self.registry)
        self.rejected = Counter(
            "tollguard_cdrs_rejected_total", "CDR messages dead-lettered", ["reason"], registry=self.registry
        )
        self.events = Counter(
            "tollguard_events_total", "events emitted", ["type", "detector"], registry=self.registry
        )
        self.latency = Histogram(
            "tollguard_processing_latency_seconds",
            "from the original CDR message's Kafka timestamp on cdrs (its produce time, carried through the "
            "repartition) to the end of its processing",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.state_pieces = Counter(
            "tollguard_state_pieces_written_total", "state-table pieces written at checkpoints", registry=self.registry
        )
        self.state_piece_bytes = Histogram(
            "tollguard_state_piece_bytes", "size of each state-table piece written (the broker's limit is 1 MB)",
            buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576), registry=self.registry,
        )
        self.redelivered = Counter(
            "tollguard_redelivered_total",
            "records on cdrs-by-customer already taken into the customer's state (re-sent after a crash): skipped",
            registry=self.registry,
        )
        self.cap_hits = Counter(
            "tollguard_state_cap_hits_total", "entries dropped because a memory cap was reached", ["what"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "tollguard_consumer_lag", "messages not yet read, per topic partition", ["topic", "partition"],
            registry=self.registry,
        )
        self.authorize = Counter(
            "tollguard_authorize_total", "call authorizations answered (GET /v1/authorize)", ["result"],
            registry=self.registry,
        )
        self.authorize_fail_open = Counter(
            "tollguard_authorize_fail_open_total", "calls allowed on missing data (also counted as "
            "result=allow): why=unknown_customer (no state here, not in the rules) or unreadable_callee", ["why"],
            registry=self.registry,
        )
        self.authorize_latency = Histogram(
            "tollguard_authorize_seconds", "in-process decision time of one call authorization",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05), registry=self.registry,
        )
        #: Suspensions and reactivations emitted by this worker: the enforcement index is rebuilt when it moves.
        self.scope_changes = 0


def register_views(
    app: Any,
    engine: Engine,
    local_states: Callable[[], Iterable[CustomerState]],
    recent: deque[dict[str, Any]],
    metrics: Metrics,
    send_verdict: Callable[[Verdict, str], Any],
    calls_in_progress: CallsInProgress | None = None,
    environ: Mapping[str, str] | None = None,
    tokens_file: str | Path | None = None,
    audit: AuditLog | None = None,
) -> Authorizer:
    """Add the NOC page, JSON endpoints, the call-setup API and ``/metrics`` to a Faust app.

    Sets the web server's bind address and, with tokens (``tokens_file``, or the environment:
    :func:`streams.auth.token_registry`), authentication and roles (see *Access* in the module
    docstring; ``environ`` defaults to ``os.environ``). Verdicts posted are written to ``audit``.
    Returns the :class:`engine.enforcement.Authorizer` behind ``/v1/authorize``.

    Raises
    ------
    WebAccessError
        Unsafe access settings.
    streams.auth.AuthConfigError
        Unusable tokens settings.
    """
    _secure(app, environ, tokens_file, audit)
    api = WebApi(app, engine, local_states, recent, metrics, send_verdict, calls_in_progress, audit)
    _register_noc_views(app, api)
    _register_customer_views(app, api)
    _register_call_setup_views(app, api)
    return api.authorizer


def _secure(
    app: Any, environ: Mapping[str, str] | None, tokens_file: str | Path | None, audit: AuditLog | None = None
) -> None:
    """Set the web server's bind address and, with tokens, add the authentication middleware."""
    bind, tokens = web_access(environ, tokens_file)
    app.conf.web_bind = bind
    if tokens is not None:
        web_app = getattr(app.web, "web_app", None)
        if web_app is None:  # a web driver other than aiohttp: refuse rather than serve unauthenticated
            raise WebAccessError("API tokens need Faust's aiohttp web driver")
        web_app.middlewares.append(auth_middleware(tokens, audit))


class Reply(NamedTuple):
    """A JSON answer of an endpoint."""

    data: Any
    status: int = 200
    headers: dict[str, str] | None = None


def _json(view: View, reply: Reply) -> Response:
    return view.bytes(
        orjson.dumps(reply.data), content_type="application/json", status=reply.status, headers=reply.headers
    )


class WebApi:
    """What the worker's endpoints answer, over the customer states of this worker (the views only route here).

    Parameters are those of :func:`register_views`; :attr:`authorizer` answers ``/v1/authorize``.
    """

    def __init__(
        self,
        app: Any,
        engine: Engine,
        local_states: Callable[[], Iterable[CustomerState]],
        recent: deque[dict[str, Any]],
        metrics: Metrics,
        send_verdict: Callable[[Verdict, str], Any],
        calls_in_progress: CallsInProgress | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.app = app
        self.audit = audit
        self.engine = engine
        self.local_states = local_states
        self.recent = recent
        self.metrics = metrics
        self.send_verdict = send_verdict
        self.calls_in_progress = calls_in_progress
        self.authorizer = Authorizer(
            engine.rules,
            self.suspensions,
            version=self.version,
            ready=self.ready,
            max_age_s=AUTHORIZE_INDEX_MAX_AGE_S,
            known=self.known_customers,
        )
        self.allowed, self.refused = metrics.authorize.labels("allow"), metrics.authorize.labels("refuse")
        self.bad, self.unready = metrics.authorize.labels("bad_request"), metrics.authorize.labels("not_ready")
        #: (monotonic s, CDRs processed) at the latest calls of :meth:`overview`, for the CDRs/s figure.
        self._rate_samples: deque[tuple[float, int]] = deque()

    def suspensions(self) -> Iterable[dict[str, Any]]:
        """The suspension rows in force of every local state."""
        for state in self.local_states():
            yield from self.engine.active_suspensions(state)

    def known_customers(self) -> Iterable[str]:
        """The customers whose states this worker holds."""
        return [state.customer_id for state in self.local_states()]

    def version(self) -> tuple[int, int]:
        """Moves when this worker emits a suspension or reactivation, or goes through a rebalance."""
        return self.metrics.scope_changes, getattr(self.app, "rebalancing_count", 0)

    def ready(self) -> bool:
        """The states may be read: not rebalancing, tables recovered (reading them earlier would
        index the table store before recovery)."""
        app = self.app
        if getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False):
            return False
        recovery = getattr(getattr(app, "tables", None), "recovery", None)
        completed = getattr(recovery, "completed", None)
        return completed is None or bool(completed.is_set())

    # ------------------------------------------------------------------ the NOC page's endpoints

    def suspension_rows(self) -> list[dict[str, Any]]:
        """``GET /api/suspensions``: newest first, each with ``since`` (ISO time of ``first_s``)."""
        rows = []
        for state in self.local_states():
            for entry in self.engine.active_suspensions(state):
                rows.append(dict(entry, since=iso(entry["first_s"])))
        rows.sort(key=lambda r: r["first_s"], reverse=True)
        return rows

    def recent_events(self) -> list[dict[str, Any]]:
        """``GET /api/events``: newest first."""
        return list(reversed(self.recent))

    def concurrency_rows(self) -> list[dict[str, Any]]:
        """``GET /api/concurrency``: per DID, highest peak first."""
        rows: list[dict[str, Any]] = []
        for state in self.local_states():
            rows += [
                dict(row, customer_id=state.customer_id) for row in self.engine.report(state, "did_concurrency")
            ]
        rows.sort(key=lambda r: (-r["peak"], r["did"]))
        return rows

    async def post_verdict(self, request: Request) -> Reply:
        """``POST /api/verdicts``: 202 once sent to the ``verifications`` topic; 400 bad body, 404 not here.

        With authentication, the verdict's ``by`` is the caller's identity (the token's name;
        a ``by`` in the body is ignored); without, the body must name it. Every verdict posted,
        sent or refused, is written to the audit log first; 503 when it cannot be written.
        """
        identity = identity_of(request)
        peer = getattr(request, "remote", None)
        body: Any = None
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            fields = {"at": datetime.now(UTC).isoformat(), **body}
            if identity is not None:
                fields["by"] = identity.name
            verdict = Verdict.model_validate(fields)
        except (ValueError, ValidationError) as exc:
            reply = Reply({"error": f"bad verdict: {exc}"}, status=400)
            return self._audited(reply, body if isinstance(body, dict) else None, identity, peer)
        owner = {
            e["event_id"]: s.customer_id
            for s in self.local_states() for e in self.engine.active_suspensions(s) if e["status"] == "active"
        }
        sent = verdict.model_dump(mode="json")
        if verdict.suspension_event_id not in owner:
            reply = Reply({"error": f"no active suspension {verdict.suspension_event_id} on this worker"}, status=404)
            return self._audited(reply, sent, identity, peer)
        reply = self._audited(Reply({"sent": sent}, status=202), sent, identity, peer)
        if reply.status == 202:
            await self.send_verdict(verdict, owner[verdict.suspension_event_id])
        return reply

    def _audited(self, reply: Reply, verdict: dict[str, Any] | None, identity: Any, peer: str | None) -> Reply:
        """Write a posted verdict's fate to the audit log; a 503 instead when the log cannot be written."""
        if self.audit is None:
            return reply
        reason = reply.data.get("error") if isinstance(reply.data, dict) else None
        try:
            self.audit.write("api", verdict, identity=identity, peer=peer, status=reply.status, reason=reason)
        except OSError as exc:
            log.error("audit log %s not writable (%s): verdict refused", self.audit.path, exc.strerror or exc)
            return Reply({"error": "the audit log cannot be written: verdict not sent"}, status=503)
        return reply

    def metrics_text(self) -> bytes:
        """``GET /metrics`` (the lag gauge updated first)."""
        update_lag(self.app, self.metrics)
        return generate_latest(self.metrics.registry)

    # ------------------------------------------------------------------ the figures and the customer view

    def overview(self) -> dict[str, Any]:
        """``GET /api/overview``: the figures at the top of the NOC page.

        ``{"cdrs_processed": int, "cdrs_per_s": float or None (wall-clock rate over the last
        RATE_WINDOW_S seconds of calls to this endpoint; None at the first call), "consumer_lag":
        messages not yet read (int, every topic partition of this worker), "lag_by_topic": {topic: int},
        "suspensions_active": int, "suspensions_confirmed": int, "customers": int, "detectors": names
        of the detectors that decide, "types": event types}`` (the last two for the page's filter)
        """
        registry = self.metrics.registry
        processed = int(registry.get_sample_value("tollguard_cdrs_processed_total") or 0)
        now = time.monotonic()
        samples = self._rate_samples
        samples.append((now, processed))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        (then, before) = samples[0]
        rate = round((processed - before) / (now - then), 1) if now - then > 0 else None
        update_lag(self.app, self.metrics)
        by_topic: dict[str, int] = {}
        for family in self.metrics.lag.collect():
            for sample in family.samples:
                topic = sample.labels["topic"]
                by_topic[topic] = by_topic.get(topic, 0) + int(sample.value)
        states = list(self.local_states())
        statuses = [e["status"] for state in states for e in self.engine.active_suspensions(state)]
        return {
            "cdrs_processed": processed,
            "cdrs_per_s": rate,
            "consumer_lag": sum(by_topic.values()),
            "lag_by_topic": dict(sorted(by_topic.items())),
            "suspensions_active": statuses.count("active"),
            "suspensions_confirmed": statuses.count("confirmed"),
            "customers": len(states),
            "detectors": [d.name for d in self.engine.detectors if d.decides],
            "types": [str(t) for t in EventType],
        }

    def _state_of(self, customer_id: str) -> CustomerState | None:
        return next((s for s in self.local_states() if s.customer_id == customer_id), None)

    def customer(self, request: Request) -> Reply:
        """``GET /api/customer?id=…``: 400 bad query, 404 a customer this worker does not hold.

        ``{"customer_id", "as_of": ISO of the newest CDR end seen (event time) or None,
        "suspensions": rows of /api/suspensions, "events": rows of /api/events (the worker keeps
        the last RECENT_EVENTS of all its customers), "cost": the spend detector's rows (estimated
        cost per window), "concurrency": rows of /api/concurrency, "series": {"step_s": 60, "from_s",
        "to_s": UTC epoch s bounding the points, "points": [{"minute_s", "attempts", "answered_min"}]
        (one per minute from the first to the last minute with traffic, zeros included)}, "markers":
        [{"event_id", "type", "detector", "at_s", "at"}] (the events and suspensions in force whose
        event time falls within the series), "calls_held": int}``
        """
        try:
            customer_id = query_params(request, required=("id",))["id"]
        except ValueError as exc:
            return Reply({"error": str(exc)}, status=400)
        state = self._state_of(customer_id)
        if state is None:
            return Reply({"error": f"customer {customer_id} has no state on this worker (another worker may "
                                   "hold it, or it sent no CDR yet)"}, status=404)
        return Reply(self.customer_view(state))

    def customer_view(self, state: CustomerState) -> dict[str, Any]:
        """The body of ``/api/customer`` for one state (see :meth:`customer`)."""
        cid = state.customer_id
        traffic = self.engine.report(state, "traffic")
        stored = {row["minute_s"]: row for row in traffic if row["kind"] == "minute"}
        points: list[dict[str, Any]] = []
        if stored:
            first, last = min(stored), max(stored)
            points = [stored.get(m, {"minute_s": m, "attempts": 0, "answered_min": 0.0})
                      for m in range(first, last + MINUTE_S, MINUTE_S)]
            points = [{k: v for k, v in p.items() if k != "kind"} for p in points]
        from_s = points[0]["minute_s"] if points else None
        to_s = points[-1]["minute_s"] + MINUTE_S if points else None
        suspensions = [r for r in self.suspension_rows() if r["customer_id"] == cid]
        events = [e for e in self.recent_events() if e["customer_id"] == cid]
        marked = {e["event_id"]: (e["type"], e["detector"], datetime.fromisoformat(e["occurred_at"]).timestamp())
                  for e in events}
        for r in suspensions:
            marked.setdefault(r["event_id"], (r["type"], r["detector"], r["first_s"]))
        markers = sorted(
            ({"event_id": eid, "type": kind, "detector": det, "at_s": at_s, "at": iso(at_s)}
             for eid, (kind, det, at_s) in marked.items()
             if from_s is not None and to_s is not None and from_s <= at_s <= to_s),
            key=lambda m: (m["at_s"], m["event_id"]),
        )
        return {
            "customer_id": cid,
            "as_of": iso(state.max_end_s) if state.max_end_s != float("-inf") else None,
            "suspensions": suspensions,
            "events": events,
            "cost": self.engine.report(state, "spend"),
            "concurrency": [r for r in self.concurrency_rows() if r["customer_id"] == cid],
            "series": {"step_s": MINUTE_S, "from_s": from_s, "to_s": to_s, "points": points},
            "markers": markers,
            "calls_held": sum(1 for row in traffic if row["kind"] == "call"),
        }

    def cdrs(self, request: Request) -> Reply:
        """``GET /api/cdrs?customer=…&event=…`` (or ``&call_id=…``): the calls behind an event, as held here.

        ``{"customer_id", "event_id" (or None), "call_ids": [...], "calls": [row per call id]}``; a row is
        the call's CDR (``call_row`` fields) with ``"held": "recent"`` (among the customer's newest CDRs,
        ``traffic.recent_calls``) or ``"waiting"`` (not yet released to the detectors), else
        ``{"call_id", "held": "released", "end"}`` (processed; only its id and end are remembered) or
        ``{"call_id", "held": "no"}``. 400 bad query, 404 unknown customer or event.
        """
        try:
            q = query_params(request, required=("customer",), optional=("event", "call_id"))
            if bool(q["event"]) == bool(q["call_id"]):
                raise ValueError("give one of the parameters event or call_id")
        except ValueError as exc:
            return Reply({"error": str(exc)}, status=400)
        state = self._state_of(q["customer"])
        if state is None:
            return Reply({"error": f"customer {q['customer']} has no state on this worker"}, status=404)
        call_ids = [q["call_id"]]
        if q["event"]:
            evidence = self._evidence_of(state, q["event"])
            if evidence is None:
                return Reply({"error": f"event {q['event']} of customer {q['customer']} is not held on this "
                                       "worker any more"}, status=404)
            call_ids = [str(c) for c in evidence.get("sample_call_ids")
                        or (evidence.get("suspension_evidence") or {}).get("sample_call_ids") or []]
        recent = {row["call_id"]: row for row in self.engine.report(state, "traffic") if row["kind"] == "call"}
        calls = []
        for call_id in call_ids:
            if call_id in recent:
                row = {k: v for k, v in recent[call_id].items() if k != "kind"}
                calls.append(dict(row, held="recent"))
            elif call_id in state.pending:
                calls.append(dict(call_row(state.pending[call_id]), held="waiting"))
            elif call_id in state.released:
                calls.append({"call_id": call_id, "held": "released", "end": iso(state.released[call_id])})
            else:
                calls.append({"call_id": call_id, "held": "no"})
        return Reply({"customer_id": state.customer_id, "event_id": q["event"] or None, "call_ids": call_ids,
                      "calls": calls})

    def _evidence_of(self, state: CustomerState, event_id: str) -> dict[str, Any] | None:
        """The latest evidence of one of ``state``'s events: its open episode's, else the recent event's."""
        for entry in state.open.values():
            if entry["event_id"] == event_id:
                return cast(dict[str, Any], entry["evidence"])
        for event in self.recent:
            if event["event_id"] == event_id and event["customer_id"] == state.customer_id:
                return cast(dict[str, Any], event.get("evidence") or {})
        return None

    # ------------------------------------------------------------------ the call-setup API

    def authorize(self, request: Request) -> Reply:
        """``GET /v1/authorize``: 400 bad query, 503 until the states may be read."""
        try:
            q = query_params(request, required=("customer", "callee"), optional=("caller", "did", "direction"))
            if q["direction"] and q["direction"] not in DIRECTIONS:
                raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
            direction = cast(Direction | None, q["direction"] or None)
        except ValueError as exc:
            self.bad.inc()
            return Reply({"error": str(exc)}, status=400)
        started = time.perf_counter()
        try:
            answer = self.authorizer.authorize(q["customer"], q["caller"], q["callee"], q["did"], direction)
        except NotReady as exc:
            self.unready.inc()
            return Reply({"error": str(exc)}, status=503, headers={"Retry-After": "1"})
        self.metrics.authorize_latency.observe(time.perf_counter() - started)
        (self.allowed if answer.allow else self.refused).inc()
        if answer.fail_open is not None:
            self.metrics.authorize_fail_open.labels(answer.fail_open).inc()
        return Reply(answer.to_json_dict())

    def calls(self, request: Request) -> Reply:
        """``GET /v1/calls``: the customer's calls in progress (a note while there is no call-event input)."""
        try:
            customer = query_params(request, required=("customer",))["customer"]
        except ValueError as exc:
            return Reply({"error": str(exc)}, status=400)
        if self.calls_in_progress is None:
            return Reply({"customer": customer, "calls": [], "note": NO_CALL_EVENTS_NOTE})
        return Reply({"customer": customer, "calls": self.calls_in_progress(customer)})


def _register_noc_views(app: Any, api: WebApi) -> None:
    """The NOC page, its JSON endpoints and ``/metrics``."""

    @app.page("/noc/")
    class NocPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(NOC_HTML)

    _json_get(app, "/api/suspensions", lambda request: Reply(api.suspension_rows()))
    _json_get(app, "/api/events", lambda request: Reply(api.recent_events()))
    _json_get(app, "/api/concurrency", lambda request: Reply(api.concurrency_rows()))
    _json_get(app, "/api/whoami", _whoami)

    @app.page("/api/verdicts")
    class Verdicts(View):
        async def post(self, request: Request) -> Response:
            return _json(self, await api.post_verdict(request))

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(api.metrics_text(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def _register_customer_views(app: Any, api: WebApi) -> None:
    """The figures of the page and its customer view: ``/api/overview``, ``/api/customer``, ``/api/cdrs``."""

    _json_get(app, "/api/overview", lambda request: Reply(api.overview()))
    _json_get(app, "/api/customer", api.customer)
    _json_get(app, "/api/cdrs", api.cdrs)


def _register_call_setup_views(app: Any, api: WebApi) -> None:
    """The switches' API: ``/v1/authorize`` and ``/v1/calls``."""

    _json_get(app, "/v1/authorize", api.authorize)
    _json_get(app, "/v1/calls", api.calls)


def _json_get(app: Any, path: str, answer: Callable[[Request], Reply]) -> None:
    """Register ``GET path`` answering ``answer(request)`` as JSON (access is checked by path, see streams.auth)."""

    @app.page(path)
    class JsonGet(View):
        async def get(self, request: Request) -> Response:
            return _json(self, answer(request))


def _whoami(request: Request) -> Reply:
    """``/api/whoami``: the authenticated token's name and role (both None without authentication)."""
    me = identity_of(request)
    return Reply({"name": me.name, "role": me.role} if me else {"name": None, "role": None})

def query_params(request: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, str]:
    """The query parameters of ``request``, checked: each known, given once, not too long, required ones not empty.

    A leading space in a value is a ``+`` the client did not percent-encode (``caller=+3902…`` reads
    as ``" 3902…"``): it is read back as ``+``.

    Raises
    ------
    ValueError
        The first problem, in a sentence.
    """
    query = request.query
    known = required + optional
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out: dict[str, str] = {}
    for name in known:
        values = query.getall(name, [])
        if len(values) > 1:
            raise ValueError(f"parameter {name} given {len(values)} times")
        value = values[0] if values else ""
        if len(value) > MAX_PARAM_CHARS:
            raise ValueError(f"parameter {name} is longer than {MAX_PARAM_CHARS} characters")
        if value[:1] == " " and value.strip()[:1].isdigit():
            value = "+" + value.strip()
        value = value.strip()
        if not value and name in required:
            raise ValueError(f"parameter {name} is required")
        out[name] = value
    return out


def update_lag(app: Any, metrics: Metrics) -> None:
    """Set the lag gauge from the consumer's high-water marks and read positions."""
    from faust.exceptions import ConsumerNotStarted

    try:
        consumer = getattr(app, "consumer", None)
        if consumer is None:
            return
        assignment = consumer.assignment()
    except ConsumerNotStarted:  # /metrics asked while the worker starts: no lag to tell yet
        return
    for tp in assignment:
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue  # read only while recovering a table, not by the agents
        high = consumer.highwater(tp)
        read = getattr(consumer, "_read_offset", {}).get(tp)
        if high is not None:
            metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - ((read or -1) + 1)))


def remember(recent: deque[dict[str, Any]], metrics: Metrics, event: Event) -> None:
    """Keep an emitted event for the page and count it (a suspension or reactivation moves the
    enforcement index's version)."""
    recent.append(event.to_json_dict())
    metrics.events.labels(str(event.type), event.detector).inc()
    if event.type in (EventType.SUSPENSION, EventType.REACTIVATION):
        metrics.scope_changes += 1
