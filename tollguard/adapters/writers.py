"""Write a :class:`CallDetailRecord` in any adapter format (the traffic simulator, round-trip tests).

Each writer is the inverse of its parser for the fields the format can carry:
``parse_line(fmt, write_record(fmt, r))`` gives back ``r``'s call fields when the
record is consistent with the direction rules (inbound calls land in an inbound
context, the DID is the callee of an inbound call / the caller of an outbound one).
CSV formats carry whole seconds; Asterisk cdr_csv has no hangup cause, codec or
media counters; freeswitch-csv has no media counters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from tollguard.cdr import CallDetailRecord, Direction, Disposition

from ._common import FS_CAUSES, Q850_NAMES, fs_disposition, to_epoch_us

try:
    import orjson

    def _dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()
except ImportError:  # pragma: no cover

    def _dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


#: Formats :func:`write_record` can write.
WRITE_FORMATS = ("asterisk-csv", "freeswitch-csv", "freeswitch-json", "jsonl")
#: Cause written for a record without one, per disposition.
_DEFAULT_CAUSE = {
    Disposition.ANSWERED: "NORMAL_CLEARING",
    Disposition.NO_ANSWER: "NO_ANSWER",
    Disposition.BUSY: "USER_BUSY",
    Disposition.FAILED: "CALL_REJECTED",  # not 41: that is a congestion-class cause
    Disposition.CONGESTION: "NORMAL_CIRCUIT_CONGESTION",
}


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return UTC if name in ("UTC", "Etc/UTC") else ZoneInfo(name)


def _stamp(dt: datetime | None, zone: tzinfo) -> str:
    """Naive local "YYYY-MM-DD HH:MM:SS" as the switches write it ("" for None)."""
    if dt is None:
        return ""
    return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _q(value: Any) -> str:
    """An Asterisk/FreeSWITCH-style quoted CSV field."""
    text = "" if value is None else str(value)
    return '"' + text.replace('"', '""') + '"'


def _int(x: float) -> str:
    return str(round(x))


def _cause_name(record: CallDetailRecord) -> str:
    """A FreeSWITCH cause name that maps back to the record's disposition."""
    answered = record.answer is not None
    if record.hangup_cause is not None:
        name = Q850_NAMES.get(record.hangup_cause)
        if (
            name is not None
            and fs_disposition(name, record.hangup_cause, answered, record.billsec_s) is record.disposition
        ):
            return name
    return _DEFAULT_CAUSE[record.disposition]


def _context(record: CallDetailRecord, inbound: str, other: str) -> str:
    return inbound if record.direction is Direction.INBOUND else other


def _asterisk(record: CallDetailRecord, zone: tzinfo) -> str:
    src = record.caller_raw if record.caller_raw is not None else record.caller
    dst = record.callee_raw if record.callee_raw is not None else record.callee
    inbound = record.direction is Direction.INBOUND
    leg = record.leg_id or record.call_id
    quoted = [
        record.customer_id,
        src,
        dst,
        "from-pstn" if inbound else "from-internal",
        f'"{src}" <{src}>',
        f"PJSIP/{'trunk' if inbound else src or 'ext'}-{leg[-8:]}",
        "",
        "Dial",
        "",
        _stamp(record.start, zone),
        _stamp(record.answer, zone),
        _stamp(record.end, zone),
    ]
    tail = [record.disposition.value, "DOCUMENTATION", leg, "", "", record.call_id]
    return (
        ",".join(map(_q, quoted))
        + f",{_int(record.duration_s)},{_int(record.billsec_s)},"
        + ",".join(map(_q, tail))
        + f",{max(record.legs - 1, 0)}"
    )


def _fs_csv(record: CallDetailRecord, zone: tzinfo) -> str:
    caller = record.caller_raw if record.caller_raw is not None else record.caller
    callee = record.callee_raw if record.callee_raw is not None else record.callee
    fields = [
        caller,
        caller,
        callee,
        _context(record, "public", "default"),
        _stamp(record.start, zone),
        _stamp(record.answer, zone),
        _stamp(record.end, zone),
        _int(record.duration_s),
        _int(record.billsec_s),
        _cause_name(record),
        record.call_id,
        "",
        record.customer_id,
        record.codec or "",
        record.codec or "",
    ]
    return ",".join(map(_q, fields))


def _enc(value: Any) -> str:
    return quote(str(value), safe="")


