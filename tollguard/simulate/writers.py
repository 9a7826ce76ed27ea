"""Output: CDRs in the adapters' formats, episode labels as JSON lines, and a rules file for the customers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from tollguard.cdr import CallDetailRecord

from .episodes import EpisodeLabel
from .profiles import CustomerProfile

# --------------------------------------------------------------------------- output


def _open(path: str | Path | IO[str]) -> tuple[IO[str], bool]:
    if hasattr(path, "write"):
        return path, False  # type: ignore[return-value]
    if str(path) == "-":
        return sys.stdout, False
    return open(path, "w", encoding="utf-8", newline=""), True


def write(
    records: Iterable[CallDetailRecord], fmt: str, path: str | Path | IO[str], timezone: str = "UTC"
) -> int:
    """Write records, one line each, in one of the adapters' formats.

    Parameters
    ----------
    records : iterable of CallDetailRecord
    fmt : str
        A format of :func:`tollguard.adapters.writers.write_record`: ``"jsonl"`` (the canonical
        model), ``"asterisk-csv"``, ``"freeswitch-csv"``, ``"freeswitch-json"``.
    path : str, Path or text file
        Destination; ``"-"`` is standard output.
    timezone : str
        IANA zone of the naive local timestamps of the CSV formats (see ``write_record``).

    Returns
    -------
    int
        Number of records written.

    Raises
    ------
    ValueError
        Unknown ``fmt`` (raised before the file is opened).
    """
    from tollguard.adapters.writers import WRITE_FORMATS, write_record  # lazy: keeps this module light

    if fmt not in WRITE_FORMATS:
        raise ValueError(f"cannot write CDR format {fmt!r}; expected one of {', '.join(WRITE_FORMATS)}")
    out, close = _open(path)
    n = 0
    try:
        for rec in records:
            line = write_record(fmt, rec, timezone)
            out.write(line)
            out.write("\n")
            n += 1
    finally:
        if close:
            out.close()
    return n


def write_labels(labels: Iterable[EpisodeLabel], path: str | Path | IO[str]) -> int:
    """Write episode labels as JSON lines (see :meth:`EpisodeLabel.to_json_dict`); returns the count."""
    out, close = _open(path)
    n = 0
    try:
        for lab in labels:
            out.write(json.dumps(lab.to_json_dict(), sort_keys=True))
            out.write("\n")
            n += 1
    finally:
        if close:
            out.close()
    return n


def customers_rules(profiles: Iterable[CustomerProfile], timezone: str | None = None) -> dict[str, Any]:
    """The rules-file sections that make the readers normalise simulated numbers right.

    The CSV formats (asterisk-csv, freeswitch-csv) and freeswitch-json carry national
    numbers as dialled (a British customer's CLI ``01617086800``); the readers turn them
    into E.164 with the customer's ``country`` from the rules (else
    ``ingest.default_country``, IT). jsonl carries E.164 and needs none of this.

    Parameters
    ----------
    profiles : iterable of CustomerProfile
    timezone : str, optional
        The ``timezone`` the CSV files were written with; other than UTC it becomes
        ``ingest.timezone``, so their naive local times are read back right.

    Returns
    -------
    dict
        ``{"customers": {customer_id: {"country": ..., "dids": {did: {}, ...}}}}``
        (plus ``{"ingest": {"timezone": ...}}``, ``"allow": {"detectors": [...]}`` for a
        profile with :attr:`~CustomerProfile.allow_detectors` and ``{did: {"capacity": n}}`` with
        :attr:`~CustomerProfile.bought_capacity`), ready for ``yaml.safe_dump``; a valid
        rules file (``tollguard rules check``), the other settings at their defaults.
    """
    rules: dict[str, Any] = {}
    if timezone and timezone not in ("UTC", "Etc/UTC", "Z"):
        rules["ingest"] = {"timezone": timezone}
    customers: dict[str, Any] = {}
    for p in profiles:
        did_rules = {"capacity": p.bought_capacity} if p.bought_capacity else {}
        section: dict[str, Any] = {"country": p.country, "dids": {did: dict(did_rules) for did in p.dids}}
        if p.allow_detectors:
            section["allow"] = {"detectors": list(p.allow_detectors)}
        customers[p.customer_id] = section
    rules["customers"] = customers
    return rules


def extension_globs(profiles: Iterable[CustomerProfile]) -> list[str]:
    """``ingest.extensions`` globs covering the simulated PBXs' extensions (``200`` .. ``200 + n - 1``).

    Simulated extension plans overlap national short codes (GB 202, 222, 248, 313, 333; FR 224),
    which the switch-format readers take for outbound calls unless the rules name the extensions.
    """
    hundreds: set[str] = set()
    for p in profiles:
        last = 200 + max(2, p.extensions) - 1
        hundreds.update(str(h) for h in range(2, last // 100 + 1))
    return [f"{h}??" for h in sorted(hundreds, key=int)]


def write_rules(
    profiles: Iterable[CustomerProfile],
    path: str | Path | IO[str],
    timezone: str | None = None,
    version: str = "simulated",
) -> int:
    """Write :func:`customers_rules` as a rules YAML file (``"-"`` = stdout); returns the customer count."""
    import yaml  # lazy: only this output needs it

    profiles = list(profiles)
    sections = customers_rules(profiles, timezone)
    ingest = {**sections.pop("ingest", {}), "extensions": extension_globs(profiles)}
    rules = {"version": version, "ingest": ingest, **sections}
    out, close = _open(path)
    try:
        out.write(
            "# Rules for replaying simulated CDRs (tollguard simulate --rules-out): each customer's\n"
            "# country and DIDs, so the CSV formats' national numbers normalise to the right E.164,\n"
            "# and the PBXs' extension numbers, which overlap some countries' short codes.\n"
        )
        yaml.safe_dump(rules, out, sort_keys=False, allow_unicode=True)
    finally:
        if close:
            out.close()
    return len(rules["customers"])
