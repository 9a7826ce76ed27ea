"""``tollguard replay``: the runner over files, without a broker (DESIGN §5).

Files are read in the order given, lines in order (arrival order, as the stream receives
them), and each line is given to the :class:`engine.runner.Runner` the Faust worker runs
too. Every CDR line ends as exactly one accepted record or one reject (with source,
position, raw text and reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from engine.core import CustomerState, Engine
from engine.runner import MAX_RAW_CHARS, MemoryStore, Outcome, RunCounts, Runner, event_bytes
from tollguard.adapters import Parsed, ctx_for, read_file
from tollguard.cdr import CallDetailRecord
from tollguard.events import Event, Verdict
from tollguard.rules import Rules, owner_lookup


@dataclass
class ReplaySummary(RunCounts):
    """Counts of one replay run; ``lines_read == accepted + rejected`` always holds.

    ``skipped`` counts blank and ``#`` comment lines, which are not CDR lines.
    """

    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    skipped: int = 0
    customers: int = 0
    #: transaction records (Kamailio acc INVITE 200, auth challenges) that went into the CDR of a later line;
    #: counted in ``accepted`` and ``merged_legs`` too (a line of that call), so every line stays accepted or rejected
    paired: int = 0
    #: timestamps read without a time zone (in ``ingest.timezone``)
    naive_times: int = 0
    #: customers whose national numbers were normalised with ``ingest.default_country`` (no country of their own)
    default_country_customers: set[str] = field(default_factory=set)

    def assumption_notes(self, rules: Rules, timezone_chosen: bool, country_chosen: bool) -> list[str]:
        """One sentence per default the run relied on without the user choosing it (empty: none).

        ``timezone_chosen`` / ``country_chosen``: the user gave ``--timezone`` / ``--country`` or a
        rules file of their own setting ``ingest.timezone`` / ``ingest.default_country``.
        """
        notes = []
        if self.naive_times and not timezone_chosen:
            notes.append(
                f"{self.naive_times:,} timestamp(s) carried no time zone and were read as {rules.ingest.timezone} "
                "(the default): if the switch writes local time, give --timezone ZONE (e.g. Europe/Rome) or "
                "ingest.timezone in the rules"
            )
        if self.default_country_customers and not country_chosen:
            names = sorted(self.default_country_customers)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            notes.append(
                f"national numbers of {len(names)} customer(s) the rules give no country ({shown}) were normalised "
                f"as {rules.ingest.default_country} numbers (the default): give --country CC or "
                "customers.<id>.country in the rules"
            )
        return notes


def note_default_country(summary: ReplaySummary, rules: Rules, record: CallDetailRecord, line: str = "") -> None:
    """Add the record's customer to ``summary.default_country_customers`` when it has no country in the
    rules and a number of the record was written without ``+`` and normalised in this run (so the
    default country decided what it means). ``line``: the input text; a canonical line that already
    carries the E.164 form (``"+39…"``, with its ``caller_raw``) was normalised before, not here."""
    cid = record.customer_id
    if cid in summary.default_country_customers:
        return
    cust = rules.customers.get(cid)
    if cust is not None and cust.country:
        return
    for raw, e164 in ((record.caller_raw, record.caller), (record.callee_raw, record.callee)):
        if raw and raw[:1] != "+" and e164[:1] == "+" and f'"{e164}"' not in line:
            summary.default_country_customers.add(cid)
            return


class Replay:
    """One replay run: the runner, the output files and the counts.

    Parameters
    ----------
    rules : Rules
    out : text stream
        Receives one JSON event per line.
    rejects : text stream
        Receives one JSON reject per line (:class:`engine.runner.Reject`).
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
        self.store = MemoryStore()
        self.runner = Runner(self.engine, self.store)
        self.out = out
        self.rejects = rejects
        self.on_event = on_event
        self.summary = ReplaySummary()
        self.runner.counts = self.summary
        self._verdicts: list[tuple[Verdict, str, int]] = []  # (verdict, file, line) by verdict time
        self._changes: list[tuple[float, Rules]] = []  # (event time s, rules) by time: --rules-change
        #: (event time s given, rules version) of each rules change made live, in order
        self.rules_changed: list[tuple[float, str]] = []
        self._verdict_lines: dict[tuple[str, int], str] = {}  # (file, line) -> the verdict as written
        self._owner_of = owner_lookup(rules)

    @property
    def states(self) -> dict[str, CustomerState]:
        """Customer id -> state, in order of first appearance."""
        return self.store.states

    def load_verdicts(self, path: str | Path) -> None:
        """Read a verdicts file (one JSON verdict a line) into the runner; bad lines are rejected.

        A verdict arrives (is given to the runner) once replay's event time (the newest CDR
        end read) reaches its ``at``, as a live worker receives a verdict given at that time;
        what is left arrives after the end of the CDRs and the flush, and one whose
        suspension is unknown is refused into the rejects output.
        """
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    verdict = Verdict.model_validate_json(line)
                except ValidationError as exc:
                    self._write(self.runner.bad_verdict(str(path), number, line.rstrip("\n"), exc))
                    continue
                self._verdicts.append((verdict, str(path), number))
                self._verdict_lines[(str(path), number)] = line.rstrip("\r\n")
        self._verdicts.sort(key=lambda item: item[0].at)

    def change_rules_at(self, at_s: float, rules: Rules) -> None:
        """Make ``rules`` live once replay's event time reaches ``at_s`` (UTC epoch s).

        The change happens before the first CDR that ends after ``at_s``: a worker that picked up
        a changed rules file logs the event time it had reached (its newest CDR end), and took
        every CDR up to that one under the old rules, so a replay of the same input with that
        change gives what the stream gave. Detector states are kept
        (:meth:`engine.core.Engine.set_rules`); the lines are still read with the first rules'
        ``ingest`` settings.
        """
        self._changes.append((at_s, rules))
        self._changes.sort(key=lambda change: change[0])

    def _apply_changes(self, before_s: float) -> None:
        while self._changes and self._changes[0][0] < before_s:
            at_s, rules = self._changes.pop(0)
            self.engine.set_rules(rules)
            self.rules_changed.append((at_s, rules.version))

    def _feed_verdicts(self, until_s: float) -> None:
        """Give the runner every verdict of the file whose ``at`` is at or before ``until_s``."""
        verdicts = self._verdicts
        while verdicts and verdicts[0][0].at.timestamp() <= until_s:
            verdict, source, line = verdicts.pop(0)
            self._write(self.runner.take_verdict(verdict, source, line))

    def _write(self, outcome: Outcome) -> None:
        for event in outcome.events:
            self.out.write(event_bytes(event).decode() + "\n")
            if self.on_event is not None:
                self.on_event(event)
        for reject in outcome.rejects:
            if reject.kind == "verdict" and reject.position is not None:
                # the refused verdict as written in its file, not re-serialised
                written = self._verdict_lines.get((reject.source, reject.position))
                if written is not None:
                    reject = replace(reject, raw=written[:MAX_RAW_CHARS])
            self.rejects.write(reject.to_json_bytes().decode() + "\n")

    def run_file(self, path: str | Path, fmt: str = "auto", progress: Callable[[int], None] | None = None) -> None:
        """Feed one file's lines, in order, to the runner. ``progress`` gets bytes consumed."""
        summary = self.summary
        summary.files.append(str(path))
        ctx = ctx_for(self.rules.ingest)
        naive_before = ctx.naive_times
        try:
            take = self.take
            for parsed in read_file(path, fmt, settings=self.rules.ingest, country_of=self.rules.country_of,
                                    owner_of=self._owner_of):
                if progress is not None:
                    progress(len(parsed.raw) + 1)
                take(parsed)
        finally:
            summary.naive_times += ctx.naive_times - naive_before

    def _note_country(self, record: CallDetailRecord, line: str) -> None:
        """Remember the customer when the default country decided how its national numbers read."""
        note_default_country(self.summary, self.rules, record, line)

    def take(self, parsed: Parsed) -> None:
        """Feed one line read by the adapters (``tollguard.adapters.read_file``) to the runner.

        :meth:`run_file` calls it per line; ``tollguard backtest`` reads the input once and
        gives each line to two replays.
        """
        summary, runner = self.summary, self.runner
        if parsed.paired:  # a transaction record in the CDR of a later line: accepted, merged into that call
            summary.paired += 1
            summary.lines_read += 1
            summary.accepted += 1
            summary.merged_legs += 1
            return
        if parsed.skipped:
            summary.skipped += 1
            return
        if self._changes and parsed.record is not None and parsed.record.end.timestamp() > self._changes[0][0]:
            self._apply_changes(parsed.record.end.timestamp())
        summary.lines_read += 1
        if parsed.record is None:
            outcome = runner.take_unparsable(parsed.source, parsed.line, parsed.raw, parsed.reason or "unparsable line")
        else:
            self._note_country(parsed.record, parsed.raw)
            outcome = runner.take_record(parsed.record, parsed.source, parsed.line, parsed.raw)
        if outcome.events or outcome.rejects:
            self._write(outcome)
        if self._verdicts and runner.event_time_s >= self._verdicts[0][0].at.timestamp():
            self._feed_verdicts(runner.event_time_s)

    def finish(self) -> ReplaySummary:
        """End of input: flush every customer (in order of first appearance) and settle verdicts."""
        self._write(self.runner.flush())
        self._feed_verdicts(float("inf"))
        self._write(self.runner.settle())
        self.summary.customers = len(list(self.runner.store.customers()))
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
