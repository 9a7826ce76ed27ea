"""Calls that are never evidence: outbound calls to emergency or toll-free numbers (issue 9, item 5).

An emergency call is always allowed (DESIGN §4b) and a toll-free call is free to the caller:
neither earns a fraudster anything, makes a dialer campaign, needs capacity the customer
pays for, or blames the customer's link, so no detector counts them. The fraud checks that
already skip them through :func:`tollguard.numbers.counted_destination` (which also skips
the customer's allowlist) need nothing more; the others (concurrency per DID, bandwidth)
ask :func:`never_evidence`.

Only the *destination* of an outbound call is trusted for this: the caller id of an inbound
call is whatever the calling side presents, so an inbound call "from 112" or from a
toll-free caller id is counted like any other (a pumping scheme could otherwise hide
behind a spoofed caller id).
"""

from __future__ import annotations

from tollguard.cdr import CallDetailRecord, Direction
from tollguard.numbers import NumberType, classify


def never_evidence(cdr: CallDetailRecord, country: str) -> bool:
    """True for an outbound call to an emergency number of ``country`` or to a toll-free number.

    >>> from tollguard.testing import make_cdr
    >>> [never_evidence(make_cdr(direction="outbound", callee=n), "IT") for n in ("113", "+39800123456",
    ...                                                                          "+80012345678", "+390612345678")]
    [True, True, True, False]
    >>> never_evidence(make_cdr(direction="inbound", caller="112"), "IT")   # a caller id can be spoofed
    False
    """
    if cdr.direction is not Direction.OUTBOUND:
        return False
    info = classify(cdr.callee, country)
    return info.is_emergency or info.number_type is NumberType.TOLL_FREE
