"""Asterisk ``cdr_csv`` (Master.csv) rows -> :class:`CallDetailRecord`.

Layouts (cdr_csv.conf): 16 columns ``accountcode,src,dst,dcontext,clid,channel,
dstchannel,lastapp,lastdata,start,answer,end,duration,billsec,disposition,amaflags``;
18 with ``loguniqueid``/``loguserfield`` (+``uniqueid,userfield``); 21 with
``newcdrcolumns`` (+``peeraccount,linkedid,sequence``). A ``cdr_custom`` mapping
(clid first, often also named Master.csv) is a different layout and is rejected.
"""

from __future__ import annotations

from tollguard.cdr import CallDetailRecord, Disposition
from tollguard.errors import RejectError

from ._common import (
    FS_CAUSES,
    MAPPING_HINT,
    CountryOf,
    Ctx,
    asterisk_inbound,
    build,
    check_times,
    classify,
    fs_cause,
    fs_disposition,
    local_ts,
    number,
    row_hash,
)

FMT = "asterisk-csv"
COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
    "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield", "peeraccount", "linkedid", "sequence",
)  # fmt: skip
WIDTHS = (16, 18, 21)
DISPOSITIONS = {
    "ANSWERED": Disposition.ANSWERED,
    "NO ANSWER": Disposition.NO_ANSWER,
    "NOANSWER": Disposition.NO_ANSWER,
    "BUSY": Disposition.BUSY,
    "FAILED": Disposition.FAILED,
    "CONGESTION": Disposition.CONGESTION,
}


def looks_like_ts(value: str) -> bool:
    """Cheap sniff: 'YYYY-…' or 'YYYY/…' of plausible length."""
    return len(value) >= 12 and value[:4].isdigit() and value[4] in "-/"


def layout_hint(row: list[str]) -> str:
    """Why a row is not cdr_csv, when it can be told (cdr_custom's clid-first mapping)."""
    n = len(row)
    if n >= 11 and looks_like_ts(row[8]) and (looks_like_ts(row[10]) or looks_like_ts(row[9])):
        return (
            f"; start/answer/end at columns 9-11 look like an Asterisk cdr_custom mapping (clid first, "
            f"{n} columns), which is not the cdr_csv layout"
        )
    if n >= 12 and looks_like_ts(row[9]) and looks_like_ts(row[11]):
        return "; the timestamps sit where cdr_csv has them, but cdr_csv never writes this many columns"
    return ""


def parse_row(row: list[str], ctx: Ctx, country_of: CountryOf) -> CallDetailRecord:
    """One cdr_csv row (already split by the csv module) -> record.

    Parameters
    ----------
    row : list of str
        16, 18 or 21 fields.
    ctx : Ctx
        Cached settings state (zone of the naive timestamps, context globs).
    country_of : callable
        customer_id -> ISO region used to normalise its numbers.

    Returns
    -------
    CallDetailRecord
        Times in UTC; ``call_id`` = linkedid, else uniqueid, else a hash of the row;
        ``leg_id`` = uniqueid; no hangup cause (cdr_csv has none).

    Raises
    ------
    RejectError
        Wrong column count (cdr_custom layout included), bad timestamp, end before
        start, negative or non-numeric duration/billsec, unknown disposition.
    """
    n = len(row)
    if n not in WIDTHS:
        hint = layout_hint(row)
        raise RejectError(f"{FMT}: expected 16, 18 or 21 columns, got {n}{hint}{MAPPING_HINT if hint else ''}")
    accountcode, src, dst, dcontext, clid = row[0], row[1], row[2], row[3], row[4]
    disp_raw = row[14]
    disposition = DISPOSITIONS.get(disp_raw.strip().upper())
    cause: int | None = None
    start = local_ts(row[9], "start", ctx, FMT)
    answer = local_ts(row[10], "answer", ctx, FMT)
    end = local_ts(row[11], "end", ctx, FMT)
    if start is None:
        raise RejectError(f"{FMT}: empty start timestamp (column start)")
    if end is None:
        raise RejectError(f"{FMT}: empty end timestamp (column end)")
    duration = number(row[12], "duration", FMT)
    billsec = number(row[13], "billsec", FMT)
    if disposition is None:
        if disp_raw.strip().upper() in FS_CAUSES:  # FreeSWITCH mod_cdr_csv "asterisk" template
            name, cause = fs_cause(disp_raw, "disposition", FMT)
            disposition = fs_disposition(name, cause, answer is not None, billsec)
        else:
            raise RejectError(
                f"{FMT}: unknown disposition {disp_raw[:40]!r} in column disposition "
                "(expected ANSWERED, NO ANSWER, BUSY, FAILED or CONGESTION; not the cdr_csv layout?)"
            )
    check_times(start, answer, end, FMT)
    uniqueid = row[16] if n >= 18 else ""
    linkedid = row[19] if n == 21 else ""
    call_id = linkedid or uniqueid or row_hash(row, "ast-")
    customer_id = accountcode or ctx.settings.default_customer_id
    if not src and "<" in clid:
        src = clid[clid.rfind("<") + 1 :].rstrip(">").strip()
    direction, caller, callee, did = classify(
        ctx, asterisk_inbound(ctx, dcontext), src, dst, country_of(customer_id)
    )
    return build(
        FMT,
        call_id=call_id,
        leg_id=uniqueid or None,
        customer_id=customer_id,
        direction=direction,
        caller=caller,
        callee=callee,
        caller_raw=src,
        callee_raw=dst,
        did=did,
        start=start,
        answer=answer,
        end=end,
        duration_s=duration,
        billsec_s=billsec,
        disposition=disposition,
        hangup_cause=cause,
    )
