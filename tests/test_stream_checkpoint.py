"""A checkpoint acks its records only once the broker confirmed what they wrote (issue 14).

Faust commits acked offsets after flushing its producer, but that flush does not wait for the table
writes still queued in Faust's ``ProducerBuffer``: after a broker outage, offsets were committed with
hundreds of state writes queued, and a rebalance then rebuilt the table from a changelog without them.
Here the detect agent's checkpoint waits for the futures of its changelog writes, events and dead
letters (:class:`streams.app.Deliveries`), and does not ack records of partitions revoked meanwhile.
The broker scenarios are in tests/test_faults.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.registry import Rules
from streams.app import Deliveries, DeliveryError, StreamJob, StreamSettings


def _job(tmp_path: Path) -> tuple[StreamJob, list[Any]]:
    job = StreamJob(StreamSettings(app_id="checkpoint-test", datadir=str(tmp_path)), Rules(version="t"))
    acked: list[Any] = []

    class Acker:
        async def ack(self, event: Any) -> None:
            acked.append(event)

    job._acker = Acker()  # noqa: SLF001 (the detect agent's stream)
    return job, acked


def _event(generation: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(generation_id=generation))


def test_records_are_acked_once_their_writes_are_confirmed(tmp_path: Path) -> None:
    job, acked = _job(tmp_path)

    async def main() -> None:
        write = asyncio.get_running_loop().create_future()
        job.deliveries.add(write)
        first = _event(1)
        job._pending.append(first)  # noqa: SLF001
        checkpoint = asyncio.ensure_future(job.checkpoint())
        await asyncio.sleep(0.05)
        assert acked == [] and not checkpoint.done()  # the broker has not confirmed the write yet
        write.set_result(None)
        await checkpoint
        assert acked == [first] and len(job.deliveries) == 0

        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(RuntimeError("MessageSizeTooLarge"))
        job.deliveries.add(failed)
        job._pending.append(_event(1))  # noqa: SLF001
        with pytest.raises(DeliveryError, match="MessageSizeTooLarge"):
            await job.checkpoint()
        assert acked == [first]  # not acked: a restart takes it again from the committed offset

    asyncio.run(main())


def test_records_of_revoked_partitions_are_not_acked(tmp_path: Path) -> None:
    job, acked = _job(tmp_path)

    async def main() -> None:
        job.app.consumer_generation_id = 3
        in_flight = _event(3)  # taken before the rebalance, appended after it (Faust does not wait for it)
        await job._on_revoked(None)  # noqa: SLF001
        job._pending.append(in_flight)  # noqa: SLF001
        job.app.consumer_generation_id = 4
        fresh = _event(4)
        job._pending.append(fresh)  # noqa: SLF001
        await job.checkpoint()
        assert acked == [fresh]

    asyncio.run(main())


def test_the_revocation_waits_for_the_written_states(tmp_path: Path) -> None:
    """The new assignment's recovery reads the changelog up to its end: the states written must be in it."""
    job, _ = _job(tmp_path)

    async def main() -> None:
        write = asyncio.get_running_loop().create_future()
        job.deliveries.add(write)
        revoked = asyncio.ensure_future(job._on_revoked(None))  # noqa: SLF001
        await asyncio.sleep(0.05)
        assert not revoked.done()
        write.set_result(None)
        await revoked

    asyncio.run(main())


def test_changelog_writes_are_tracked() -> None:
    loop_futures: list[Any] = []

    class Table:
        def send_changelog(self, partition: int | None, key: bytes, value: bytes | None) -> Any:
            loop_futures.append((partition, key, value))
            return len(loop_futures)

    table, deliveries = Table(), Deliveries()
    deliveries.track(table)
    assert table.send_changelog(None, b"k", b"v") == 1
    assert len(deliveries) == 1 and loop_futures == [(None, b"k", b"v")]


def test_the_revocation_waits_for_the_message_being_taken(tmp_path: Path) -> None:
    """Faust does not wait for it: forgetting the cached states meanwhile dropped the state change of a record
    whose event was already sent, and the record, delivered again after the rebalance, sent it again."""
    job, acked = _job(tmp_path)

    async def main() -> None:
        job.app.consumer_generation_id = 3
        release = asyncio.Event()
        taking = _event(3)

        async def take() -> None:  # detect, between sending an event and the checkpoint of its state
            async with job._processing:  # noqa: SLF001
                await release.wait()
                job._pending.append(taking)  # noqa: SLF001
                await job.checkpoint()

        taker = asyncio.ensure_future(take())
        await asyncio.sleep(0)
        revoked = asyncio.ensure_future(job._on_revoked(None))  # noqa: SLF001
        await asyncio.sleep(0.05)
        assert not revoked.done()
        release.set()
        await asyncio.gather(taker, revoked)
        assert acked == []  # its state is written; not acked: delivered again, it is a re-delivery

    asyncio.run(main())
