"""Fixes for faust-streaming 0.15 (issue 14): records fetched before a seek to the committed offsets;
the worker's producer made idempotent (see :func:`idempotent_producer`).

The stall it fixes: a worker restarted after a crash (or rejoining after a broker outage) said
"Worker ready" and then committed almost nothing on one input partition for minutes, its lag
frozen although every record had been processed. The worker's log showed (with a debug hook)::

    Seek stream partitions to committed offsets.       (perform_seek: 0.7 s on a busy host)
    gap in t.cdrs[1]: offsets 1722..1788 (committed 1721)

What happens, in Faust's recovery (``Recovery.on_recovery_completed``): the stream partitions are
resumed *before* ``Consumer.perform_seek``, and ``perform_seek`` asks the broker for the committed
offset of every assigned partition one at a time (aiokafka ``seek_to_committed``). Meanwhile the
fetcher goes on: it delivers records from the committed offset (1721…1787 above). When the seek
returns, ``perform_seek`` sets each partition's read offset back to the committed offset (1721) and
aiokafka fetches from there again, but the rest of the batch fetched *before* the seek is still
being delivered: its next record (1788) is ahead of the rewound read offset, so Faust's
``_drain_messages`` records offsets 1722…1788 as a *gap* (as if they held no record) and puts them
into the partition's acked list, where the same offsets are acked again as their records are
processed. With every offset twice in the sorted list, ``Consumer._new_offset`` finds runs of one or
two consecutive numbers, and the committed offset moves by one or two per commit (every 2.8 s):
the 67 offsets above cost three minutes, a longer burst much more (the fault tests waited 180 s and
failed; the broker-kill scenario was marked xfail). A record delivered while the seek was on also
set the read offset past the records the seek rewound, so those came again and were dropped as
already read; the ones the rebalance's flow-control reset had cleared from the stream buffer were
then never processed.

The fix keeps Faust's design (rewind to the committed offsets, deliver from there) and removes
the race: aiokafka's side counts its seeks, each batch carries the count at the moment aiokafka
returned it (both on the consumer thread, so the order is exact), and a record of a partition
rewound by a later seek is dropped instead of delivered (aiokafka fetches it again from the
committed offset); a record that was being delivered while the seek happened does not keep the
read offset it set. Partitions the seek did not move (no committed offset yet) are left alone.

The seek is made in one step: every committed offset is asked first, then every partition is
sought and the seek counted. aiokafka's ``seek_to_committed`` seeks each partition as its committed
offset comes, and the first version of this fix counted the seek once all were done: a batch
aiokafka returned in between, from a sought partition's *new* position, was dropped as fetched
before the seek and never fetched again (aiokafka's position was past it). A rebalance after the
broker-kill scenario showed it: ``cdrs-by-customer[1]: records fetched before the seek to offset 641
not delivered``, then offsets 654-1137 never reached the agent, Faust took them for a gap, committed
past them one or two offsets per commit, and a customer's event came out with other evidence than
replay's. (Delivering such a batch is no better: its records come before ``perform_seek`` sets the
read offsets back to the committed ones, and the records after them are taken for a gap, the stall.)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

log = logging.getLogger("tollguard.worker")

#: Marks the patched methods (install() is idempotent).
_MARK = "tollguard_seek_fix"


class _Batch(dict):  # type: ignore[type-arg]
    """aiokafka's records of one fetch, with the seek count at the moment they were returned."""

    seq: int = 0


def _rewound(consumer: Any) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) → (seek count, committed offset) of the partitions rewound by the consumer thread's seeks."""
    thread = consumer._thread  # noqa: SLF001 (faust internals)
    rewound: dict[tuple[str, int], tuple[int, int]] = vars(thread).setdefault("tollguard_rewound", {})
    return rewound


def _first_drop(consumer: Any, key: tuple[str, int], seek: int) -> bool:
    """Whether this is the first record of ``key`` dropped after seek number ``seek`` (logged once)."""
    seen: dict[tuple[str, int], int] = vars(consumer).setdefault("tollguard_drops_logged", {})
    if seen.get(key) == seek:
        return False
    seen[key] = seek
    return True


