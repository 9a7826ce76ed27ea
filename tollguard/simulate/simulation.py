"""The simulation: :class:`Simulation` merges benign traffic and episode calls into one arrival-ordered stream.

:func:`simulate` builds one; :func:`run_scenario` is profiles + scenario + simulation in one call.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from tollguard.cdr import CallDetailRecord

from .benign import _activity, _benign_call, _local
from .builders import _GENERATORS
from .calls import _Call, _cum, _Cust, _pick
from .episodes import _EXPECTED_DETECTOR, _SCOPE_KIND, REQUIRED_LEVEL, Episode, EpisodeLabel, scenario
from .profiles import _UTC_OFFSET_MIN, CustomerProfile, default_profiles
from .records import _build, _dt
from .traps import _TRAP_BUILDERS, Trap

# --------------------------------------------------------------------------- the simulation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class Simulation:
    """A built simulation: :meth:`records` streams the CDRs, :attr:`labels` holds the ground truth.

    Iterating the object is the same as iterating :meth:`records`. Each call of :meth:`records`
    regenerates the same stream from the seed (and refills the labels' ``call_ids``).
    :attr:`trap_labels` holds one label per honest trap (``required_level`` None: nothing may be
    raised for it); a ``duplicate_cdrs`` trap makes every CDR of its customer arrive twice (the
    same ``call_id``, the second copy up to ``max_delay_s`` later).
    """

    def __init__(
        self,
        start: datetime,
        minutes: int,
        profiles: list[CustomerProfile],
        episodes: list[Episode],
        seed: int,
        disorder_s: float = 0.0,
        traps: list[Trap] | None = None,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be a timezone-aware datetime")
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        if disorder_s < 0:
            raise ValueError(f"disorder_s must be >= 0, got {disorder_s}")
        self.start = start.astimezone(UTC)
        self.minutes = int(minutes)
        self.profiles = list(profiles)
        self.episodes = list(episodes)
        self.seed = seed
        self.disorder_s = float(disorder_s)
        self.traps = list(traps or [])
        ids = [p.customer_id for p in self.profiles]
        if len(set(ids)) != len(ids):
            raise ValueError("customer ids of the profiles must be unique")
        self._custs = [_Cust(p, i) for i, p in enumerate(self.profiles)]
        by_id = {c.cid: c for c in self._custs}
        self._start_ms = (self.start - _EPOCH) // _MS
        self._end_ms = self._start_ms + self.minutes * 60_000
        self._episode_calls: list[_Call] = []
        self._suppress: dict[str, list[tuple[int, int]]] = {}
        self.labels: list[EpisodeLabel] = []
        self.trap_labels: list[EpisodeLabel] = []
        self._duplicates: dict[str, float] = {}
        for j, ep in enumerate(self.episodes):
            if ep.customer_id not in by_id:
                raise ValueError(f"episode {j} ({ep.kind}) names unknown customer {ep.customer_id!r}")
            c = by_id[ep.customer_id]
            t0 = self._start_ms + int(ep.start_offset_min * 60_000)
            span = max(1, min(int(ep.duration_min * 60_000), self._end_ms - t0))
            prm = ep.effective_params()
            rng = random.Random(f"{seed}:episode:{j}:{ep.kind}:{ep.customer_id}")
            calls: list[_Call]
            if t0 >= self._end_ms:
                calls, scope = [], {"kind": _SCOPE_KIND[ep.kind], "value": c.cid}
            else:
                calls, scope = _GENERATORS[ep.kind](rng, c, t0, span, prm, j)
            calls = [x for x in calls if self._start_ms <= x[0] < self._end_ms]
            if ep.kind == "bandwidth":
                self._suppress.setdefault(c.cid, []).append((t0, t0 + span))
            self._episode_calls.extend(calls)
            self.labels.append(
                EpisodeLabel(
                    kind=ep.kind,
                    customer_id=c.cid,
                    detector=_EXPECTED_DETECTOR[ep.kind],
                    scope=scope,
                    start=_dt(min((x[0] for x in calls), default=t0)),
                    end=_dt(max((x[2] for x in calls), default=t0)),
                    n_calls=len(calls),
                    params={
                        **prm,
                        **ep.drawn,
                        "start_offset_min": ep.start_offset_min,
                        "duration_min": span / 60_000,
                    },
                    required_level=REQUIRED_LEVEL[ep.kind],
                )
            )
        for j, trap in enumerate(self.traps):
            if trap.customer_id not in by_id:
                raise ValueError(f"trap {j} ({trap.kind}) names unknown customer {trap.customer_id!r}")
            c = by_id[trap.customer_id]
            t0 = self._start_ms + int(trap.start_offset_min * 60_000)
            span = max(1, min(int(trap.duration_min * 60_000), self._end_ms - t0))
            prm = trap.effective_params()
            rng = random.Random(f"{seed}:trap:{j}:{trap.kind}:{trap.customer_id}")
            index = len(self.episodes) + j
            calls, scope = _TRAP_BUILDERS[trap.kind](rng, c, t0, span, prm, index) if t0 < self._end_ms else (
                [], {"kind": "account", "value": c.cid})
            calls = [x for x in calls if self._start_ms <= x[0] < self._end_ms]
            if trap.kind == "duplicate_cdrs":
                self._duplicates[c.cid] = float(prm["max_delay_s"]) * 1000
            self._episode_calls.extend(calls)
            self.trap_labels.append(
                EpisodeLabel(
                    kind=trap.kind,
                    customer_id=c.cid,
                    detector=None,
                    scope=scope,
                    start=_dt(min((x[0] for x in calls), default=t0)),
                    end=_dt(max((x[2] for x in calls), default=t0 + span)),
                    n_calls=len(calls),
                    params={**prm, "start_offset_min": trap.start_offset_min, "duration_min": span / 60_000},
                    required_level=None,
                )
            )
        self._episode_calls.sort(key=lambda x: (x[0], x[2], x[16]))

    def __iter__(self) -> Iterator[CallDetailRecord]:
        return self.records()

    def _groups(self) -> list[tuple[int, int, int, list[_Cust], list[float], float]]:
        keyed: dict[tuple[int, int, int], list[_Cust]] = {}
        for c in self._custs:
            key = (_UTC_OFFSET_MIN.get(c.p.country, 60), c.p.business_start_hour, c.p.business_end_hour)
            keyed.setdefault(key, []).append(c)
        groups = []
        for (off, sh, eh), custs in sorted(keyed.items()):
            rates = [c.p.calls_per_hour_peak for c in custs]
            total = sum(rates)
            if total <= 0:
                continue
            groups.append((off, sh, eh, custs, _cum(rates), total))
        return groups

    def records(self) -> Iterator[CallDetailRecord]:
        """Yield the CDRs in arrival order (by ``end``, plus ``disorder_s`` of jitter when set)."""
        labels = self.labels + self.trap_labels
        for lab in labels:
            lab.call_ids.clear()
        rng = random.Random(f"{self.seed}:benign")
        queue = _Arrivals(self.seed, self.disorder_s, self._duplicates, labels)
        groups = self._groups()
        pending = self._episode_calls
        pi = 0
        for m in range(self.minutes):
            t_ms = self._start_ms + m * 60_000
            # everything that ends (plus jitter) by now is final: later calls start at or after t_ms
            yield from queue.pop_until(t_ms)
            minute_end = t_ms + 60_000
            while pi < len(pending) and pending[pi][0] < minute_end:
                call = pending[pi]
                pi += 1
                queue.push(queue.arrival(call), call)
            if groups:
                self._benign_minute(queue, groups, rng, t_ms)
        while pi < len(pending):  # episode calls are already clipped to the run; defensive
            call = pending[pi]
            pi += 1
            queue.push(call[2], call)
        yield from queue.pop_until(None)

    def _benign_minute(
        self,
        queue: _Arrivals,
        groups: list[tuple[int, int, int, list[_Cust], list[float], float]],
        rng: random.Random,
        t_ms: int,
    ) -> None:
        """Draw the benign calls starting in the minute from ``t_ms`` (Poisson arrivals per group)."""
        suppress = self._suppress
        expo = rng.expovariate
        rnd = rng.random
        utc = _dt(t_ms)
        for off, sh, eh, custs, cum, total in groups:
            rate_per_s = total * _activity(_local(utc, off), sh, eh) / 3600.0
            if rate_per_s <= 0:
                continue
            s = expo(rate_per_s)
            while s < 60.0:
                c = custs[_pick(cum, rnd())]
                call = _benign_call(rng, c, t_ms + int(s * 1000))
                s += expo(rate_per_s)
                if suppress and c.cid in suppress and any(a <= call[0] < b for a, b in suppress[c.cid]):
                    continue
                queue.push(queue.arrival(call), call)


class _Arrivals:
    """The calls of a :meth:`Simulation.records` run waiting to arrive, by arrival time, and the call ids.

    A call of a customer with a ``duplicate_cdrs`` trap is pushed twice: the second copy up to
    ``max_delay_s`` later, with the first one's call id.
    """

    def __init__(self, seed: int, disorder_s: float, duplicates: dict[str, float], labels: list[EpisodeLabel]) -> None:
        self.labels = labels
        self.prefix = f"sim-{seed}-"
        self.heap: list[tuple[float, int, _Call]] = []
        self.seq = 0
        self.n_out = 0
        self.jitter_rng = random.Random(f"{seed}:disorder")
        self.disorder_ms = disorder_s * 1000
        self.dups = duplicates  # customer id -> largest delay of the second copy (ms)
        self.dup_rng = random.Random(f"{seed}:duplicates")
        self.twin_of: dict[int, int] = {}  # seq of a first copy -> seq of its second copy
        self.twin_id: dict[int, str] = {}  # seq of a second copy -> the call id given to the first

    def arrival(self, call: _Call) -> float:
        """When ``call`` arrives: its end, plus up to ``disorder_s`` of jitter."""
        end: float = call[2]
        return end + (self.jitter_rng.random() * self.disorder_ms if self.disorder_ms else 0)

    def push(self, key: float, call: _Call) -> None:
        heapq.heappush(self.heap, (key, self.seq, call))
        self.seq += 1
        dups = self.dups
        if dups and call[3] in dups:  # the second copy
            self.twin_of[self.seq - 1] = self.seq
            heapq.heappush(self.heap, (key + 1 + self.dup_rng.random() * dups[call[3]], self.seq, call))
            self.seq += 1

    def pop_until(self, t_ms: float | None) -> Iterator[CallDetailRecord]:
        """The records of the calls arriving by ``t_ms`` (None: all of them), in arrival order."""
        heap, pop, emit = self.heap, heapq.heappop, self._emit
        while heap and (t_ms is None or heap[0][0] <= t_ms):
            yield emit(pop(heap))

    def _emit(self, item: tuple[float, int, _Call]) -> CallDetailRecord:
        _, s, call = item
        if s in self.twin_id:
            return _build(self.twin_id.pop(s), call)
        self.n_out += 1
        cid = f"{self.prefix}{self.n_out:08d}"
        if s in self.twin_of:
            self.twin_id[self.twin_of.pop(s)] = cid
        if call[16] >= 0:
            self.labels[call[16]].call_ids.append(cid)
        return _build(cid, call)

def simulate(
    start: datetime,
    minutes: int,
    profiles: list[CustomerProfile],
    episodes: list[Episode] | None = None,
    seed: int = 0,
    disorder_s: float = 0.0,
    traps: list[Trap] | None = None,
) -> Simulation:
    """Simulate ``minutes`` of traffic of ``profiles`` with the given episodes.

    Parameters
    ----------
    start : datetime
        Start of the run, timezone-aware (converted to UTC).
    minutes : int
        Length of the run; calls *start* in ``[start, start + minutes)`` and are all emitted
        (calls still in progress at the end are emitted with their real end).
    profiles : list of CustomerProfile
        The customers (see :func:`default_profiles`).
    episodes : list of Episode, optional
        Labelled patterns to inject; episode calls outside the run are dropped.
    seed : int
        Seed of everything random; same inputs and seed give identical records and labels.
    disorder_s : float
        Arrival jitter: each record is emitted as if it arrived ``U(0, disorder_s)`` seconds after
        its ``end``. 0 (the default) gives records sorted by ``end``.
    traps : list of Trap, optional
        Honest traps (:mod:`tollguard.simulate.traps`), labelled in ``.trap_labels``.

    Returns
    -------
    Simulation
        Iterable of :class:`~tollguard.cdr.CallDetailRecord` (``.records()``), with ``.labels``
        (one :class:`EpisodeLabel` per episode, in the order of ``episodes``). Call ids are
        ``sim-{seed}-{n:08d}``, ``n`` = 1-based arrival index.
    """
    return Simulation(start, minutes, profiles, list(episodes or []), seed, disorder_s, traps)


def run_scenario(
    name: str = "all",
    *,
    start: datetime | None = None,
    minutes: int = 1440,
    customers: int = 10,
    seed: int = 0,
    disorder_s: float = 0.0,
    variety: bool = False,
    traps: bool = False,
) -> Simulation:
    """Profiles + scenario + simulation in one call (what ``tollguard simulate`` runs).

    ``start`` defaults to Tuesday 2025-03-11 00:00 UTC.

    With ``variety`` the customers are drawn from the wide ranges of
    :data:`~tollguard.simulate.variety.PROFILE_RANGES` and each episode's customer, window, time
    of day and parameters from :data:`~tollguard.simulate.variety.EPISODE_RANGES` (seeded); off
    (the default) gives the classic episodes of the built-in example. With ``traps`` one honest
    trap of each kind (:mod:`tollguard.simulate.traps`) is put on customers without an episode.
    The scenario ``"varied"`` is ``"all"`` with both; ``"traps"`` is ``"benign"`` with traps.
    """
    start = start or datetime(2025, 3, 11, tzinfo=UTC)
    if name == "varied":
        name, variety, traps = "all", True, True
    elif name == "traps":
        name, traps = "benign", True
    profiles = default_profiles(customers, seed, variety=variety)
    episodes = scenario(name, profiles, minutes, variety=variety, seed=seed, start=start)
    trap_list: list[Trap] = []
    if traps:
        from .traps import honest_traps

        profiles, trap_list = honest_traps(
            profiles, start, minutes, random.Random(f"{seed}:traps"),
            exclude={e.customer_id for e in episodes}, variety=variety,
        )
    return simulate(start, minutes, profiles, episodes, seed, disorder_s, trap_list)
