"""``tollguard inspect``: how each line of CDR files was read, or why it was refused (issue 12).

One row per CDR line: the format that read it, the customer, the direction, caller / callee /
DID in E.164 with their type and region (libphonenumber, for the customer's country), whether it
was answered, its duration and its estimated cost (the rules' rate table, outbound calls); or
the reason of the reject. The same reader and the same rules as ``replay``, so what ``inspect``
shows is what ``replay`` and the worker take.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.replay import ReplaySummary, note_default_country
from tollguard.adapters import Parsed, ctx_for, read_file
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.numbers import classify
from tollguard.rules import Rules, owner_lookup


def number_view(value: str | None, raw: str | None, country: str, access_codes: tuple[str, ...]) -> dict[str, Any]:
    """``{"number": …, "raw": …, "type": …, "region": …}`` of one number as the customer's country reads it.

    ``number`` is the value as normalised: E.164 where it normalises (an extension or a short number
    stays as written); ``raw`` what the switch wrote when it differs;
    ``type`` is libphonenumber's type (``fixed_line``, ``mobile``, ``premium_rate``, ``extension``, …);
    ``region`` the ISO 3166 region (``001`` non-geographic), None when unknown.
    """
    if not value:
        return {"number": None, "raw": raw, "type": None, "region": None}
    info = classify(value, country, access_codes)
    return {"number": value, "raw": raw if raw is not None and raw != value else None,
            "type": info.number_type.value, "region": info.region}


def record_view(record: CallDetailRecord, rules: Rules) -> dict[str, Any]:
    """The fields ``inspect`` shows of one accepted CDR (times ISO 8601 UTC, durations seconds)."""
    country = rules.country_of(record.customer_id)
    access = rules.ingest.access_codes
    cost = None
    if record.direction == Direction.OUTBOUND and record.callee.startswith("+"):
        cost = rules.rates.cost(record.callee, record.billsec_s)
    return {
        "call_id": record.call_id,
        "customer_id": record.customer_id,
        "country": country,
        "direction": record.direction.value,
        "caller": number_view(record.caller, record.caller_raw, country, access),
        "callee": number_view(record.callee, record.callee_raw, country, access),
        "did": record.did,
        "start": record.start.isoformat().replace("+00:00", "Z"),
        "answered": record.answer is not None,
        "disposition": record.disposition.value,
        "duration_s": record.duration_s,
        "billsec_s": record.billsec_s,
        "estimated_cost": cost,
        "currency": rules.rates.currency if cost is not None else None,
    }


@dataclass
class Inspection:
    """What one ``inspect`` run read: the rows (at most ``limit``) and the counts of all lines."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: ReplaySummary = field(default_factory=ReplaySummary)
    shown_limit_hit: bool = False


def inspect_rows(paths: Iterable[Path], fmt: str, rules: Rules, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """One dict per CDR line of ``paths`` (accepted or rejected; paired transactions too), in file order.

    Keys: ``source``, ``line``, ``status`` (``accepted`` / ``rejected`` / ``paired``), ``format``, and
    :func:`record_view`'s for an accepted line or ``reason`` for a rejected one. Blank, comment and
    header lines are not rows. Stops after ``limit`` rows.
    """
    for shown, (row, _) in enumerate(_rows(paths, fmt, rules)):
        if limit is not None and shown >= limit:
            return
        yield row


def _rows(paths: Iterable[Path], fmt: str, rules: Rules) -> Iterator[tuple[dict[str, Any], Parsed]]:
    owner_of = owner_lookup(rules)
    for path in paths:
        for parsed in read_file(path, fmt, rules.ingest, rules.country_of, owner_of):
            if parsed.skipped and not parsed.paired:
                continue
            row: dict[str, Any] = {"source": parsed.source, "line": parsed.line}
            if parsed.paired:
                row.update(status="paired", format="kamailio-acc",
                           reason="a transaction (answered INVITE, auth challenge) that went into a later CDR")
            elif parsed.record is not None:
                row.update(status="accepted", format=parsed.fmt, **record_view(parsed.record, rules))
            else:
                row.update(status="rejected", format=None, reason=parsed.reason, raw=parsed.raw[:300])
            yield row, parsed


def inspect_files(paths: list[Path], fmt: str, rules: Rules, limit: int | None) -> Inspection:
    """Read every line (for the counts), keeping the first ``limit`` rows (for the table)."""
    result = Inspection()
    summary = result.summary
    ctx = ctx_for(rules.ingest)
    naive_before = ctx.naive_times
    for row, parsed in _rows(paths, fmt, rules):
        if parsed.record is not None:
            note_default_country(summary, rules, parsed.record, parsed.raw)
        summary.lines_read += 1
        if row["status"] == "rejected":
            summary.rejected += 1
        else:
            summary.accepted += 1
            summary.paired += row["status"] == "paired"
        if limit is None or len(result.rows) < limit:
            result.rows.append(row)
        else:
            result.shown_limit_hit = True
    summary.naive_times = ctx.naive_times - naive_before
    summary.files = [str(p) for p in paths]
    return result
