"""Kamailio ``acc`` records -> :class:`CallDetailRecord`: CDRs from pairing INVITE and BYE transactions.

``acc`` writes one record per accounted SIP transaction, not per call, in two forms:

- the log / syslog backend (``acc_log_request``, ``log_flag``): one line
  ``ACC: transaction answered: timestamp=1374493797;method=INVITE;from_tag=…;to_tag=…;call_id=…;
  code=200;reason=OK;<log_extra>`` (after the logger's own prefix);
- the database backend (table ``acc``): ``id,method,from_tag,to_tag,callid,sip_code,sip_reason,time``
  then the ``db_extra`` columns, as a CSV export or an SQL dump's value tuples
  (``(1,'INVITE',…),``); the extra columns are named by a header row, by
  ``ingest.kamailio_db_columns``, or by their count (6: kamailio.cfg's default
  ``src_user,src_domain,src_ip,dst_ouser,dst_user,dst_domain``; 10: dSIPRouter's).

With the ``dialog`` module, ``acc`` also writes one CDR per call (``cdr_enable``, ``cdr_log_enable``):
``log_write_cdr(): start_time=1796148744.549; end_time=1796148744.855; duration=0.306; <cdr_extra>``
(start = the dialog's confirmation, i.e. the answer); such a line is a CDR by itself. Give its
``cdr_extra`` ``callid=$dlg(callid)`` (so a call logged both ways counts once) and the parties,
e.g. ``customer=$dlg_var(customer);caller=$dlg(from_uri);callee=$dlg(to_uri)`` (SIP URIs are reduced
to their user part).

A call is its answered INVITE (code 200) paired with the BYE of the same Call-ID: start and
answer are the INVITE's time (acc writes when the 200 is sent; ring time is not in the
record), end the BYE's. An INVITE that failed (code >= 300) is an unanswered CDR of its own
(start = end); a 401 / 407 is an authentication challenge, merged into the call (no CDR).
The customer is the ``customer`` extra (this project's ``infra/kamailio/kamailio.cfg``
logs it), else the customer whose DID (callee) or CLI (caller) the rules list, else
``ingest.default_customer_id``. BYE records carry no callee (``$rU`` of a BYE is a contact):
the INVITE's is used.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.errors import RejectError

from ._common import CountryOf, Ctx, OwnerOf, build, classify, local_ts, owner, row_hash

FMT = "kamailio-acc"
#: The acc table's own columns, in order.
CORE_COLUMNS = ("id", "method", "from_tag", "to_tag", "callid", "sip_code", "sip_reason", "time")
#: db_extra column names by count, where no header row or setting names them.
EXTRA_BY_COUNT: dict[int, tuple[str, ...]] = {
    6: ("src_user", "src_domain", "src_ip", "dst_ouser", "dst_user", "dst_domain"),
    10: ("src_ip", "dst_ouser", "dst_user", "dst_domain", "src_user", "src_domain", "cdr_id", "calltype",
         "src_gwgroupid", "dst_gwgroupid"),
}  # fmt: skip
_SIP_METHODS = frozenset({"INVITE", "BYE", "CANCEL", "ACK", "MESSAGE", "REGISTER", "OPTIONS", "UPDATE", "INFO",
                          "PRACK", "REFER", "NOTIFY", "SUBSCRIBE", "PUBLISH"})  # fmt: skip
_PAIR_RE = re.compile(r"(?:^|[;\s])([A-Za-z_][\w.-]*)=([^;]*)")
#: SIP final response -> Q.850 cause (RFC 3398 section 8.2.6.1; 487 cancelled: 16 as FreeSWITCH reports it).
SIP_TO_Q850 = {
    400: 41, 401: 21, 402: 21, 403: 21, 404: 1, 405: 63, 406: 79, 407: 21, 408: 102, 410: 22, 413: 127,
    414: 127, 415: 79, 416: 127, 420: 127, 421: 127, 423: 127, 480: 18, 481: 41, 482: 25, 483: 25, 484: 28,
    485: 1, 486: 17, 487: 16, 488: 65, 500: 41, 501: 79, 502: 38, 503: 41, 504: 102, 505: 127, 513: 127,
    600: 17, 603: 21, 604: 1, 606: 58,
}  # fmt: skip
AUTH_CHALLENGES = frozenset({401, 407})


#: A line of Kamailio's own log that is not an acc record: `` 2(11533) WARNING: …`` (-E / stderr),
#: syslog's ``Mar 14 10:00:00 host /usr/sbin/kamailio[11533]: …``, or the start-up banner
#: (``Listening on``, ``             udp: 127.0.0.1 [127.0.0.1]:5060``, ``Aliases:``).
_LOG_LINE_RE = re.compile(
    r"^\s*\d+\(\d+\) [A-Z_]+: |^\w{3} [ \d]\d [\d:]{8} \S+ \S*kamailio\[\d+\]: "
    r"|^(?:Listening on|Aliases:)\s*$|^\s+(?:\*: )?(?:udp|tcp|tls|sctp|ws|wss): \S"
)


def is_other_log_line(text: str) -> bool:
    """A line of Kamailio's log that is not an acc record (start-up, warnings): skipped, not a CDR line."""
    return _LOG_LINE_RE.match(text) is not None and not looks_like_log(text)


