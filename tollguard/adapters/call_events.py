"""Adapters from switches' live events to the canonical :class:`~tollguard.calls.CallEvent` (DESIGN §3b).

Formats (the names ``tollguard replay --call-events-format`` takes):

``call-events-jsonl``
    The canonical model, one JSON object a line (numbers normalised as the ``jsonl`` CDRs').
``freeswitch-esl-json``
    FreeSWITCH event-socket events as JSON (``event json ...``), one a line:
    ``CHANNEL_CREATE`` → start, ``CHANNEL_ANSWER`` → answer, ``CHANNEL_HANGUP_COMPLETE`` → end.
    ``call_id`` = ``Unique-ID`` (the uuid the channel's CDR carries), time =
    ``Event-Date-Timestamp`` (µs since the epoch, UTC; a hang-up uses
    ``Caller-Channel-Hangup-Time`` where given), caller ``Caller-Caller-ID-Number``, callee
    ``Caller-Destination-Number``, direction from ``Caller-Context`` (the ingest settings'
    ``freeswitch_inbound_contexts``), account ``variable_accountcode``, cause
    ``variable_hangup_cause_q850`` or ``Hangup-Cause``.
``asterisk-ami``
    Asterisk Manager Interface events, ``Key: value`` lines, a blank line between events:
    ``Newchannel`` and ``DialBegin`` → start, ``DialEnd`` with ``DialStatus: ANSWER`` → answer,
    ``Hangup`` → end (``Cause``: Q.850). ``call_id`` = ``Linkedid`` (the CDR's linkedid), else
    ``Uniqueid``; time = ``Timestamp`` (``timestampevents = yes`` in manager.conf: an event
    without it is refused, tollguard never stamps it with its own clock); direction from
    ``Context`` (``asterisk_inbound_contexts``); account ``AccountCode``.
``kamailio-acc``
    Kamailio ``acc`` log records (INVITE 2xx → answer, failed INVITE and BYE → end):
    :mod:`tollguard.adapters.kamailio_events`.

The customer is the record's account field; where the switch gives none, the rules' owner of
the callee (a call to the customer's DID) or of the caller (its CLI, :meth:`Rules.owner_of`);
else the record is refused with the reason (never a silent default customer). Other event
types (``CHANNEL_PROGRESS``, ``Newstate``, ``DialEnd`` NOANSWER, another SIP method…) are no
call events: :func:`read_call_events` yields them as ``skipped`` with a ``note``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from tollguard.calls import CallEvent
from tollguard.cdr import Direction
from tollguard.errors import RejectError

from . import kamailio_events
from ._common import (
    Ctx,
    asterisk_inbound,
    classify,
    ctx_for,
    epoch_us,
    freeswitch_inbound,
    fs_cause,
    naive_to_utc,
    normalize_cached,
    validation_reason,
)
from .settings import IngestSettings

JSONL, FS, AMI, KAM = "call-events-jsonl", "freeswitch-esl-json", "asterisk-ami", kamailio_events.FMT
#: Call-event format names.
CALL_EVENT_FORMATS = ("auto", JSONL, FS, AMI, KAM)

#: number (E.164) -> customer id that owns it in the rules, or None.
OwnerOf = Callable[[str], str | None]
#: customer id -> ISO region of its numbering plan.
CountryOf = Callable[[str], str]

_FS_EVENTS = {"CHANNEL_CREATE": "start", "CHANNEL_ANSWER": "answer", "CHANNEL_HANGUP_COMPLETE": "end"}
#: Kamailio's log line header, e.g. `` 2(4512) NOTICE: acc [acc.c:297]:`` (its other lines are no call events).
_KAMAILIO_LOG = re.compile(r"\d+\(\d+\) [A-Z]+: ")
_AMI_START = frozenset({"newchannel", "dialbegin"})


class NotACallEvent(Exception):
    """The input is valid but reports nothing tollguard takes (another event type): skipped."""


@dataclass(frozen=True, slots=True)
class ParsedCallEvent:
    """The outcome of one call-event input (a line, or an AMI event block).

    Exactly one of: ``event`` set (accepted); ``reason`` set (rejected, ``raw`` kept for the
    rejects output); ``skipped`` (blank, ``#`` comment, or no call event: ``note`` says which).
    """

    source: str
    line: int
    raw: str
    event: CallEvent | None
    reason: str | None
    skipped: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CallEventParser:
    """Parses call events with the rules' ingest settings, owners and countries.

    Parameters
    ----------
    settings : IngestSettings
        Time zone, access codes and context globs (as for CDRs).
    owner_of : callable, optional
        E.164 number -> customer id owning it (``Rules.owner_of``); without it a record
        naming no account is refused.
    country_of : callable, optional
        customer id -> ISO region (``Rules.country_of``; default ``settings.default_country``).
    """

    settings: IngestSettings = field(default_factory=IngestSettings)
    owner_of: OwnerOf | None = None
    country_of: CountryOf | None = None

    @property
    def _ctx(self) -> Ctx:
        return ctx_for(self.settings)

    def parse(self, text: str, fmt: str) -> CallEvent:
        """One input (a JSON line, an acc line, an AMI block) -> event.

        Raises
        ------
        NotACallEvent
            Valid, but not a start / answer / end of a call.
        RejectError
            Unreadable or invalid, with the reason (format name first).
        ValueError
            Unknown ``fmt``.
        """
        if fmt == "auto":
            fmt = sniff_call_event(text)
        if fmt == JSONL:
            return self._jsonl(text)
        if fmt == FS:
            return self._freeswitch(text)
        if fmt == AMI:
            return self._ami(text)
        if fmt == KAM:
            return self._kamailio(text)
        raise ValueError(f"unknown call-event format {fmt!r}; expected one of {', '.join(CALL_EVENT_FORMATS)}")

    # -- building ------------------------------------------------------------------------
    def build(
        self,
        fmt: str,
        *,
        call_id: str,
        event: str,
        at: datetime,
        customer: str,
        caller_raw: str,
        callee_raw: str,
        inbound: bool | None,
        hangup_cause: int | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
    ) -> CallEvent:
        """The canonical event: customer resolved, direction, E.164 numbers and DID as for CDRs.

        ``inbound`` None (the switch names no context, Kamailio): the call is inbound when its
        callee is a DID the rules give the customer, else outbound or internal by the callee.

        Raises
        ------
        RejectError
            No account and no owner in the rules, or the model refuses the event.
        """
        settings = self.settings
        access = settings.access_codes
        if not customer:
            customer, owned_inbound = self._owner(fmt, caller_raw, callee_raw, inbound)
            if inbound is None:
                inbound = owned_inbound
        country = (self.country_of or self._ctx.default_country_of)(customer)
        if inbound is None:
            callee_e164 = normalize_cached(callee_raw, country, access) if callee_raw else None
            inbound = bool(callee_e164 and self.owner_of is not None and self.owner_of(callee_e164) == customer)
        if callee_raw or event == "start" or event == "answer":
            direction, caller, callee, did = classify(self._ctx, inbound, caller_raw, callee_raw, country)
        else:  # an end record without a callee (an in-dialog BYE): the call is known by its id
            direction, callee = (Direction.INBOUND if inbound else Direction.OUTBOUND), ""
            caller = normalize_cached(caller_raw, country, access) or caller_raw if caller_raw else ""
            did = None if inbound else (caller or None)
        fields: dict[str, Any] = {
            "call_id": call_id, "customer_id": customer, "direction": direction, "caller": caller,
            "callee": callee, "did": did, "event": event, "at": at, "hangup_cause": hangup_cause,
            "source_ip": source_ip or None, "user_agent": user_agent or None,
        }  # fmt: skip
        if caller != caller_raw:
            fields["caller_raw"] = caller_raw
        if callee != callee_raw:
            fields["callee_raw"] = callee_raw
        try:
            return CallEvent(**fields)
        except ValidationError as exc:
            raise RejectError(validation_reason(exc, fmt)) from None

    def _owner(self, fmt: str, caller_raw: str, callee_raw: str, inbound: bool | None) -> tuple[str, bool]:
        """(customer, inbound) from the rules' DID owners: the callee's owner first unless surely outbound."""
        country, access = self.settings.default_country, self.settings.access_codes
        callee = normalize_cached(callee_raw, country, access) if callee_raw else None
        caller = normalize_cached(caller_raw, country, access) if caller_raw else None
        if self.owner_of is not None:
            order = [(caller, False)] if inbound is False else [(callee, True), (caller, False)]
            if inbound is True:
                order = [(callee, True)]
            for number, is_inbound in order:
                owner = self.owner_of(number) if number else None
                if owner is not None:
                    return owner, is_inbound
        raise RejectError(
            f"{fmt}: no account code, and neither caller {caller_raw!r} nor callee {callee_raw!r} is a DID of a "
            "customer in the rules (customers.<id>.dids)"
        )

    # -- formats -------------------------------------------------------------------------
    def _jsonl(self, text: str) -> CallEvent:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise RejectError(f"{JSONL}: bad JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise RejectError(f"{JSONL}: not a JSON object")
        at = obj.get("at")
        if isinstance(at, str):
            try:
                when = datetime.fromisoformat(at)
            except ValueError:
                raise RejectError(f"{JSONL}: bad timestamp {at[:40]!r} in field at") from None
            obj["at"] = naive_to_utc(when, self._ctx) if when.tzinfo is None else when  # counted: said at the end
        customer = obj.get("customer_id")
        if isinstance(customer, str) and customer:
            country = (self.country_of or self._ctx.default_country_of)(customer)
            access = self.settings.access_codes
            for key in ("caller", "callee", "did"):
                value = obj.get(key)
                if isinstance(value, str) and value:
                    new = normalize_cached(value, country, access)
                    if new is not None and new != value:
                        obj[key] = new
                        if key != "did" and obj.get(f"{key}_raw") is None:
                            obj[f"{key}_raw"] = value
        try:
            return CallEvent.model_validate(obj)
        except ValidationError as exc:
            raise RejectError(validation_reason(exc, JSONL)) from None

    def _freeswitch(self, text: str) -> CallEvent:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise RejectError(f"{FS}: bad JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise RejectError(f"{FS}: not a JSON object")

        def v(key: str) -> str:
            value = obj.get(key)
            return value.strip() if isinstance(value, str) else ("" if value is None else str(value))

        name = v("Event-Name")
        kind = _FS_EVENTS.get(name)
        if kind is None:
            raise NotACallEvent(f"{FS}: event {name or '(no Event-Name)'} is not a call start, answer or end")
        call_id = v("Unique-ID")
        if not call_id:
            raise RejectError(f"{FS}: {name} without Unique-ID")
        at = epoch_us(v("Event-Date-Timestamp"), "Event-Date-Timestamp", FS)
        if kind == "end":
            at = epoch_us(v("Caller-Channel-Hangup-Time"), "Caller-Channel-Hangup-Time", FS) or at
        if at is None:
            raise RejectError(f"{FS}: {name} without Event-Date-Timestamp")
        cause: int | None = None
        if kind == "end":
            q850 = v("variable_hangup_cause_q850")
            cause = int(q850) if q850.isdigit() and int(q850) <= 127 else fs_cause(v("Hangup-Cause"), "Hangup-Cause",
                                                                                    FS)[1]
        return self.build(
            FS, call_id=call_id, event=kind, at=at, customer=v("variable_accountcode"),
            caller_raw=v("Caller-Caller-ID-Number"), callee_raw=v("Caller-Destination-Number"),
            inbound=freeswitch_inbound(self._ctx, v("Caller-Context")) if v("Caller-Context") else None,
            hangup_cause=cause, source_ip=v("Caller-Network-Addr") or v("variable_sip_received_ip"),
            user_agent=v("variable_sip_user_agent"),
        )  # fmt: skip

    def _ami(self, text: str) -> CallEvent:
        fields: dict[str, str] = {}
        for raw_line in text.splitlines():
            line = raw_line.strip()
            if not line:
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise RejectError(f"{AMI}: line {line[:40]!r} is not 'Key: value'")
            fields.setdefault(key.strip().lower(), value.strip())
        name = fields.get("event", "")
        if not name:
            raise RejectError(f"{AMI}: no Event header")
        low = name.lower()
        if low in _AMI_START:
            kind = "start"
        elif low == "dialend":
            if fields.get("dialstatus", "").upper() != "ANSWER":
                raise NotACallEvent(f"{AMI}: DialEnd {fields.get('dialstatus', '')} (the Hangup ends the call)")
            kind = "answer"
        elif low == "hangup":
            kind = "end"
        else:
            raise NotACallEvent(f"{AMI}: event {name} is not a call start, answer or end")
        call_id = fields.get("linkedid") or fields.get("uniqueid") or ""
        if not call_id:
            raise RejectError(f"{AMI}: {name} without Linkedid or Uniqueid")
        stamp = fields.get("timestamp", "")
        if not stamp:
            raise RejectError(f"{AMI}: {name} without Timestamp (set timestampevents = yes in manager.conf)")
        try:
            at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(stamp))
        except (ValueError, OverflowError):
            raise RejectError(f"{AMI}: bad Timestamp {stamp[:40]!r}") from None
        cause: int | None = None
        if kind == "end" and fields.get("cause", "").isdigit() and int(fields["cause"]) <= 127:
            cause = int(fields["cause"])
        context = fields.get("context", "")
        callee = fields.get("exten", "")
        if callee in ("s", "h", "i", "t"):  # dial-plan special extensions, not a number
            callee = ""
        return self.build(
            AMI, call_id=call_id, event=kind, at=at, customer=fields.get("accountcode", ""),
            caller_raw=fields.get("calleridnum", "").replace("<unknown>", ""), callee_raw=callee,
            inbound=asterisk_inbound(self._ctx, context) if context else None, hangup_cause=cause,
        )  # fmt: skip

    def _kamailio(self, text: str) -> CallEvent:
        tx = kamailio_events.acc_transaction(text, self._ctx)
        if tx is None:
            raise NotACallEvent(f"{KAM}: not an acc record")
        found = kamailio_events.acc_call_event(tx)
        if found is None:
            raise NotACallEvent(f"{KAM}: {tx.method} {tx.code} is not a call start, answer or end")
        return self.build(
            KAM, call_id=found["call_id"], event=found["event"], at=found["at"], customer=found["customer"],
            caller_raw=found["caller_raw"], callee_raw=found["callee_raw"], inbound=None,
            hangup_cause=found["hangup_cause"], source_ip=found["source_ip"], user_agent=found["user_agent"],
        )  # fmt: skip


def sniff_call_event(text: str) -> str:
    """The call-event format of one input, by its shape.

    Raises
    ------
    RejectError
        None of the formats.
    """
    head = text.lstrip()
    if head.startswith("{"):
        return FS if '"Event-Name"' in head else JSONL
    if "ACC:" in head or _KAMAILIO_LOG.match(head):
        return KAM
    if head[:6].lower() == "event:" or "\nEvent:" in head or "\nevent:" in head:
        return AMI
    raise RejectError("auto: not a call event of a known format (" + ", ".join(CALL_EVENT_FORMATS[1:]) + ")")


def _blocks(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """AMI: consecutive non-blank lines as one block, with its first line number; ``#`` lines alone."""
    block: list[str] = []
    first = 0
    for number, line in lines:
        if line.lstrip().startswith("#"):
            yield number, line
        elif line.strip():
            if not block:
                first = number
            block.append(line)
        elif block:
            yield first, "\n".join(block)
            block = []
    if block:
        yield first, "\n".join(block)


def read_call_events(
    path: str | os.PathLike[str], fmt: str = "auto", parser: CallEventParser | None = None
) -> Iterator[ParsedCallEvent]:
    """One :class:`ParsedCallEvent` per input of a call-events file, accepted, rejected or skipped.

    Lines are read in order (UTF-8, undecodable bytes replaced); an AMI file (``asterisk-ami``,
    or ``auto`` whose first input looks like one) is read as blank-line-separated blocks, the
    ``line`` of a block being its first. ``auto`` fixes the format from the first non-comment
    input. Blank lines and ``#`` comments are skipped.

    Raises
    ------
    ValueError
        Unknown ``fmt`` (raised on the first ``next()``).
    OSError
        The file cannot be read.
    """
    if fmt not in CALL_EVENT_FORMATS:
        raise ValueError(f"unknown call-event format {fmt!r}; expected one of {', '.join(CALL_EVENT_FORMATS)}")
    parse = parser or CallEventParser()
    source = os.fspath(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        numbered = ((n, line.rstrip("\r\n")) for n, line in enumerate(handle, 1))
        pending: list[tuple[int, str]] = []
        for number, line in numbered:  # the first input fixes the format
            pending.append((number, line))
            if line.strip() and not line.lstrip().startswith("#"):
                break
        if fmt == "auto" and pending and pending[-1][1].strip() and not pending[-1][1].lstrip().startswith("#"):
            try:
                fmt = sniff_call_event(pending[-1][1])
            except RejectError:
                pass
        inputs: Iterator[tuple[int, str]] = _chain(pending, numbered)
        if fmt == AMI:
            inputs = _blocks(inputs)
        for number, text in inputs:
            if not text.strip() or text.lstrip().startswith("#"):
                yield ParsedCallEvent(source, number, text, None, None, skipped=True)
                continue
            try:
                event = parse.parse(text, fmt)
            except NotACallEvent as exc:
                yield ParsedCallEvent(source, number, text, None, None, skipped=True, note=str(exc))
            except RejectError as exc:
                yield ParsedCallEvent(source, number, text, None, str(exc))
            else:
                yield ParsedCallEvent(source, number, text, event, None)


def _chain(first: list[tuple[int, str]], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield from first
    yield from rest
