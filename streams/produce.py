"""``tollguard produce``: feed CDR files into Kafka with kafka-python, one message per CDR line.

Each message value is the raw line (or multi-line JSON document) exactly as the switch
wrote it, so the worker's ``parse`` agent validates it and dead-letters what is bad:
produce never drops or repairs a line. Blank, ``#`` comment and CSV header lines are not
sent. A line the reader could not take whole (longer than the reader's limit,
undecodable bytes, the end of a truncated gzip file) is not a CDR message either: it
goes straight to the dead-letter topic, in the worker's record shape, with the
reader's reason (see :func:`route`). The file's format travels in the ``format``
header when it is known.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from engine.runner import Reject
from tollguard.adapters import Parsed, RejectError, read_file, sniff
from tollguard.adapters.call_events import CallEventParser, read_call_events, sniff_call_event
from tollguard.errors import VerdictError
from tollguard.events import Verdict
from tollguard.rules import Rules


@dataclass
class ProduceSummary:
    """Counts of one produce run."""

    sent: int = 0
    skipped: int = 0
    unparsable: int = 0
    #: Lines the reader could not take whole, put on ``dead_letter_topic`` instead of sent.
    dead_lettered: int = 0
    dead_letter_topic: str = ""
    elapsed_s: float = 0.0


#: Formats whose CDRs the reader builds from several lines (Kamailio acc: INVITE + BYE); produce sends
#: the paired CDR as canonical JSON (``format: jsonl``) instead of the line.
PAIRED_FORMATS = frozenset({"kamailio-acc"})


def _producer(broker: str) -> KafkaProducer:
    """The producer of CDR and call-event lines: idempotent, so a broker outage's retries keep the order.

    With ``acks=1`` kafka-python turns idempotence off, and a retried batch (up to five in flight)
    can land after later ones: the worker then saw CDRs minutes behind their customer's newest and
    dead-lettered them as late (issue 14, the broker-outage fault scenarios). ``acks="all"`` with
    idempotence keeps each partition's order and writes each line once.
    """
    return KafkaProducer(
        bootstrap_servers=bootstrap_of(broker), linger_ms=5, acks="all", enable_idempotence=True,
        batch_size=256 * 1024, client_id="tollguard",
    )

def bootstrap_of(broker: str) -> str:
    """``kafka://host:port`` or ``host:port`` → ``host:port`` (comma-separated lists kept)."""
    return ",".join(part.split("://", 1)[-1] for part in broker.split(","))


def ensure_topics(
    broker: str, topics: dict[str, int], configs: dict[str, dict[str, str]] | None = None
) -> None:
    """Create the topics that do not exist yet (name → partitions), replication factor 1.

    ``configs`` gives topic configs by name (e.g. ``{"cleanup.policy": "compact"}``).
    Returns once the broker lists every topic, so a consumer that starts next sees them.

    Raises
    ------
    kafka.errors.KafkaError
        When the broker cannot be reached.
    TimeoutError
        When created topics are still not listed after 30 s.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_of(broker), client_id="tollguard-admin")
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, n, 1, topic_configs=(configs or {}).get(name) or None)
            for name, n in topics.items()
            if name not in existing
        ]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            deadline = time.monotonic() + 30
            while not set(topics) <= set(admin.list_topics()):
                if time.monotonic() > deadline:
                    missing = sorted(set(topics) - set(admin.list_topics()))
                    raise TimeoutError(f"topics not listed 30 s after creation: {missing}")
                time.sleep(0.1)
    finally:
        admin.close()


SEND, SKIP, DEAD_LETTER = "send", "skip", "dead-letter"


def route(parsed: Parsed) -> str:
    """What produce does with one reader outcome: :data:`SEND`, :data:`SKIP` or :data:`DEAD_LETTER`.

    Skipped lines (blank, comment, CSV header) are not sent. A reject whose ``raw`` is
    not the line as written (``Parsed.exact`` False: cut to a prefix for being too
    long, undecodable bytes escaped, a truncated gzip stream) cannot be parsed from
    the message, so it is dead-lettered with the reader's reason. Everything else is
    sent raw, rejects included: the worker dead-letters them with the same reasons.
    """
    if parsed.skipped:
        return SKIP
    if parsed.record is None and not parsed.exact:
        return DEAD_LETTER
    return SEND


def dead_letter_value(parsed: Parsed) -> bytes:
    """The dead-letter record of a line the reader rejected: the runner's :class:`engine.runner.Reject`."""
    return Reject(parsed.source, parsed.line, parsed.raw, parsed.reason or "unreadable line").to_json_bytes()


