"""The streaming job: Faust agents on Kafka running the same engine as ``tollguard replay``.

Topology (topic names without the configurable prefix, DESIGN §4)::

    cdrs ──parse──► cdrs-by-customer (key = customer_id) ──detect──► suspensions, alerts,
      │                                   │                           capacity-increases,
      └─► cdrs-dead-letter ◄──────────────┘ (late CDRs)               compliance-notices

* ``parse`` turns each raw message (one CDR line of any supported format) into the
  canonical record, or sends it to ``cdrs-dead-letter`` with the reason, raw value
  and source position: nothing is lost.
* ``detect`` consumes the repartitioned stream, so one customer's CDRs (all its
  DIDs and CLIs) reach the one worker that holds its state, in a changelog-backed
  Faust table (one write per CDR). It calls :class:`engine.core.Engine`, the
  code replay runs, so both give the same events.
* Events are keyed by customer: a consumer sees one customer's events in order.
  Delivery is at-least-once; event ids are deterministic, so consumers de-duplicate.

A control message ``{"control": "flush", "id", "source", "sources"}`` sent to every
partition of ``cdrs`` (``tollguard produce --flush``) is copied to every partition of
``cdrs-by-customer``; once a partition has it from all ``sources`` (so every CDR before
it was parsed), its customers are closed as replay does at end of input (backfills, tests).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from engine.core import CustomerState, Engine
from engine.registry import load_rules
from streams.web import Metrics, register_views, remember
from tollguard.adapters import FORMATS, RejectError, parse_line
from tollguard.cdr import CallDetailRecord
from tollguard.errors import VerdictError
from tollguard.events import TOPIC_OF_TYPE, Event, EventType, Verdict
from tollguard.rules import Rules

log = logging.getLogger("tollguard.worker")

#: Events kept for the NOC page.
RECENT_EVENTS = 200

#: The detect agent writes the customers' states it changed (and acks the records) at a
#: checkpoint every DETECT_BATCH records or DETECT_CHECKPOINT_S seconds, not once per record.
DETECT_BATCH = 500
DETECT_CHECKPOINT_S = 0.5

#: Longest time (ms) a fetch waits at the broker for new data. faust-streaming hardcodes 1500 and
#: aiokafka keeps one fetch in flight per broker: a fetch made of idle partitions only (verifications,
#: Faust's leader topic) held the busy ones back for up to 1.5 s each time, i.e. stalls of seconds
#: at a few hundred CDRs/s (bench/bench_stream.py). See _limit_fetch_wait().
FETCH_MAX_WAIT_MS = 50

#: Control messages start with this (``tollguard produce --flush``: end of a backfill).
CONTROL_PREFIX = b'{"control"'


@dataclass(frozen=True)
class StreamSettings:
    """Where and how the worker runs. Environment variables override the defaults.

    Attributes
    ----------
    broker : str
        ``kafka://host:port`` (``TOLLGUARD_BROKER``, else ``KAFKA_BOOTSTRAP_SERVERS``).
    app_id : str
        Consumer group and changelog prefix; workers with the same id share the load.
    topic_prefix : str
        Prefix of every topic name (e.g. ``"prod."``).
    partitions : int
        Partitions of ``cdrs-by-customer`` and the state table (the parallelism cap).
    store : str
        ``memory://`` (changelog replayed on start) or ``rocksdb://`` (local, resumes).
    fast_rebalance : bool
        Short session/heartbeat timeouts: a group joins in seconds (tests, small setups).
    """

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "tollguard"
    topic_prefix: str = ""
    partitions: int = 4
    store: str = "memory://"
    datadir: str = "tollguard-data"
    web_port: int = 6066
    fast_rebalance: bool = False
    rules_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> StreamSettings:
        """Defaults, then ``TOLLGUARD_*`` / ``KAFKA_BOOTSTRAP_SERVERS`` variables, then ``overrides``."""
        env: dict[str, Any] = {}
        broker = os.environ.get("TOLLGUARD_BROKER") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if broker:
            env["broker"] = broker
        for name, conv in (("app_id", str), ("topic_prefix", str), ("partitions", int), ("store", str)):
            value = os.environ.get(f"TOLLGUARD_{name.upper()}")
            if value:
                env[name] = conv(value)
        env.update({k: v for k, v in overrides.items() if v is not None})
        if "broker" in env and "://" not in env["broker"]:
            env["broker"] = "kafka://" + env["broker"]
        return cls(**env)


def topic_name(settings: StreamSettings, name: str) -> str:
    """Full topic name with the configured prefix."""
    return f"{settings.topic_prefix}{name}"


def _event_bytes(event: Event) -> bytes:
    return orjson.dumps(event.to_json_dict())


def _limit_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's worker consumer wait at most ``max_wait_ms`` per fetch (see FETCH_MAX_WAIT_MS).

    faust-streaming 0.15 passes ``fetch_max_wait_ms=1500`` to aiokafka without a setting to
    change it; the consumer it creates is adjusted before it starts (idempotent).
    """
    from faust.transport.drivers import aiokafka as driver

    thread_cls = driver.AIOKafkaConsumerThread
    current = thread_cls._create_worker_consumer
    if getattr(current, "tollguard_fetch_wait", None) == max_wait_ms:
        return
    original = getattr(current, "__wrapped__", current)

    @functools.wraps(original)
    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        if hasattr(consumer, "_fetch_max_wait_ms"):  # read by AIOKafkaConsumer.start()
            consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    create.tollguard_fetch_wait = max_wait_ms  # type: ignore[attr-defined]
    thread_cls._create_worker_consumer = create  # type: ignore[method-assign]


