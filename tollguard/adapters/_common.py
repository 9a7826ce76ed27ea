"""Helpers shared by the format adapters: timestamps, numbers, direction, causes.

Everything here is on the per-line hot path of replay, so per-settings state
(time zone, compiled context globs) is built once and cached, and number
normalisation is memoised.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.errors import RejectError

from .settings import IngestSettings

CountryOf = Callable[[str], str]
#: How to describe a layout no format reads (appended to "unknown layout" rejects).
MAPPING_HINT = (
    "; if it is another switch's or a billing export, describe its columns in the rules' ingest.mappings "
    "(name, columns, fields, time_format, timezone; see `tollguard rules template`) and replay with --rules"
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SLASH_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")


# --------------------------------------------------------------------------- settings state
@dataclass(slots=True)
class Ctx:
    """Per-settings state built once: the zone and the compiled context globs."""

    settings: IngestSettings
    zone: tzinfo
    ast_inbound: re.Pattern[str] | None
    ast_outbound: re.Pattern[str] | None
    fs_inbound: re.Pattern[str] | None
    extensions: re.Pattern[str] | None
    #: timestamps read without a zone (given ``zone``), counted so a run can say it assumed one
    naive_times: int = 0
    # context -> inbound? ; contexts are few, so the cache stays small (bounded anyway)
    ast_cache: dict[str, bool] = field(default_factory=dict)
    fs_cache: dict[str, bool] = field(default_factory=dict)

    def default_country_of(self, customer_id: str) -> str:
        """The default ``country_of``: every customer is in ``settings.default_country``."""
        return self.settings.default_country


def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE)


_CTX: dict[int, Ctx] = {}


def ctx_for(settings: IngestSettings) -> Ctx:
    """The cached :class:`Ctx` of ``settings`` (keyed by identity; the entry keeps it alive)."""
    ctx = _CTX.get(id(settings))
    if ctx is not None and ctx.settings is settings:
        return ctx
    zone: tzinfo = UTC if settings.timezone in ("UTC", "Etc/UTC", "Z") else ZoneInfo(settings.timezone)
    ctx = Ctx(
        settings=settings,
        zone=zone,
        ast_inbound=_globs(settings.asterisk_inbound_contexts),
        ast_outbound=_globs(settings.asterisk_outbound_contexts),
        fs_inbound=_globs(settings.freeswitch_inbound_contexts),
        extensions=_globs(settings.extensions),
    )
    if len(_CTX) > 256:  # many throw-away settings objects (tests): start over
        _CTX.clear()
    _CTX[id(settings)] = ctx
    return ctx


def asterisk_inbound(ctx: Ctx, context: str) -> bool:
    """True when an Asterisk dcontext is a public-network entry point (outbound globs win)."""
    hit = ctx.ast_cache.get(context)
    if hit is None:
        if ctx.ast_outbound is not None and ctx.ast_outbound.match(context):
            hit = False
        else:
            hit = bool(ctx.ast_inbound is not None and ctx.ast_inbound.match(context))
        if len(ctx.ast_cache) < 4096:
            ctx.ast_cache[context] = hit
    return hit


def freeswitch_inbound(ctx: Ctx, context: str) -> bool:
    """True when a FreeSWITCH dialplan context is a public-network entry point."""
    hit = ctx.fs_cache.get(context)
    if hit is None:
        hit = bool(ctx.fs_inbound is not None and ctx.fs_inbound.match(context))
        if len(ctx.fs_cache) < 4096:
            ctx.fs_cache[context] = hit
    return hit


# --------------------------------------------------------------------------- timestamps
def local_ts(value: str, column: str, zone: tzinfo | Ctx, fmt: str) -> datetime | None:
    """Parse a switch timestamp; naive values are in ``zone``. Empty -> None.

    Accepts ISO 8601 ("YYYY-MM-DD HH:MM:SS[.ffffff][+hh:mm]") and, leniently,
    the spreadsheet re-save "YYYY/M/D HH:MM[:SS]". Given a :class:`Ctx` instead of a
    zone, its ``zone`` applies and a naive value is counted in its ``naive_times``
    (so a run can say that it read zone-less times in an assumed zone).

    Raises
    ------
    RejectError
        "bad timestamp 'xyz' in column end".
    """
    if not value:
        return None
    dt: datetime | None = None
    if len(value) >= 16 and value[4] == "-":
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            dt = None
    elif len(value) >= 12 and value[4:5] == "/":
        for pattern in _SLASH_FORMATS:
            try:
                dt = datetime.strptime(value, pattern)  # naive: the zone is attached below
                break
            except ValueError:
                continue
    if dt is None:
        raise RejectError(f"{fmt}: bad timestamp {value[:40]!r} in column {column}")
    if dt.tzinfo is None:
        return naive_to_utc(dt, zone)
    return dt.astimezone(UTC)


def naive_to_utc(dt: datetime, zone: tzinfo | Ctx) -> datetime:
    """A naive local time in ``zone`` (a Ctx: its zone, counted in ``naive_times``) -> UTC."""
    if isinstance(zone, Ctx):
        zone.naive_times += 1
        zone = zone.zone
    if zone is UTC:
        return dt.replace(tzinfo=UTC)
    return dt.replace(tzinfo=zone).astimezone(UTC)


def epoch_us(value: str, column: str, fmt: str) -> datetime | None:
    """Microseconds since the Unix epoch (UTC) -> datetime; "0" or empty -> None (exact, no float)."""
    if not value or value == "0":
        return None
    try:
        us = int(value)
    except ValueError:
        raise RejectError(f"{fmt}: bad timestamp {value[:40]!r} in column {column}") from None
    if us <= 0 or us > 32503680000000000:  # year 3000
        raise RejectError(f"{fmt}: bad timestamp {value[:40]!r} in column {column}")
    return EPOCH + timedelta(microseconds=us)


def to_epoch_us(dt: datetime) -> int:
    """Exact microseconds since the Unix epoch of an aware datetime."""
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


# --------------------------------------------------------------------------- numbers
def number(value: Any, column: str, fmt: str) -> float:
    """A non-negative finite number (seconds, bytes, packets).

    Raises
    ------
    RejectError
        "non-numeric billsec 'abc'" / "negative duration '-5'".
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RejectError(f"{fmt}: non-numeric {column} {str(value)[:40]!r}") from None
    if not math.isfinite(x):
        raise RejectError(f"{fmt}: non-numeric {column} {str(value)[:40]!r}")
    if x < 0:
        raise RejectError(f"{fmt}: negative {column} {str(value)[:40]!r}")
    return x


def opt_number(value: Any, column: str, fmt: str) -> float | None:
    """Like :func:`number`, but None / "" -> None."""
    if value is None or value == "":
        return None
    return number(value, column, fmt)


def row_hash(parts: list[str] | tuple[str, ...], prefix: str) -> str:
    """A deterministic id for a row without one (same row -> same id, so re-deliveries dedupe)."""
    return prefix + blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


@lru_cache(maxsize=1 << 16)
def normalize_cached(raw: str, country: str, access_codes: tuple[str, ...]) -> str | None:
    """Memoised :func:`tollguard.numbers.normalize` (E.164 or None); imported on first use."""
    from tollguard.numbers import normalize  # lazy: keeps the adapters importable on their own

    try:
        return normalize(raw, country, access_codes)
    except ValueError:
        return None


@lru_cache(maxsize=1 << 16)
def short_cached(raw: str, country: str, access_codes: tuple[str, ...]) -> str | None:
    """Memoised :func:`tollguard.numbers.short_number`: the emergency number or valid short code
    of ``country`` that ``raw`` dials (access code removed), else None."""
    from tollguard.numbers import short_number  # lazy, like normalize_cached

    try:
        return short_number(raw, country, access_codes)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _is_emergency(short: str, country: str) -> bool:
    from tollguard.numbers import classify as classify_number

    return classify_number(short, country).is_emergency


def external_short(ctx: Ctx, callee_raw: str, country: str) -> str | None:
    """The short number of ``country`` a callee dials when that makes the call external, else None.

    An emergency number always does; another valid short code unless it matches the
    ``extensions`` globs of the settings (an extension plan that overlaps short codes).
    With ``access_codes`` configured the globs do not matter: a non-emergency short
    code is only recognised after the access code, which proves an external call.
    """
    access = ctx.settings.access_codes
    short = short_cached(callee_raw, country, access) if callee_raw else None
    if short is None or ctx.extensions is None or access or not ctx.extensions.match(short):
        return short
    return short if _is_emergency(short, country) else None


def _digit_count(value: str) -> int:
    return sum(1 for c in value if c.isdigit())


def classify(
    ctx: Ctx, inbound: bool, caller_raw: str, callee_raw: str, country: str
) -> tuple[Direction, str, str, str | None]:
    """Direction, caller, callee and DID of a row (DESIGN §3).

    ``caller`` / ``callee`` are E.164 where they normalise for ``country``, else
    the raw value. A call that is not inbound is outbound when its callee is
    external: it normalises, it is longer than ``extension_max_digits`` digits, or
    it is a short number of ``country`` (an emergency number or a valid short code
    in libphonenumber's short-number data, e.g. 112, 113, 118 and 1200 in IT, 999 and
    111 in GB; with ``access_codes`` configured, a non-emergency short code only
    after the access code; one matching ``extensions`` is an extension, see
    :func:`external_short`). A short number's callee is its digits as dialled in
    ``country`` (``"112"``, access code removed), so the detectors type it as the
    switch meant it. Any other call is internal.

    The DID is the callee of an inbound call (E.164 or as delivered), the caller
    (presented CLI) of an outbound call when it is a public number (normalises, or
    is longer than ``extension_max_digits`` digits; an extension is not a CLI:
    None), and None for an internal call.
    """
    settings = ctx.settings
    access = settings.access_codes
    max_ext = settings.extension_max_digits
    caller_e164 = normalize_cached(caller_raw, country, access) if caller_raw else None
    callee_e164 = normalize_cached(callee_raw, country, access) if callee_raw else None
    caller = caller_e164 or caller_raw
    callee = callee_e164 or callee_raw
    if inbound:
        return Direction.INBOUND, caller, callee, callee or None
    short = external_short(ctx, callee_raw, country) if callee_e164 is None else None
    if callee_e164 is not None or short is not None or _digit_count(callee_raw) > max_ext:
        public_cli = caller_e164 is not None or _digit_count(caller_raw) > max_ext
        return Direction.OUTBOUND, caller, short or callee, caller if public_cli else None
    return Direction.INTERNAL, caller, callee, None


# --------------------------------------------------------------------------- causes
#: FreeSWITCH switch_call_cause_t names; values 0..127 are the Q.850 cause values.
FS_CAUSES: dict[str, int] = {
    "NONE": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6,
    "CALL_AWARDED_DELIVERED": 7,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "REDIRECTION_TO_NEW_DESTINATION": 23,
    "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "PRE_EMPTED": 45,
    "FACILITY_NOT_SUBSCRIBED": 50,
    "OUTGOING_CALL_BARRED": 52,
    "INCOMING_CALL_BARRED": 54,
    "BEARERCAPABILITY_NOTAUTH": 57,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "SERVICE_UNAVAILABLE": 63,
    "BEARERCAPABILITY_NOTIMPL": 65,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "SERVICE_NOT_IMPLEMENTED": 79,
    "INVALID_CALL_REFERENCE": 81,
    "INCOMPATIBLE_DESTINATION": 88,
    "INVALID_MSG_UNSPECIFIED": 95,
    "MANDATORY_IE_MISSING": 96,
    "MESSAGE_TYPE_NONEXIST": 97,
    "WRONG_MESSAGE": 98,
    "IE_NONEXIST": 99,
    "INVALID_IE_CONTENTS": 100,
    "WRONG_CALL_STATE": 101,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "MANDATORY_IE_LENGTH_ERROR": 103,
    "PROTOCOL_ERROR": 111,
    "INTERWORKING": 127,
    # FreeSWITCH-only causes (> 127): switch_channel_cause_q850() reports them as 16.
    "SUCCESS": 142,
    "ORIGINATOR_CANCEL": 487,
    "CRASH": 500,
    "SYSTEM_SHUTDOWN": 501,
    "LOSE_RACE": 502,
    "MANAGER_REQUEST": 503,
    "BLIND_TRANSFER": 600,
    "ATTENDED_TRANSFER": 601,
    "ALLOTTED_TIMEOUT": 602,
    "USER_CHALLENGE": 603,
    "MEDIA_TIMEOUT": 604,
    "PICKED_OFF": 605,
    "USER_NOT_REGISTERED": 606,
    "PROGRESS_TIMEOUT": 607,
    "INVALID_GATEWAY": 608,
    "GATEWAY_DOWN": 609,
    "INVALID_URL": 610,
    "INVALID_PROFILE": 611,
    "NO_PICKUP": 612,
    "SRTP_READ_ERROR": 613,
    "BOWOUT": 614,
    "BUSY_EVERYWHERE": 615,
    "DECLINE": 616,
    "DOES_NOT_EXIST_ANYWHERE": 617,
    "NOT_ACCEPTABLE": 618,
    "UNWANTED": 619,
    "NO_IDENTITY": 620,
    "BAD_IDENTITY_INFO": 621,
    "UNSUPPORTED_CERTIFICATE": 622,
    "INVALID_IDENTITY": 623,
    "STALE_DATE": 624,
    "REJECT_ALL": 625,
}
#: Q.850 value -> FreeSWITCH name (standard values only).
Q850_NAMES: dict[int, str] = {code: name for name, code in FS_CAUSES.items() if code <= 127}

CONGESTION_CAUSES = frozenset({34, 38, 41, 42, 44, 47})
_NO_ANSWER_NAMES = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL", "NO_PICKUP"})
_BUSY_NAMES = frozenset({"USER_BUSY", "BUSY_EVERYWHERE"})


def q850_of(code: int) -> int:
    """FreeSWITCH's switch_channel_cause_q850(): values above 127 are reported as 16."""
    return code if 0 <= code <= 127 else 16


def fs_cause(value: str, column: str, fmt: str) -> tuple[str | None, int | None]:
    """(name, Q.850 value) of a FreeSWITCH hangup cause given by name or number; "" -> (None, None).

    Raises
    ------
    RejectError
        On a cause that is neither a known name nor a number.
    """
    if not value:
        return None, None
    name = value.strip().upper()
    code = FS_CAUSES.get(name)
    if code is not None:
        return name, q850_of(code)
    if name.isdigit():
        code = int(name)
        return Q850_NAMES.get(code), q850_of(code)
    raise RejectError(f"{fmt}: unknown hangup cause {value[:40]!r} in column {column}")


def fs_disposition(name: str | None, q850: int | None, answered: bool, billsec: float) -> Disposition:
    """Map a FreeSWITCH outcome onto the Asterisk-style disposition.

    Answered (answer time present and billsec > 0; or NORMAL_CLEARING / no cause
    at all, as sub-second talk time rounds billsec to 0) -> ANSWERED; USER_BUSY ->
    BUSY; NO_ANSWER, NO_USER_RESPONSE, ORIGINATOR_CANCEL, NO_PICKUP and an
    unanswered NORMAL_CLEARING -> NO ANSWER; congestion causes 34, 38, 41, 42, 44,
    47 -> CONGESTION; anything else -> FAILED.
    """
    if name is None and q850 is not None:
        name = Q850_NAMES.get(q850)
    if answered and (billsec > 0 or name is None or name == "NORMAL_CLEARING"):
        return Disposition.ANSWERED
    if name in _BUSY_NAMES:
        return Disposition.BUSY
    if name in _NO_ANSWER_NAMES or name == "NORMAL_CLEARING":
        return Disposition.NO_ANSWER
    if (FS_CAUSES.get(name) if name is not None else q850) in CONGESTION_CAUSES:
        return Disposition.CONGESTION
    return Disposition.FAILED


# --------------------------------------------------------------------------- record building
def check_times(start: datetime, answer: datetime | None, end: datetime, fmt: str) -> None:
    """Reject ``end`` before ``start`` and ``answer`` outside [start, end] with a clear reason."""
    if end < start:
        raise RejectError(f"{fmt}: end before start (start {start.isoformat()}, end {end.isoformat()})")
    if answer is not None and not (start <= answer <= end):
        raise RejectError(f"{fmt}: answer {answer.isoformat()} outside [start, end]")


def validation_reason(exc: ValidationError, fmt: str) -> str:
    """One line out of a pydantic ValidationError: the first error and how many more."""
    errors = exc.errors(include_url=False)
    if not errors:
        return f"{fmt}: invalid record"
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid")).replace("\n", " ")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{fmt}: invalid record: {loc + ': ' if loc else ''}{msg}{more}"


def build(fmt: str, **fields: Any) -> CallDetailRecord:
    """Construct the record once; pydantic errors become a one-line RejectError."""
    try:
        return CallDetailRecord(**fields)
    except ValidationError as exc:
        raise RejectError(validation_reason(exc, fmt)) from None


# --------------------------------------------------------------------------- ownership
OwnerOf = Callable[[str], "str | None"]


def owner(
    ctx: Ctx, owner_of: OwnerOf | None, callee_raw: str, caller_raw: str, customer: str = "",
    country_of: CountryOf | None = None,
) -> tuple[str, bool]:
    """(customer, callee is its DID) for a switch that gives no account code (Kamailio, 3CX, CUCM, mappings).

    ``owner_of`` maps an E.164 DID to the customer the rules list it under. The callee is tried
    first (a listed DID called: inbound), then the caller (a listed DID presented as CLI). Numbers
    are normalised for ``customer``'s country when it is known, else ``ingest.default_country``.
    With ``customer`` given, only its own DIDs count. No match: (``customer`` or
    ``ingest.default_customer_id``, False).
    """
    settings = ctx.settings
    if owner_of is not None:
        country = country_of(customer) if customer and country_of is not None else settings.default_country
        for raw, is_did in ((callee_raw, True), (caller_raw, False)):
            e164 = normalize_cached(raw, country, settings.access_codes) if raw else None
            found = owner_of(e164) if e164 else None
            if found and (not customer or found == customer):
                return found, is_did
    return customer or settings.default_customer_id, False
