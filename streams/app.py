"""The streaming job: the runner of :mod:`engine.runner` over Faust agents, topics and a table.

Topology (topic names without the configurable prefix, DESIGN §4)::

    cdrs ──parse──► cdrs-by-customer (key = customer_id) ──detect──► suspensions, alerts,
    call-events ──parse-calls──┘▲          │                          capacity-increases,
      │   verifications─┘ (verify: keyed   │                          compliance-notices,
      │                    by customer)    │                          reactivations
      └─► (rejects) ─►─┘                   └─► cdrs-dead-letter

* ``parse`` turns each raw message (one CDR line of any supported format) into the
  canonical record, or into a :class:`engine.runner.Reject` (reason, raw value, source and
  offset) that ``detect`` puts on ``cdrs-dead-letter``: nothing is lost. Every record on
  ``cdrs-by-customer`` names its input position (header ``tollguard-src``), so ``detect``
  takes each input once, and dead-letters each bad one once, after any crash.
* ``parse-calls`` does the same for ``call-events`` (calls in progress, DESIGN §3b): each
  message (a call event of any supported format, the ``format`` header naming it) becomes the
  canonical :class:`tollguard.calls.CallEvent` on ``cdrs-by-customer`` (wrapped as
  ``{"call_event": …}``), or a reject of kind ``call_event`` that ``detect`` dead-letters
  (once, like the CDRs'); a message that is no call event (another event type) is dropped, as replay skips it.
* ``verify`` takes verdicts (key = the suspension's customer, as ``tollguard verify`` and
  the NOC page send them) and puts them on ``cdrs-by-customer`` under that key, so a
  verdict reaches the customer's runner in order with the customer's CDRs.
* ``detect`` consumes the repartitioned stream, so one customer's CDRs (all its DIDs and
  CLIs) reach the one worker that holds its state, and gives every record and verdict
  to :class:`engine.runner.Runner`, the loop ``tollguard replay`` runs, so both give the
  same events. States live in a changelog-backed table as bounded pieces
  (:mod:`engine.state`), written at checkpoints.
* Events are keyed by customer: a consumer sees one customer's events in order.
  Delivery is at-least-once; event ids are deterministic, so consumers de-duplicate.

A control message ``{"control": "flush", "id", "source", "sources"}`` with the header
``tollguard-control: flush``, sent to every
partition of ``cdrs`` (``tollguard produce --flush``) is copied to every partition of
``cdrs-by-customer``; once a partition has it from all ``sources`` (so every CDR before
it was parsed), its customers are closed as replay does at end of input (backfills, tests).
A line that merely looks like a control message is parsed as data (and dead-lettered as
replay rejects it): nothing from the data path acts as a command.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from engine.core import CustomerState, Engine
from engine.registry import load_rules
from engine.runner import Outcome, Runner, event_bytes, reason_class
from engine.state import STATE_FORMAT, StateFormatError, join_state, split_state, state_format
from streams import faustfix
from streams.auth import AuditLog, audit_log_path
from streams.emitted import emitted_ids
from streams.reload import RULES_POLL_S, RulesReloader
from streams.web import Metrics, register_views, remember
from tollguard.adapters import FORMATS, RejectError, parse_line
from tollguard.adapters.call_events import CALL_EVENT_FORMATS, CallEventParser, NotACallEvent
from tollguard.calls import CallEvent
from tollguard.cdr import CallDetailRecord
from tollguard.events import TOPIC_OF_TYPE, Event, EventType, Verdict
from tollguard.rules import Rules

log = logging.getLogger("tollguard.worker")

#: Events kept for the NOC page.
RECENT_EVENTS = 200

#: The detect agent writes the customers' states it changed (and acks the records) at a
#: checkpoint every DETECT_BATCH records or DETECT_CHECKPOINT_S seconds, not once per record.
DETECT_BATCH = 500
DETECT_CHECKPOINT_S = 0.5

#: The parse agent sends the CDRs it parsed to ``cdrs-by-customer`` in batches, one message per
#: destination partition holding up to PARSE_BATCH records (at most PARSE_BATCH_BYTES of JSON), sent
#: when full or every PARSE_FLUSH_S seconds. Measured (bench/bench_stream.py, issue 11): Faust's and
#: aiokafka's per-message work (a produce, then a fetch and a stream event at the detect agent) was
#: over half of the worker's CPU with one message per CDR. A batch's input records are acked once it
#: is sent, so a crash before then re-delivers them; each record keeps its input position.
PARSE_BATCH = 500
PARSE_BATCH_BYTES = 512 * 1024
PARSE_FLUSH_S = 0.05

#: Longest time (ms) a fetch waits at the broker for new data. faust-streaming hardcodes 1500 and
#: aiokafka keeps one fetch in flight per broker: a fetch made of idle partitions only (verifications,
#: Faust's leader topic) held the busy ones back for up to 1.5 s each time, i.e. stalls of seconds
#: at a few hundred CDRs/s (bench/bench_stream.py). See _limit_fetch_wait().
FETCH_MAX_WAIT_MS = 50

#: Consumer-group timeouts (s). A worker killed without leaving its group (SIGKILL, host lost) holds its
#: partitions until the broker misses its heartbeats for ``broker_session_timeout``: Faust's default, 60 s,
#: is a minute without decisions for its customers. 10 s (heartbeat every 2 s, so 5 missed heartbeats)
#: keeps that short while a busy 2-core host still heartbeats in time (heartbeats come from the consumer's
#: own thread, not the agents' loop); ``broker_rebalance_timeout`` bounds how long a rebalance waits for
#: members to rejoin. ``--fast-rebalance`` (tests, one host) goes lower still.
GROUP_TIMEOUTS: dict[str, float] = {
    "broker_session_timeout": 10, "broker_heartbeat_interval": 2, "broker_rebalance_timeout": 20}
FAST_TIMEOUTS: dict[str, float] = {
    "broker_session_timeout": 6, "broker_heartbeat_interval": 1, "broker_rebalance_timeout": 6}

#: Control messages start with this (``tollguard produce --flush``: end of a backfill).
CONTROL_PREFIX = b'{"control"'

#: Call events on ``cdrs-by-customer`` start with this (``{"call_event": {...}}``).
CALL_EVENT_PREFIX = b'{"call_event"'

#: A batch of CDRs on ``cdrs-by-customer`` (``{"cdrs": [{"src": "cdrs[p]@offset", "ts": produce time s,
#: "cdr": canonical record}, ...]}``), written by the parse agent (see PARSE_BATCH).
BATCH_PREFIX = b'{"cdrs"'

#: Kafka header that marks a control message on ``cdrs`` (value ``flush``; set by ``tollguard produce --flush``).
CONTROL_HEADER = "tollguard-control"
#: Kafka header of a record on ``cdrs-by-customer``: where the parse agent read it, ``topic[partition]@offset``
#: (a verdict: where the verify agent read it). The detect agent keeps per customer the highest offset taken
#: of each input partition (:attr:`engine.core.CustomerState.positions`): a copy re-sent by a parse agent
#: restarted after a crash is a re-delivery however old it is, neither taken twice nor refused as late.
SOURCE_HEADER = "tollguard-src"
#: Seconds a worker stopping on an unreadable state waits for Faust's orderly shutdown before it
#: exits anyway (exit code 3): a shutdown that hangs must not leave a worker deciding nothing.
CRASH_GRACE_S = 20.0


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
        ``memory://`` only: the changelog is replayed on start. (Faust's ``rocksdb://`` store writes a
        table record to the partition of the current event, and asserts there is one: wrong for states
        written at checkpoints, batched from several partitions, so it is not offered; issue 14.)
    fast_rebalance : bool
        Short session/heartbeat timeouts: a group joins in seconds (tests, small setups).
    tokens_file : str, optional
        Web API tokens with roles (:mod:`streams.auth`; else ``TOLLGUARD_API_TOKENS_FILE``).
    audit_log : str, optional
        JSON-lines audit log of verdicts (else ``TOLLGUARD_AUDIT_LOG``, else ``DATADIR/verdicts-audit.jsonl``).
    rules_ingest : dict
        ``--timezone`` / ``--country`` as overrides of the rules' ``ingest`` section, applied again to
        every hot-reloaded rules file.
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
    tokens_file: str | None = None
    audit_log: str | None = None
    rules_ingest: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> StreamSettings:
        """Defaults, then ``TOLLGUARD_*`` / ``KAFKA_BOOTSTRAP_SERVERS`` variables, then ``overrides``."""
        env: dict[str, Any] = {}
        broker = os.environ.get("TOLLGUARD_BROKER") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if broker:
            env["broker"] = broker
        for name, conv in (("app_id", str), ("topic_prefix", str), ("partitions", int)):
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
    current = thread_cls._create_worker_consumer  # noqa: SLF001 (faust has no setting for it)
    if getattr(current, "tollguard_fetch_wait", None) == max_wait_ms:
        return
    original = getattr(current, "__wrapped__", current)

    @functools.wraps(original)
    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        if hasattr(consumer, "_fetch_max_wait_ms"):  # read by AIOKafkaConsumer.start()
            consumer._fetch_max_wait_ms = max_wait_ms  # noqa: SLF001 (aiokafka: only a constructor argument)
        return consumer

    create.tollguard_fetch_wait = max_wait_ms  # type: ignore[attr-defined]
    thread_cls._create_worker_consumer = create  # type: ignore[method-assign]  # noqa: SLF001


#: Separates the customer from the piece path in a state-table key: ``customer \x1e path``.
PIECE_SEP = b"\x1e"


class CustomerPartitioner:
    """Kafka's murmur2 partitioner applied to the customer part of a key (before ``\\x1e``).

    The state table's keys are ``customer \\x1e piece-path``; hashing the customer alone puts
    every piece of a customer's state in the changelog partition of the customer's records
    on ``cdrs-by-customer``, so the worker that owns the customer recovers all of it. Keys
    without the separator hash exactly as with Kafka's default partitioner.
    """

    def __init__(self) -> None:
        self._murmur2 = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        """Partition of ``key`` among ``all_partitions`` (aiokafka's partitioner interface)."""
        if key is not None:
            key = key.split(PIECE_SEP, 1)[0]
        return int(self._murmur2(key, all_partitions, available))


class ParsedBatches:
    """CDRs parsed by the parse agent and not yet sent, per partition of ``cdrs-by-customer``.

    Each entry is the JSON of one batch item (see BATCH_PREFIX); ``events`` are the input events
    they came from, acked once the batches are sent (in input order).
    """

    def __init__(self) -> None:
        self.items: dict[int, list[bytes]] = {}
        self.events: list[Any] = []
        self.count = 0
        self.size = 0

    def add(self, partition: int, item: bytes, event: Any) -> None:
        """Keep ``item`` (one record's JSON) for ``partition``; ``event`` is acked when it is sent."""
        self.items.setdefault(partition, []).append(item)
        self.events.append(event)
        self.count += 1
        self.size += len(item)

    @property
    def full(self) -> bool:
        """Whether the batches should be sent now (PARSE_BATCH records or PARSE_BATCH_BYTES)."""
        return self.count >= PARSE_BATCH or self.size >= PARSE_BATCH_BYTES

    def messages(self) -> Iterator[tuple[int, bytes]]:
        """(partition, value) of each batch message, in partition order."""
        for partition in sorted(self.items):
            yield partition, b'{"cdrs":[' + b",".join(self.items[partition]) + b"]}"


class TableStore:
    """The runner's :class:`engine.runner.StateStore` over the Faust table of state pieces.

    States are cached in memory; :meth:`checkpoint` writes the pieces of changed states that
    are not stored yet (a small change writes one piece and its parents, not the customer), the
    root last, then deletes the pieces the new root no longer names: a worker killed in the middle
    leaves the old state or the new one, never a mix (:mod:`engine.state`, format 3). A state
    stored by an older worker as one record (format 1) or as pieces under their paths (format 2)
    is read and rewritten in format 3; a format this version does not know raises
    :class:`engine.state.StateFormatError`.
    """

    def __init__(self, table: Any, engine: Engine, metrics: Metrics, partitions: int) -> None:
        self.table = table
        self.engine = engine
        self.metrics = metrics
        self.partitions = partitions
        self.cache: dict[str, CustomerState] = {}
        self.dirty: set[str] = set()
        self._roots: dict[str, bytes] = {}  # customer -> root piece last read or written
        self._index: dict[str, set[str]] | None = None  # customer -> stored piece paths ("\0" = format 1)

    def _stored(self) -> dict[str, set[str]]:
        if self._index is None:
            index: dict[str, set[str]] = {}
            for key in self.table.keys():
                customer, sep, path = key.partition(PIECE_SEP)
                index.setdefault(customer.decode(), set()).add(path.decode() if sep else "\0")
            self._index = index
        return self._index

    def get(self, customer_id: str) -> CustomerState | None:
        """The customer's state from the cache, else from the table (None when it has none)."""
        state = self.cache.get(customer_id)
        if state is not None:
            return state
        paths = self._stored().get(customer_id)
        if not paths:
            key = customer_id.encode()
            if key + PIECE_SEP not in self.table and key not in self.table:
                return None
            self._index = None  # the index was built before the table held this customer (recovery): rebuild
            paths = self._stored().get(customer_id)
            if not paths:
                return None
        if "\0" in paths and "" not in paths:  # format 1: the whole state in one record, keyed by the customer
            state = CustomerState.from_json_dict(orjson.loads(self.table[customer_id.encode()]))
            self.dirty.add(customer_id)
            log.warning("customer %s: state in format 1 migrated to pieces", customer_id)
        else:
            try:
                pieces, state = self._read(customer_id, paths)
            except (StateFormatError, KeyError):
                # The index may predate the end of the table's recovery: read the table's pieces afresh once.
                self._index = None
                try:
                    pieces, state = self._read(customer_id, self._stored().get(customer_id, set()))
                except (StateFormatError, KeyError) as exc:
                    raise StateFormatError(f"customer {customer_id}: {exc}") from None
            self._roots[customer_id] = pieces[""]
            if state_format(pieces) != STATE_FORMAT:
                self.dirty.add(customer_id)  # rewritten in this version's format at the next checkpoint
        self.cache[customer_id] = state
        return state

    def _read(self, customer_id: str, paths: set[str]) -> tuple[dict[str, bytes], CustomerState]:
        prefix = customer_id.encode() + PIECE_SEP
        pieces = {path: self.table[prefix + path.encode()] for path in paths}
        return pieces, CustomerState.from_json_dict(join_state(pieces))

    def put(self, state: CustomerState) -> None:
        """Mark ``state`` changed: it is written at the next checkpoint."""
        self.cache[state.customer_id] = state
        self.dirty.add(state.customer_id)

    def customers(self) -> list[str]:
        """Customers whose state this worker holds."""
        return sorted(set(self._stored()) | set(self.cache))

    def customers_of(self, partition: int) -> list[str]:
        """Customers of one partition of ``cdrs-by-customer`` held here."""
        return [c for c in self.customers() if partition_of(c.encode(), self.partitions) == partition]

    def checkpoint(self) -> None:
        """Write the changed pieces of every state changed since the last checkpoint."""
        index = self._stored()
        for customer_id in sorted(self.dirty):
            state = self.cache[customer_id]
            pieces = split_state(state.to_json_dict())
            root = pieces[""]
            stored = index.setdefault(customer_id, set())
            unnamed = stored - set(pieces)  # replaced pieces, or left by a checkpoint cut short
            if self._roots.get(customer_id) == root and not unnamed:
                continue  # the root names every piece by digest: the same root, the same state
            prefix = customer_id.encode() + PIECE_SEP
            for key, value in pieces.items():  # the pieces a piece names before it, the root last
                if key and key in stored:
                    continue  # the key holds a digest of the bytes: stored already
                if not key and self._roots.get(customer_id) == root:
                    continue
                self.table[prefix + key.encode()] = value
                self.metrics.state_pieces.inc()
                self.metrics.state_piece_bytes.observe(len(value))
            for key in unnamed:  # only once the new root is written
                del self.table[customer_id.encode() if key == "\0" else prefix + key.encode()]
            index[customer_id] = set(pieces)
            self._roots[customer_id] = root
        self.dirty.clear()

    def forget(self) -> None:
        """Drop the cache (partitions revoked: the next owner reads the table)."""
        self.cache.clear()
        self.dirty.clear()
        self._roots.clear()
        self._index = None


class DeliveryError(RuntimeError):
    """A state write, event or dead letter the broker did not take (the producer gave up on it)."""


class Deliveries:
    """What the worker sent and the broker has not confirmed yet: the tables' changelog writes (the stored
    states), events and dead letters, as the futures Faust's producer resolves once the broker wrote them.

    A checkpoint acks its records only after :meth:`confirmed`: Faust flushes its producer before it
    commits, but that flush does not wait for the table writes still queued in Faust's
    ``ProducerBuffer`` (its ``flush_atmost`` gives up after 0.1 s without progress, e.g. while aiokafka
    waits for a full batch to drain). After a broker outage, offsets of ``cdrs-by-customer`` were
    committed with hundreds of state writes still queued there (issue 14).
    """

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[Any]] = []

    def add(self, future: Any) -> None:
        """A send's future (Faust's ``Topic.send`` returns it)."""
        self._futures.append(future)

    def track(self, table: Any) -> None:
        """Add the future of every changelog write of ``table`` (a Faust table: ``table[k] = v``, ``del``)."""
        send = table.send_changelog

        @functools.wraps(send)
        def send_changelog(*args: Any, **kwargs: Any) -> Any:
            future = send(*args, **kwargs)
            self._futures.append(future)
            return future

        table.send_changelog = send_changelog

    def __len__(self) -> int:
        return len(self._futures)

    async def confirmed(self) -> None:
        """Wait until the broker has confirmed every send added so far.

        Raises
        ------
        DeliveryError
            When one of them failed.
        """
        futures = list(self._futures)
        for future in futures:
            try:
                await future
            except Exception as exc:  # the producer's error (asyncio.CancelledError passes)
                raise DeliveryError(f"a write the broker did not take: {exc!r}") from exc
        if futures:
            self._futures = [f for f in self._futures if not f.done()]


