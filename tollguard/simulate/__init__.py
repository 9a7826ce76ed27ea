"""Seeded, labelled CDR traffic generator.

:func:`simulate` produces the calls of a set of customers (tenants of the cloud
PBX / SIP trunking service) over a stretch of time, in **arrival order** (a CDR
is written when its call ends, so records come sorted by ``end``), with optional
*episodes*: labelled injections of one of the patterns the detectors look for.
The same ``seed`` gives byte-identical output; records are streamed (only the
calls still in progress are held in memory), so a million CDRs cost little
memory.

Benign traffic follows business hours in the customer's local time (08-19 on
weekdays, little at night and at weekends), a realistic answer-seizure ratio
(ASR 0.55-0.7 outbound), lognormal talk times (mean 120-240 s), distinct valid
destinations, occasional toll-free and emergency (112) calls, and healthy media
counters on answered calls. Every public number is valid for libphonenumber.

Episode kinds (:data:`EPISODE_KINDS`) and their default sizes are documented on
:class:`Episode`; :func:`scenario` builds the presets that
``tollguard simulate --scenario`` takes (:data:`SCENARIOS`). Each label carries the event the
episode must get (:data:`REQUIRED_LEVEL`).

With ``variety`` (``run_scenario(..., variety=True)``, scenario ``"varied"``) the customers and
each episode's customer, window, time of day and parameters are drawn, seeded, from the wide
ranges of :mod:`tollguard.simulate.variety` (:data:`EPISODE_RANGES`, every range with its
source); without it (the default, and the built-in example) the classic episodes are built,
unchanged. Honest traps (:mod:`tollguard.simulate.traps`, :data:`TRAP_KINDS`: a hotline at
exactly 20 calls, a heavy toll-free caller, a firm calling 40 countries, ...) are benign
customers whose traffic looks odd (``traps=True``, scenario ``"traps"``); they are labelled in
``Simulation.trap_labels``.

Examples
--------
>>> from datetime import UTC, datetime
>>> profiles = default_profiles(3, seed=7)
>>> sim = simulate(datetime(2025, 3, 11, tzinfo=UTC), 60, profiles,
...                [Episode("autodialer", profiles[0].customer_id, 10, 20)], seed=7)
>>> records = list(sim)
>>> sim.labels[0].n_calls == len(sim.labels[0].call_ids) == 600
True
"""

from __future__ import annotations

from .episodes import (
    EPISODE_DEFAULTS,
    EPISODE_KINDS,
    HIGH_COST_PREFIXES,
    HIGH_RISK_PREFIXES,
    NEW_COUNTRY_PREFIXES,
    REQUIRED_LEVEL,
    SCENARIOS,
    Episode,
    EpisodeLabel,
    scenario,
)
from .profiles import CustomerProfile, default_profiles
from .simulation import Simulation, run_scenario, simulate
from .traps import TRAP_KINDS, Trap, honest_traps
from .variety import EPISODE_RANGES
from .writers import customers_rules, write, write_labels, write_rules

__all__ = [
    "EPISODE_DEFAULTS",
    "EPISODE_KINDS",
    "EPISODE_RANGES",
    "HIGH_COST_PREFIXES",
    "HIGH_RISK_PREFIXES",
    "NEW_COUNTRY_PREFIXES",
    "REQUIRED_LEVEL",
    "SCENARIOS",
    "TRAP_KINDS",
    "CustomerProfile",
    "Episode",
    "EpisodeLabel",
    "Simulation",
    "Trap",
    "customers_rules",
    "default_profiles",
    "honest_traps",
    "run_scenario",
    "scenario",
    "simulate",
    "write",
    "write_labels",
    "write_rules",
]
