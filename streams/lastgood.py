"""The last good rules of a worker group, kept on a compacted topic, for a restart that finds the file invalid.

A worker that starts with a valid rules file writes its text to ``{prefix}tollguard-rules``
(compacted, key = the app id): ``{"version", "sha256", "saved_at", "source", "text"}``. A worker
that starts with an invalid file reads the newest record of its app id back, validates it
again and runs with it, saying so (the file's error and the rules it runs with). Without a
record (a group's first start) an invalid file still stops the worker (exit 2). The topic
lives with the state, so a replacement host finds it too.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from tollguard.rules import Rules

#: Topic (after the prefix) of the last good rules.
RULES_TOPIC = "tollguard-rules"
#: Largest rules text kept (bytes): the broker's default message limit is 1 MB.
MAX_RULES_BYTES = 900_000


@dataclass(frozen=True)
class SavedRules:
    """Rules text kept by a worker: its version, digest, when and from which file."""

    text: str
    version: str
    sha256: str
    saved_at: str
    source: str


def save_last_good(broker: str, topic: str, app_id: str, text: str, version: str, source: str) -> bool:
    """Write ``text`` as the last good rules of ``app_id`` (unless the newest record has the same digest).

    Returns whether a record was written. A text over MAX_RULES_BYTES is not kept (False).

    Raises
    ------
    kafka.errors.KafkaError
        The broker cannot be reached.
    """
    data = text.encode("utf-8")
    if len(data) > MAX_RULES_BYTES:
        return False
    digest = hashlib.sha256(data).hexdigest()
    current = load_last_good(broker, topic, app_id)
    if current is not None and current.sha256 == digest:
        return False
    from kafka import KafkaProducer

    from streams.produce import bootstrap_of, ensure_topics

    ensure_topics(broker, {topic: 1}, {topic: {"cleanup.policy": "compact"}})
    producer = KafkaProducer(bootstrap_servers=bootstrap_of(broker), max_request_size=MAX_RULES_BYTES + 10_000)
    try:
        value = orjson.dumps({"version": version, "sha256": digest, "saved_at": datetime.now(UTC).isoformat(),
                              "source": source, "text": text})
        producer.send(topic, key=app_id.encode(), value=value).get(timeout=30)
    finally:
        producer.close()
    return True


def load_last_good(broker: str, topic: str, app_id: str, timeout_s: float = 15.0) -> SavedRules | None:
    """The newest last good rules of ``app_id``, or None (no topic, no record, or an unreadable one).

    Raises
    ------
    kafka.errors.KafkaError
        The broker cannot be reached.
    """
    from kafka import KafkaConsumer, TopicPartition

    from streams.produce import bootstrap_of

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_of(broker), group_id=None, enable_auto_commit=False,
                             client_id="tollguard-rules-reader")
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            return None
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == app_id.encode() and record.value:
                        try:
                            found = orjson.loads(record.value)
                        except orjson.JSONDecodeError:
                            continue
        if not isinstance(found, dict) or not isinstance(found.get("text"), str):
            return None
        return SavedRules(found["text"], str(found.get("version")), str(found.get("sha256")),
                          str(found.get("saved_at")), str(found.get("source")))
    finally:
        consumer.close()


def worker_rules(
    path: str | Path | None, broker: str, topic: str, app_id: str, ingest: dict[str, Any] | None = None
) -> tuple[Rules, str | None]:
    """The rules a starting worker runs with, and a warning when they are not the file's.

    ``path`` is the ``--rules`` file (None: the packaged ``rules/default.yaml``); ``ingest`` the
    command line's overrides of its ``ingest`` section (``--timezone``, ``--country``), applied to
    the kept rules too. A valid file is returned and kept as the last good rules of ``app_id`` on
    ``topic`` (a broker that cannot be reached then only costs the keeping: the warning says so).
    An invalid file gives the last good rules kept, validated again, with a warning naming the
    file's error and the rules used instead.

    Raises
    ------
    tollguard.errors.RulesError
        The file is invalid and no valid last good rules are kept (or the broker cannot be reached).
    """
    from kafka.errors import KafkaError

    from engine.registry import Rules as Schema
    from tollguard.errors import RulesError
    from tollguard.rules import default_rules_path, load_rules, parse_rules

    try:
        file = Path(path) if path is not None else default_rules_path()
        rules = load_rules(file, Schema, ingest)
    except RulesError as exc:
        try:
            saved = load_last_good(broker, topic, app_id)
        except KafkaError:
            raise exc from None
        if saved is None:
            raise
        try:
            kept = parse_rules(saved.text, f"last good rules of {app_id}", Schema, ingest)
        except RulesError:
            raise exc from None
        return kept, (f"rules file invalid: {exc}; running with the last good rules instead (version "
                      f"{kept.version}, from {saved.source}, kept {saved.saved_at})")
    try:
        save_last_good(broker, topic, app_id, file.read_text(encoding="utf-8"), rules.version, str(file))
    except (KafkaError, OSError) as exc:
        return rules, f"the last good rules could not be kept on {topic}: {exc}"
    return rules, None
