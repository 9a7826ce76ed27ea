"""``tollguard replay``: the runner over files, without a broker (DESIGN §5).

Files are read in the order given, lines in order (arrival order, as the stream receives
them), and each line is given to the :class:`engine.runner.Runner` the Faust worker runs
too. Every CDR line ends as exactly one accepted record or one reject (with source,
position, raw text and reason).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from engine.core import CustomerState, Engine
from engine.runner import MemoryStore, Outcome, RunCounts, Runner, event_bytes
from tollguard.adapters import Parsed, read_file
from tollguard.adapters.call_events import CallEventParser, ParsedCallEvent, read_call_events
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
    #: call-event files (``--call-events``), their inputs read (``call_event_inputs ==
    #: call_events + call_events_rejected``) and those that are no call event (other event types,
    #: comments: ``call_events_skipped``)
    call_event_files: list[str] = field(default_factory=list)
    call_event_inputs: int = 0
    call_events_skipped: int = 0


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
        for parsed in read_file(path, fmt, settings=self.rules.ingest, country_of=self.rules.country_of):
            if progress is not None:
                progress(len(parsed.raw) + 1)
            self._take_cdr(parsed)

    def _take_cdr(self, parsed: Parsed) -> None:
        summary, runner = self.summary, self.runner
        if parsed.skipped:
            summary.skipped += 1
            return
        summary.lines_read += 1
        if parsed.record is None:
            outcome = runner.take_unparsable(parsed.source, parsed.line, parsed.raw, parsed.reason or "unparsable line")
        else:
            outcome = runner.take_record(parsed.record, parsed.source, parsed.line, parsed.raw)
        self._after(outcome)

    def _take_call_event(self, parsed: ParsedCallEvent) -> None:
        summary, runner = self.summary, self.runner
        if parsed.skipped:
            summary.call_events_skipped += 1
            return
        summary.call_event_inputs += 1
        if parsed.event is None:
            outcome = runner.bad_call_event(parsed.source, parsed.line, parsed.raw, parsed.reason or "unparsable")
        else:
            outcome = runner.take_call_event(parsed.event, parsed.source, parsed.line)
        self._after(outcome)

    def _after(self, outcome: Outcome) -> None:
        if outcome.events or outcome.rejects:
            self._write(outcome)
        runner = self.runner
        if self._verdicts and runner.event_time_s >= self._verdicts[0][0].at.timestamp():
            self._feed_verdicts(runner.event_time_s)

    def run_interleaved(
        self,
        cdr_paths: Iterable[str | Path],
        call_event_paths: Iterable[str | Path],
        fmt: str = "auto",
        call_events_fmt: str = "auto",
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Feed CDR files and call-event files to the runner interleaved in arrival order (DESIGN §3b).

        Each kind of file is read in the order given, lines in order; the two are merged as
        the stream receives them: a CDR arrives at its call's end, a call event at its own
        time (``at``), the earlier first (a CDR first at equal times). An input that gave no
        record (a reject, a comment) keeps its place after the input before it in its file.
        """
        rules = self.rules
        parser = CallEventParser(rules.ingest, rules.owner_of, rules.country_of)

        def cdrs() -> Iterator[tuple[float, Parsed | None, ParsedCallEvent | None]]:
            last = float("-inf")
            for path in cdr_paths:
                self.summary.files.append(str(path))
                for parsed in read_file(path, fmt, settings=rules.ingest, country_of=rules.country_of):
                    if parsed.record is not None:
                        last = parsed.record.end.timestamp()
                    yield last, parsed, None

        def calls() -> Iterator[tuple[float, Parsed | None, ParsedCallEvent | None]]:
            last = float("-inf")
            for path in call_event_paths:
                self.summary.call_event_files.append(str(path))
                for parsed in read_call_events(path, call_events_fmt, parser):
                    if parsed.event is not None:
                        last = parsed.event.at.timestamp()
                    yield last, None, parsed

        for _, cdr, event in heapq.merge(cdrs(), calls(), key=lambda item: item[0]):
            if cdr is not None:
                if progress is not None:
                    progress(len(cdr.raw) + 1)
                self._take_cdr(cdr)
            elif event is not None:
                if progress is not None:
                    progress(len(event.raw) + 1)
                self._take_call_event(event)

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
    """Replay files in order and return the summary (the library form of ``tollguard replay``).

    ``call_events=[paths]`` (and ``call_events_fmt``) interleaves call-event files with the CDRs
    in arrival order (:meth:`Replay.run_interleaved`).
    """
    verifications = kwargs.pop("verifications", None)
    call_events = kwargs.pop("call_events", None)
    call_events_fmt = kwargs.pop("call_events_fmt", "auto")
    run = Replay(rules, out, rejects, **kwargs)
    if verifications is not None:
        run.load_verdicts(verifications)
    if call_events:
        run.run_interleaved(paths, call_events, fmt, call_events_fmt)
    else:
        for path in paths:
            run.run_file(path, fmt)
    return run.finish()