def looks_like_log(text: str) -> bool:
    """An acc log line: ``ACC:`` then ``method=`` and ``call_id=``; or a dialog CDR line (:func:`looks_like_cdr`)."""
    at = text.find("ACC:")
    return (at >= 0 and "method=" in text[at:] and "call_id=" in text[at:]) or looks_like_cdr(text)


def looks_like_cdr(text: str) -> bool:
    """A dialog CDR line of acc (``start_time=…; end_time=…; duration=…``)."""
    return "start_time=" in text and "end_time=" in text and "duration=" in text


def _user(value: str) -> str:
    """``sip:+390212345600@127.0.0.1:5080`` / ``<sip:alice@host>`` -> ``+390212345600`` / ``alice``."""
    value = value.strip().strip("<>")
    if ":" in value and value.split(":", 1)[0].lower() in ("sip", "sips", "tel"):
        value = value.split(":", 1)[1]
    return value.split("@", 1)[0].split(";", 1)[0]


def parse_cdr(text: str, ctx: Ctx, country_of: CountryOf, owner_of: OwnerOf | None = None) -> CallDetailRecord:
    """One dialog CDR line of acc -> an answered call's record (see the module doc).

    Raises
    ------
    RejectError
        A bad start or end time, end before start.
    """
    at = text.find("start_time=")
    pairs = {k: v.strip() for k, v in _PAIR_RE.findall(text[at:])}
    start = _time(pairs.get("start_time", ""), ctx)
    end = _time(pairs.get("end_time", ""), ctx)
    if end < start:
        raise RejectError(f"{FMT}: end_time {end.isoformat()} before start_time {start.isoformat()}")
    extra = {k: _user(v) if k in ("caller", "callee", "src_user", "dst_user", "dst_ouser") else v
             for k, v in pairs.items()}
    call_id = extra.get("callid") or extra.get("call_id") or row_hash([text[at:]], "kam-")
    invite = Transaction("INVITE", call_id, 200, start, extra)
    bye = Transaction("BYE", call_id, 200, end, {})
    return record_of(invite, bye, ctx, country_of, owner_of)


def db_row(text: str) -> list[str] | None:
    """The cells of an acc table row (CSV, or an SQL dump's ``(…),`` tuple / ``INSERT … VALUES (…);``), or None.

    A row is recognised by its shape: an integer id, then a SIP method, at least the 8 core columns.
    """
    body = text.strip()
    quote = '"'
    if body.upper().startswith("INSERT INTO"):
        body = body[body.find("(", body.upper().find("VALUES")) :] if "VALUES" in body.upper() else body
    if body.startswith("("):
        body = body[1:].rstrip().rstrip(",;").rstrip()
        body = body[:-1] if body.endswith(")") else body
        quote = "'"
    try:
        row = next(csv.reader((body,), quotechar=quote, skipinitialspace=True))
    except (csv.Error, StopIteration):
        return None
    if len(row) < len(CORE_COLUMNS) or not row[0].strip().isdigit() or row[1].strip().upper() not in _SIP_METHODS:
        return None
    return [c if c != "NULL" else "" for c in row]


@dataclass(slots=True)
class Transaction:
    """One acc record: method, tags, Call-ID, SIP code, time (UTC) and the extra attributes."""

    method: str
    call_id: str
    code: int
    at: datetime
    extra: dict[str, str]


