"""3CX CDR service output (``3cx``) -> :class:`CallDetailRecord`.

27 fields in the documented order: ``historyid,callid,duration,time-start,time-answered,time-end,
reason-terminated,from-no,to-no,from-dn,to-dn,dial-no,reason-changed,final-number,final-dn,
bill-code,bill-rate,bill-cost,bill-name,chain,from-type,to-type,final-type,from-dispname,
to-dispname,final-dispname,missed-queue-calls``. ``historyid`` is ``Call NNNN``; times are
``YYYY/MM/DD HH:MM:SS`` without a zone (``ingest.timezone``); ``duration`` is the talk time
``HH:MM:SS`` (empty when unanswered); extensions are written ``Ext.610``.

Direction from the party types: ``from-type`` External -> inbound; else ``to-type`` /
``final-type`` External -> outbound; else internal. A 3CX is one customer's PBX: the
customer is the one whose DID (inbound callee) or CLI the rules list, else
``ingest.default_customer_id``.
"""

from __future__ import annotations

from collections.abc import Callable

from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.errors import RejectError

from ._common import CountryOf, Ctx, build, check_times, classify, local_ts, owner

FMT = "3cx"
COLUMNS = (
    "historyid", "callid", "duration", "time-start", "time-answered", "time-end", "reason-terminated", "from-no",
    "to-no", "from-dn", "to-dn", "dial-no", "reason-changed", "final-number", "final-dn", "bill-code", "bill-rate",
    "bill-cost", "bill-name", "chain", "from-type", "to-type", "final-type", "from-dispname", "to-dispname",
    "final-dispname", "missed-queue-calls",
)  # fmt: skip
WIDTH = len(COLUMNS)


def looks_like(row: list[str]) -> bool:
    """A 3CX row: ``Call NNNN`` first, 26 or 27 fields, a timestamp at time-start."""
    return (len(row) in (WIDTH - 1, WIDTH) and row[0].startswith("Call ") and row[0][5:].strip().isdigit()
            and len(row[3]) >= 12 and row[3][:4].isdigit())


def _hms(value: str) -> float:
    """``HH:MM:SS`` (or seconds) -> seconds; empty -> 0."""
    if not value.strip():
        return 0.0
    try:
        parts = [float(p) for p in value.strip().split(":")]
    except ValueError:
        raise RejectError(f"{FMT}: bad duration {value[:20]!r} (expected HH:MM:SS)") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise RejectError(f"{FMT}: bad duration {value[:20]!r} (expected HH:MM:SS)")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def _number(value: str) -> str:
    """``Ext.610`` -> ``610``; a number as written otherwise."""
    value = value.strip()
    return value[4:] if value.startswith("Ext.") else value


def parse_row(row: list[str], ctx: Ctx, country_of: CountryOf,
              owner_of: Callable[[str], str | None] | None = None) -> CallDetailRecord:
    """One 3CX row (already split) -> record (see the module doc).

    Raises
    ------
    RejectError
        Wrong field count, bad timestamp or duration, end before start.
    """
    if len(row) not in (WIDTH - 1, WIDTH):
        raise RejectError(f"{FMT}: expected {WIDTH} fields, got {len(row)}")
    start = local_ts(row[3], "time-start", ctx, FMT)
    answer = local_ts(row[4], "time-answered", ctx, FMT)
    end = local_ts(row[5], "time-end", ctx, FMT)
    if start is None or end is None:
        raise RejectError(f"{FMT}: empty time-start or time-end")
    check_times(start, answer, end, FMT)
    talk = _hms(row[2])
    from_type, to_type, final_type = row[20].strip(), row[21].strip(), row[22].strip()
    caller_raw = _number(row[7])
    callee_raw = _number(row[8])
    if from_type == "External":
        callee_raw = _number(row[11]) or callee_raw  # the number dialled (DID) where 3CX gives it
    customer, _ = owner(ctx, owner_of, callee_raw, caller_raw)
    country = country_of(customer)
    inbound = from_type == "External"
    direction, caller, callee, did = classify(ctx, inbound, caller_raw, callee_raw, country)
    if not inbound and "External" not in (to_type, final_type):
        direction, did = Direction.INTERNAL, None
    elif not inbound and direction == Direction.INTERNAL:
        direction = Direction.OUTBOUND
    if direction == Direction.INBOUND and not callee.startswith("+"):
        did = None  # an extension, not the customer's public number
    answered = answer is not None and (talk > 0 or row[6].startswith("Terminated"))
    reason = row[6].strip()
    if answered:
        disposition = Disposition.ANSWERED
    elif "Busy" in reason:
        disposition = Disposition.BUSY
    elif reason in ("Failed_Cancelled", "Failed_NoAnswer", "Failed_NotAnswered") or reason.startswith("Terminated"):
        disposition = Disposition.NO_ANSWER
    else:
        disposition = Disposition.FAILED
    return build(
        FMT,
        call_id=row[1].strip() or row[0].strip(),
        leg_id=row[0].strip() or None,
        customer_id=customer,
        direction=direction,
        caller=caller,
        callee=callee,
        caller_raw=caller_raw,
        callee_raw=callee_raw,
        did=did,
        start=start,
        answer=answer if answered else None,
        end=end,
        duration_s=(end - start).total_seconds(),
        billsec_s=min(talk, (end - start).total_seconds() + 1) if answered else 0.0,
        disposition=disposition,
    )
