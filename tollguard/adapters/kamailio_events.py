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

The line is read by the CDR adapter's acc parser (:func:`tollguard.adapters.kamailio.parse_log`,
one parser for both uses). The customer is the ``customer`` (or ``acc_account`` /
``accountcode``) extra; else the rules' owner of the callee (an inbound call to its DID) or
of the caller (its CLI); else the record is refused with the reason. In-dialog BYE records
carry no useful callee (``$rU`` of a BYE is the contact user): the engine knows the call by
its ``call_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._common import Ctx
from .kamailio import SIP_TO_Q850, Transaction, looks_like_log, parse_log

FMT = "kamailio-acc"

_CUSTOMER_KEYS = ("customer", "acc_account", "accountcode", "account")
_CALLER_KEYS = ("caller", "src_user", "from_user")
_CALLEE_KEYS = ("callee", "dst_user", "dst_ouser", "ruri_user")


def acc_transaction(line: str, ctx: Ctx) -> Transaction | None:
    """The acc record of one log line, or None when the line is no acc record.

    Raises
    ------
    RejectError
        An acc record without ``method`` / ``call_id`` / ``code`` or with a bad time
        (:func:`tollguard.adapters.kamailio.parse_log`).
    """
    if "ACC:" not in line or not looks_like_log(line):
        return None
    return parse_log(line, ctx)


def _first(fields: dict[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = fields.get(key)
        if value and value not in ("<null>", "n/a"):
            return value
    return ""


def acc_call_event(tx: Transaction) -> dict[str, Any] | None:
    """The call-event fields of one acc record, or None when it is no call event.

    Returns
    -------
    dict or None
        ``{"call_id", "event", "at", "customer", "caller_raw", "callee_raw", "hangup_cause",
        "source_ip", "user_agent"}`` (``customer`` may be empty: the caller resolves it from
        the rules); None for methods other than INVITE and BYE, and for an INVITE's
        provisional or authentication-challenge (401/407) record, which ends no call.
    """
    if tx.method not in ("INVITE", "BYE"):
        return None
    fields, code = tx.extra, tx.code
    at: datetime = tx.at
    if tx.method == "BYE":
        event, cause = "end", 16
    elif 200 <= code < 300:
        event, cause = "answer", None
    elif code >= 300 and code not in (401, 407):
        event, cause = "end", SIP_TO_Q850.get(code)
    else:
        return None
    return {
        "call_id": tx.call_id,
        "event": event,
        "at": at,
        "customer": _first(fields, _CUSTOMER_KEYS),
        "caller_raw": _first(fields, _CALLER_KEYS),
        "callee_raw": "" if tx.method == "BYE" else _first(fields, _CALLEE_KEYS),
        "hangup_cause": cause,
        "source_ip": fields.get("src_ip") or None,
        "user_agent": fields.get("user_agent") or None,
    }