def _time(value: str, ctx: Ctx) -> datetime:
    """acc time: unix seconds (time_mode 0, 2: ``1374493797`` / ``1374493797.123``) or a local datetime."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parsed = local_ts(value, "time", ctx, FMT)
        if parsed is None:
            raise RejectError(f"{FMT}: empty time") from None
        return parsed
    if not 946684800 <= seconds < 32503680000:  # 2000 .. 3000
        raise RejectError(f"{FMT}: bad timestamp {value[:40]!r} in column time")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def _code(value: str) -> int:
    try:
        code = int(value.strip())
    except ValueError:
        raise RejectError(f"{FMT}: non-numeric SIP code {value[:20]!r}") from None
    if not 100 <= code <= 699:
        raise RejectError(f"{FMT}: SIP code {code} outside 100..699")
    return code


def parse_log(text: str, ctx: Ctx) -> Transaction:
    """One acc log line (``ACC: … timestamp=…;method=…;…``) -> :class:`Transaction`.

    Raises
    ------
    RejectError
        No ``method`` / ``call_id`` / ``code``, or a bad time.
    """
    at = text.find("ACC:")
    pairs = {k: v.strip() for k, v in _PAIR_RE.findall(text[at + 4 :] if at >= 0 else text)}
    for key in ("method", "call_id", "code"):
        if not pairs.get(key):
            raise RejectError(f"{FMT}: acc log line without {key}=")
    when = pairs.pop("timestamp", "") or pairs.pop("time", "") or pairs.pop("time_attr", "")
    if not when:
        raise RejectError(f"{FMT}: acc log line without timestamp= (or time=)")
    return Transaction(pairs["method"].upper(), pairs["call_id"], _code(pairs["code"]), _time(when, ctx), pairs)


def parse_db(row: list[str], ctx: Ctx, names: tuple[str, ...] | None) -> Transaction:
    """One acc table row (cells) -> :class:`Transaction`; ``names`` = the columns (else core + guessed extras).

    Raises
    ------
    RejectError
        A row whose extra columns cannot be named, or a bad code or time.
    """
    if names is None:
        extra_names = ctx.settings.kamailio_db_columns or EXTRA_BY_COUNT.get(len(row) - len(CORE_COLUMNS))
        if extra_names is None or len(extra_names) != len(row) - len(CORE_COLUMNS):
            raise RejectError(
                f"{FMT}: acc table row with {len(row) - len(CORE_COLUMNS)} extra columns: name them "
                "(ingest.kamailio_db_columns, or a header row)"
            )
        names = CORE_COLUMNS + tuple(extra_names)
    elif len(names) != len(row):
        raise RejectError(f"{FMT}: expected {len(names)} columns (header row), got {len(row)}")
    cells = dict(zip(names, (c.strip() for c in row), strict=True))
    call_id = cells.get("callid") or cells.get("call_id") or ""
    if not call_id:
        raise RejectError(f"{FMT}: empty callid")
    return Transaction(cells.get("method", "").upper(), call_id, _code(cells.get("sip_code", "")),
                       _time(cells.get("time", ""), ctx), cells)


def _disposition(code: int) -> Disposition:
    if code < 300:
        return Disposition.ANSWERED
    if code in (486, 600):
        return Disposition.BUSY
    if code in (408, 480, 487):
        return Disposition.NO_ANSWER
    if code in (502, 503, 504):
        return Disposition.CONGESTION
    return Disposition.FAILED


def _party(extra: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((extra[k] for k in keys if extra.get(k)), "")


def record_of(invite: Transaction, bye: Transaction | None, ctx: Ctx, country_of: CountryOf,
              owner_of: OwnerOf | None) -> CallDetailRecord:
    """The CDR of an INVITE (answered, with its BYE; or failed, alone).

    Raises
    ------
    RejectError
        The record does not validate (e.g. a BYE before its INVITE).
    """
    ex = invite.extra
    caller_raw = _party(ex, ("caller", "src_user", "from_user"))
    callee_raw = _party(ex, ("callee", "dst_ouser", "dst_user", "to_user"))
    customer = ex.get("customer") or (bye.extra.get("customer") if bye is not None else "") or ""
    customer, inbound = owner(ctx, owner_of, callee_raw, caller_raw, customer, country_of)
    direction, caller, callee, did = classify(ctx, inbound, caller_raw, callee_raw, country_of(customer))
    answered = bye is not None and invite.code < 300
    end = bye.at if bye is not None else invite.at
    if end < invite.at:
        raise RejectError(f"{FMT}: BYE at {end.isoformat()} before its INVITE at {invite.at.isoformat()}")
    span = (end - invite.at).total_seconds()
    return build(
        FMT,
        call_id=invite.call_id,
        customer_id=customer,
        direction=direction,
        caller=caller,
        callee=callee,
        caller_raw=caller_raw,
        callee_raw=callee_raw,
        did=did if direction != Direction.INBOUND or callee.startswith("+") else None,
        start=invite.at,
        answer=invite.at if answered else None,
        end=end,
        duration_s=span,
        billsec_s=span if answered else 0.0,
        disposition=_disposition(invite.code) if bye is None else Disposition.ANSWERED,
        hangup_cause=16 if answered else SIP_TO_Q850.get(invite.code),
        source_ip=ex.get("src_ip") or None,
        user_agent=ex.get("user_agent") or ex.get("ua") or None,
    )


@dataclass
class Pairer:
    """Pairs one file's acc transactions into CDRs, in file order (see the module doc).

    :meth:`take` returns, per input line, what became of it: ``("paired", None)`` (an answered
    INVITE waiting for its BYE, or an auth challenge), ``("record", cdr)``, or ``("reject",
    reason)``; the answered INVITE's own outcome comes with its BYE's (``take`` returns it
    first) or, unpaired, from :meth:`finish`.
    """

    ctx: Ctx
    country_of: CountryOf
    owner_of: OwnerOf | None = None
    names: tuple[str, ...] | None = None
    #: Call-ID -> (line, raw text, answered INVITE)
    open: dict[str, tuple[int, str, Transaction]] = field(default_factory=dict)

    def transaction(self, text: str) -> Transaction:
        """Parse one line in either form.

        Raises
        ------
        RejectError
            Neither an acc log line nor an acc table row, or a bad field.
        """
        if looks_like_cdr(text):
            return Transaction("CDR", "", 200, datetime(1970, 1, 1, tzinfo=UTC), {"line": text})
        if looks_like_log(text):
            return parse_log(text, self.ctx)
        row = db_row(text)
        if row is None:
            raise RejectError(f"{FMT}: neither an acc log line (ACC: …method=…;call_id=…) nor an acc table row")
        return parse_db(row, self.ctx, self.names)

    def take(self, line: int, text: str) -> list[tuple[int, str, str, Any]]:
        """Outcomes ``(line, raw, kind, record or reason)`` this line settles (see the class doc)."""
        try:
            tx = self.transaction(text)
        except RejectError as exc:
            return [(line, text, "reject", exc.reason)]
        if tx.method == "CDR":
            return [self._record(line, text, tx, None)]
        if tx.method == "INVITE":
            if tx.code in AUTH_CHALLENGES:
                return [(line, text, "paired", None)]
            if tx.code < 300:
                if tx.call_id in self.open:  # a re-INVITE (hold, codec change) of a call already up
                    return [(line, text, "paired", None)]
                self.open[tx.call_id] = (line, text, tx)
                return []
            return [self._record(line, text, tx, None)]
        if tx.method == "BYE":
            opened = self.open.pop(tx.call_id, None)
            if opened is None:
                return [(line, text, "reject",
                         f"{FMT}: BYE of Call-ID {tx.call_id[:60]} without its answered INVITE in this file")]
            inv_line, inv_text, invite = opened
            return [(inv_line, inv_text, "paired", None), self._record(line, text, invite, tx)]
        return [(line, text, "reject", f"{FMT}: {tx.method} transaction: only INVITE and BYE make CDRs")]

    def _record(self, line: int, text: str, invite: Transaction, bye: Transaction | None) -> tuple[int, str, str, Any]:
        try:
            if invite.method == "CDR":
                return (line, text, "record", parse_cdr(text, self.ctx, self.country_of, self.owner_of))
            return (line, text, "record", record_of(invite, bye, self.ctx, self.country_of, self.owner_of))
        except RejectError as exc:
            return (line, text, "reject", exc.reason)

    def finish(self) -> Iterator[tuple[int, str, str, Any]]:
        """Answered INVITEs left without a BYE at the end of the file: rejects."""
        for call_id, (line, text, tx) in sorted(self.open.items(), key=lambda kv: kv[1][0]):
            yield (line, text, "reject",
                   f"{FMT}: INVITE answered at {tx.at:%Y-%m-%d %H:%M:%S} UTC (Call-ID {call_id[:60]}) has no BYE "
                   "in this file: the call was still up, or its BYE is in another file")
        self.open.clear()


def parse_single(text: str, ctx: Ctx, country_of: CountryOf, owner_of: OwnerOf | None = None) -> CallDetailRecord:
    """One acc record alone (a stream message): a failed INVITE is a CDR; the rest need pairing.

    Raises
    ------
    RejectError
        An answered INVITE, a BYE or an auth challenge (a CDR needs both transactions: replay the
        acc file, where they are paired), or a line that is not an acc record.
    """
    tx = Pairer(ctx, country_of, owner_of).transaction(text)
    if tx.method == "CDR":
        return parse_cdr(text, ctx, country_of, owner_of)
    if tx.method == "INVITE" and tx.code >= 300 and tx.code not in AUTH_CHALLENGES:
        return record_of(tx, None, ctx, country_of, owner_of)
    raise RejectError(
        f"{FMT}: one {tx.method} {tx.code} transaction is not a CDR: a call's CDR pairs its INVITE and BYE "
        "records; replay the acc file (tollguard replay) to pair them"
    )