def dead_letter_topic_of(topic: str) -> str:
    """``{prefix}cdrs-dead-letter`` for a CDR topic ``{prefix}cdrs`` ("X.cdrs" → "X.cdrs-dead-letter").

    A topic not named ``...cdrs`` gets ``{topic}-dead-letter``.
    """
    if topic.endswith("cdrs"):
        return f"{topic[: -len('cdrs')]}cdrs-dead-letter"
    return f"{topic}-dead-letter"


def flush_message(source_partition: int, sources: int, flush_id: str) -> bytes:
    """Control message closing every customer once all ``sources`` partitions carried it."""
    return orjson.dumps({"control": "flush", "id": flush_id, "source": source_partition, "sources": sources})


def produce_files(
    paths: Iterable[Path],
    broker: str,
    topic: str,
    rules: Rules,
    fmt: str = "auto",
    rate: float | None = None,
    flush: bool = False,
    progress: Callable[[int], None] | None = None,
    dead_letter_topic: str | None = None,
) -> ProduceSummary:
    """Send every CDR line of ``paths`` (in order) to ``topic``.

    Parameters
    ----------
    rate : float, optional
        Offered load in CDRs per second (paced); None = as fast as possible.
    flush : bool
        After the files, send the end-of-input control message to every partition.
    progress : callable, optional
        Called with the bytes of each line sent.
    dead_letter_topic : str, optional
        Where lines the reader could not take whole go (see :func:`route`); default
        :func:`dead_letter_topic_of` ``topic``.
    """
    producer = _producer(broker)
    summary = ProduceSummary(dead_letter_topic=dead_letter_topic or dead_letter_topic_of(topic))
    started = time.perf_counter()
    owners = rules.owner_of
    try:
        for path in paths:
            header = [("format", fmt.encode())] if fmt != "auto" else []
            for parsed in read_file(path, fmt, settings=rules.ingest, country_of=rules.country_of,
                                    owner_of=owners):
                if progress is not None:
                    progress(len(parsed.raw) + 1)
                action = route(parsed)
                if action == SKIP:
                    summary.skipped += 1
                    continue
                if action == DEAD_LETTER:
                    producer.send(summary.dead_letter_topic, value=dead_letter_value(parsed))
                    summary.dead_lettered += 1
                    continue
                value = parsed.raw.encode("utf-8", "surrogateescape")
                if parsed.record is not None and parsed.fmt in PAIRED_FORMATS:
                    # one transaction record is not a CDR: the CDR the reader paired goes, as canonical JSON
                    value = orjson.dumps(parsed.record.to_json_dict())
                    producer.send(topic, key=parsed.record.customer_id.encode(), value=value,
                                  headers=[("format", b"jsonl")])
                    summary.sent += 1
                    continue
                if parsed.record is None:
                    summary.unparsable += 1
                elif not header:
                    # The first recognised line fixes the file's format, as in replay: the worker
                    # then parses (and rejects) every later line the way replay does.
                    try:
                        header = [("format", sniff(parsed.raw).encode())]
                    except RejectError:
                        pass
                # Keyed by customer: Kafka orders only within a partition, and the engine
                # refuses a customer's CDRs that arrive later than the allowed lateness.
                key = parsed.record.customer_id.encode() if parsed.record is not None else None
                producer.send(topic, key=key, value=value, headers=header)
                summary.sent += 1
                if rate:
                    due = started + summary.sent / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
        if flush:
            partitions = sorted(producer.partitions_for(topic) or {0})
            flush_id = str(uuid.uuid4())
            for p in partitions:
                producer.send(topic, value=flush_message(p, len(partitions), flush_id), partition=p,
                              headers=[("tollguard-control", b"flush")])
        producer.flush()
    finally:
        producer.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def produce_call_events(
    paths: Iterable[Path],
    broker: str,
    topic: str,
    rules: Rules,
    fmt: str = "auto",
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Send every call event of ``paths`` (in order) to ``topic`` (``call-events``, DESIGN §3b).

    One message per input as the switch wrote it (a JSON line, an acc log line, an AMI event
    block), keyed by its customer where the reader resolved one, with the file's call-event
    format in the ``format`` header; the worker parses it again and dead-letters what is bad
    (``unparsable`` counts those). Comments and inputs that are no call event (other event types,
    Kamailio's other log lines) are not sent (``skipped``).
    """
    producer = _producer(broker)
    summary = ProduceSummary(dead_letter_topic=dead_letter_topic_of(topic))
    parser = CallEventParser(rules.ingest, rules.owner_of, rules.country_of)
    started = time.perf_counter()
    try:
        for path in paths:
            header = [("format", fmt.encode())] if fmt != "auto" else []
            for parsed in read_call_events(path, fmt, parser):
                if progress is not None:
                    progress(len(parsed.raw) + 1)
                if parsed.skipped:
                    summary.skipped += 1
                    continue
                if parsed.event is None:
                    summary.unparsable += 1
                elif not header:
                    try:
                        header = [("format", sniff_call_event(parsed.raw).encode())]
                    except RejectError:
                        pass
                key = parsed.event.customer_id.encode() if parsed.event is not None else None
                producer.send(topic, key=key, value=parsed.raw.encode("utf-8", "surrogateescape"), headers=header)
                summary.sent += 1
                if rate:
                    delay = started + summary.sent / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
        producer.flush()
    finally:
        producer.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def read_topic(broker: str, topic: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Every JSON value on ``topic`` from the beginning to its current end (kafka-python)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_of(broker), enable_auto_commit=False, group_id=None,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: list[dict[str, Any]] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=1000)
            if not batch:
                break
            for records in batch.values():
                values.extend(orjson.loads(r.value) for r in records)
        return values
    finally:
        consumer.close()


def send_verdict(broker: str, topic_prefix: str, verdict: Verdict) -> None:
    """Check that the suspension exists and is open, then put the verdict on ``verifications``.

    Raises
    ------
    VerdictError
        No such suspension on the ``suspensions`` topic, or a verdict already closed it.
    """
    sid = verdict.suspension_event_id
    suspensions = read_topic(broker, f"{topic_prefix}suspensions")
    found = [s for s in suspensions if s.get("event_id") == sid and not s.get("termination_recommended")]
    if not found:
        raise VerdictError(f"unknown suspension {sid}: it is not on {topic_prefix}suspensions")
    confirmed = [s for s in suspensions if s.get("suspension_event_id") == sid]
    cleared = [r for r in read_topic(broker, f"{topic_prefix}reactivations") if r.get("suspension_event_id") == sid]
    for done, what in ((cleared, "cleared (reactivated)"), (confirmed, "confirmed (termination recommended)")):
        if done:
            ev = done[0].get("evidence", {})
            raise VerdictError(f"suspension {sid} is already closed: {what} by {ev.get('by')} at {ev.get('at', '')}")
    producer = KafkaProducer(bootstrap_servers=bootstrap_of(broker), acks="all", client_id="tollguard-verify")
    try:
        # Keyed by the suspension's customer: the worker routes it to the partition of that customer's CDRs.
        producer.send(f"{topic_prefix}verifications", key=str(found[0]["customer_id"]).encode(),
                      value=verdict.model_dump_json().encode())
        producer.flush()
    finally:
        producer.close()
