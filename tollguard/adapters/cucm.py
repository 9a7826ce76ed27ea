"""Cisco Unified CM flat-file CDRs (``cucm``) -> :class:`CallDetailRecord`.

A ``cdr_<cluster>_<node>_<datetime>_<seq>`` file starts with a header row of field names and
a row of SQL types (``INTEGER,VARCHAR(50),…``); both are skipped, and the header's names locate
the fields (without one, the documented positions of the first 56 fields). Times are UTC epoch
seconds (``dateTimeConnect`` 0 = never connected); ``duration`` is the connected time in
seconds; IP addresses are signed 32-bit integers in little-endian byte order. A call is
``globalCallID_callManagerId`` + ``globalCallID_callId``; each CDR's ``pkid`` is its leg id.
CMR rows (``cdrRecordType`` 2, media statistics) are refused with the reason.

CUCM has no account code: the customer is the one whose DID (callee) or CLI (caller) the rules
list, else ``ingest.default_customer_id``; a callee that is a listed DID makes the call inbound,
otherwise outbound or internal by the callee.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.errors import RejectError

from ._common import CONGESTION_CAUSES, CountryOf, Ctx, build, check_times, classify, number, owner

FMT = "cucm"
#: The first 56 fields of a CUCM CDR, in the documented order (later fields are appended by newer releases).
COLUMNS = (
    "cdrRecordType", "globalCallID_callManagerId", "globalCallID_callId", "origLegCallIdentifier",
    "dateTimeOrigination", "origNodeId", "origSpan", "origIpAddr", "callingPartyNumber",
    "callingPartyUnicodeLoginUserID", "origCause_location", "origCause_value", "origPrecedenceLevel",
    "origMediaTransportAddress_IP", "origMediaTransportAddress_Port", "origMediaCap_payloadCapability",
    "origMediaCap_maxFramesPerPacket", "origMediaCap_g723BitRate", "origVideoCap_Codec", "origVideoCap_Bandwidth",
    "origVideoCap_Resolution", "origVideoTransportAddress_IP", "origVideoTransportAddress_Port",
    "origRSVPAudioStat", "origRSVPVideoStat", "destLegIdentifier", "destNodeId", "destSpan", "destIpAddr",
    "originalCalledPartyNumber", "finalCalledPartyNumber", "finalCalledPartyUnicodeLoginUserID",
    "destCause_location", "destCause_value", "destPrecedenceLevel", "destMediaTransportAddress_IP",
    "destMediaTransportAddress_Port", "destMediaCap_payloadCapability", "destMediaCap_maxFramesPerPacket",
    "destMediaCap_g723BitRate", "destVideoCap_Codec", "destVideoCap_Bandwidth", "destVideoCap_Resolution",
    "destVideoTransportAddress_IP", "destVideoTransportAddress_Port", "destRSVPAudioStat", "destRSVPVideoStat",
    "dateTimeConnect", "dateTimeDisconnect", "lastRedirectDn", "pkid", "originalCalledPartyNumberPartition",
    "callingPartyNumberPartition", "finalCalledPartyNumberPartition", "lastRedirectDnPartition", "duration",
)  # fmt: skip
DEFAULT_INDEX = {name: i for i, name in enumerate(COLUMNS)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_header(row: list[str]) -> bool:
    """The header row of a CUCM CDR or CMR file (``cdrRecordType,globalCallID_callManagerId,…``)."""
    return len(row) >= 3 and row[0].strip() == "cdrRecordType" and row[1].strip() == "globalCallID_callManagerId"


def is_types_row(row: list[str]) -> bool:
    """The second header row: SQL types (``INTEGER,VARCHAR(50),UNIQUEIDENTIFIER,…``)."""
    types = ("INTEGER", "VARCHAR", "UNIQUEIDENTIFIER", "SMALLINT", "BIGINT", "CHAR", "DATETIME")
    return len(row) >= 3 and all(c.strip().upper().startswith(types) for c in row if c.strip())


def looks_like(row: list[str]) -> bool:
    """A CUCM CDR data row without its header: record type 1, at least 56 fields, epoch origination."""
    return len(row) >= len(COLUMNS) and row[0].strip() in ("0", "1", "2") and row[4].strip().isdigit()


def _epoch(value: str, column: str) -> datetime | None:
    value = value.strip()
    if not value or value == "0":
        return None
    if not value.isdigit() or not 946684800 <= int(value) < 32503680000:
        raise RejectError(f"{FMT}: bad timestamp {value[:40]!r} in column {column}")
    return _EPOCH + timedelta(seconds=int(value))


def ip_of(value: str) -> str | None:
    """A CUCM IP field (signed 32-bit, little-endian byte order) -> dotted quad; 0 / empty -> None.

    >>> ip_of("-1139627840")   # 0xBC12A8C0, bytes C0 A8 12 BC
    '192.168.18.188'
    """
    try:
        n = int(value.strip())
    except ValueError:
        return None
    if n == 0 or not -(1 << 31) <= n < (1 << 31):
        return None
    return str(ipaddress.IPv4Address(struct.pack("<i", n)))


def parse_row(row: list[str], ctx: Ctx, country_of: CountryOf, index: dict[str, int] | None = None,
              owner_of: Callable[[str], str | None] | None = None) -> CallDetailRecord:
    """One CUCM CDR row -> record; ``index`` = field name -> column (the header row's, else the documented).

    Raises
    ------
    RejectError
        A CMR or start record, too few fields, bad timestamps or duration, disconnect before origination.
    """
    idx = index or DEFAULT_INDEX
    if "dateTimeDisconnect" not in idx:  # the CMR file's header
        raise RejectError(f"{FMT}: a CMR (media statistics) record, not a CDR (cdrRecordType 1)")
    need = max(idx.get(n, 0) for n in ("dateTimeDisconnect", "duration", "finalCalledPartyNumber", "pkid")) + 1
    if len(row) < need:
        raise RejectError(f"{FMT}: expected at least {need} fields, got {len(row)}")

    def f(name: str) -> str:
        i = idx.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    kind = f("cdrRecordType")
    if kind != "1":
        what = "a CMR (media statistics) record" if kind == "2" else f"record type {kind!r}"
        raise RejectError(f"{FMT}: {what}, not a CDR (cdrRecordType 1)")
    start = _epoch(f("dateTimeOrigination"), "dateTimeOrigination")
    answer = _epoch(f("dateTimeConnect"), "dateTimeConnect")
    end = _epoch(f("dateTimeDisconnect"), "dateTimeDisconnect")
    if start is None or end is None:
        raise RejectError(f"{FMT}: empty dateTimeOrigination or dateTimeDisconnect")
    check_times(start, answer, end, FMT)
    talk = number(f("duration") or "0", "duration", FMT)
    caller_raw = f("callingPartyNumber")
    callee_raw = f("finalCalledPartyNumber") or f("originalCalledPartyNumber")
    customer, inbound = owner(ctx, owner_of, callee_raw, caller_raw)
    direction, caller, callee, did = classify(ctx, inbound, caller_raw, callee_raw, country_of(customer))
    causes = [int(c) for c in (f("destCause_value"), f("origCause_value")) if c.isdigit() and 0 < int(c) <= 127]
    cause = causes[0] if causes else None
    if answer is not None:
        disposition = Disposition.ANSWERED
    elif cause == 17:
        disposition = Disposition.BUSY
    elif cause in CONGESTION_CAUSES:
        disposition = Disposition.CONGESTION
    elif cause in (None, 16, 18, 19, 31, 127):
        disposition = Disposition.NO_ANSWER
    else:
        disposition = Disposition.FAILED
    return build(
        FMT,
        call_id=f"{f('globalCallID_callManagerId')}-{f('globalCallID_callId')}",
        leg_id=f("pkid") or None,
        customer_id=customer,
        direction=direction,
        caller=caller,
        callee=callee,
        caller_raw=caller_raw,
        callee_raw=callee_raw,
        did=did if direction != Direction.INBOUND or callee.startswith("+") else None,
        start=start,
        answer=answer,
        end=end,
        duration_s=(end - start).total_seconds(),
        billsec_s=talk if answer is not None else 0.0,
        disposition=disposition,
        hangup_cause=cause,
        source_ip=ip_of(f("origIpAddr")),
    )
