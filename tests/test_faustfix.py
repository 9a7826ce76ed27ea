"""The fix of streams/faustfix.py (issue 14's stall): records fetched before a seek to the committed offsets.

Without it, a worker restarted after a crash delivered the rest of a batch fetched before Faust's
``perform_seek``, whose read offsets the seek had rewound: Faust took the jump for a gap, acked each
of those offsets twice, and committed one offset per commit interval for minutes. Here the patched
``Consumer.getmany`` runs over batches as aiokafka returns them (each with the seek count at that
moment), the way Faust's fetcher loop drives it; the real broker scenarios are in tests/test_faults.py.
"""

# ruff: noqa: SLF001  (Faust's consumer keeps its read offsets in _read_offset)
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport import consumer as base
from faust.transport.drivers import aiokafka as driver
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from streams import faustfix
from streams.faustfix import _Batch as Batch

faustfix.install()

CDRS_1, CDRS_2 = TP("cdrs", 1), TP("cdrs", 2)


class FakeThread:
    """The consumer thread: aiokafka's committed offsets (asked one partition at a time), calls run at once."""

    def __init__(self, committed: dict[TP, int | None], while_asked: Any = None) -> None:
        self.committed = committed
        self.seeks: list[tuple[TP, int]] = []  # aiokafka's seeks
        self.while_asked = while_asked  # called while the committed offset of a partition is awaited

    def _ensure_consumer(self) -> Any:
        async def committed(tp: TP) -> int | None:
            if self.while_asked is not None:
                self.while_asked(tp)
            await asyncio.sleep(0)
            return self.committed[tp]

        def seek(tp: TP, offset: int) -> None:
            self.seeks.append((tp, offset))

        async def seek_to_committed() -> dict[TP, int | None]:  # aiokafka's, over the two above
            got = {}
            for tp in self.committed:
                got[tp] = offset = await committed(tp)
                if offset and offset > 0:
                    seek(tp, offset)
            return got

        return SimpleNamespace(assignment=lambda: list(self.committed), committed=committed, seek=seek,
                               seek_to_committed=seek_to_committed)

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)


class FakeConsumer:
    """What Faust's ``Consumer.getmany`` reads of its consumer, over prepared batches."""

    should_stop = False
    flow_active = True

    def __init__(self, thread: FakeThread, batches: list[Batch]) -> None:
        self._thread = thread
        self._batches = batches
        self._buffered_partitions: set[TP] = set()
        self._read_offset: dict[TP, int | None] = {}
        self.scheduler = DefaultSchedulingStrategy()
        self.app = SimpleNamespace(consumer_generation_id=1,
                                   monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None))

    async def _wait_next_records(self, timeout: float) -> tuple[Any, None]:
        records = self._batches.pop(0)
        self.tollguard_batch_seq = records.seq  # as the patched ThreadDelegateConsumer._getmany sets it
        return records, None

    def highwater(self, tp: TP) -> int:
        return 0

    def _to_message(self, tp: TP, offset: int) -> Any:
        return SimpleNamespace(tp=tp, offset=offset)


def batch(seq: int, records: dict[TP, list[int]]) -> Batch:
    got = Batch(records)
    got.seq = seq
    return got


def test_the_seek_counts_the_partitions_it_rewinds() -> None:
    thread = FakeThread({CDRS_1: 1721, CDRS_2: None, TP("cdrs", 3): 0})
    seek: Any = driver.AIOKafkaConsumerThread.seek_to_committed
    assert asyncio.run(seek(thread)) == {CDRS_1: 1721, CDRS_2: None, TP("cdrs", 3): 0}
    assert asyncio.run(seek(thread)) == {CDRS_1: 1721, CDRS_2: None, TP("cdrs", 3): 0}
    # aiokafka seeks only partitions with a committed offset above 0: the others keep their position
    assert (thread.tollguard_seeks, thread.tollguard_rewound) == (2, {("cdrs", 1): (2, 1721)})  # type: ignore[attr-defined]