def _exit_after_crash(reason: str) -> None:
    """Leave the process when Faust's shutdown after a crash did not finish in CRASH_GRACE_S."""
    log.critical("orderly shutdown did not finish in %.0f s; exiting (%s)", CRASH_GRACE_S, reason)
    logging.shutdown()
    os._exit(3)


class StreamJob:
    """The Faust app of one worker: topics, the state table, the runner and the agents.

    Parameters
    ----------
    settings : StreamSettings
    rules : Rules, optional
        Validated rules (default: :func:`engine.registry.load_rules` of ``settings.rules_path``).
    model : models.model.AnomalyModel, optional
        Trained anomaly model, given to the engine (the ``anomaly`` detector scores the stream
        as it scores a replay).

    Raises
    ------
    tollguard.errors.RulesError
        When the rules file is invalid.
    """

    def __init__(self, settings: StreamSettings, rules: Rules | None = None, model: Any = None) -> None:
        self.settings = settings
        self.rules = rules or load_rules(settings.rules_path)
        _limit_fetch_wait(FETCH_MAX_WAIT_MS)
        faustfix.install()  # records fetched before the seek to the committed offsets: see streams/faustfix.py
        timeouts: dict[str, Any] = dict(FAST_TIMEOUTS if settings.fast_rebalance else GROUP_TIMEOUTS)
        self.app = app = faust.App(
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
            producer_partitioner=CustomerPartitioner(),
            **timeouts,
            **settings.extra,
        )
        raw: dict[str, Any] = {
            "key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
        }
        self.cdrs = app.topic(topic_name(settings, "cdrs"), **raw)
        self.by_customer = app.topic(
            topic_name(settings, "cdrs-by-customer"), partitions=settings.partitions, internal=True, **raw
        )
        self.dead_letter = app.topic(topic_name(settings, "cdrs-dead-letter"), **raw)
        self.call_events = app.topic(topic_name(settings, "call-events"), **raw)
        self.verifications = app.topic(topic_name(settings, "verifications"), **raw)
        self.outputs = {t: app.topic(topic_name(settings, name), **raw) for t, name in TOPIC_OF_TYPE.items()}
        table = app.Table(
            "customer-state",
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            # Changelog partition from the key's customer (CustomerPartitioner), not from the
            # current event: states are written at checkpoints, outside any event.
            use_partitioner=True,
        )
        # per input partition (key "topic[p]"), the highest offset of it whose reject was dead-lettered: a
        # reject re-sent by a parse or verify agent restarted after a crash is not dead-lettered twice.
        self.reject_positions = app.Table(
            "reject-positions", partitions=settings.partitions, key_type=bytes, value_type=bytes)
        self.deliveries = Deliveries()
        self.deliveries.track(table)
        self.deliveries.track(self.reject_positions)
        self.engine = Engine(self.rules, model=model)
        self.metrics = Metrics()
        self.store = TableStore(table, self.engine, self.metrics, settings.partitions)
        self.runner = Runner(self.engine, self.store)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self._flushes: dict[tuple[str, int], set[int]] = {}
        self._pending: list[Any] = []  # records processed, acked at the next checkpoint
        self._acker: Any = None  # detect's stream, through which records are acked
        self._parsed = ParsedBatches()  # parsed CDRs not yet sent to cdrs-by-customer
        #: event ids on the output topics when the partitions were assigned (None: not read since)
        self._emitted_before: set[str] | None = None
        self._parsed_lock = asyncio.Lock()
        self._parse_flush: asyncio.Future[None] | None = None  # the timer's flush under way
        self._timed: asyncio.Future[None] | None = None  # the timer's checkpoint under way
        self._parse_acker: Any = None  # parse's stream, through which input records are acked
        self._checkpointing = asyncio.Lock()  # one checkpoint at a time (the agent's and the timer's)
        self._processing = asyncio.Lock()  # held by detect while it takes one message (see _on_revoked)
        #: records fetched in this consumer generation or before are not acked: their partitions were revoked
        self._stale_generation = -1
        #: rules made live by hot reloads, written to the last good rules topic by one daemon thread in order
        self._to_keep: queue.SimpleQueue[tuple[str, str]] | None = None
        app.tollguard = self  # type: ignore[attr-defined]
        self.audit = AuditLog(audit_log_path(None, settings.audit_log, settings.datadir))
        self.authorizer = register_views(
            app, self.engine, self._local_states, self.recent, self.metrics, self.send_verdict,
            self._calls_in_progress, tokens_file=settings.tokens_file, audit=self.audit)
        self.reloader = self._rules_reloader(model)
        app.agent(self.cdrs, name="parse")(self.parse)
        app.agent(self.call_events, name="parse-calls")(self.parse_calls)
        app.agent(self.verifications, name="verify")(self.verify)
        app.agent(self.by_customer, name="detect")(self.detect)
        app.timer(DETECT_CHECKPOINT_S)(self._on_timer)
        app.timer(PARSE_FLUSH_S)(self._on_parse_timer)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    # -- rules hot reload (streams/reload.py) ---------------------------------------------
    def _rules_reloader(self, model: Any) -> RulesReloader | None:
        """Watch ``settings.rules_path`` (poll and SIGHUP) when the worker was started with a file."""
        if not self.settings.rules_path:
            return None
        reloader = RulesReloader(self.settings.rules_path, self.rules, self.set_rules,
                                 lambda: self.runner.event_time_s, self.metrics.registry,
                                 check=getattr(model, "check_rules", None), on_live=self.keep_last_good,
                                 ingest=self.settings.rules_ingest)
        self.app.timer(RULES_POLL_S)(self._poll_rules)
        self.app.task(self._on_start)
        return reloader

    def set_rules(self, rules: Rules) -> None:
        """Make validated ``rules`` live between two records: engine, parser, call authorization."""
        self.rules = rules
        self.engine.set_rules(rules)
        self.authorizer.rules = rules
        self.authorizer.changed()

    def keep_last_good(self, text: str, rules: Rules) -> None:
        """Keep rules made live by a hot reload as the group's last good rules (``tollguard-rules`` topic,
        :mod:`streams.lastgood`), as a worker start keeps a valid file: a restart that later finds the file
        invalid runs on them. The write (a blocking Kafka client) runs on one thread of its own, in the
        order of the reloads; a failure is logged (the reload stands), never raised."""
        if self._to_keep is None:
            self._to_keep = queue.SimpleQueue()
            # a daemon: a broker that does not answer must not hold up the worker's exit
            threading.Thread(target=self._keep_loop, args=(self._to_keep,), name="tollguard-lastgood",
                             daemon=True).start()
        self._to_keep.put((text, rules.version))

    def _keep_loop(self, pending: queue.SimpleQueue[tuple[str, str]]) -> None:
        while True:
            self._save_last_good(*pending.get())

    def _save_last_good(self, text: str, version: str) -> None:
        from kafka.errors import KafkaError

        from streams.lastgood import RULES_TOPIC, save_last_good

        topic = topic_name(self.settings, RULES_TOPIC)
        try:
            saved = save_last_good(self.settings.broker, topic, self.settings.app_id, text, version,
                                   str(self.settings.rules_path))
        except (KafkaError, OSError) as exc:
            log.error("rules %s: the last good rules could not be kept on %s: %s", version, topic, exc)
            return
        if saved:
            log.info("rules %s kept as the last good rules on %s", version, topic)

    async def _poll_rules(self) -> None:
        if self.reloader is not None:
            self.reloader.poll()

    async def _on_start(self) -> None:
        """At worker start: SIGHUP re-reads the rules file (mode's worker leaves SIGHUP alone)."""
        if self.reloader is not None:
            reloader = self.reloader
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.reload)

    # -- outputs ---------------------------------------------------------------------------
    async def send(self, outcome: Outcome) -> None:
        """Emit an outcome's events (keyed by customer) and dead-letter its rejects.

        An event whose id is already on its output topic since before this worker's partition
        assignment (re-emitted after a crash, see :mod:`streams.emitted`) is not sent again.
        """
        emitted = self._emitted_before
        if outcome.events and emitted is None:
            emitted = self._emitted_before = await self._read_emitted()
        for event in outcome.events:
            if emitted and event.event_id in emitted:
                log.info("event %s (%s) already on its topic: emitted before a restart, not sent again",
                         event.event_id, event.type)
                self.metrics.redelivered.inc()
                continue
            self.deliveries.add(await self.outputs[EventType(event.type)].send(
                key=event.customer_id.encode(), value=event_bytes(event)))
            remember(self.recent, self.metrics, event)
        for reject in outcome.rejects:
            self.metrics.rejected.labels(reason_class(reject.reason)).inc()
            self.deliveries.add(await self.dead_letter.send(value=reject.to_json_bytes()))
        # verdict messages settled now are acked at the checkpoint that writes their effect
        self._pending.extend(token for token in outcome.settled if token is not None)

    async def _read_emitted(self) -> set[str]:
        """The event ids on the output topics now (read in a thread; none when the broker does not answer)."""
        from streams.produce import bootstrap_of

        topics = [topic.get_topic_name() for topic in self.outputs.values()]
        try:
            return await asyncio.to_thread(emitted_ids, bootstrap_of(self.settings.broker), topics)
        except Exception as exc:  # the broker away: the events are sent (at least once, as before)
            log.warning("output topics not read back (%s): an event re-emitted after a crash may come twice", exc)
            return set()

    async def send_verdict(self, verdict: Verdict, customer_id: str) -> None:
        """Put a verdict on ``verifications``, keyed by the suspension's customer (NOC page)."""
        await self.verifications.send(key=customer_id.encode(), value=verdict.model_dump_json().encode())

    def _calls_in_progress(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's calls still up, from its call events (held by this worker; [] when none)."""
        state = self.store.get(customer_id)
        return [] if state is None else self.engine.calls_in_progress(state)

    def _local_states(self) -> list[CustomerState]:
        return [s for s in (self.store.get(c) for c in self.store.customers()) if s is not None]

    # -- agents ----------------------------------------------------------------------------
    async def parse(self, stream: faust.StreamT) -> None:
        """Raw CDR lines → canonical records in batches per partition of ``cdrs-by-customer`` (see
        PARSE_BATCH), or rejects forwarded to be dead-lettered. Input records are acked once what
        they gave is sent (a crash before re-delivers them)."""
        manual = stream.noack()  # type: ignore[attr-defined]  # (Stream has it; StreamT does not declare it)
        self._parse_acker = manual
        partitions = self.settings.partitions
        partition_cache: dict[str, int] = {}
        async for event in manual.events():
            rules = self.rules  # a reload may have replaced them
            value: bytes = event.value or b""
            message = event.message
            source = f"{message.topic}[{message.partition}]"
            control = _header(message.headers, CONTROL_HEADER)
            if control is not None:
                # Only a flush, marked by the header tollguard produce sets, is taken. Control-looking
                # data (a line starting {"control") has no header: it is parsed, and refused, as data.
                if control != "flush" or _flush_control(value) is None:
                    await self._forward_rejects(self.runner.take_unparsable(
                        source, message.offset, value.decode("utf-8", "replace"),
                        "not a CDR: control messages are taken only as tollguard produce --flush sends them",
                    ), source, message.offset)
                    await manual.ack(event)
                    continue
                await self.flush_parsed()  # the records before the flush reach detect before it
                for partition in range(partitions):
                    await self.by_customer.send(value=value, partition=partition)
                await manual.ack(event)
                continue
            fmt = _header(message.headers, "format") or "auto"
            try:
                record = parse_line(fmt if fmt in FORMATS else "auto", value, rules.ingest, rules.country_of,
                                    rules.owner_of)
            except RejectError as exc:
                await self._forward_rejects(self.runner.take_unparsable(
                    source, message.offset, value.decode("utf-8", "replace"), exc.reason
                ), source, message.offset)
                await manual.ack(event)
                continue
            customer = record.customer_id
            cached = partition_cache.get(customer)
            partition = cached if cached is not None else partition_of(customer.encode(), partitions)
            if len(partition_cache) >= 100_000:  # bounded: customers, but the data decides how many
                partition_cache.clear()
            partition_cache[customer] = partition
            # the original record's timestamp (its produce time) travels with it: the latency metric starts there
            item = orjson.dumps({"src": f"{source}@{message.offset}",
                                 "ts": message.timestamp or None, "cdr": record.to_json_dict()})
            self._parsed.add(partition, item, event)
            if self._parsed.full:
                await self.flush_parsed()

    async def flush_parsed(self) -> None:
        """Send the parse agent's batches (one message per partition), then ack their input records."""
        async with self._parsed_lock:  # the timer's flush and the agent's never interleave (order per partition)
            batches, self._parsed = self._parsed, ParsedBatches()
            for partition, value in batches.messages():
                await self.by_customer.send(value=value, partition=partition)
            if self._parse_acker is not None:
                for event in batches.events:
                    if (event.message.generation_id or 0) > self._stale_generation:  # as in _checkpoint
                        await self._parse_acker.ack(event)

    async def _on_parse_timer(self) -> None:
        # In a task of its own: a flush longer than the timer's interval (a busy host) is not an overrun.
        if self._parsed.count and (self._parse_flush is None or self._parse_flush.done()):
            self._parse_flush = asyncio.ensure_future(self.flush_parsed())

    async def _forward_rejects(self, outcome: Outcome, source: str, offset: int) -> None:
        """Rejects of the parse and verify agents → ``cdrs-by-customer`` (key: their input partition),
        where the detect agent dead-letters each input position once (see :meth:`_dead_letter_once`)."""
        for reject in outcome.rejects:
            value = b'{"control":"reject","reject":' + reject.to_json_bytes() + b"}"
            await self.by_customer.send(key=source.encode(), value=value,
                                        headers=[(SOURCE_HEADER, f"{source}@{offset}".encode())])

    async def parse_calls(self, stream: faust.StreamT) -> None:
        """Raw call events → canonical call events keyed by customer; rejects forwarded like the CDRs'
        (each input position dead-lettered once by ``detect``)."""
        parser, parsed_with = None, None
        async for event in stream.events():
            rules = self.rules  # a reload may have replaced them
            if parser is None or parsed_with is not rules:
                parser, parsed_with = CallEventParser(rules.ingest, rules.owner_of, rules.country_of), rules
            value: bytes = event.value or b""
            message = event.message
            source = f"{message.topic}[{message.partition}]"
            fmt = _header(message.headers, "format") or "auto"
            text = value.decode("utf-8", "replace")
            try:
                call = parser.parse(text, fmt if fmt in CALL_EVENT_FORMATS else "auto")
            except NotACallEvent:
                continue
            except RejectError as exc:
                await self._forward_rejects(self.runner.bad_call_event(source, message.offset, text, exc.reason),
                                            source, message.offset)
                continue
            await self.by_customer.send(
                key=call.customer_id.encode(), value=orjson.dumps({"call_event": call.to_json_dict()}),
                headers=[(SOURCE_HEADER, f"{source}@{message.offset}".encode())],
                timestamp=message.timestamp or None,
            )

    async def verify(self, stream: faust.StreamT) -> None:
        """Verdicts (key = the suspension's customer) → that customer's partition of cdrs-by-customer."""
        async for event in stream.events():
            value: bytes = event.value or b""
            message = event.message
            source = f"{message.topic}[{message.partition}]"
            raw = value.decode("utf-8", "replace")
            try:
                verdict = Verdict.model_validate_json(value)
            except ValidationError as exc:
                await self._forward_rejects(self.runner.bad_verdict(source, message.offset, raw, exc),
                                            source, message.offset)
                continue
            customer = (event.key or b"").decode("utf-8", "replace").strip()
            if not customer:
                await self._forward_rejects(self.runner.bad_verdict(
                    source, message.offset, raw,
                    "no customer: key the message by the suspension's customer_id (as tollguard verify does)",
                ), source, message.offset)
                continue
            control = orjson.dumps({"control": "verdict", "customer_id": customer,
                                    "verdict": verdict.model_dump(mode="json")})
            await self.by_customer.send(key=customer.encode(), value=control,
                                        headers=[(SOURCE_HEADER, f"{source}@{message.offset}".encode())])

    async def detect(self, stream: faust.StreamT) -> None:
        """Records and verdicts of this worker's customers → the runner → events and dead letters.

        A customer's state is written to the table at checkpoints, every DETECT_BATCH records
        or DETECT_CHECKPOINT_S seconds, not once per record. Records are acked only at the
        checkpoint that wrote their effect, so a restart resumes from a state that matches the
        committed offsets (a verdict is settled at once: applied, or refused with its reason).
        """
        manual = stream.noack()  # type: ignore[attr-defined]  # (Stream has it; StreamT does not declare it)
        self._acker = manual
        try:
            await self._detect(manual)
        except (StateFormatError, DeliveryError) as exc:
            # A state this version cannot read: stop rather than decide on a customer without its history.
            # A write the broker did not take: stop; its records are not acked, a restart takes them again.
            await self._stop(exc)

    async def _stop(self, exc: Exception) -> None:
        log.critical("stopping: %s", exc)
        asyncio.get_running_loop().call_later(CRASH_GRACE_S, _exit_after_crash, str(exc))
        await self.app.crash(exc)

    async def _detect(self, manual: Any) -> None:
        async for event in manual.events():
            # Faust does not wait for the record being processed when partitions are revoked: the revocation
            # waits for it here (_on_revoked), so its effect is either written with its state or dropped with it
            async with self._processing:
                await self._take(event)

    async def _take(self, event: Any) -> None:
        """One record, call event, verdict or control message of ``cdrs-by-customer``."""
        runner, metrics = self.runner, self.metrics
        value: bytes = event.value
        message = event.message
        source = f"{message.topic}[{message.partition}]"
        if value.startswith(CONTROL_PREFIX):
            control = orjson.loads(value)
            if control.get("control") == "verdict":
                if self._redelivered(control["customer_id"], message.headers, create=False):
                    self._pending.append(event)
                    return
                verdict = Verdict.model_validate(control["verdict"])
                outcome = runner.take_verdict(
                    verdict, source, message.offset, control["customer_id"], event, hold=False)
                self._audit_verdict(verdict, outcome)
                await self.send(outcome)
                if outcome.events:
                    await self.checkpoint()
                return
            elif control.get("control") == "reject":
                await self._dead_letter_once(control["reject"], message.headers)
            else:
                await self._on_flush(control, message.partition)
        elif value.startswith(CALL_EVENT_PREFIX):
            call = CallEvent.model_validate(orjson.loads(value)["call_event"])
            if self._redelivered(call.customer_id, message.headers):
                self._pending.append(event)
                return
            outcome = runner.take_call_event(call, source, message.offset)
            await self.send(outcome)
            if outcome.events:  # as for a CDR: the state that emitted them is written at once
                self._pending.append(event)
                await self.checkpoint()
                return
        elif value.startswith(BATCH_PREFIX):
            await self._take_batch(value, source, message.offset)
        else:  # one record per message: as a worker before batches (PARSE_BATCH) wrote them
            record = CallDetailRecord.model_validate_json(value)
            if self._redelivered(record.customer_id, message.headers):
                self._pending.append(event)
                return
            outcome = runner.take_record(record, source, message.offset, value.decode())
            await self.send(outcome)
            metrics.cdrs.inc()
            if message.timestamp:
                metrics.latency.observe(max(0.0, time.time() - message.timestamp))
            if outcome.events:  # the state that emitted them is written at once: a crash repeats none
                self._pending.append(event)
                await self.checkpoint()
                return
        self._pending.append(event)
        if len(self._pending) >= DETECT_BATCH:
            await self.checkpoint()

    async def _take_batch(self, value: bytes, source: str, offset: int) -> None:
        """The CDRs of one batch message (BATCH_PREFIX) through the runner, in order; those already in
        their customer's state (re-delivered after a crash) are skipped."""
        runner, metrics = self.runner, self.metrics
        for item in orjson.loads(value)["cdrs"]:
            record = CallDetailRecord.model_validate(item["cdr"])
            if self._redelivered_at(record.customer_id, _position(item["src"])):
                continue
            outcome = runner.take_record(record, source, offset, orjson.dumps(item["cdr"]).decode())
            await self.send(outcome)
            metrics.cdrs.inc()
            if item["ts"]:
                metrics.latency.observe(max(0.0, time.time() - item["ts"]))
            if outcome.events:  # written, and confirmed with the events, at once (the batch is acked later)
                await self.checkpoint()

    async def _dead_letter_once(self, reject: dict[str, Any], headers: Any) -> None:
        """Dead-letter a reject forwarded by the parse or verify agent, unless its input position was already."""
        position = _source_position(headers)
        if position is not None:
            key = position[0].encode()
            done = self.reject_positions.get(key)
            if done is not None and int(done) >= position[1]:
                self.metrics.redelivered.inc()
                return
        self.metrics.rejected.labels(reason_class(str(reject.get("reason", "")))).inc()
        self.deliveries.add(await self.dead_letter.send(value=orjson.dumps(reject)))
        if position is not None:
            self.reject_positions[key] = str(position[1]).encode()

    def _redelivered(self, customer_id: str, headers: Any, create: bool = True) -> bool:
        """Whether the record's input position (SOURCE_HEADER) is already in the customer's state;
        else that position is recorded there (the state is written at the next checkpoint). Without
        ``create``, a customer without a state is left without one (a verdict names no new customer)."""
        return self._redelivered_at(customer_id, _source_position(headers), create)

    def _redelivered_at(self, customer_id: str, position: tuple[str, int] | None, create: bool = True) -> bool:
        """:meth:`_redelivered` for an input position ``(where, offset)`` (None: not a re-delivery)."""
        if position is None:
            return False
        where, offset = position
        state = self.runner.state(customer_id) if create else self.store.get(customer_id)
        if state is None:
            return False
        if state.positions.get(where, -1) >= offset:
            self.metrics.redelivered.inc()
            return True
        state.positions[where] = offset
        self.store.put(state)
        return False

    def _audit_verdict(self, verdict: Verdict, outcome: Outcome) -> None:
        """Write a verdict taken from ``verifications`` to the audit log: applied, refused (with the
        reason) or a re-delivered copy."""
        refused = [r.reason for r in outcome.rejects if r.kind == "verdict"]
        what = "refused" if refused else "applied" if outcome.events else "duplicate"
        try:
            self.audit.write(what, verdict.model_dump(mode="json"),
                             reason=refused[0] if refused else None)
        except OSError as exc:
            log.error("audit log %s not writable: %s", self.audit.path, exc.strerror or exc)

    async def _on_flush(self, control: dict[str, Any], partition: int) -> None:
        got = self._flushes.setdefault((control["id"], partition), set())
        got.add(control["source"])
        if len(got) < control["sources"]:
            return
        del self._flushes[(control["id"], partition)]
        await self.send(self.runner.flush(self.store.customers_of(partition)))

    async def checkpoint(self) -> None:
        """Write the states changed since the last checkpoint, then ack the records they include once the
        broker has confirmed those writes and the events and dead letters sent for them (:class:`Deliveries`).

        Faust commits only acked offsets: a committed offset never runs ahead of the stored state or of
        the events, as with one write per record. Records of partitions revoked meanwhile are not acked
        (they come again from the committed offsets, to this worker or another).
        """
        async with self._checkpointing:
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        self.store.checkpoint()
        done, self._pending = self._pending, []
        await self.deliveries.confirmed()
        if self._acker is not None:
            for event in done:
                if (event.message.generation_id or 0) > self._stale_generation:
                    await self._acker.ack(event)
        for what, count in self.engine.cap_hits.items():
            self.metrics.cap_hits.labels(what).inc(count)
        self.engine.cap_hits.clear()

    async def _on_timer(self) -> None:
        # In a task of its own, as the parse flush: a checkpoint waiting on the broker's confirmations for
        # longer than the timer's interval (a busy host) is not a timer overrun; one at a time.
        if (self._pending or self.store.dirty) and (self._timed is None or self._timed.done()):
            self._timed = asyncio.ensure_future(self._timed_checkpoint())

    async def _timed_checkpoint(self) -> None:
        try:
            await self.checkpoint()
        except DeliveryError as exc:
            await self._stop(exc)

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        # Unacked records are delivered again from the committed offsets, on the stored state. None fetched
        # so far is acked any more; the one detect is taking is finished first (Faust does not wait for it):
        # else its state change was dropped after its event was sent, and the event came again with it.
        self._stale_generation = self.app.consumer_generation_id
        self._parsed = ParsedBatches()  # parsed, not sent, not acked: they come again to the partitions' owner
        self._emitted_before = None  # read again before the next event: what the old owner emitted counts
        async with self._processing:
            self.store.forget()
            self._pending.clear()
        # Faust rebuilds the assigned partitions of a memory table from their changelog up to its end offset:
        # the states written before must be there by then, or the table goes back to older states while the
        # offsets committed with them stand (issue 14). The new assignment comes after this returns.
        try:
            await self.deliveries.confirmed()
        except DeliveryError as exc:
            await self._stop(exc)


def create_app(settings: StreamSettings, rules: Rules | None = None, model: Any = None) -> faust.App:
    """Build the Faust app of one worker (see :class:`StreamJob`).

    Raises
    ------
    tollguard.errors.RulesError
        When the rules file is invalid.
    """
    return StreamJob(settings, rules, model).app


def _flush_control(value: bytes) -> dict[str, Any] | None:
    """The flush control message in ``value``, or None when it is anything else."""
    try:
        control = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    ok = (
        isinstance(control, dict) and control.get("control") == "flush" and set(control) == {
            "control", "id", "source", "sources"}
        and isinstance(control["id"], str) and isinstance(control["source"], int)
        and isinstance(control["sources"], int) and 0 < control["sources"] <= 10_000
    )
    return control if ok else None


def _source_position(headers: Any) -> tuple[str, int] | None:
    """``("cdrs[3]", 1234)`` from a SOURCE_HEADER ``cdrs[3]@1234``; None without one (or a malformed one).

    >>> _source_position([("tollguard-src", b"p.cdrs[3]@1234")]), _source_position([])
    (('p.cdrs[3]', 1234), None)
    """
    value = _header(headers, SOURCE_HEADER)
    return None if value is None else _position(value)


def _position(value: str) -> tuple[str, int] | None:
    """``("cdrs[3]", 1234)`` from ``"cdrs[3]@1234"``; None when malformed."""
    where, _, offset = value.rpartition("@")
    return (where, int(offset)) if where and offset.isdigit() else None


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
