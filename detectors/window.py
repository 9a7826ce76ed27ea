"""One sliding event-time window with running aggregates, kept in a plain JSON-serialisable dict.

Every windowed count of the detectors is the same few moves: insert an entry at its
event time, add its terms to running sums and counters, and, as event time moves on,
drop the entries that left the window and take their terms back out, so a decision
costs O(1) amortised work per entry however long the window. :class:`Window` names
where one window's pieces live in a state dict and makes those moves; it owns no state
(the caller's dict, a Faust table value or replay's dict, holds it), so the state is
plain lists, dicts and numbers and survives a JSON round trip.

An entry is a list whose item ``time`` is its event time (UTC epoch seconds), or a bare
number that is its own time (``time=None``). Entries are kept in time order (one older
than the newest is inserted in place). An entry is in the window while
``time > now_s - window_s``: half-open, so an entry exactly ``window_s`` old has left.

Aggregates, each under its own key of the state:

* ``sums``: ``key -> term``, the running sum of the entries' terms (float or int);
* ``counts``: ``key -> index``: ``{value: n}`` of ``entry[index]``, a value dropped at 0;
* ``tallies``: ``key -> (index, term)``: ``{value: [n, sum of terms]}``, dropped at n = 0.

A term is an item index of the entry or a function ``(entry, state) -> number``.
``on_empty`` gives values set when an expiry empties the window (e.g. a float sum back to
``0.0``, dropping accumulated rounding, or an episode closed).

``max_entries`` caps the entries kept, so a very busy customer's state stays bounded:
adding beyond it drops the oldest entries, takes them out of the aggregates and counts
them in ``state[entries + "_capped"]`` (absent until the cap first drops something,
removed when the window empties). :func:`entry_cap` gives a cap no count threshold
exceeds, and a decision names the capped count in its evidence: its counts are then the
newest ``max_entries`` entries'.

Examples
--------
>>> calls = Window("calls", sums={"billsec": 1}, counts={"by_cli": 2})
>>> state = {"calls": [], "billsec": 0.0, "by_cli": {}}
>>> for entry in ([0.0, 30.0, "+3902"], [50.0, 60.0, "+3906"], [100.0, 0.0, "+3902"]):
...     dropped = calls.add(state, entry, max_entries=1000)  # [] until the cap drops something
>>> state["billsec"], state["by_cli"]
(90.0, {'+3902': 2, '+3906': 1})
>>> calls.expire(state, now_s=110.0, window_s=60.0)  # the entries of 0 s and 50 s left the window
[[0.0, 30.0, '+3902'], [50.0, 60.0, '+3906']]
>>> state
{'calls': [[100.0, 0.0, '+3902']], 'billsec': 0.0, 'by_cli': {'+3902': 1}}
>>> calls.add(state, [120.0, 10.0, "+3906"], max_entries=1)  # the cap drops the oldest entry
[[100.0, 0.0, '+3902']]
>>> state["calls_capped"], state["billsec"], state["by_cli"]
(1, 10.0, {'+3906': 1})
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

#: Entries one window keeps at most unless a count threshold needs more (:func:`entry_cap`):
#: far above every default threshold (the largest, 120 pumping calls an hour), so only a
#: flood of traffic from one customer, number or CLI reaches it.
MAX_ENTRIES = 100_000

#: An aggregate's term: an item index of the entry, or ``(entry, state) -> number``.
Term = int | Callable[[Any, dict[str, Any]], float]

_Fn = Callable[[Any, dict[str, Any]], Any]


def _split(term: Term) -> tuple[int | None, _Fn | None]:
    """(index, None) for an item index, (None, function) for a function: items are read inline (hot path)."""
    return (term, None) if isinstance(term, int) else (None, term)


def entry_cap(*counts: float) -> int:
    """``max_entries`` for a window whose checks compare its entry count with ``counts``.

    :data:`MAX_ENTRIES`, or the largest count when a threshold is set above it, so that
    the cap never keeps a configured threshold from being reached.

    >>> entry_cap(), entry_cap(60, 120), entry_cap(250_000.5)
    (100000, 100000, 250001)
    """
    cap = MAX_ENTRIES
    for count in counts:
        cap = max(cap, math.ceil(count))
    return cap


def sample_ids(entries: list[Any], n: int, index: int) -> list[Any]:
    """Item ``index`` (a call id) of the newest ``n`` entries, oldest first, as evidence; none for ``n = 0``.

    >>> calls = [[0.0, "a"], [1.0, "b"], [2.0, "c"]]
    >>> sample_ids(calls, 2, 1), sample_ids(calls, 6, 1), sample_ids(calls, 4, 1), sample_ids(calls, 0, 1)
    (['b', 'c'], ['a', 'b', 'c'], ['a', 'b', 'c'], [])
    """
    return [e[index] for e in entries[-n:]] if n > 0 else []


class Window:
    """Where one sliding window lives in a state dict, and the moves that keep it.

    Parameters
    ----------
    entries : str
        State key of the entry list, in time order.
    time : int or None
        Item index of an entry's event time (UTC epoch seconds); None: the entry is its time.
    sums, counts, tallies : mapping
        Running aggregates by state key (see the module docstring).
    on_empty : mapping
        State values set when an expiry empties the window.

    Attributes
    ----------
    capped_key : str
        ``entries + "_capped"``: the state key counting the entries the cap dropped.
    """

    __slots__ = ("_counts", "_key", "_on_empty", "_sums", "_tallies", "capped_key", "entries", "time")

    def __init__(
        self,
        entries: str = "calls",
        *,
        time: int | None = 0,
        sums: Mapping[str, Term] | None = None,
        counts: Mapping[str, int] | None = None,
        tallies: Mapping[str, tuple[int, Term]] | None = None,
        on_empty: Mapping[str, Any] | None = None,
    ) -> None:
        self.entries = entries
        self.time = time
        self._key: Callable[[Any], float] | None = None if time is None else itemgetter(time)
        self._sums = tuple((k, *_split(t)) for k, t in (sums or {}).items())
        self._counts = tuple((counts or {}).items())
        self._tallies = tuple((k, i, *_split(t)) for k, (i, t) in (tallies or {}).items())
        self._on_empty = dict(on_empty or {})
        self.capped_key = entries + "_capped"

    def add(self, state: dict[str, Any], entry: Any, *, max_entries: int) -> list[Any]:
        """Insert ``entry`` at its time and add its terms; return the oldest entries the cap dropped.

        Usually ``[]``; else the dropped entries, oldest first, already taken out of the
        aggregates and counted in ``state[entries + "_capped"]``.
        """
        entries: list[Any] = state[self.entries]
        t = self.time
        if not entries or (entries[-1] <= entry if t is None else entries[-1][t] <= entry[t]):
            entries.append(entry)
        else:
            bisect.insort_right(entries, entry, key=self._key)
        for key, index, fn in self._sums:
            state[key] += entry[index] if fn is None else fn(entry, state)
        for key, index in self._counts:
            counter, value = state[key], entry[index]
            counter[value] = counter.get(value, 0) + 1
        for key, index, term_index, fn in self._tallies:
            tally = state[key].setdefault(entry[index], [0, 0.0])
            tally[0] += 1
            tally[1] += entry[term_index] if fn is None else fn(entry, state)
        over = len(entries) - max_entries
        if over <= 0:
            return []
        dropped = entries[:over]
        self._take_out(state, dropped)
        del entries[:over]
        state[self.capped_key] = state.get(self.capped_key, 0) + over
        return dropped

    def expire(self, state: dict[str, Any], *, now_s: float, window_s: float) -> list[Any]:
        """Drop the entries at or before ``now_s - window_s`` and take out their terms; return them."""
        entries: list[Any] = state[self.entries]
        t = self.time
        cutoff_s = now_s - window_s
        if not entries or (entries[0] if t is None else entries[0][t]) > cutoff_s:
            return []
        n = bisect.bisect_right(entries, cutoff_s, key=self._key)
        gone = entries[:n]
        self._take_out(state, gone)
        del entries[:n]
        if not entries:
            state.update(self._on_empty)
            state.pop(self.capped_key, None)
        return gone

    def capped(self, state: dict[str, Any]) -> int:
        """Entries the cap dropped since the window was last empty (0: its counts are whole)."""
        return int(state.get(self.capped_key, 0))

    def _take_out(self, state: dict[str, Any], gone: list[Any]) -> None:
        for entry in gone:
            for key, index, fn in self._sums:
                state[key] -= entry[index] if fn is None else fn(entry, state)
            for key, index in self._counts:
                counter, value = state[key], entry[index]
                left = counter[value] - 1
                if left:
                    counter[value] = left
                else:
                    del counter[value]
            for key, index, term_index, fn in self._tallies:
                tally = state[key][entry[index]]
                tally[0] -= 1
                tally[1] -= entry[term_index] if fn is None else fn(entry, state)
                if not tally[0]:
                    del state[key][entry[index]]
