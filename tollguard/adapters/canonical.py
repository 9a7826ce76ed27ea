"""The canonical ``jsonl`` format: one :class:`CallDetailRecord` JSON object a line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tollguard.cdr import CallDetailRecord
from tollguard.errors import RejectError

from ._common import CountryOf, Ctx, naive_to_utc, normalize_cached, short_cached, validation_reason

FMT = "jsonl"
_TIME_KEYS = ("start", "answer", "end", "media_start")


def _normalize_numbers(obj: dict[str, Any], ctx: Ctx, country_of: CountryOf) -> None:
    """Normalise ``caller``, ``callee`` and ``did`` in place exactly as the switch adapters do.

    Each is made E.164 for the customer's country (``country_of(customer_id)``) and the
    ingest ``access_codes`` where it normalises (``00390612345678``, ``390612345678``
    and, in IT, ``0612345678`` all become ``+390612345678``); the callee of a call that
    is not inbound that dials a short number of the country becomes its digits
    (``"9 112"`` -> ``"112"`` with access code 9). A caller / callee changed this way
    keeps the value as written in ``caller_raw`` / ``callee_raw`` unless the line gives
    one; values already canonical, extensions and garbage are left as they are, and
    anything that is not a string is left to the model to reject.
    """
    customer_id = obj.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        return
    country = country_of(customer_id)
    access = ctx.settings.access_codes
    for key in ("caller", "callee"):
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            continue
        new = normalize_cached(value, country, access)
        if new is None and key == "callee" and obj.get("direction") != "inbound":
            new = short_cached(value, country, access)
        if new is not None and new != value:
            obj[key] = new
            if obj.get(f"{key}_raw") is None:
                obj[f"{key}_raw"] = value
    did = obj.get("did")
    if isinstance(did, str) and did:
        new = normalize_cached(did, country, access)
        if new is not None:
            obj["did"] = new


def parse_obj(obj: Any, ctx: Ctx, country_of: CountryOf | None = None) -> CallDetailRecord:
    """A decoded canonical JSON object -> record; naive ISO times get ``settings.timezone``.

    ``caller``, ``callee`` and ``did`` are normalised like the switch formats' numbers
    (E.164 for the customer's country, see :func:`_normalize_numbers`), so one DID
    written ``00390612345678`` in one line and ``+390612345678`` in another is one DID.

    Parameters
    ----------
    obj : Any
        The decoded JSON value of one line.
    ctx : Ctx
        Cached settings state (zone of naive times, access codes).
    country_of : callable, optional
        customer_id -> ISO region used to normalise its numbers (default:
        ``settings.default_country``).

    Raises
    ------
    RejectError
        Not an object, or the model rejects it (unknown key, bad type, naive or
        unparsable time, end before start, negative duration...), in one line.
    """
    if not isinstance(obj, dict):
        raise RejectError(f"{FMT}: not a JSON object")
    for key in _TIME_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                raise RejectError(f"{FMT}: bad timestamp {value[:40]!r} in column {key}") from None
            obj[key] = naive_to_utc(dt, ctx) if dt.tzinfo is None else dt.astimezone(UTC)
    _normalize_numbers(obj, ctx, country_of or ctx.default_country_of)
    try:
        return CallDetailRecord.model_validate(obj)
    except ValidationError as exc:
        raise RejectError(validation_reason(exc, FMT)) from None