def test_every_partition_is_sought_in_one_step() -> None:
    """No batch can come back between two partitions' seeks: every committed offset is asked first.

    aiokafka's own seek_to_committed() seeks each partition as its committed offset comes. A batch returned
    while the next one was awaited held a sought partition's records from its new position: numbered as
    fetched before the seek, they were dropped and never fetched again (a rebalance after the broker-kill
    scenario lost them); delivered, the read offset set back by perform_seek() made the next ones a gap.
    """
    sought_while_asked: list[list[tuple[TP, int]]] = []
    seq_then: list[int] = []
    thread = FakeThread({CDRS_1: 1721, CDRS_2: 40})

    def while_asked(tp: TP) -> None:
        if tp == CDRS_2:  # a batch aiokafka returns meanwhile, numbered as the patched _fetch_records does
            sought_while_asked.append(list(thread.seeks))
            seq_then.append(getattr(thread, "tollguard_seeks", 0))

    thread.while_asked = while_asked
    asyncio.run(driver.AIOKafkaConsumerThread.seek_to_committed(thread))  # type: ignore[arg-type]
    assert sought_while_asked == [[]] and thread.seeks == [(CDRS_1, 1721), (CDRS_2, 40)]
    # that batch is from cdrs[1]'s old position: not delivered (aiokafka fetches again from 1721)
    consumer = FakeConsumer(thread, [batch(seq_then[0], {CDRS_1: [1790, 1791]})])
    getmany: Any = base.Consumer.getmany

    async def deliver() -> list[int]:
        return [message.offset async for _, message in getmany(consumer, timeout=1.0)]

    assert asyncio.run(deliver()) == []


def test_records_fetched_before_the_seek_are_not_delivered_and_the_read_offset_stays_rewound(
        caplog: pytest.LogCaptureFixture) -> None:
    thread = FakeThread({CDRS_1: 1721, CDRS_2: None})
    # fetched before the seek: cdrs[1] from its committed offset on, cdrs[2] (no commit yet, not rewound)
    stale = batch(0, {CDRS_1: [1721, 1722, 1723, 1724], CDRS_2: [0, 1]})
    consumer = FakeConsumer(thread, [stale, batch(1, {CDRS_1: [1721, 1722]})])
    getmany: Any = base.Consumer.getmany
    delivered: list[tuple[int, int]] = []

    after_stale: dict[TP, int | None] = {}

    async def fetcher_loop() -> None:  # as Faust's Consumer._drain_messages drives getmany
        for _ in range(2):
            async for tp, message in getmany(consumer, timeout=1.0):
                delivered.append((tp.partition, message.offset))
                if (tp, message.offset) == (CDRS_1, 1722) and not after_stale:  # the seek completes meanwhile
                    consumer._read_offset.update(await driver.AIOKafkaConsumerThread.seek_to_committed(thread))
                consumer._read_offset[tp] = message.offset
            after_stale.update(after_stale or consumer._read_offset)

    with caplog.at_level(logging.INFO, logger="tollguard.worker"):
        asyncio.run(fetcher_loop())
    assert [r.getMessage() for r in caplog.records] == [
        "cdrs[1]: records fetched before the seek to offset 1721 not delivered (fetched again)"]  # once, not twice
    assert after_stale == {CDRS_1: 1721, CDRS_2: 1}  # the seek's rewind stands (not 1722): no gap, no skip
    # cdrs[1]: 1721 and 1722 delivered before the seek was complete, 1723 and 1724 dropped (fetched again from
    # 1721 by aiokafka), then the new batch from 1721; cdrs[2], which the seek did not move, keeps its records
    # (Faust's scheduler takes the partitions in turn)
    assert delivered == [(1, 1721), (2, 0), (1, 1722), (2, 1), (1, 1721), (1, 1722)]
    assert consumer._read_offset == {CDRS_1: 1722, CDRS_2: 1}



def test_the_worker_producer_is_idempotent() -> None:
    """acks=all and enable_idempotence for aiokafka, outside transactions too (Faust asks only inside them)."""
    import faust

    app = faust.App("faustfix-producer-test", broker="kafka://127.0.0.1:1")

    async def sender() -> Any:
        producer = driver.Producer(app.transport)._new_producer()  # as the worker's producer is made
        return producer._sender

    made = asyncio.run(sender())
    assert made._acks == -1 and made._txn_manager is not None  # aiokafka: idempotence has a transaction manager
