"""Record building: internal call tuples to :class:`~tollguard.cdr.CallDetailRecord` (fast, self-checked)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tollguard.cdr import CallDetailRecord

from .calls import _ANS, _OUT, _Call

_fromtimestamp = datetime.fromtimestamp


def _dt(ms: int) -> datetime:
    # exact for whole milliseconds (float error << 0.5 us for any date before year 2200)
    return _fromtimestamp(ms / 1000, UTC)


def _build(call_id: str, t: _Call) -> CallDetailRecord:
    return _make_record(_build_kw(call_id, t))


def _build_kw(call_id: str, t: _Call) -> dict[str, Any]:
    """All fields of the record, in the model's field order."""
    start_ms, answer_ms, end_ms = t[0], t[1], t[2]
    media = t[15]
    if answer_ms is not None:
        answer: datetime | None = _dt(answer_ms)
        billsec = (end_ms - answer_ms) / 1000
    else:
        answer = None
        billsec = 0.0
    if media is not None:
        in_b, out_b, in_p, out_p, lost, mos = media
        media_start = answer
    else:
        in_b = out_b = in_p = out_p = lost = mos = media_start = None
    return {
        "call_id": call_id,
        "customer_id": t[3],
        "direction": t[4],
        "caller": t[5],
        "callee": t[6],
        "caller_raw": t[7],
        "callee_raw": t[8],
        "did": t[9],
        "start": _dt(start_ms),
        "answer": answer,
        "end": _dt(end_ms),
        "duration_s": (end_ms - start_ms) / 1000,
        "billsec_s": billsec,
        "disposition": t[10],
        "hangup_cause": t[11],
        "source_ip": t[12],
        "user_agent": t[13],
        "codec": t[14],
        "rtp_in_bytes": in_b,
        "rtp_out_bytes": out_b,
        "rtp_in_packets": in_p,
        "rtp_out_packets": out_p,
        "rtp_lost_packets": lost,
        "media_start": media_start,
        "mos": mos,
        "leg_id": None,
        "legs": 1,
    }


# Records are consistent by construction, so the hot path skips pydantic validation (it would halve
# the generation speed): what ``model_construct`` does, without its per-field Python loop. A
# self-check at import compares it with the validating constructor and falls back to validation on
# any difference (e.g. a future pydantic that changes its model internals or a new model field).
_FIELDS = tuple(CallDetailRecord.model_fields)
_FIELDS_SET = set(_FIELDS)
_new_object = object.__new__
_set_attr = object.__setattr__


def _construct_trusted(values: dict[str, Any]) -> CallDetailRecord:
    rec = _new_object(CallDetailRecord)
    _set_attr(rec, "__dict__", values)
    _set_attr(rec, "__pydantic_fields_set__", _FIELDS_SET.copy())
    _set_attr(rec, "__pydantic_extra__", None)
    _set_attr(rec, "__pydantic_private__", None)
    return rec


def _construct_validated(values: dict[str, Any]) -> CallDetailRecord:
    return CallDetailRecord(**values)


def _trusted_construct_works() -> bool:
    t0 = 1_741_651_200_000
    sample: _Call = (
        t0,
        t0 + 4_000,
        t0 + 64_000,
        "cust-001",
        _OUT,
        "+390212345678",
        "+390612345678",
        "0212345678",
        "0612345678",
        "+390212345678",
        _ANS,
        16,
        "192.0.2.10",
        "Asterisk PBX 18.20.0",
        "PCMA",
        (516_000.0, 516_000.0, 3000.0, 3000.0, 0.0, 4.3),
        -1,
    )
    try:
        values = _build_kw("sim-check", sample)
        if tuple(values) != _FIELDS:
            return False
        slow = _construct_validated(dict(values))
        fast = _construct_trusted(values)
        return bool(
            fast == slow
            and fast.model_dump_json() == slow.model_dump_json()
            and fast.model_fields_set == slow.model_fields_set
            and CallDetailRecord.model_validate(fast.model_dump()) == fast
            and fast.model_copy(update={"did": None}) == slow.model_copy(update={"did": None})
        )
    except Exception:  # any failure means: keep validating
        return False


_make_record = _construct_trusted if _trusted_construct_works() else _construct_validated