def _fs_json(record: CallDetailRecord, zone: tzinfo) -> str:
    caller = record.caller_raw if record.caller_raw is not None else record.caller
    callee = record.callee_raw if record.callee_raw is not None else record.callee
    start_us = to_epoch_us(record.start)
    end_us = to_epoch_us(record.end)
    answer_us = to_epoch_us(record.answer) if record.answer is not None else 0
    media_us = to_epoch_us(record.media_start) if record.media_start is not None else 0
    cause = _cause_name(record)
    code = FS_CAUSES[cause]
    var: dict[str, Any] = {
        "direction": "inbound",
        "uuid": record.call_id,
        "accountcode": record.customer_id,
        "sip_from_user": caller,
        "sip_req_user": callee,
        "caller_id_number": caller,
        "destination_number": callee,
        "hangup_cause": cause,
        "hangup_cause_q850": str(code if code <= 127 else 16),
        "start_stamp": _stamp(record.start, zone),
        "answer_stamp": _stamp(record.answer, zone),
        "end_stamp": _stamp(record.end, zone),
        "start_epoch": str(start_us // 1_000_000),
        "start_uepoch": str(start_us),
        "answer_epoch": str(answer_us // 1_000_000),
        "answer_uepoch": str(answer_us),
        "end_epoch": str(end_us // 1_000_000),
        "end_uepoch": str(end_us),
        "duration": _int(record.duration_s),
        "billsec": _int(record.billsec_s),
        "mduration": _int(record.duration_s * 1000),
        "billmsec": _int(record.billsec_s * 1000),
    }
    optional = {
        "sip_network_ip": record.source_ip,
        "sip_user_agent": record.user_agent,
        "read_codec": record.codec,
        "write_codec": record.codec,
        "rtp_audio_in_raw_bytes": record.rtp_in_bytes,
        "rtp_audio_out_raw_bytes": record.rtp_out_bytes,
        "rtp_audio_in_packet_count": record.rtp_in_packets,
        "rtp_audio_out_packet_count": record.rtp_out_packets,
        "rtp_audio_in_skip_packet_count": record.rtp_lost_packets,
        "rtp_audio_in_mos": record.mos,
    }
    for key, value in optional.items():
        if value is not None:
            var[key] = _int(value) if isinstance(value, float) and key != "rtp_audio_in_mos" else str(value)
    doc = {
        "core-uuid": "00000000-0000-4000-8000-746f6c6c6775",
        "switchname": "tollguard-sim",
        "channel_data": {"state": "CS_REPORTING", "direction": "inbound", "state_number": "11"},
        "variables": {k: _enc(v) for k, v in var.items()},
        "callflow": [
            {
                "dialplan": "XML",
                "profile_index": "1",
                "caller_profile": {
                    "caller_id_name": caller,
                    "caller_id_number": caller,
                    "destination_number": callee,
                    "uuid": record.call_id,
                    "source": "mod_sofia",
                    "context": _context(record, "public", "default"),
                },
                "times": {
                    "created_time": str(start_us),
                    "progress_media_time": str(media_us),
                    "answered_time": str(answer_us),
                    "hangup_time": str(end_us),
                },
            }
        ],
    }
    return _dumps(doc)


def _jsonl(record: CallDetailRecord, zone: tzinfo) -> str:
    return _dumps(record.to_json_dict())


_WRITERS: dict[str, Callable[[CallDetailRecord, tzinfo], str]] = {
    "asterisk-csv": _asterisk,
    "freeswitch-csv": _fs_csv,
    "freeswitch-json": _fs_json,
    "jsonl": _jsonl,
}


def write_record(fmt: str, record: CallDetailRecord, timezone: str = "UTC") -> str:
    """One line of ``fmt`` for ``record``, without the trailing newline.

    Parameters
    ----------
    fmt : str
        One of :data:`WRITE_FORMATS`: ``asterisk-csv`` (21 columns, newcdrcolumns),
        ``freeswitch-csv`` (example template), ``freeswitch-json`` (one line,
        URL-encoded variables as with the default ``encode-values=true``), ``jsonl``.
    record : CallDetailRecord
    timezone : str
        IANA zone of the naive local timestamps (Asterisk times, FreeSWITCH
        ``*_stamp``); read them back with the same ``IngestSettings.timezone``.
        Epoch fields and jsonl are always UTC.

    Returns
    -------
    str
        Durations are rounded to whole seconds in the CSV formats (ms in
        freeswitch-json ``mduration``/``billmsec``); timestamps to seconds in CSV.

    Raises
    ------
    ValueError
        Unknown ``fmt`` or time zone.
    """
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise ValueError(f"cannot write CDR format {fmt!r}; expected one of {', '.join(WRITE_FORMATS)}")
    return writer(record, _zone(timezone))
