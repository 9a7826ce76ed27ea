"""Event ids already on the output topics when a worker takes its partitions (no event emitted twice).

A worker killed after an event reached the broker but before the broker confirmed the state that
emitted it (milliseconds, see ``StreamJob.checkpoint``) resumes from the older state, takes the same
records again and emits the same events, with the same ids (they are deterministic). Without
Kafka transactions the two writes cannot be made one, so after each partition assignment the worker
reads back the newest records of every output topic and does not send an event whose id is already
there. Only events emitted after the last confirmed checkpoint can come again, so the tail read
(:data:`TAIL_RECORDS` per partition) covers them many times over.
"""

from __future__ import annotations

import logging
import time

import orjson

log = logging.getLogger("tollguard.worker")

#: Newest records read back per partition of each output topic after an assignment. An event can come
#: again only from the records taken after the last confirmed checkpoint (at most DETECT_BATCH records
#: or DETECT_CHECKPOINT_S seconds, each emitting a few events at most).
TAIL_RECORDS = 2000


def emitted_ids(bootstrap: str, topics: list[str], tail: int = TAIL_RECORDS, timeout_s: float = 20.0) -> set[str]:
    """The ``event_id`` of the newest ``tail`` records of each partition of ``topics``.

    Parameters
    ----------
    bootstrap : str
        ``host:port`` list of the broker.
    topics : list of str
        The output topics (suspensions, alerts, ...); a topic that does not exist yet has none.

    Raises
    ------
    kafka.errors.KafkaError
        The broker cannot be reached.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="tollguard-emitted-reader")
    ids: set[str] = set()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return ids
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(begins[tp], ends[tp] - tail))
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        event_id = orjson.loads(record.value or b"null").get("event_id")
                    except (orjson.JSONDecodeError, AttributeError):
                        continue
                    if isinstance(event_id, str):
                        ids.add(event_id)
        if any(consumer.position(tp) < ends[tp] for tp in tps):
            log.warning("output topics not read back in %.0f s: an event re-emitted after a crash may come twice",
                        timeout_s)
        return ids
    finally:
        consumer.close()
