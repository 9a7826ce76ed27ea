"""Rows of a declarative CSV layout (``ingest.mappings``, :class:`~tollguard.adapters.settings.CsvMapping`)
-> :class:`CallDetailRecord`: any export (Asterisk ``cdr_custom``, CDR-Stats, a billing system) without code."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.errors import RejectError

from ._common import (
    CountryOf,
    Ctx,
    build,
    check_times,
    classify,
    fs_cause,
    fs_disposition,
    local_ts,
    naive_to_utc,
    normalize_cached,
    number,
    owner,
    row_hash,
)
from .asterisk import DISPOSITIONS
from .settings import CsvMapping

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def header_matches(mapping: CsvMapping, row: list[str]) -> bool:
    """True when ``row`` is the mapping's header row (its column names, case and spaces ignored)."""
    if not mapping.columns or len(row) != len(mapping.columns):
        return False
    return all(a.strip().lower() == b.strip().lower() for a, b in zip(row, mapping.columns, strict=True))


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return UTC if name in ("UTC", "Etc/UTC") else ZoneInfo(name)


def _time(m: CsvMapping, value: str, column: str, ctx: Ctx) -> datetime | None:
    value = value.strip()
    if not value or value in ("0", "NULL"):
        return None
    fmt, zone = m.time_format, (_zone(m.timezone) if m.timezone else ctx)
    if fmt in ("epoch", "epoch_ms"):
        try:
            seconds = float(value) / (1000 if fmt == "epoch_ms" else 1)
        except ValueError:
            raise RejectError(f"{m.name}: bad timestamp {value[:40]!r} in column {column}") from None
        if not 946684800 <= seconds < 32503680000:
            raise RejectError(f"{m.name}: bad timestamp {value[:40]!r} in column {column}")
        return _EPOCH + timedelta(seconds=seconds)
    if fmt == "iso":
        return local_ts(value, column, zone, m.name)
    try:
        dt = datetime.strptime(value, fmt)
    except ValueError:
        raise RejectError(f"{m.name}: timestamp {value[:40]!r} in column {column} does not match {fmt!r}") from None
    return naive_to_utc(dt, zone) if dt.tzinfo is None else dt.astimezone(UTC)


def _seconds(m: CsvMapping, value: str, column: str) -> float | None:
    """Seconds from ``123``, ``123.5`` or ``HH:MM:SS``; empty -> None."""
    value = value.strip()
    if not value:
        return None
    if ":" in value:
        total = 0.0
        for part in value.split(":"):
            total = total * 60 + number(part, column, m.name)
        return total
    return number(value, column, m.name)


def _direction(m: CsvMapping, value: str) -> Direction | None:
    for direction, globs in ((Direction.INBOUND, m.direction.inbound), (Direction.OUTBOUND, m.direction.outbound),
                             (Direction.INTERNAL, m.direction.internal)):
        if any(fnmatch.fnmatchcase(value.lower(), g.lower()) for g in globs):
            return direction
    return None


def _disposition(raw: str, answered: bool, billsec: float, cause: int | None, m: CsvMapping) -> Disposition:
    if raw:
        known = DISPOSITIONS.get(raw.strip().upper())
        if known is not None:
            return known
        name, code = fs_cause(raw, "disposition", m.name)
        return fs_disposition(name, code, answered, billsec)
    return fs_disposition(None, cause, answered, billsec) if cause is not None or answered else Disposition.NO_ANSWER


def _times(
    m: CsvMapping, get: Callable[[str], str], ctx: Ctx
) -> tuple[datetime, datetime | None, datetime, float, float]:
    """(start, answer, end, duration_s, billsec_s) of a row, the missing ones derived."""
    start = _time(m, get("start"), "start", ctx)
    if start is None:
        raise RejectError(f"{m.name}: empty start time")
    answer = _time(m, get("answer"), "answer", ctx)
    end = _time(m, get("end"), "end", ctx)
    duration = _seconds(m, get("duration_s"), "duration_s")
    billsec = _seconds(m, get("billsec_s"), "billsec_s")
    if end is None:
        if duration is None:
            raise RejectError(f"{m.name}: no end time and no duration")
        end = start + timedelta(seconds=duration)
    if duration is None:
        duration = (end - start).total_seconds()
    if answer is None and billsec:
        answer = end - timedelta(seconds=billsec)
    if billsec is None:
        billsec = (end - answer).total_seconds() if answer is not None else 0.0
    check_times(start, answer, end, m.name)
    return start, answer, end, duration, billsec


def parse_row(m: CsvMapping, row: list[str], ctx: Ctx, country_of: CountryOf,
              owner_of: Callable[[str], str | None] | None = None) -> CallDetailRecord:
    """One row of mapping ``m`` (already split) -> record (derivations: see :class:`CsvMapping`).

    Raises
    ------
    RejectError
        Wrong column count, a header row, bad timestamp or number, end before start, no end
        and no duration, an unknown disposition or hangup cause.
    """
    if len(row) != m.width:
        raise RejectError(f"{m.name}: expected {m.width} columns (ingest.mappings), got {len(row)}")
    if header_matches(m, row):
        raise RejectError("CSV header row (column names), not a CDR")

    def get(name: str) -> str:
        ref = m.fields.get(name)
        return row[m.position(ref)].strip() if ref is not None else ""

    start, answer, end, duration, billsec = _times(m, get, ctx)
    _, cause = fs_cause(get("hangup_cause"), "hangup_cause", m.name)
    caller_raw, callee_raw = get("caller"), get("callee")
    settings = ctx.settings
    customer, owned_did = owner(ctx, owner_of, callee_raw, caller_raw, get("customer_id"), country_of)
    said = _direction(m, row[m.position(m.direction.column)]) if m.direction.column is not None else None
    mapped = get("direction")
    if said is None and mapped:
        said = Direction(mapped.lower()) if mapped.lower() in ("inbound", "outbound", "internal") else None
    inbound = said == Direction.INBOUND if said is not None else owned_did
    direction, caller, callee, did = classify(ctx, inbound, caller_raw, callee_raw, country_of(customer))
    if said == Direction.OUTBOUND and direction == Direction.INTERNAL:
        direction = Direction.OUTBOUND
    elif said == Direction.INTERNAL:
        direction, did = Direction.INTERNAL, None
    did = get("did") or did
    return build(
        m.name,
        call_id=get("call_id") or row_hash(row, f"{m.name}-"),
        customer_id=customer,
        direction=direction,
        caller=caller,
        callee=callee,
        caller_raw=caller_raw,
        callee_raw=callee_raw,
        did=(normalize_cached(did, country_of(customer), settings.access_codes) or did) if did else None,
        start=start,
        answer=answer,
        end=end,
        duration_s=duration,
        billsec_s=billsec,
        disposition=_disposition(get("disposition"), answer is not None, billsec, cause, m),
        hangup_cause=cause,
        source_ip=get("source_ip") or None,
        user_agent=get("user_agent") or None,
        codec=get("codec") or None,
    )
