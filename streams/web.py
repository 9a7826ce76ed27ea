"""The worker's web side: the NOC page, its JSON endpoints and Prometheus metrics.

Served by each worker's Faust web server (``--web-port``). A worker shows the customers
of the partitions it holds; with several workers, each page shows its share.

Endpoints
---------
``GET /noc/``               the page (active suspensions with clear / confirm, recent events, DID concurrency)
``GET /api/suspensions``    suspensions in force (active, or confirmed: termination recommended) with their evidence
``GET /api/events``         recent events emitted by this worker (newest first)
``GET /api/concurrency``    per DID: peak of the retained calls, capacity
``POST /api/verdicts``      ``{"suspension_event_id", "verdict", "by", "note"?}`` → ``verifications`` topic
``GET /metrics``            Prometheus text format
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from detectors.base import iso
from engine.core import CustomerState, Engine
from tollguard.events import Event, Verdict

NOC_HTML = (Path(__file__).with_name("noc.html")).read_text(encoding="utf-8")


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
            "from the CDR message's Kafka timestamp to the end of its processing",
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
        self.cap_hits = Counter(
            "tollguard_state_cap_hits_total", "entries dropped because a memory cap was reached", ["what"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "tollguard_consumer_lag", "messages not yet read, per topic partition", ["topic", "partition"],
            registry=self.registry,
        )


def register_views(
    app: Any,
    engine: Engine,
    local_states: Callable[[], Iterable[CustomerState]],
    recent: deque[dict[str, Any]],
    metrics: Metrics,
    send_verdict: Callable[[Verdict, str], Any],
) -> None:
    """Add the NOC page, JSON endpoints and ``/metrics`` to a Faust app."""

    def json_response(view: View, data: Any, status: int = 200) -> Response:
        return view.bytes(orjson.dumps(data), content_type="application/json", status=status)

    @app.page("/noc/")
    class NocPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(NOC_HTML)

    @app.page("/api/suspensions")
    class Suspensions(View):
        async def get(self, request: Request) -> Response:
            rows = []
            for state in local_states():
                for entry in engine.active_suspensions(state):
                    rows.append(dict(entry, since=iso(entry["first_s"])))
            rows.sort(key=lambda r: r["first_s"], reverse=True)
            return json_response(self, rows)

    @app.page("/api/events")
    class Events(View):
        async def get(self, request: Request) -> Response:
            return json_response(self, list(reversed(recent)))

    @app.page("/api/concurrency")
    class Concurrency(View):
        async def get(self, request: Request) -> Response:
            rows = []
            for state in local_states():
                rows += [dict(row, customer_id=state.customer_id) for row in engine.report(state, "did_concurrency")]
            rows.sort(key=lambda r: (-r["peak"], r["did"]))
            return json_response(self, rows)

    @app.page("/api/verdicts")
    class Verdicts(View):
        async def post(self, request: Request) -> Response:
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                verdict = Verdict.model_validate({"at": datetime.now(UTC).isoformat(), **body})
            except (ValueError, ValidationError) as exc:
                return json_response(self, {"error": f"bad verdict: {exc}"}, status=400)
            owner = {
                e["event_id"]: s.customer_id
                for s in local_states() for e in engine.active_suspensions(s) if e["status"] == "active"
            }
            if verdict.suspension_event_id not in owner:
                return json_response(
                    self, {"error": f"no active suspension {verdict.suspension_event_id} on this worker"}, status=404
                )
            await send_verdict(verdict, owner[verdict.suspension_event_id])
            return json_response(self, {"sent": verdict.model_dump(mode="json")}, status=202)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            update_lag(app, metrics)
            return self.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def update_lag(app: Any, metrics: Metrics) -> None:
    """Set the lag gauge from the consumer's high-water marks and read positions."""
    consumer = getattr(app, "consumer", None)
    if consumer is None:
        return
    for tp in consumer.assignment():
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue  # read only while recovering a table, not by the agents
        high = consumer.highwater(tp)
        read = getattr(consumer, "_read_offset", {}).get(tp)
        if high is not None:
            metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - ((read or -1) + 1)))


def remember(recent: deque[dict[str, Any]], metrics: Metrics, event: Event) -> None:
    """Keep an emitted event for the page and count it."""
    recent.append(event.to_json_dict())
    metrics.events.labels(str(event.type), event.detector).inc()
