"""The ``tollguard`` command line (DESIGN §5).

Exit status: 0 on success, 1 when input lines were rejected (the count is printed),
2 on usage errors (bad option, unreadable rules file, missing input file).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from tollguard.errors import RulesError
from tollguard.events import Event
from tollguard.replay import Replay, ReplaySummary
from tollguard.rules import load_rules

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="tollguard: streaming anti-fraud and traffic-compliance detector for telephony CDRs.",
)
rules_app = typer.Typer(no_args_is_help=True, help="Analyst rules files.")
app.add_typer(rules_app, name="rules")

err = Console(stderr=True, soft_wrap=True)  # long reasons and paths stay on one line (grep-able)
FORMATS = ("auto", "asterisk-csv", "freeswitch-csv", "freeswitch-json", "jsonl")
#: Inputs above this size get a progress bar.
PROGRESS_MIN_BYTES = 2_000_000
#: Events printed in the end-of-run table; the rest are only in the events file.
SHOWN_EVENTS = 25


def _usage(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


@contextmanager
def _open_out(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yield handle


#: The built-in example: a simulated day of 10 customers with one episode of every kind.
EXAMPLE_SCENARIO = {"name": "all", "customers": 10, "seed": 1}


def _example_files(workdir: Path) -> list[Path]:
    """The built-in example input: a simulated day (every scenario) plus our real-layout files."""
    from tollguard import simulate

    day = workdir / "simulated-day.jsonl"
    sim = simulate.run_scenario(**EXAMPLE_SCENARIO)  # type: ignore[arg-type]
    simulate.write(sim.records(), "jsonl", day)
    simulate.write_labels(sim.labels, workdir / "simulated-day.labels.jsonl")
    files = [day]
    examples = Path(__file__).resolve().parent.parent / "tollguard" / "examples"
    files += sorted(p for p in examples.iterdir() if p.is_file() and p.suffix != ".md")
    return files


def _summary_table(summary: ReplaySummary, shown: list[Event]) -> None:
    table = Table(title="tollguard replay", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("files", str(len(summary.files)))
    table.add_row("CDR lines read", f"{summary.lines_read:,}")
    table.add_row("  accepted", f"{summary.accepted:,}")
    table.add_row("    distinct calls", f"{summary.calls:,}")
    table.add_row("    merged legs", f"{summary.merged_legs:,}")
    table.add_row("    duplicate deliveries", f"{summary.duplicates:,}")
    table.add_row("  rejected", f"{summary.rejected:,}")
    for reason, count in summary.rejects_by_reason.most_common(6):
        table.add_row(f"    {reason}", f"{count:,}")
    table.add_row("comment/blank lines", f"{summary.skipped:,}")
    if summary.verdicts_applied or summary.verdicts_refused:
        table.add_row("verdicts applied", f"{summary.verdicts_applied:,}")
        table.add_row("verdicts refused", f"{summary.verdicts_refused:,}")
    table.add_row("customers", f"{summary.customers:,}")
    table.add_row("events", f"{summary.events:,}")
    for kind, count in sorted(summary.events_by_type.items()):
        table.add_row(f"  {kind}", f"{count:,}")
    for det, count in sorted(summary.events_by_detector.items()):
        table.add_row(f"  by {det}", f"{count:,}")
    err.print(table)
    if shown:
        err.print(f"[bold]events[/bold] (first {len(shown)}; all of them in the events file)")
        for ev in shown:
            style = "red" if ev.cos == "critical" else "yellow" if ev.type == "alert" else "cyan"
            err.print(
                f"[{style}]{ev.occurred_at:%Y-%m-%d %H:%M:%S}  {ev.type}  {ev.detector}  {ev.customer_id}  "
                f"{ev.scope.kind}:{ev.scope.value}[/{style}]",
                highlight=False,
            )
            err.print(f"    {ev.reason}", highlight=False)


@app.command()
def replay(
    files: Annotated[list[Path] | None, typer.Argument(help="CDR files, read in this order (none: built-in example)")] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "auto",
    rules: Annotated[Path | None, typer.Option(help="rules file (default rules/default.yaml)")] = None,
    out: Annotated[str, typer.Option(help="events output, JSON lines ('-' = stdout)")] = "events.jsonl",
    rejects: Annotated[str, typer.Option(help="rejected lines with reasons, JSON lines")] = "rejects.jsonl",
    verifications: Annotated[Path | None, typer.Option(help="verdicts on suspensions, one JSON a line")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or tables")] = False,
) -> None:
    """Run the detectors over CDR files without a broker; write events and rejects."""
    if fmt not in FORMATS:
        raise _usage(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        ruleset = load_rules(rules)
    except RulesError as exc:
        raise _usage(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="tollguard-example-") as tmp:
        paths = list(files) if files else _example_files(Path(tmp))
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise _usage(f"no such file: {', '.join(missing)}")
        if not files and not quiet:
            err.print("[bold]built-in example input:[/bold] " + ", ".join(p.name for p in paths))
        shown: list[Event] = []

        def keep(event: Event) -> None:
            if len(shown) < SHOWN_EVENTS:
                shown.append(event)

        total = sum(p.stat().st_size for p in paths)
        with _open_out(out) as out_handle, _open_out(rejects) as rej_handle:
            run = Replay(ruleset, out_handle, rej_handle, on_event=keep)
            if verifications is not None:
                if not verifications.is_file():
                    raise _usage(f"no such file: {verifications}")
                run.load_verdicts(verifications)
            show_bar = not quiet and total >= PROGRESS_MIN_BYTES
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err,
                disable=not show_bar,
                transient=True,
            ) as bar:
                task = bar.add_task("replay", total=total)
                for path in paths:
                    bar.update(task, description=path.name)
                    run.run_file(path, fmt, progress=lambda n: bar.advance(task, n))
            summary = run.finish()
    if not quiet:
        _summary_table(summary, shown)
        err.print(f"events → {out}   rejects → {rejects}   rules {ruleset.version}")
    if summary.rejected or summary.verdicts_refused:
        err.print(
            f"[yellow]{summary.rejected} line(s) rejected, {summary.verdicts_refused} verdict(s) refused[/yellow]; "
            f"reasons in {rejects}"
        )
        raise typer.Exit(1)


@app.command("simulate")
def simulate_cmd(
    minutes: Annotated[int, typer.Option(min=1, max=60 * 24 * 31, help="length of the simulated traffic")] = 1440,
    customers: Annotated[int, typer.Option(min=0, max=100_000, help="number of customers")] = 10,
    scenario: Annotated[str, typer.Option(help="benign, all, or one episode kind")] = "all",
    seed: Annotated[int, typer.Option(help="random seed (same seed, same traffic)")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, asterisk-csv, freeswitch-csv, freeswitch-json")] = "jsonl",
    out: Annotated[str, typer.Option(help="CDR output file ('-' = stdout)")] = "-",
    labels: Annotated[str | None, typer.Option(help="labels output: one JSON per injected episode")] = None,
    start: Annotated[str | None, typer.Option(help="start time, ISO 8601 UTC (default 2025-03-11T00:00Z)")] = None,
    timezone: Annotated[str, typer.Option(help="time zone of the written local times (CSV formats)")] = "UTC",
    disorder_s: Annotated[float, typer.Option(help="arrival disorder, seconds (CDRs out of end order)")] = 0.0,
) -> None:
    """Write labelled simulated traffic: benign customers plus injected fraud episodes."""
    from datetime import datetime

    from tollguard import simulate

    if fmt == "auto" or fmt not in FORMATS:
        raise _usage(f"--format must be one of {', '.join(FORMATS[1:])}, got {fmt!r}")
    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        if begin is not None and begin.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2025-03-11T00:00Z")
        sim = simulate.run_scenario(
            scenario, start=begin, minutes=minutes, customers=customers, seed=seed, disorder_s=disorder_s
        )
    except ValueError as exc:
        raise _usage(str(exc)) from None
    count = simulate.write(sim.records(), fmt, out, timezone=timezone)
    if labels:
        simulate.write_labels(sim.labels, labels)
    err.print(f"{count:,} CDRs written ({fmt}) to {out}; {len(sim.labels)} episode(s)" +
              (f", labels in {labels}" if labels else ""))


@app.command()
def worker(
    broker: Annotated[str | None, typer.Option(help="Kafka bootstrap, kafka://host:port (env KAFKA_BOOTSTRAP_SERVERS)")] = None,
    rules: Annotated[Path | None, typer.Option(help="rules file (default rules/default.yaml)")] = None,
    app_id: Annotated[str | None, typer.Option("--app-id", help="consumer group / changelog prefix")] = None,
    topic_prefix: Annotated[str | None, typer.Option(help="prefix of every topic name")] = None,
    partitions: Annotated[int | None, typer.Option(help="partitions of the repartition topic and state table")] = None,
    store: Annotated[str | None, typer.Option(help="table store: memory:// or rocksdb://")] = None,
    datadir: Annotated[str | None, typer.Option(help="local data directory (one per worker on a host)")] = None,
    web_port: Annotated[int | None, typer.Option(help="port of the worker's web server (one per worker on a host)")] = None,
    fast_rebalance: Annotated[bool, typer.Option(help="short group timeouts (tests, single host)")] = False,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="debug, info, warn, error")] = "warn",
) -> None:
    """Run the streaming job: Faust agents consuming CDRs from Kafka, producing events."""
    from streams.worker import run_worker

    try:
        ruleset = load_rules(rules)
    except RulesError as exc:
        raise _usage(str(exc)) from None
    run_worker(
        ruleset,
        broker=broker,
        app_id=app_id,
        topic_prefix=topic_prefix,
        partitions=partitions,
        store=store,
        datadir=datadir,
        web_port=web_port,
        fast_rebalance=fast_rebalance,
        loglevel=loglevel,
    )


@app.command()
def produce(
    files: Annotated[list[Path], typer.Argument(help="CDR files, sent in this order")],
    broker: Annotated[str | None, typer.Option(help="Kafka bootstrap (env KAFKA_BOOTSTRAP_SERVERS)")] = None,
    topic: Annotated[str, typer.Option(help="topic to send to (prefix included)")] = "cdrs",
    fmt: Annotated[str, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "auto",
    rate: Annotated[float | None, typer.Option(help="offered load, CDRs per second (default: as fast as possible)")] = None,
    flush: Annotated[bool, typer.Option(help="end with the end-of-input control message (backfills, tests)")] = False,
    rules: Annotated[Path | None, typer.Option(help="rules file (ingest settings)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Feed CDR files into Kafka (kafka-python producer), one message per CDR line."""
    from streams.app import StreamSettings
    from streams.produce import produce_files

    if fmt not in FORMATS:
        raise _usage(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise _usage(f"no such file: {', '.join(missing)}")
    try:
        ruleset = load_rules(rules)
    except RulesError as exc:
        raise _usage(str(exc)) from None
    settings = StreamSettings.from_env(broker=broker)
    total = sum(p.stat().st_size for p in files)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, disable=quiet, transient=True,
    ) as bar:
        task = bar.add_task("produce", total=total)
        summary = produce_files(
            files, settings.broker, topic, ruleset, fmt=fmt, rate=rate, flush=flush,
            progress=lambda n: bar.advance(task, n),
        )
    if not quiet:
        err.print(
            f"sent {summary.sent:,} CDR message(s) to {topic} in {summary.elapsed_s:.1f} s "
            f"({summary.sent / max(summary.elapsed_s, 1e-9):,.0f}/s); {summary.unparsable:,} of them will be "
            f"dead-lettered by the worker; {summary.skipped:,} comment/blank line(s) not sent"
        )


