"""Enforcement at call setup (DESIGN §4b): may this call go through, given the suspensions in force?

A switch asks before it routes a call (``GET /v1/authorize``, served by the worker's web
side); the answer comes from the customers' suspensions in force
(:meth:`engine.core.Engine.active_suspensions`: status ``active`` or ``confirmed``) and
their scopes:

==========================  ==================================================================
scope kind                  calls it refuses
==========================  ==================================================================
``account``                 every call of the customer
``did``                     calls to that DID (inbound) or presenting it (outbound)
``cli``                     outbound calls presenting that CLI
``outbound_international``  outbound calls to a number outside the customer's country
``destination_prefix``      outbound calls whose callee starts with the prefix
==========================  ==================================================================

An emergency number of the customer's country (libphonenumber's short-number data, as
:func:`tollguard.numbers.classify` types it) is always allowed, whatever is suspended.

Numbers are normalised as the CDR adapters normalise them (E.164 for the customer's
country, ``rules.country_of``, and the rules' ``ingest.access_codes``; a short number
dialled out becomes its digits), so a scope taken from CDRs matches the number the switch
sends in whatever form it writes it (``0612345678``, ``0039…``, ``+39…``).

The call's direction is the caller's word where it gives one (``direction``); otherwise a
call is *inbound* when its ``did`` is its callee, or, without a ``did``, when its callee is
one of the customer's DIDs in the rules and its caller is not; every other call is
*outbound* (for an outbound call the ``did`` is the CLI it presents, as in a CDR).

Cost: :class:`SuspensionIndex` holds, per customer with something suspended, a dict per
scope kind (prefixes grouped by length), so a decision is a dict lookup for a customer with
nothing suspended and a handful of memoised normalisations and dict lookups otherwise.
:class:`Authorizer` rebuilds the index from the states when its version moved (the worker's
moves when it emits a suspension or a reactivation, and when its partitions move), or when
the index is older than ``max_age_s``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tollguard.events import ScopeKind
from tollguard.numbers import NumberInfo, classify, normalize, short_number
from tollguard.rules import Rules

Direction = Literal["inbound", "outbound", "internal"]
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound", "internal")

#: Suspension statuses that keep the service suspended (``confirmed``: termination recommended).
IN_FORCE = frozenset({"active", "confirmed"})


class NotReady(RuntimeError):
    """No index built yet and the states cannot be read now (the worker is still recovering)."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """The answer to one call: allowed, or refused by one suspension.

    Attributes
    ----------
    allow : bool
    suspension_event_id : str or None
        The suspension that refuses the call (None when allowed).
    scope_kind, scope_value : str or None
        That suspension's scope.
    reason : str or None
        That suspension's reason, with its latest evidence (as the NOC page shows it); for a call
        allowed on missing data (``fail_open``), why it was allowed.
    fail_open : str or None
        Set when the call is allowed because the worker lacks what it would judge by (fail open: an honest
        call is never blocked on missing data): ``unknown_customer`` (no state held here and not in the
        rules: the customer is new, or another worker holds it) or ``unreadable_callee`` (the callee is no
        phone number, so the customer's destination scopes cannot be checked).
    """

    allow: bool
    suspension_event_id: str | None = None
    scope_kind: str | None = None
    scope_value: str | None = None
    reason: str | None = None
    fail_open: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The ``/v1/authorize`` body (DESIGN §4b); an allow on missing data adds its ``reason``."""
        if self.allow:
            return {"allow": True} if self.reason is None else {"allow": True, "reason": self.reason}
        return {
            "allow": False,
            "suspension_event_id": self.suspension_event_id,
            "scope": {"kind": self.scope_kind, "value": self.scope_value},
            "reason": self.reason,
        }


ALLOW = Authorization(True)
#: Allowed because this worker knows nothing of the customer (fail open).
UNKNOWN_CUSTOMER = Authorization(
    True, reason="unknown customer: this worker holds no state for it and the rules do not name it, so the call "
    "is allowed (fail open); with several workers, ask the one that holds the customer", fail_open="unknown_customer")
#: Allowed because the callee is no phone number while the customer has destinations suspended (fail open).
UNREADABLE_CALLEE = Authorization(
    True, reason="callee is not a phone number, so the customer's suspended destinations could not be checked; "
    "the call is allowed (fail open)", fail_open="unreadable_callee")


def _refusal(row: Mapping[str, Any]) -> Authorization:
    return Authorization(False, row["event_id"], str(row["scope_kind"]), str(row["scope_value"]), row.get("reason"))


@dataclass(slots=True)
class CustomerBlocks:
    """One customer's suspended scopes, ready for lookups (values normalised like call numbers)."""

    country: str
    access_codes: tuple[str, ...]
    home_dids: frozenset[str]
    account: Authorization | None = None
    international: Authorization | None = None
    dids: dict[str, Authorization] = field(default_factory=dict)
    clis: dict[str, Authorization] = field(default_factory=dict)
    prefixes: dict[str, Authorization] = field(default_factory=dict)
    prefix_lengths: tuple[int, ...] = ()

    def inbound(self, did_n: str, callee_n: str) -> Authorization | None:
        """The suspension of the DID an inbound call reaches (its ``did``, else its callee), or None."""
        for number in (did_n, callee_n):
            hit = self.dids.get(number) if number and self.dids else None
            if hit is not None:
                return hit
        return None

    def presented(self, did_n: str, caller_n: str) -> Authorization | None:
        """The suspension of the number an outbound call presents, as a DID or a CLI, or None."""
        for table in (self.dids, self.clis):
            for number in (did_n, caller_n):
                hit = table.get(number) if number and table else None
                if hit is not None:
                    return hit
        return None

    def prefix(self, callee_n: str) -> Authorization | None:
        """The suspension of the longest suspended destination prefix the callee starts with, or None."""
        if self.prefix_lengths and callee_n:
            prefixes, n = self.prefixes, len(callee_n)
            for length in self.prefix_lengths:
                if length <= n:
                    hit = prefixes.get(callee_n[:length])
                    if hit is not None:
                        return hit
        return None


class SuspensionIndex:
    """Suspended scopes per customer, built from :meth:`engine.core.Engine.active_suspensions` rows.

    Parameters
    ----------
    rules : Rules
        Customers' countries and DIDs, ingest access codes.
    rows : iterable of mapping
        Suspension rows: ``customer_id``, ``event_id``, ``scope_kind``, ``scope_value``,
        ``status``, ``reason`` (and ``first_s``: when several suspensions cover one scope,
        the oldest answers). Rows whose status is not in force, and report-only rows
        (``report_only``: a trial's would-be suspension), are ignored.
    known : iterable of str, optional
        Customers the worker knows (states it holds; the rules' customers are added): a call of
        any other customer is allowed as :data:`UNKNOWN_CUSTOMER`. None: every customer is known.
    """

    __slots__ = ("customers", "known", "size")

    def __init__(self, rules: Rules, rows: Iterable[Mapping[str, Any]] = (),
                 known: Iterable[str] | None = None) -> None:
        self.customers: dict[str, CustomerBlocks] = {}
        self.known: frozenset[str] | None = None if known is None else frozenset(known) | frozenset(rules.customers)
        self.size = 0
        access = tuple(rules.ingest.access_codes)
        ordered = sorted(
            (r for r in rows if r.get("status", "active") in IN_FORCE and not r.get("report_only")),
            key=lambda r: (float(r.get("first_s") or 0.0), str(r["event_id"])),
        )
        for row in ordered:
            customer = str(row["customer_id"])
            blocks = self.customers.get(customer)
            if blocks is None:
                cust = rules.customers.get(customer)
                blocks = self.customers[customer] = CustomerBlocks(
                    country=rules.country_of(customer),
                    access_codes=access,
                    home_dids=frozenset(cust.dids) if cust is not None else frozenset(),
                )
            self._add(blocks, row)
            self.size += 1
        for blocks in self.customers.values():
            blocks.prefix_lengths = tuple(sorted({len(p) for p in blocks.prefixes}, reverse=True))

    @staticmethod
    def _add(blocks: CustomerBlocks, row: Mapping[str, Any]) -> None:
        kind, value, refusal = str(row["scope_kind"]), str(row["scope_value"]), _refusal(row)
        if kind == ScopeKind.ACCOUNT:
            blocks.account = blocks.account or refusal
        elif kind == ScopeKind.OUTBOUND_INTERNATIONAL:
            blocks.international = blocks.international or refusal
        elif kind == ScopeKind.DID:
            blocks.dids.setdefault(_number(value, blocks.country, blocks.access_codes), refusal)
        elif kind == ScopeKind.CLI:
            blocks.clis.setdefault(_number(value, blocks.country, blocks.access_codes), refusal)
        elif kind == ScopeKind.DESTINATION_PREFIX:
            blocks.prefixes.setdefault(_prefix(value, blocks.country), refusal)
        else:  # a scope kind this version does not know: refuse the whole account rather than ignore it
            blocks.account = blocks.account or refusal

    def authorize(
        self,
        customer: str,
        caller: str = "",
        callee: str = "",
        did: str = "",
        direction: Direction | None = None,
    ) -> Authorization:
        """Allow the call, or name the suspension that refuses it (see the module docstring).

        Parameters
        ----------
        customer : str
            The customer (account) placing or receiving the call.
        caller, callee, did : str
            Numbers as the switch has them (any form :func:`tollguard.numbers.normalize`
            takes); ``did`` may be empty.
        direction : {"inbound", "outbound", "internal"}, optional
            When the switch knows it; otherwise inferred (module docstring).

        Examples
        --------
        >>> from tollguard.rules import Rules
        >>> index = SuspensionIndex(Rules(version="doc"), [{"customer_id": "c1", "event_id": "e1",
        ...     "scope_kind": "destination_prefix", "scope_value": "+979", "status": "active", "reason": "r"}])
        >>> index.authorize("c1", "+390212345678", "+97912345678").allow
        False
        >>> index.authorize("c1", "+390212345678", "+390612345678").allow, index.authorize("c2", "", "+979123").allow
        (True, True)
        """
        blocks = self.customers.get(customer)
        if blocks is None:
            return ALLOW if self.known is None or customer in self.known else UNKNOWN_CUSTOMER
        country, access = blocks.country, blocks.access_codes
        dialled = _classify(callee, country, access) if callee else None
        if dialled is not None and dialled.is_emergency:
            return ALLOW
        if blocks.account is not None:
            return blocks.account
        callee_n = _callee(callee, dialled, country, access) if callee else ""
        caller_n = _number(caller, country, access) if caller else ""
        did_n = _number(did, country, access) if did else ""
        if direction is None:
            direction = _direction(caller_n, callee_n, did_n, blocks.home_dids)
        if direction == "inbound":
            return blocks.inbound(did_n, callee_n) or ALLOW
        # outbound (or internal): the number presented, as DID or CLI
        hit = blocks.presented(did_n, caller_n)
        if hit is not None:
            return hit
        if blocks.international is not None and direction == "outbound" and dialled is not None \
                and dialled.international:
            return blocks.international
        hit = blocks.prefix(callee_n)
        if hit is not None:
            return hit
        if (blocks.prefix_lengths or blocks.international is not None) and not _DIALLABLE.fullmatch(callee_n):
            return UNREADABLE_CALLEE
        return ALLOW


#: A callee as normalised for the checks (E.164, or the digits of a short or national number): anything else
#: (``sip:alice@…``, letters, empty) cannot be judged against destination scopes.
_DIALLABLE = re.compile(r"\+?\d+")


def _direction(caller_n: str, callee_n: str, did_n: str, home_dids: frozenset[str]) -> Direction:
    if did_n:
        return "inbound" if did_n == callee_n and did_n != caller_n else "outbound"
    if callee_n in home_dids and caller_n not in home_dids:
        return "inbound"
    return "outbound"


def _number(raw: str, country: str, access: tuple[str, ...]) -> str:
    """A caller or DID as the adapters write it: E.164 where it normalises, else as given."""
    try:
        return normalize(raw, country, access) or raw.strip()
    except ValueError:
        return raw.strip()


def _classify(raw: str, country: str, access: tuple[str, ...]) -> NumberInfo | None:
    try:
        return classify(raw, country, access)
    except ValueError:
        return None


def _callee(raw: str, info: NumberInfo | None, country: str, access: tuple[str, ...]) -> str:
    """A callee as the detectors see it: E.164 (as written when in international form but
    invalid, so prefix rules still apply), else the short number it dials, else as given."""
    if info is not None and info.e164:
        return info.e164
    try:
        return short_number(raw, country, access) or raw.strip()
    except ValueError:
        return raw.strip()


def _prefix(value: str, country: str) -> str:
    """A destination-prefix scope value in the form a normalised callee starts with.

    ``+979`` and ``00979`` → ``+979``; digits alone are a short number of the country
    when libphonenumber knows it as one (``4242``), else an E.164 prefix (``881`` → ``+881``).
    """
    p = "".join(value.split())
    if p.startswith("+") or not p.isdigit():
        return p
    if p.startswith("00"):
        return "+" + p[2:]
    try:
        if short_number(p, country) is not None:
            return p
    except ValueError:
        pass
    return "+" + p


class Authorizer:
    """Answers :meth:`authorize` from an index rebuilt lazily when the suspensions change.

    Parameters
    ----------
    rules : Rules
    suspensions : callable
        Returns every suspension row in force (``customer_id`` included), e.g. the
        :meth:`engine.core.Engine.active_suspensions` rows of every local state.
    version : callable, optional
        A value that moves whenever the suspensions may have changed (the worker: how many
        suspensions and reactivations it emitted, and how many rebalances it went through);
        the index is rebuilt at the first call that sees it moved. :meth:`changed` moves it too.
    ready : callable, optional
        Whether ``suspensions`` may be read now (a worker recovering its tables says no:
        the last index keeps answering, and :class:`NotReady` is raised if there is none).
    max_age_s : float, optional
        Rebuild an index older than this even if the version did not move (a safety net
        for a change nothing reported); None: only when the version moves.
    clock : callable
        Monotonic seconds (tests).
    known : callable, optional
        Returns the customers whose states this worker holds (read with the suspensions at each
        rebuild): others, unless the rules name them, are answered :data:`UNKNOWN_CUSTOMER`. None:
        every customer counts as known.
    """

    def __init__(
        self,
        rules: Rules,
        suspensions: Callable[[], Iterable[Mapping[str, Any]]],
        version: Callable[[], object] | None = None,
        ready: Callable[[], bool] | None = None,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        known: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.rules = rules
        self.suspensions = suspensions
        self.known = known
        self.version = version
        self.ready = ready
        self.max_age_s = max_age_s
        self.clock = clock
        #: Indexes built so far.
        self.rebuilds = 0
        self._changes = 0
        self._index: SuspensionIndex | None = None
        self._built: object = None
        self._built_at = 0.0

    def changed(self) -> None:
        """The suspensions may have changed: rebuild before the next answer."""
        self._changes += 1

    def index(self) -> SuspensionIndex:
        """The current index, rebuilt first when stale (and the states can be read).

        Raises
        ------
        NotReady
            No index yet and ``ready()`` says the states cannot be read now.
        """
        index = self._index
        key = (self._changes, self.version() if self.version is not None else None)
        stale = index is None or key != self._built or (
            self.max_age_s is not None and self.clock() - self._built_at > self.max_age_s
        )
        if index is not None and not stale:
            return index
        if self.ready is not None and not self.ready():
            if index is None:
                raise NotReady("the worker is still recovering its state; ask again shortly")
            return index
        index = self._index = SuspensionIndex(self.rules, self.suspensions(),
                                              known=self.known() if self.known is not None else None)
        self._built, self._built_at = key, self.clock()
        self.rebuilds += 1
        return index

    def authorize(
        self,
        customer: str,
        caller: str = "",
        callee: str = "",
        did: str = "",
        direction: Direction | None = None,
    ) -> Authorization:
        """See :meth:`SuspensionIndex.authorize`. Raises :class:`NotReady` before the first index."""
        return self.index().authorize(customer, caller, callee, did, direction)