async def _seek_on_thread(self: Any) -> Mapping[Any, int]:
    # Runs on the consumer thread, as aiokafka's fetches do. aiokafka's seek_to_committed() asks for the
    # committed offsets one partition at a time and seeks each as its answer comes, so a batch could come
    # back between two seeks, holding a sought partition's records from its new position: counted as
    # fetched before the seek, they were dropped and never fetched again (aiokafka was past them; a
    # rebalance lost them, issue 14); delivered, they came before perform_seek() set the read offsets
    # back to the committed ones, and Faust took the records after them for a gap. So every committed
    # offset is asked first, then every partition is sought and the seek counted in one step: a batch
    # is wholly from before the seek (dropped, fetched again) or wholly from after it.
    consumer = self._ensure_consumer()
    committed: dict[Any, int] = {}
    for tp in consumer.assignment():
        committed[tp] = await consumer.committed(tp)
    self.tollguard_seeks = getattr(self, "tollguard_seeks", 0) + 1
    rewound = self.__dict__.setdefault("tollguard_rewound", {})
    for tp, offset in committed.items():
        if offset and offset > 0:  # as aiokafka's seek_to_committed(): only these
            consumer.seek(tp, offset)
            rewound[(tp.topic, tp.partition)] = (self.tollguard_seeks, offset)
    return committed


#: The producer settings :func:`idempotent_producer` adds to Faust's.
IDEMPOTENT = {"acks": "all", "enable_idempotence": True}


def idempotent_producer() -> None:
    """Make the worker's producer (aiokafka, through Faust's driver) idempotent: acks=all, enable_idempotence.

    Faust asks aiokafka for an idempotent producer only inside transactions (``Producer._settings_extra``
    returns nothing otherwise) and has no setting for it. Without it, a produce request the broker wrote
    but could not answer (a broker SIGKILLed between the two) is sent again when the broker is back:
    its records are written twice, and an event twice on its output topic is a repeated event id (the
    broker-kill fault scenario). With it, the broker drops the copy (same producer id and sequence), keeps
    each partition's order, and aiokafka retries a batch until it is written instead of expiring it.
    Idempotent.
    """
    from faust.transport.drivers import aiokafka as driver

    settings_extra = driver.Producer._settings_extra  # noqa: SLF001 (faust has no setting for it)
    if getattr(settings_extra, _MARK, False):
        return

    @functools.wraps(settings_extra)
    def _settings_extra(self: Any) -> Mapping[str, Any]:
        return {**settings_extra(self), **IDEMPOTENT}

    setattr(_settings_extra, _MARK, True)
    driver.Producer._settings_extra = _settings_extra  # type: ignore[method-assign]  # noqa: SLF001


def install() -> None:
    """Patch faust-streaming's aiokafka driver and consumer (see the module docstring); idempotent."""
    from faust.transport import consumer as base
    from faust.transport.drivers import aiokafka as driver

    idempotent_producer()
    thread_cls = driver.AIOKafkaConsumerThread
    if getattr(thread_cls.seek_to_committed, _MARK, False):
        return
    fetch_records = thread_cls._fetch_records  # noqa: SLF001 (faust internals: no hook for this)
    delegate_getmany = base.ThreadDelegateConsumer._getmany  # noqa: SLF001
    getmany = base.Consumer.getmany

    @functools.wraps(thread_cls.seek_to_committed)
    async def seek_to_committed(self: Any) -> Mapping[Any, int]:
        return await self.call_thread(_seek_on_thread, self)  # type: ignore[no-any-return]

    @functools.wraps(fetch_records)
    async def _fetch_records(self: Any, *args: Any, **kwargs: Any) -> Any:
        records = _Batch(await fetch_records(self, *args, **kwargs))
        records.seq = getattr(self, "tollguard_seeks", 0)
        return records

    @functools.wraps(delegate_getmany)
    async def _getmany(self: Any, active_partitions: Any, timeout: float) -> Any:
        records = await delegate_getmany(self, active_partitions, timeout)
        self.tollguard_batch_seq = getattr(records, "seq", None)
        return records

    @functools.wraps(getmany)
    async def patched_getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        async for tp, message in getmany(self, timeout):
            seq: int | None = getattr(self, "tollguard_batch_seq", None)
            if seq is None:  # not the threaded aiokafka consumer
                yield tp, message
                continue
            rewound, key = _rewound(self), (tp.topic, tp.partition)
            seek = rewound.get(key)
            if seek is not None and seek[0] > seq:
                # fetched before a seek that rewound its partition: aiokafka fetches it again
                if _first_drop(self, key, seek[0]):
                    log.info("%s[%d]: records fetched before the seek to offset %d not delivered (fetched again)",
                             tp.topic, tp.partition, seek[1])
                continue
            yield tp, message
            seek = rewound.get(key)
            if seek is not None and seek[0] > seq:
                # the seek came while this record was delivered: the read offset is the seek's again
                self._read_offset[tp] = seek[1]

    for cls, name, fn in ((thread_cls, "seek_to_committed", seek_to_committed),
                          (thread_cls, "_fetch_records", _fetch_records),
                          (base.ThreadDelegateConsumer, "_getmany", _getmany),
                          (base.Consumer, "getmany", patched_getmany)):
        setattr(fn, _MARK, True)
        setattr(cls, name, fn)
