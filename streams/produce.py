"""``tollguard produce``: feed CDR files into Kafka with kafka-python, one message per CDR line.

Each message value is the raw line (or multi-line JSON document) exactly as the switch
wrote it, so the worker's ``parse`` agent validates it and dead-letters what is bad:
produce never drops or repairs a line. Blank and ``#`` comment lines are not sent.
The file's format travels in the ``format`` header when it is known.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from tollguard.adapters import read_file
from tollguard.rules import Rules


@dataclass
class ProduceSummary:
    """Counts of one produce run."""

    sent: int = 0
    skipped: int = 0
    unparsable: int = 0
    elapsed_s: float = 0.0


def bootstrap_of(broker: str) -> str:
    """``kafka://host:port`` or ``host:port`` → ``host:port`` (comma-separated lists kept)."""
    return ",".join(part.split("://", 1)[-1] for part in broker.split(","))


def ensure_topics(broker: str, topics: dict[str, int]) -> None:
    """Create the topics that do not exist yet (name → partitions), replication factor 1.

    Raises
    ------
    kafka.errors.KafkaError
        When the broker cannot be reached.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_of(broker), client_id="tollguard-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, n, 1) for name, n in topics.items() if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


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
    """
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_of(broker), linger_ms=5, acks=1, batch_size=256 * 1024, client_id="tollguard"
    )
    summary = ProduceSummary()
    started = time.perf_counter()
    try:
        for path in paths:
            header = [("format", fmt.encode())] if fmt != "auto" else []
            for parsed in read_file(path, fmt, settings=rules.ingest, country_of=rules.country_of):
                if progress is not None:
                    progress(len(parsed.raw) + 1)
                if parsed.skipped:
                    summary.skipped += 1
                    continue
                if parsed.record is None:
                    summary.unparsable += 1
                # Keyed by customer: Kafka orders only within a partition, and the engine
                # refuses a customer's CDRs that arrive later than the allowed lateness.
                key = parsed.record.customer_id.encode() if parsed.record is not None else None
                producer.send(topic, key=key, value=parsed.raw.encode("utf-8", "surrogateescape"), headers=header)
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
                producer.send(topic, value=flush_message(p, len(partitions), flush_id), partition=p)
        producer.flush()
    finally:
        producer.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary
