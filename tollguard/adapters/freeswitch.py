"""FreeSWITCH CDRs -> :class:`CallDetailRecord`: mod_cdr_csv rows and mod_json_cdr documents."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from tollguard.cdr import CallDetailRecord
from tollguard.errors import RejectError

from ._common import (
    EPOCH,
    CountryOf,
    Ctx,
    build,
    check_times,
    classify,
    epoch_us,
    freeswitch_inbound,
    fs_cause,
    fs_disposition,
    local_ts,
    number,
    opt_number,
    row_hash,
)

CSV_FMT = "freeswitch-csv"
JSON_FMT = "freeswitch-json"
#: mod_cdr_csv "example"/default template (15 columns); "sql" has the first 13, "linksys" 17, "snom" 20.
CSV_COLUMNS = (
    "caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp", "answer_stamp",
    "end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid", "accountcode", "read_codec",
    "write_codec",
)  # fmt: skip
CSV_WIDTHS = (13, 15, 17, 20)
SQL_PREFIX = "INSERT INTO"


def sql_row(text: str) -> list[str]:
    """The values of an ``INSERT INTO … VALUES (…);`` line: the "sql" template's 13 (double-quoted), or
    mod_cdr_sqlite's default table's 14 (single-quoted; ``hangup_cause_q850`` after ``hangup_cause``,
    dropped: the cause name gives it).

    Raises
    ------
    RejectError
        Not a CSV list of values.
    """
    body = sql_values(text.strip())
    quote = "'" if body.lstrip()[:1] == "'" else '"'
    try:
        row = next(csv.reader((body,), quotechar=quote, skipinitialspace=True))
    except (csv.Error, StopIteration) as exc:
        raise RejectError(f"{CSV_FMT}: bad SQL values: {exc}") from None
    if len(row) == 14 and row[10].strip().isdigit():
        del row[10]
        row = [*row, "", ""]  # read_codec, write_codec: mod_cdr_sqlite's default table has none
    return row


def sql_values(text: str) -> str:
    """The CSV inside the "sql" template's ``INSERT INTO cdr VALUES (...);`` line."""
    body = text[text.index("(") + 1 :] if "(" in text else text
    body = body.rstrip().rstrip(";").rstrip()
    return body[:-1] if body.endswith(")") else body


def parse_csv_row(row: list[str], ctx: Ctx, country_of: CountryOf) -> CallDetailRecord:
    """One mod_cdr_csv row (already split) -> record.

    Parameters
    ----------
    row : list of str
        15 fields of the "example" template (13 of "sql", 17 of "linksys", 20 of
        "snom"; the extra ``sip_user_agent`` of the last two is kept).
    ctx, country_of
        Cached settings state; customer_id -> ISO region.

    Returns
    -------
    CallDetailRecord
        UTC times (``*_stamp`` are local time of ``settings.timezone``), seconds,
        Q.850 ``hangup_cause``, ``codec`` = read_codec, ``call_id`` = uuid.

    Raises
    ------
    RejectError
        Wrong column count, bad timestamp, end before start, negative or
        non-numeric duration/billsec, unknown hangup cause.
    """
    n = len(row)
    if n not in CSV_WIDTHS:
        raise RejectError(
            f"{CSV_FMT}: expected 15 columns (example template; 13 sql, 17 linksys, 20 snom), got {n}"
        )
    start = local_ts(row[4], "start_stamp", ctx, CSV_FMT)
    answer = local_ts(row[5], "answer_stamp", ctx, CSV_FMT)
    end = local_ts(row[6], "end_stamp", ctx, CSV_FMT)
    if start is None:
        raise RejectError(f"{CSV_FMT}: empty start timestamp (column start_stamp)")
    if end is None:
        raise RejectError(f"{CSV_FMT}: empty end timestamp (column end_stamp)")
    duration = number(row[7], "duration", CSV_FMT)
    billsec = number(row[8], "billsec", CSV_FMT)
    name, cause = fs_cause(row[9], "hangup_cause", CSV_FMT)
    check_times(start, answer, end, CSV_FMT)
    caller_raw, callee_raw, context = row[1], row[2], row[3]
    customer_id = row[12] or ctx.settings.default_customer_id
    direction, caller, callee, did = classify(
        ctx, freeswitch_inbound(ctx, context), caller_raw, callee_raw, country_of(customer_id)
    )
    return build(
        CSV_FMT,
        call_id=row[10] or row_hash(row, "fs-"),
        customer_id=customer_id,
        direction=direction,
        caller=caller,
        callee=callee,
        caller_raw=caller_raw,
        callee_raw=callee_raw,
        did=did,
        start=start,
        answer=answer,
        end=end,
        duration_s=duration,
        billsec_s=billsec,
        disposition=fs_disposition(name, cause, answer is not None, billsec),
        hangup_cause=cause,
        codec=(row[13] or None) if n >= 15 else None,
        user_agent=(row[15] or None) if n in (17, 20) else None,
    )


# --------------------------------------------------------------------------- mod_json_cdr
def _s(value: Any) -> str | None:
    """A JSON value as text, URL-decoded when it carries %XX escapes (encode-values=true)."""
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, bool) or isinstance(value, dict | list):
            return None
        value = str(value)
    if not value:
        return None
    text: str = value
    return unquote(text) if "%" in text else text


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _us_time(value: Any) -> datetime | None:
    """callflow ``times`` entry (µs since epoch) -> datetime; 0 / bad -> None (never rejects)."""
    text = _s(value)
    if not text or not text.isdigit():
        return None
    us = int(text)
    if us <= 0 or us > 32503680000000000:
        return None
    return EPOCH + timedelta(microseconds=us)


class _Variables:
    """The ``variables`` of a mod_json_cdr document as text, with the ``callStats`` fallbacks of the media."""

    __slots__ = ("stats", "var")

    def __init__(self, var: dict[str, Any], doc: dict[str, Any]) -> None:
        self.var = var
        audio = _obj(_obj(doc.get("callStats")).get("audio"))
        self.stats = {"inbound": _obj(audio.get("inbound")), "outbound": _obj(audio.get("outbound"))}

    def get(self, key: str) -> str | None:
        return _s(self.var.get(key))

    def media(self, var_key: str, side: str, stats_key: str) -> float | None:
        """A media counter: the variable, else ``callStats.audio.<side>.<stats_key>``."""
        text = self.get(var_key)
        if text is None:
            text = _s(self.stats[side].get(stats_key))
        return opt_number(text, var_key, JSON_FMT)


def _callflows(flows_raw: Any) -> list[dict[str, Any]]:
    if isinstance(flows_raw, list):
        return [f for f in flows_raw if isinstance(f, dict)]
    if isinstance(flows_raw, dict):
        return [flows_raw]
    return []


def _earliest(flows: list[dict[str, Any]], key: str) -> datetime | None:
    """The earliest callflow ``times`` entry ``key`` set (> 0), or None."""
    earliest = None
    for flow in flows:
        t = _us_time(_obj(flow.get("times")).get(key))
        if t is not None and (earliest is None or t < earliest):
            earliest = t
    return earliest


def _json_times(v: Callable[[str], str | None], zone: Ctx) -> tuple[datetime, datetime | None, datetime]:
    """(start, answer, end): ``*_uepoch`` (µs since epoch, UTC; "0" = none), else the local ``*_stamp``."""
    start = epoch_us(v("start_uepoch") or "", "start_uepoch", JSON_FMT) or local_ts(
        v("start_stamp") or "", "start_stamp", zone, JSON_FMT
    )
    end = epoch_us(v("end_uepoch") or "", "end_uepoch", JSON_FMT) or local_ts(
        v("end_stamp") or "", "end_stamp", zone, JSON_FMT
    )
    answer_us = v("answer_uepoch")
    if answer_us:
        answer = epoch_us(answer_us, "answer_uepoch", JSON_FMT)
    else:
        answer = local_ts(v("answer_stamp") or "", "answer_stamp", zone, JSON_FMT)
    if start is None:
        raise RejectError(f"{JSON_FMT}: no start time (variables start_uepoch / start_stamp)")
    if end is None:
        raise RejectError(f"{JSON_FMT}: no end time (variables end_uepoch / end_stamp)")
    return start, answer, end


def _json_durations(v: Callable[[str], str | None]) -> tuple[float, float]:
    """(duration, billsec) in seconds: ``mduration`` / ``billmsec`` (ms), else ``duration`` / ``billsec``."""
    mduration = v("mduration")
    duration = (
        number(mduration, "mduration", JSON_FMT) / 1000
        if mduration
        else number(v("duration") or "", "duration", JSON_FMT)
    )
    billmsec = v("billmsec")
    billsec = (
        number(billmsec, "billmsec", JSON_FMT) / 1000
        if billmsec
        else number(v("billsec") or "0", "billsec", JSON_FMT)
    )
    return duration, billsec


def _json_cause(v: Callable[[str], str | None]) -> tuple[str | None, int | None]:
    """(hangup cause name, Q.850 code): ``hangup_cause_q850`` when given overrides the name's code."""
    q850_text = v("hangup_cause_q850")
    name, cause = fs_cause(v("hangup_cause") or "", "hangup_cause", JSON_FMT)
    if q850_text:
        _, cause = fs_cause(q850_text, "hangup_cause_q850", JSON_FMT)
    return name, cause


def parse_json_doc(doc: Any, ctx: Ctx, country_of: CountryOf) -> CallDetailRecord:
    """One mod_json_cdr document (already decoded from JSON) -> record.

    Values may be URL-encoded (``encode-values=true``, the default) or not.
    Times come from ``*_uepoch`` (µs since epoch, UTC; "0" = none), else the local
    ``*_stamp``; durations from ``mduration``/``billmsec`` (ms) else
    ``duration``/``billsec`` (s). Media: ``rtp_audio_{in,out}_raw_bytes`` /
    ``_packet_count``, lost = ``rtp_audio_in_skip_packet_count``, ``mos`` =
    ``rtp_audio_in_mos`` (each else ``callStats.audio.{inbound,outbound}``);
    ``media_start`` = callflow ``progress_media_time`` if > 0 else ``answered_time``.
    A ``mos`` outside 1..5 (FreeSWITCH reports 0 without media) is dropped.

    Raises
    ------
    RejectError
        Not an object / no ``variables``, bad or missing times, end before start,
        negative or non-numeric durations or counters, unknown hangup cause.
    """
    if not isinstance(doc, dict):
        raise RejectError(f"{JSON_FMT}: not a JSON object")
    var = doc.get("variables")
    if not isinstance(var, dict):
        raise RejectError(f"{JSON_FMT}: no 'variables' object (not a mod_json_cdr document)")
    flows = _callflows(doc.get("callflow"))
    # FreeSWITCH lists callflows newest first: the oldest holds the original dial (context, DID).
    profile = _obj(flows[-1].get("caller_profile")) if flows else {}
    fields = _Variables(var, doc)
    v = fields.get
    start, answer, end = _json_times(v, ctx)
    duration, billsec = _json_durations(v)
    name, cause = _json_cause(v)
    check_times(start, answer, end, JSON_FMT)
    media = fields.media
    mos = media("rtp_audio_in_mos", "inbound", "mos")
    if mos is not None and not 1 <= mos <= 5:
        mos = None
    media_start = _earliest(flows, "progress_media_time")
    if media_start is None:
        media_start = _earliest(flows, "answered_time")

    caller_raw = _s(profile.get("caller_id_number")) or v("sip_from_user") or v("caller_id_number") or ""
    callee_raw = _s(profile.get("destination_number")) or v("sip_req_user") or v("destination_number") or ""
    context = _s(profile.get("context")) or v("context") or ""
    fs_direction = v("direction") or _s(_obj(doc.get("channel_data")).get("direction")) or ""
    # an FS-originated (outbound) leg is never the customer's inbound leg
    inbound = fs_direction != "outbound" and freeswitch_inbound(ctx, context)
    customer_id = v("accountcode") or ctx.settings.default_customer_id
    direction, caller, callee, did = classify(ctx, inbound, caller_raw, callee_raw, country_of(customer_id))
    call_id = v("uuid") or _s(profile.get("uuid")) or _s(doc.get("uuid"))
    if not call_id:
        call_id = row_hash([str(start), str(end), caller_raw, callee_raw, customer_id], "fs-")
    return build(
        JSON_FMT,
        call_id=call_id,
        customer_id=customer_id,
        direction=direction,
        caller=caller,
        callee=callee,
        caller_raw=caller_raw,
        callee_raw=callee_raw,
        did=did,
        start=start,
        answer=answer,
        end=end,
        duration_s=duration,
        billsec_s=billsec,
        disposition=fs_disposition(name, cause, answer is not None, billsec),
        hangup_cause=cause,
        source_ip=v("sip_network_ip"),
        user_agent=v("sip_user_agent"),
        codec=v("read_codec"),
        rtp_in_bytes=media("rtp_audio_in_raw_bytes", "inbound", "raw_bytes"),
        rtp_out_bytes=media("rtp_audio_out_raw_bytes", "outbound", "raw_bytes"),
        rtp_in_packets=media("rtp_audio_in_packet_count", "inbound", "packet_count"),
        rtp_out_packets=media("rtp_audio_out_packet_count", "outbound", "packet_count"),
        rtp_lost_packets=media("rtp_audio_in_skip_packet_count", "inbound", "skip_packet_count"),
        mos=mos,
        media_start=media_start,
    )
