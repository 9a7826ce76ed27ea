"""``tollguard replay``: the main job on CDR files, without a broker (DESIGN §5).

Files are read in the order given, lines in order (arrival order, as the stream receives
them); the :class:`tollguard.engine.Engine` orders each customer's CDRs in event time
within the allowed lateness and runs the detectors. Every CDR line ends as exactly one
accepted record or one reject (with source, line, raw text and reason).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from tollguard.adapters import FORMATS, read_file
from tollguard.engine import CustomerState, Engine
from tollguard.errors import VerdictError
from tollguard.events import Event, Verdict
from tollguard.rules import Rules


@dataclass
class ReplaySummary:
    """Counts of one replay run; ``lines_read == accepted + rejected`` always holds.

    ``accepted`` counts CDR lines taken in, including ``merged_legs`` (further legs of a
    call) and re-deliveries (``duplicates``, counted once); ``calls`` is the number of
    distinct calls the detectors saw.
    ``skipped`` counts blank and ``#`` comment lines, which are not CDR lines.
    """

    files: list[str] = field(default_factory=list)
    verdicts_applied: int = 0
    verdicts_refused: int = 0
    lines_read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    merged_legs: int = 0
    late: int = 0
    skipped: int = 0
    calls: int = 0
    customers: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    events_by_detector: Counter[str] = field(default_factory=Counter)
    rejects_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def events(self) -> int:
        """Number of events emitted."""
        return sum(self.events_by_type.values())


def _reason_class(reason: str) -> str:
    """Group reject reasons for the summary: the reason without format name and quoted values.

    >>> _reason_class("asterisk-csv: bad timestamp 'xyz' in column end")
    'bad timestamp'
    """
    head, sep, rest = reason.partition(": ")
    text = rest if sep and (head in FORMATS or head == "auto") else reason
    for stop in (" '", ": ", ", got", " (", " at byte"):
        cut = text.find(stop)
        if cut > 0:
            text = text[:cut]
    return text if len(text) <= 60 else text[:57] + "..."


class Replay:
    """One replay run: engine, per-customer states, outputs and counts.

    Parameters
    ----------
    rules : Rules
    out : text stream
        Receives one JSON event per line.
    rejects : text stream
        Receives one JSON reject per line: ``{"source", "line", "raw", "reason"}``.
    engine : Engine, optional
    on_event : callable, optional
        Called with each event as it is written (the CLI shows them).
    model : models.model.AnomalyModel, optional
        Trained anomaly model for the default engine (``tollguard replay --model``).
    """

    def __init__(
        self,
        rules: Rules,
        out: IO[str],
        rejects: IO[str],
        engine: Engine | None = None,
        on_event: Callable[[Event], None] | None = None,
        model: Any = None,
    ) -> None:
        self.rules = rules
        self.engine = engine or Engine(rules, model=model)
        self.out = out
        self.rejects = rejects
        self.on_event = on_event
        self.states: dict[str, CustomerState] = {}
        self.summary = ReplaySummary()
        self.verdicts: list[tuple[Verdict, str, int]] = []  # (verdict, file, line), by verdict time
        self._suspended_by: dict[str, str] = {}  # suspension event id -> customer id
        self._event_time_s = float("-inf")

    def load_verdicts(self, path: str | Path) -> None:
        """Read a verdicts file (one JSON verdict a line); bad lines go to the rejects output.

        Verdicts are applied in the order of their ``at`` time, once replay's event time
        (the newest CDR end read) reaches it and the suspension has been emitted; what
        is left is applied at end of input, and refused (rejects output) when unknown.
        """
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    self.verdicts.append((Verdict.model_validate_json(line), str(path), number))
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    reason = f"bad verdict: {where}: {first['msg']}"
                    self._reject(str(path), number, line.rstrip("\n"), reason, cdr=False)
                    self.summary.verdicts_refused += 1
        self.verdicts.sort(key=lambda item: item[0].at)

    def _apply_due_verdicts(self, final: bool = False) -> None:
        while self.verdicts:
            verdict, source, line = self.verdicts[0]
            customer = self._suspended_by.get(verdict.suspension_event_id)
            if not final and (verdict.at.timestamp() > self._event_time_s or customer is None):
                return
            self.verdicts.pop(0)
            try:
                if customer is None:
                    raise VerdictError(f"unknown suspension {verdict.suspension_event_id}")
                events = self.engine.apply_verdict(self.states[customer], verdict)
            except VerdictError as exc:
                self.summary.verdicts_refused += 1
                self._reject(source, line, verdict.model_dump_json(), f"verdict refused: {exc}", cdr=False)
                continue
            self.summary.verdicts_applied += 1
            self._emit(events)

    def _emit(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.type == "suspension" and not event.termination_recommended:
                self._suspended_by[event.event_id] = event.customer_id
            self.out.write(orjson.dumps(event.to_json_dict()).decode() + "\n")
            self.summary.events_by_type[str(event.type)] += 1
            self.summary.events_by_detector[event.detector] += 1
            if self.on_event is not None:
                self.on_event(event)

    def _reject(self, source: str, line: int, raw: str, reason: str, cdr: bool = True) -> None:
        if cdr:
            self.summary.rejected += 1
            self.summary.rejects_by_reason[_reason_class(reason)] += 1
        self.rejects.write(json.dumps({"source": source, "line": line, "raw": raw, "reason": reason}) + "\n")

    def run_file(self, path: str | Path, fmt: str = "auto", progress: Callable[[int], None] | None = None) -> None:
        """Feed one file's lines, in order, to the engine. ``progress`` gets bytes consumed."""
        summary = self.summary
        summary.files.append(str(path))
        settings = self.rules.ingest
        engine = self.engine
        states = self.states
        for parsed in read_file(path, fmt, settings=settings, country_of=self.rules.country_of):
            if progress is not None:
                progress(len(parsed.raw) + 1)
            if parsed.skipped:
                summary.skipped += 1
                continue
            summary.lines_read += 1
            record = parsed.record
            if record is None:
                self._reject(parsed.source, parsed.line, parsed.raw, parsed.reason or "unparsable line")
                continue
            state = states.get(record.customer_id)
            if state is None:
                state = states[record.customer_id] = engine.new_state(record.customer_id)
            result = engine.ingest(state, record)
            end_s = record.end.timestamp()
            if end_s > self._event_time_s:
                self._event_time_s = end_s
                if self.verdicts:
                    self._apply_due_verdicts()
            if result.status == "late":
                summary.late += 1
                self._reject(parsed.source, parsed.line, parsed.raw, result.reason or "late")
                continue
            summary.accepted += 1
            if result.status == "duplicate":
                summary.duplicates += 1
            elif result.status == "merged":
                summary.merged_legs += 1
            if result.events:
                self._emit(result.events)

    def finish(self) -> ReplaySummary:
        """End of input: flush every customer (in order of first appearance) and close the counts."""
        for state in self.states.values():
            self._emit(self.engine.flush(state))
        self._apply_due_verdicts(final=True)
        self.summary.customers = len(self.states)
        self.summary.calls = self.summary.accepted - self.summary.duplicates - self.summary.merged_legs
        return self.summary


def replay_files(
    paths: Iterable[str | Path], rules: Rules, out: IO[str], rejects: IO[str], fmt: str = "auto", **kwargs: Any
) -> ReplaySummary:
    """Replay files in order and return the summary (the library form of ``tollguard replay``)."""
    verifications = kwargs.pop("verifications", None)
    run = Replay(rules, out, rejects, **kwargs)
    if verifications is not None:
        run.load_verdicts(verifications)
    for path in paths:
        run.run_file(path, fmt)
    return run.finish()
