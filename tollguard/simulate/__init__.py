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
``tollguard simulate --scenario`` takes (:data:`SCENARIOS`).

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
    SCENARIOS,
    Episode,
    EpisodeLabel,
    scenario,
)
from .profiles import CustomerProfile, default_profiles
from .simulation import Simulation, run_scenario, simulate
from .writers import customers_rules, write, write_labels, write_rules

__all__ = [
    "EPISODE_KINDS",
    "EPISODE_DEFAULTS",
    "HIGH_COST_PREFIXES",
    "HIGH_RISK_PREFIXES",
    "NEW_COUNTRY_PREFIXES",
    "SCENARIOS",
    "CustomerProfile",
    "Episode",
    "EpisodeLabel",
    "Simulation",
    "customers_rules",
    "default_profiles",
    "run_scenario",
    "scenario",
    "simulate",
    "write",
    "write_labels",
    "write_rules",
]