def create_app(settings: StreamSettings, rules: Rules | None = None, model: Any = None) -> faust.App:
    """Build the Faust app: topics, the state table and the two agents.

    ``model`` (a :class:`models.model.AnomalyModel`) is given to the engine, so the
    ``anomaly`` detector scores the stream as it scores a replay.

    Raises
    ------
    tollguard.errors.RulesError
        When the rules file is invalid.
    """
    rules = rules or load_rules(settings.rules_path)
    _limit_fetch_wait(FETCH_MAX_WAIT_MS)
    timeouts: dict[str, Any] = {}
    if settings.fast_rebalance:
        timeouts = {"broker_session_timeout": 6, "broker_heartbeat_interval": 1, "broker_rebalance_timeout": 6}
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        datadir=settings.datadir,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        web_port=settings.web_port,
        web_tables_enabled=False,
        broker_max_poll_records=500,
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
        **timeouts,
        **settings.extra,
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    cdrs = app.topic(topic_name(settings, "cdrs"), **raw)
    by_customer = app.topic(
        topic_name(settings, "cdrs-by-customer"), partitions=settings.partitions, internal=True, **raw
    )
    dead_letter = app.topic(topic_name(settings, "cdrs-dead-letter"), **raw)
    verifications = app.topic(topic_name(settings, "verifications"), **raw)
    outputs = {t: app.topic(topic_name(settings, name), **raw) for t, name in TOPIC_OF_TYPE.items()}
    states = app.Table(
        "customer-state",
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        # Changelog partition from the key (murmur2, as parse's keyed sends to cdrs-by-customer),
        # not from the current event: detect writes states at checkpoints (see checkpoint()).
        use_partitioner=True,
    )
    engine = Engine(rules, model=model)
    cache: dict[str, CustomerState] = {}
    flushes: dict[tuple[str, int], set[int]] = {}
    recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
    metrics = Metrics()
    app.tollguard = {  # type: ignore[attr-defined]
        "engine": engine, "states": states, "cache": cache, "settings": settings, "metrics": metrics,
    }

    async def dead(raw_value: bytes, reason: str, source: str, offset: int | None) -> None:
        text = raw_value.decode("utf-8", "replace")
        metrics.rejected.labels("late" if reason.startswith("late") else "invalid").inc()
        await dead_letter.send(value=orjson.dumps({"raw": text, "reason": reason, "source": source, "offset": offset}))

    async def emit(events: list[Event]) -> None:
        for event in events:
            await outputs[EventType(event.type)].send(key=event.customer_id.encode(), value=_event_bytes(event))
            remember(recent, metrics, event)

    def local_customers(partition: int | None = None) -> list[str]:
        """Customers whose state this worker holds (optionally: of one partition)."""
        keys = {k.decode() for k in states.keys()} | set(cache)
        if partition is None:
            return sorted(keys)
        return sorted(k for k in keys if partition_of(k.encode(), settings.partitions) == partition)

    async def send_verdict(verdict: Verdict) -> None:
        await verifications.send(key=verdict.suspension_event_id.encode(), value=verdict.model_dump_json().encode())

    register_views(app, engine, lambda: [state_of(c) for c in local_customers()], recent, metrics, send_verdict)

    def state_of(customer_id: str) -> CustomerState:
        state = cache.get(customer_id)
        if state is None:
            stored = states.get(customer_id.encode())
            state = (
                CustomerState.from_json_dict(orjson.loads(stored)) if stored else engine.new_state(customer_id)
            )
            cache[customer_id] = state
        return state

    @app.agent(cdrs, name="parse")
    async def parse(stream: faust.StreamT) -> None:
        """Raw CDR lines → canonical records keyed by customer (or the dead-letter topic)."""
        async for event in stream.events():
            value: bytes = event.value or b""
            source = f"{event.message.topic}[{event.message.partition}]"
            if value.startswith(CONTROL_PREFIX):
                for partition in range(settings.partitions):
                    await by_customer.send(value=value, partition=partition)
                continue
            fmt = _header(event.message.headers, "format") or "auto"
            try:
                record = parse_line(fmt if fmt in FORMATS else "auto", value, rules.ingest, rules.country_of)
            except RejectError as exc:
                await dead(value, exc.reason, source, event.message.offset)
                continue
            await by_customer.send(key=record.customer_id.encode(), value=orjson.dumps(record.to_json_dict()))

    @app.agent(verifications, name="verify")
    async def verify(stream: faust.StreamT) -> None:
        """Verdicts → every partition of cdrs-by-customer, in order with the customers' CDRs."""
        async for value in stream:
            try:
                verdict = Verdict.model_validate_json(value)
            except ValidationError as exc:
                log.warning("verdict refused: %s: %r", exc.errors()[0]["msg"], value[:200])
                continue
            control = orjson.dumps({"control": "verdict", "verdict": verdict.model_dump(mode="json")})
            for partition in range(settings.partitions):
                await by_customer.send(value=control, partition=partition)

    async def on_control(control: dict[str, Any], partition: int) -> None:
        if control["control"] == "verdict":
            verdict = Verdict.model_validate(control["verdict"])
            for customer_id in local_customers(partition):
                state = state_of(customer_id)
                sid = verdict.suspension_event_id
                if sid in state.closed or any(o["event_id"] == sid for o in state.open.values()):
                    try:
                        await emit(engine.apply_verdict(state, verdict))
                    except VerdictError as exc:
                        log.warning("verdict refused: %s", exc)
                    states[customer_id.encode()] = orjson.dumps(state.to_json_dict())
            return
        got = flushes.setdefault((control["id"], partition), set())
        got.add(control["source"])
        if len(got) < control["sources"]:
            return
        del flushes[(control["id"], partition)]
        for customer_id in local_customers(partition):
            state = state_of(customer_id)
            await emit(engine.flush(state))
            states[customer_id.encode()] = orjson.dumps(state.to_json_dict())

    pending: list[Any] = []  # records detect has processed, acked at the next checkpoint
    dirty: dict[str, CustomerState] = {}  # states changed since the last checkpoint
    acker: list[Any] = []  # detect's stream, through which those records are acked

    async def checkpoint() -> None:
        """Write the states changed since the last checkpoint, then ack the records they include.

        Faust commits only acked offsets, and flushes the producer (so the changelog) first:
        a committed offset never runs ahead of the stored state, as with one write per record.
        """
        for customer_id, state in dirty.items():
            states[customer_id.encode()] = orjson.dumps(state.to_json_dict())
        dirty.clear()
        done, pending[:] = pending[:], []
        if acker:
            for event in done:
                await acker[0].ack(event)

    @app.agent(by_customer, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        """Canonical records of the customers of this worker's partitions → events.

        Events are emitted as each record is processed, but a customer's state (the whole
        customer, tens of KB of JSON) is written to the table at checkpoints, every
        DETECT_BATCH records or DETECT_CHECKPOINT_S seconds, not once per record: that write
        was most of the worker's time. Records are acked only at the checkpoint that wrote
        their effect, so a restart resumes from a state that matches the committed offsets.
        """
        manual = stream.noack()  # type: ignore[attr-defined]  # (Stream has it; StreamT does not declare it)
        acker[:] = [manual]
        async for event in manual.events():
            value: bytes = event.value
            if value.startswith(CONTROL_PREFIX):
                await on_control(orjson.loads(value), event.message.partition)
                pending.append(event)
                continue
            record = CallDetailRecord.model_validate_json(value)
            state = state_of(record.customer_id)
            result = engine.ingest(state, record)
            if result.status == "late":
                await dead(value, result.reason or "late", f"{event.message.topic}[{event.message.partition}]",
                           event.message.offset)
                pending.append(event)
                continue
            if result.events:
                await emit(result.events)
            if result.status != "duplicate":
                dirty[record.customer_id] = state
            pending.append(event)
            if len(pending) >= DETECT_BATCH:
                await checkpoint()
            metrics.cdrs.inc()
            if event.message.timestamp:
                metrics.latency.observe(max(0.0, time.time() - event.message.timestamp))

    @app.timer(DETECT_CHECKPOINT_S)
    async def _checkpoint() -> None:
        if pending or dirty:
            await checkpoint()

    @app.on_partitions_revoked.connect  # type: ignore[misc,arg-type]
    async def _forget_cache(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Unacked records are delivered again from the committed offsets, on the stored state.
        cache.clear()
        dirty.clear()
        pending.clear()

    return app


def _header(headers: Any, name: str) -> str | None:
    """A message header's value as text (Faust gives a list of pairs or a mapping)."""
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


_PARTITIONER = DefaultPartitioner()


def partition_of(key: bytes, partitions: int) -> int:
    """Partition the producer's default partitioner (Kafka's murmur2) gives ``key``."""
    every = list(range(partitions))
    return int(_PARTITIONER(key, every, every))