@app.command()
def verify(
    suspension_event_id: Annotated[str, typer.Argument(help="event_id of the suspension")],
    cleared: Annotated[bool, typer.Option("--cleared", help="verification did not confirm: reactivate")] = False,
    confirmed: Annotated[bool, typer.Option("--confirmed", help="fraud confirmed: recommend termination")] = False,
    by: Annotated[str, typer.Option(help="who decided (name or NOC id)")] = "",
    note: Annotated[str | None, typer.Option(help="free text kept with the verdict")] = None,
    broker: Annotated[str | None, typer.Option(help="Kafka bootstrap (env KAFKA_BOOTSTRAP_SERVERS)")] = None,
    topic_prefix: Annotated[str, typer.Option(help="prefix of every topic name")] = "",
) -> None:
    """Put a verdict on a suspension onto the verifications topic (clauses 8.6, 13.1)."""
    from datetime import UTC, datetime

    from streams.app import StreamSettings
    from streams.produce import send_verdict
    from tollguard.errors import VerdictError
    from tollguard.events import Verdict

    if cleared == confirmed:
        raise _usage("give exactly one of --cleared or --confirmed")
    if not by.strip():
        raise _usage("--by NAME is required: verdicts are signed")
    verdict = Verdict(
        suspension_event_id=suspension_event_id,
        verdict="cleared" if cleared else "confirmed",
        by=by.strip(),
        at=datetime.now(UTC),
        note=note,
    )
    try:
        send_verdict(StreamSettings.from_env(broker=broker).broker, topic_prefix, verdict)
    except VerdictError as exc:
        err.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from None
    err.print(f"verdict {verdict.verdict} on {suspension_event_id} sent to {topic_prefix}verifications")


@rules_app.command("check")
def rules_check(file: Annotated[Path, typer.Argument(help="rules YAML file")]) -> None:
    """Validate a rules file; print the first error with its line and field."""
    try:
        ruleset = load_rules(file)
    except RulesError as exc:
        err.print(f"[red]invalid:[/red] {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"{file}: OK (version {ruleset.version}, {len(ruleset.customers)} customer(s))")


@rules_app.command("template")
def rules_template(
    out: Annotated[str, typer.Option(help="output file ('-' = stdout)")] = "-",
) -> None:
    """Write a rules file with every setting at its default, documented in comments."""
    from tollguard.rules_template import render_rules_yaml

    text = render_rules_yaml()
    if out == "-":
        typer.echo(text, nl=False)
    else:
        Path(out).write_text(text, encoding="utf-8")
        err.print(f"rules template written to {out}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
