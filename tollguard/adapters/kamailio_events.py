"""Kamailio ``acc`` transaction records as call events (DESIGN §3b, §8).

Kamailio's ``acc`` module writes one record per accounted SIP transaction; its log
backend (``log_flag``, ``log_missed_flag``, ``failed_transaction_flag``) one line::

    ACC: transaction answered: timestamp=1374493797;method=INVITE;from_tag=…;to_tag=…;
    call_id=vRtGV…;code=200;reason=OK;customer=acme;caller=+390212345600;callee=+97912345678;…

(prefixed by Kamailio's own log header, e.g. `` 2(4512) NOTICE: acc [acc.c:297]: ``). The
standard keys are ``timestamp`` (Unix seconds, ``time_mode`` 0, or with a fraction),
``method``, ``call_id``, ``code``, ``reason``; the rest come from ``log_extra`` (the
project's ``infra/kamailio/kamailio.cfg``: ``customer``, ``caller``, ``callee``,
``src_ip``, ``user_agent``; Kamailio's default config: ``src_user``, ``dst_user``, ``src_ip``).

As call events:

* ``method=INVITE`` with a 2xx ``code``: ``answer`` (the transaction completes at the 200 OK;
  Kamailio logs no separate record of the INVITE's arrival, so the call is known from its
  answer);
* ``method=INVITE`` with a final code of 300 or more (a missed or failed call): ``end`` of an
  unanswered call, with the Q.850 cause of the SIP code where RFC 3398 maps it;
* ``method=BYE``: ``end`` (Q.850 16, normal clearing);
* any other line (other methods, Kamailio's other log lines): not a call event.

The customer is the ``customer`` (or ``acc_account`` / ``accountcode``) extra; else the rules'
owner of the callee (an inbound call to its DID) or of the caller (its CLI); else the record is
refused with the reason. In-dialog BYE records carry no useful callee (``$rU`` of a BYE is the
contact user): the engine knows the call by its ``call_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tollguard.errors import RejectError

FMT = "kamailio-acc"

#: SIP final response -> Q.850 cause (RFC 3398 section 8.2.6.1, the usual reverse mapping).
SIP_Q850: dict[int, int] = {
    403: 21, 404: 1, 408: 102, 410: 22, 480: 18, 484: 28, 486: 17, 488: 65, 500: 41, 503: 34,
    600: 17, 603: 21, 604: 1,
}

_CUSTOMER_KEYS = ("customer", "acc_account", "accountcode", "account")
_CALLER_KEYS = ("caller", "src_user", "from_user")
_CALLEE_KEYS = ("callee", "dst_user", "dst_ouser", "ruri_user")


def parse_acc_line(line: str) -> dict[str, str] | None:
    """The ``key=value`` pairs of one ``acc`` log line, or None when the line is no acc record.

    The record starts after ``ACC:`` and the record kind (``transaction answered:``,
    ``missed call:``, ``call failed:``); pairs are ``;``-separated. The kind is returned
    under ``"_kind"``.

    >>> parse_acc_line(" 1(42) NOTICE: acc [acc.c:297]: ACC: transaction answered: timestamp=1;method=BYE;code=200")
    {'_kind': 'transaction answered', 'timestamp': '1', 'method': 'BYE', 'code': '200'}
    >>> parse_acc_line("INFO: <core> [main.c:2000]: listening") is None
    True
    """
    at = line.find("ACC:")
    if at < 0:
        return None
    body = line[at + 4 :].strip()
    kind, sep, pairs = body.partition(": ")
    if not sep or "=" in kind:
        kind, pairs = "", body
    out: dict[str, str] = {"_kind": kind.strip()}
    for part in pairs.strip().split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip():
            out[key.strip()] = value.strip()
    return out


def _first(fields: dict[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = fields.get(key)
        if value and value not in ("<null>", "n/a"):
            return value
    return ""


def acc_call_event(fields: dict[str, str]) -> dict[str, Any] | None:
    """The call-event fields of one parsed acc record, or None when it is no call event.

    Returns
    -------
    dict or None
        ``{"call_id", "event", "at", "customer", "caller_raw", "callee_raw", "hangup_cause",
        "source_ip", "user_agent"}`` (``customer`` may be empty: the caller resolves it from
        the rules).

    Raises
    ------
    RejectError
        No ``call_id``, a missing or bad ``timestamp`` or ``code``.
    """
    method = fields.get("method", "").upper()
    if method not in ("INVITE", "BYE"):
        return None
    call_id = fields.get("call_id", "")
    if not call_id:
        raise RejectError(f"{FMT}: {method} record without call_id")
    raw_ts = fields.get("timestamp", "")
    try:
        seconds = float(raw_ts)
        at = datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise RejectError(f"{FMT}: bad timestamp {raw_ts[:40]!r}") from None
    raw_code = fields.get("code", "")
    try:
        code = int(raw_code)
    except ValueError:
        raise RejectError(f"{FMT}: bad SIP code {raw_code[:20]!r}") from None
    if method == "BYE":
        event, cause = "end", 16
    elif 200 <= code < 300:
        event, cause = "answer", None
    elif code >= 300:
        event, cause = "end", SIP_Q850.get(code)
    else:
        raise RejectError(f"{FMT}: INVITE record with provisional code {code}")
    return {
        "call_id": call_id,
        "event": event,
        "at": at,
        "customer": _first(fields, _CUSTOMER_KEYS),
        "caller_raw": _first(fields, _CALLER_KEYS),
        "callee_raw": "" if method == "BYE" else _first(fields, _CALLEE_KEYS),
        "hangup_cause": cause,
        "source_ip": fields.get("src_ip") or None,
        "user_agent": fields.get("user_agent") or None,
    }
