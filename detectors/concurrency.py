"""Exact simultaneous-call counting over call intervals, shared by the concurrency detectors.

Calls are half-open intervals ``[start, end)`` in UTC epoch seconds: a call ending at
``t`` and one starting at ``t`` do not overlap. The interval list is kept sorted by end
(CDRs are released in end order), so finding the calls that overlap a new one costs
the number of overlapping calls, not the number stored.
"""

from __future__ import annotations

import bisect
from operator import itemgetter

#: Key of a call ``[start_s, end_s]``: its end (a C-level getter: bisect calls it log n times).
_end = itemgetter(1)


def insert_call(calls: list[list[float]], start_s: float, end_s: float) -> None:
    """Insert a call into ``calls`` (sorted by end) as :func:`add_call` does, without its profile.

    >>> calls = [[0.0, 10.0], [5.0, 30.0]]
    >>> insert_call(calls, 5.0, 20.0)
    >>> calls
    [[0.0, 10.0], [5.0, 20.0], [5.0, 30.0]]
    """
    bisect.insort(calls, [start_s, end_s], key=_end)


def add_call(calls: list[list[float]], start_s: float, end_s: float) -> list[tuple[float, int]]:
    """Insert a call and return the concurrency profile inside it.

    Parameters
    ----------
    calls : list of [start_s, end_s]
        Known calls sorted by end; modified in place (the new call is inserted).
    start_s, end_s : float
        The new call, UTC epoch seconds, ``end_s >= start_s``.

    Returns
    -------
    list of (time_s, count)
        Each point in ``[start_s, end_s)`` where the count of simultaneous calls
        changes, with the count from that point on; empty for a zero-length call.

    Examples
    --------
    >>> calls = [[0.0, 10.0]]
    >>> add_call(calls, 5.0, 20.0)
    [(5.0, 2), (10.0, 1)]
    >>> add_call(calls, 20.0, 30.0)   # touches end-to-start: no overlap
    [(20.0, 1)]
    """
    insert_call(calls, start_s, end_s)
    if end_s <= start_s:
        return []
    first = bisect.bisect_right(calls, start_s, key=_end)
    changes: list[tuple[float, int]] = []
    for call_start, call_end in calls[first:]:
        if call_start >= end_s:
            continue
        changes.append((max(call_start, start_s), 1))
        if call_end < end_s:
            changes.append((call_end, -1))
    changes.sort()  # at equal times -1 sorts before +1: an end and a start at t do not overlap
    profile: list[tuple[float, int]] = []
    count = 0
    for index, (time_s, delta) in enumerate(changes):
        count += delta
        if index + 1 < len(changes) and changes[index + 1][0] == time_s:
            continue
        if profile and profile[-1][1] == count:
            continue
        profile.append((time_s, count))
    return profile


def prune_calls(calls: list[list[float]], before_s: float) -> None:
    """Drop calls that ended before ``before_s`` (they can no longer overlap a new call)."""
    if calls and calls[0][1] < before_s:
        del calls[: bisect.bisect_left(calls, before_s, key=_end)]


def peak_of(calls: list[list[float]]) -> int:
    """Exact peak of simultaneous calls in a list of ``[start_s, end_s]`` (for tests and tools).

    >>> peak_of([[0, 10], [10, 20], [5, 15]])
    2
    """
    points = sorted([(s, 1) for s, e in calls if e > s] + [(e, -1) for s, e in calls if e > s])
    count = peak = 0
    for _, delta in points:
        count += delta
        peak = max(peak, count)
    return peak
