"""The canonical ``jsonl`` format: one :class:`CallDetailRecord` JSON object a line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tollguard.cdr import CallDetailRecord
from tollguard.errors import RejectError

from ._common import Ctx, validation_reason

FMT = "jsonl"
_TIME_KEYS = ("start", "answer", "end", "media_start")


def parse_obj(obj: Any, ctx: Ctx) -> CallDetailRecord:
    """A decoded canonical JSON object -> record; naive ISO times get ``settings.timezone``.

    Raises
    ------
    RejectError
        Not an object, or the model rejects it (unknown key, bad type, naive or
        unparsable time, end before start, negative duration...), in one line.
    """
    if not isinstance(obj, dict):
        raise RejectError(f"{FMT}: not a JSON object")
    zone = ctx.zone
    for key in _TIME_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                raise RejectError(f"{FMT}: bad timestamp {value[:40]!r} in column {key}") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=zone)
            obj[key] = dt if dt.tzinfo is UTC else dt.astimezone(UTC)
    try:
        return CallDetailRecord.model_validate(obj)
    except ValidationError as exc:
        raise RejectError(validation_reason(exc, FMT)) from None
