"""``tollguard replay``: the runner over files, without a broker (DESIGN §5).

Files are read in the order given, lines in order (arrival order, as the stream receives
them), and each line is given to the :class:`engine.runner.Runner` the Faust worker runs
too. Every CDR line ends as exactly one accepted record or one reject (with source,
position, raw text and reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from engine.core import CustomerState, Engine
from engine.runner import MemoryStore, Outcome, RunCounts, Runner, event_bytes
from tollguard.adapters import Parsed, read_file
from tollguard.events import Event, Verdict
from tollguard.rules import Rules


@dataclass
class ReplaySummary(RunCounts):
    """Counts of one replay run; ``lines_read == accepted + rejected`` always holds.

    ``skipped`` counts blank and ``#`` comment lines, which are not CDR lines.
    """

    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    skipped: int = 0
    customers: int = 0


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
            self.rejects.write(reject.to_json_bytes().decode() + "\n")

    def run_file(self, path: str | Path, fmt: str = "auto", progress: Callable[[int], None] | None = None) -> None:
        """Feed one file's lines, in order, to the runner. ``progress`` gets bytes consumed."""
        self.summary.files.append(str(path))
        take = self.take
        for parsed in read_file(path, fmt, settings=self.rules.ingest, country_of=self.rules.country_of):
            if progress is not None:
                progress(len(parsed.raw) + 1)
            take(parsed)

    def take(self, parsed: Parsed) -> None:
        """Feed one line read by the adapters (``tollguard.adapters.read_file``) to the runner.

        :meth:`run_file` calls it per line; ``tollguard backtest`` reads the input once and
        gives each line to two replays.
        """
        summary, runner = self.summary, self.runner
        if parsed.skipped:
            summary.skipped += 1
            return
        if self._changes and parsed.record is not None and parsed.record.end.timestamp() > self._changes[0][0]:
            self._apply_changes(parsed.record.end.timestamp())
        summary.lines_read += 1
        if parsed.record is None:
            outcome = runner.take_unparsable(parsed.source, parsed.line, parsed.raw, parsed.reason or "unparsable line")
        else:
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
