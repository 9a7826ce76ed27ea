"""The ``tollguard`` command line (DESIGN §5).

Exit status: 0 on success, 1 when input lines were rejected (the count is printed),
2 on usage errors (bad option, unreadable rules file, missing input file).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from engine.registry import load_rules
from streams.replay import Replay, ReplaySummary
from tollguard.adapters import FORMATS as ADAPTER_FORMATS
from tollguard.adapters.call_events import CALL_EVENT_FORMATS
from tollguard.errors import RulesError
from tollguard.events import Event
from tollguard.rules import Rules, default_rules_path

if TYPE_CHECKING:
    from models.model import AnomalyModel

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="tollguard: streaming anti-fraud and traffic-compliance detector for telephony CDRs.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"tollguard {version('tollguard')}")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree without install
            typer.echo("tollguard (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """tollguard: streaming anti-fraud and traffic-compliance detector for telephony CDRs."""


rules_app = typer.Typer(no_args_is_help=True, help="Analyst rules files.")
app.add_typer(rules_app, name="rules")
model_app = typer.Typer(no_args_is_help=True, help="The anomaly model (clause 8.6): metadata and evaluation.")
app.add_typer(model_app, name="model")

err = Console(stderr=True, soft_wrap=True)  # long reasons and paths stay on one line (grep-able)
FORMATS = ADAPTER_FORMATS
#: Inputs above this size get a progress bar.
PROGRESS_MIN_BYTES = 2_000_000
#: Help of the ``--model`` option of replay and worker.
MODEL_HELP = "trained anomaly model (tollguard train); without it the anomaly detector is idle"
#: Events printed in the end-of-run table; the rest are only in the events file.
SHOWN_EVENTS = 25


def _usage(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(2)


def _check_format(fmt: str, ruleset: Rules | None = None) -> None:
    """Refuse an unknown ``--format`` (exit 2): a built-in one, or (given the rules) one of their ingest.mappings."""
    known = ruleset.ingest.formats() if ruleset is not None else FORMATS
    if fmt not in known and (ruleset is not None or not fmt.islower()):
        hint = "" if ruleset is not None and ruleset.ingest.mappings else " or the name of an ingest.mappings entry"
        raise _usage(f"--format must be one of {', '.join(known)}{hint}, got {fmt!r}")


def _check_files(paths: list[Path]) -> None:
    """Refuse missing input files and directories (exit 2), naming them all."""
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        raise _usage(f"{', '.join(folders)}: a directory, not a file; give the CDR files in it "
                     f"(e.g. {folders[0].rstrip('/')}/*.csv)")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise _usage(f"no such file: {', '.join(missing)}")


def _plural(count: int, word: str) -> str:
    """``1 CDR``, ``2 CDRs``, ``1,500 CDRs``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


#: Help of ``--timezone`` and ``--country`` (replay, inspect, worker).
TIMEZONE_HELP = (
    "IANA time zone of zone-less timestamps, e.g. Europe/Rome (overrides the rules' ingest.timezone; default UTC)"
)
COUNTRY_HELP = (
    "ISO 3166 region of the numbers of customers the rules give no country, e.g. DE "
    "(overrides ingest.default_country; default IT)"
)


def _reach(broker: str) -> None:
    """Exit 1 with one line when the Kafka broker does not accept a connection (within 5 s)."""
    from streams.broker import BrokerUnreachable, check_broker

    try:
        check_broker(broker)
    except BrokerUnreachable as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


@contextmanager
def _kafka_errors(broker: str) -> Iterator[None]:
    """A Kafka client error (broker gone mid-way, timeouts) as one line and exit 1, not a traceback."""
    from kafka.errors import KafkaError

    from streams.broker import WHAT_TO_CHECK

    try:
        yield
    except KafkaError as exc:
        err.print(f"[red]error:[/red] {escape(f'Kafka at {broker}: {type(exc).__name__}: {exc}; {WHAT_TO_CHECK}')}",
                  highlight=False)
        raise typer.Exit(1) from None


def _rules(path: Path | None, timezone: str | None = None, country: str | None = None) -> Rules:
    """Load the rules file (the packaged default without ``path``), with ``--timezone`` / ``--country``
    applied to its ``ingest`` section; exit 2 with the first error (line and field)."""
    ingest = _ingest_overrides(timezone, country)
    try:
        return load_rules(path, ingest or None)
    except RulesError as exc:
        raise _usage(str(exc)) from None


def _ingest_overrides(timezone: str | None, country: str | None) -> dict[str, str]:
    """``--timezone`` / ``--country`` as overrides of the rules' ``ingest`` section; exit 2 when invalid."""
    from pydantic import ValidationError

    from tollguard.adapters import IngestSettings

    ingest: dict[str, str] = {}
    if timezone is not None:
        ingest["timezone"] = timezone
    if country is not None:
        ingest["default_country"] = country
    try:
        IngestSettings(**ingest)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--timezone" if first["loc"][0] == "timezone" else "--country"
        raise _usage(f"{option}: {first['msg'].removeprefix('Value error, ')}") from None
    return ingest


def _chosen(path: Path | None, ruleset: Rules, timezone: str | None, country: str | None) -> tuple[bool, bool]:
    """(time zone chosen, default country chosen): by the option, or by the user's own rules file."""
    own = path is not None
    fields = ruleset.ingest.model_fields_set
    return (timezone is not None or (own and "timezone" in fields),
            country is not None or (own and "default_country" in fields))


def _assumption_warning(path: Path | None, ruleset: Rules, timezone: str | None, country: str | None) -> None:
    """The worker's one start-up note when the time zone or the country are the defaults nobody chose."""
    tz_chosen, country_chosen = _chosen(path, ruleset, timezone, country)
    parts = []
    if not tz_chosen:
        parts.append(f"zone-less timestamps are read as {ruleset.ingest.timezone} (give --timezone if the switches "
                     "write local time)")
    if not country_chosen:
        parts.append(f"national numbers of customers the rules give no country are read as "
                     f"{ruleset.ingest.default_country} numbers (give --country or customers.<id>.country)")
    if parts:
        err.print("[yellow]note:[/yellow] " + "; ".join(parts), highlight=False)


@contextmanager
def _open_out(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        return
    _out_dir(path)
    with open(path, "w", encoding="utf-8") as handle:
        yield handle


def _out_dir(path: str) -> None:
    """Create the directory an output file goes to (as ``replay --out`` always did); exit 2 when that fails."""
    if path == "-":
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _usage(f"cannot create the directory of {path}: {exc.strerror or exc}") from None


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
    if summary.paired:
        table.add_row("      acc transactions paired", f"{summary.paired:,}")
    table.add_row("    duplicate deliveries", f"{summary.duplicates:,}")
    table.add_row("  rejected", f"{summary.rejected:,}")
    for reason, count in summary.rejects_by_reason.most_common(6):
        table.add_row(f"    {reason}", f"{count:,}")
    table.add_row("comment/blank/other lines", f"{summary.skipped:,}")
    if summary.call_event_files:
        table.add_row("call-event inputs", f"{summary.call_event_inputs:,}")
        table.add_row("  accepted", f"{summary.call_events:,}")
        table.add_row("    of calls already completed", f"{summary.call_events_completed:,}")
        table.add_row("  rejected", f"{summary.call_events_rejected:,}")
        table.add_row("  not call events (skipped)", f"{summary.call_events_skipped:,}")
        table.add_row("calls closed without end event", f"{summary.calls_closed:,}")
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
        err.print(f"[bold]events[/bold] (first {len(shown)}, in event-time order; all of them in the events file)")
        for ev in sorted(shown, key=lambda e: e.occurred_at):  # the model's come at the end of the input
            style = "red" if ev.cos == "critical" else "yellow" if ev.type == "alert" else "cyan"
            err.print(
                f"[{style}]{ev.occurred_at:%Y-%m-%d %H:%M:%S} UTC  {ev.type}  {ev.detector}  {ev.customer_id}  "
                f"{ev.scope.kind}:{ev.scope.value}[/{style}]",
                highlight=False,
            )
            err.print(f"    {ev.reason}", highlight=False)


@app.command()
def replay(
    files: Annotated[
        list[Path] | None, typer.Argument(help="CDR files, read in this order (none: built-in example)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "auto",
    rules: Annotated[Path | None, typer.Option(help="rules file (default: the packaged rules/default.yaml)")] = None,
    out: Annotated[str, typer.Option(help="events output, JSON lines ('-' = stdout)")] = "events.jsonl",
    rejects: Annotated[str, typer.Option(help="rejected lines with reasons, JSON lines")] = "rejects.jsonl",
    verifications: Annotated[Path | None, typer.Option(help="verdicts on suspensions, one JSON a line")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or tables")] = False,
    model: Annotated[Path | None, typer.Option(help=MODEL_HELP)] = None,
    rules_change: Annotated[list[str] | None, typer.Option("--rules-change", help=(
        "AT=FILE: make the rules FILE live before the first CDR that ends after AT (ISO 8601 with a zone; "
        "a worker's log gives the event time of each reload); repeatable"))] = None,
    timezone: Annotated[str | None, typer.Option(help=TIMEZONE_HELP)] = None,
    country: Annotated[str | None, typer.Option(help=COUNTRY_HELP)] = None,
    call_events: Annotated[list[Path] | None, typer.Option(
        "--call-events", help="call-event files (calls in progress, DESIGN §3b), interleaved with the CDRs "
        "in arrival order; repeat for several")] = None,
    call_events_fmt: Annotated[str, typer.Option(
        "--call-events-format", help=f"one of {', '.join(CALL_EVENT_FORMATS)}")] = "auto",
) -> None:
    """Run the detectors over CDR files without a broker; write events and rejects."""
    _check_format(fmt)
    if call_events_fmt not in CALL_EVENT_FORMATS:
        raise _usage(f"unknown call-event format {call_events_fmt!r}; expected one of {', '.join(CALL_EVENT_FORMATS)}")
    _check_files([*(files or []), *([verifications] if verifications else []), *(call_events or [])])
    ruleset = _rules(rules, timezone, country)
    changes = [_rules_change(text) for text in rules_change or []]
    _check_format(fmt, ruleset)
    anomaly_model = _load_model(model, ruleset) if model is not None else None
    with tempfile.TemporaryDirectory(prefix="tollguard-example-") as tmp:
        paths = list(files) if files else _example_files(Path(tmp))
        if not files and not quiet:
            err.print("[bold]built-in example input:[/bold] " + ", ".join(p.name for p in paths))
        shown: list[Event] = []

        def keep(event: Event) -> None:
            if len(shown) < SHOWN_EVENTS:
                shown.append(event)

        total = sum(p.stat().st_size for p in [*paths, *(call_events or [])])
        with _open_out(out) as out_handle, _open_out(rejects) as rej_handle:
            run = Replay(ruleset, out_handle, rej_handle, on_event=keep, model=anomaly_model)
            if verifications is not None:
                run.load_verdicts(verifications)
            for at_s, changed in changes:
                run.change_rules_at(at_s, changed)
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
                if call_events:
                    run.run_interleaved(paths, call_events, fmt, call_events_fmt,
                                        progress=lambda n: bar.advance(task, n))
                for path in [] if call_events else paths:
                    bar.update(task, description=path.name)
                    run.run_file(path, fmt, progress=lambda n: bar.advance(task, n))
            summary = run.finish()
    # no notes for the built-in example: its files are ours, written in UTC by Italian customers
    notes = summary.assumption_notes(ruleset, *_chosen(rules, ruleset, timezone, country)) if files else []
    _report_replay(run, summary, shown, quiet=quiet, out=out, rejects=rejects, ruleset=ruleset, notes=notes)


def _report_replay(run: Replay, summary: ReplaySummary, shown: list[Event], *, quiet: bool, out: str, rejects: str,
                   ruleset: Rules, notes: list[str]) -> None:
    """Replay's summary, rules changes and assumption notes on stderr; exit 1 when input was rejected."""
    if not quiet:
        _summary_table(summary, shown)
        err.print(f"events → {out}   rejects → {rejects}   rules {ruleset.version}")
        for at_s, version in run.rules_changed:
            err.print(f"rules {version} live from event time {datetime.fromtimestamp(at_s, UTC).isoformat()}",
                      highlight=False)
    for note in notes:
        err.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    if summary.lines_read == 0 and summary.call_event_inputs == 0:
        # an empty input is most often a mistake (the wrong file, an export not written yet): say so, even with -q
        err.print(f"[yellow]warning:[/yellow] 0 CDRs read: {escape(', '.join(summary.files))} held no CDR line "
                  f"({summary.skipped} comment, blank or header line(s)); nothing was replayed", highlight=False)
    if summary.call_events_rejected:
        err.print(f"[yellow]{summary.call_events_rejected} call event(s) rejected[/yellow]; reasons in {rejects}")
        if not (summary.rejected or summary.verdicts_refused):
            raise typer.Exit(1)
    if summary.rejected or summary.verdicts_refused:
        err.print(
            f"[yellow]{summary.rejected} line(s) rejected, {summary.verdicts_refused} verdict(s) refused[/yellow]; "
            f"reasons in {rejects}"
        )
        raise typer.Exit(1)


def _rules_change(text: str) -> tuple[float, Rules]:
    """``AT=FILE`` of ``replay --rules-change``: (UTC epoch s, validated rules), or exit 2."""
    at, sep, path = text.partition("=")
    if not sep or not at.strip() or not path.strip():
        raise _usage(f"--rules-change takes AT=FILE (e.g. 2025-03-11T12:00:00Z=rules/new.yaml), got {text!r}")
    try:
        when = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _usage(f"--rules-change: {at!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise _usage(f"--rules-change: {at!r} needs a time zone (e.g. Z)")
    file = Path(path.strip())
    _check_files([file])
    return when.timestamp(), _rules(file)


@app.command()
def backtest(
    files: Annotated[list[Path], typer.Argument(help="CDR files of history, read once in this order")],
    rules: Annotated[Path, typer.Option(help="the new rules file")],
    baseline: Annotated[Path, typer.Option(help="the rules file in force (what the change is measured against)")],
    labels: Annotated[Path | None, typer.Option(help="episode labels (tollguard simulate --labels): recall")] = None,
    verifications: Annotated[Path | None, typer.Option(help="verdicts on suspensions, one JSON a line")] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "auto",
    model: Annotated[Path | None, typer.Option(help=MODEL_HELP)] = None,
    coverage: Annotated[float, typer.Option(min=0.01, max=1.0, help=(
        "share of an episode's calls the events' scopes must cover for it to count as detected"))] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON (for scripts)")] = False,
) -> None:
    """What a rules change would have done on history: events added, removed, changed; recall with labels.

    Exit status 0 whatever the difference (2 on usage errors).
    """
    from streams.backtest import backtest as run_backtest
    from streams.backtest import render
    from streams.train import read_labels

    _check_format(fmt)
    _check_files([*files, *(p for p in (labels, verifications, rules, baseline) if p is not None)])
    new_rules, old_rules = _rules(rules), _rules(baseline)
    anomaly_model = _load_model(model, new_rules) if model is not None else None
    try:
        label_rows = read_labels(labels) if labels is not None else None
    except (ValueError, KeyError) as exc:
        raise _usage(f"{labels}: not a labels file of tollguard simulate --labels ({exc})") from None
    report = run_backtest(files, new_rules, old_rules, fmt=fmt, labels=label_rows, verifications=verifications,
                          model=anomaly_model, coverage=coverage)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
    else:
        render(report, Console(soft_wrap=True, width=max(Console().width, 140)))


def _number_cell(view: dict[str, Any]) -> str:
    if not view["number"]:
        return ""
    kind = " ".join(x for x in (view["type"], view["region"]) if x)
    raw = f" (as {view['raw']})" if view["raw"] else ""
    return f"{escape(view['number'])}{escape(raw)}\n[dim]{kind}[/dim]"


def _inspect_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="tollguard inspect: how each line was read", show_lines=True)
    for name, justify in (("line", "right"), ("format", "left"), ("customer", "left"), ("direction", "left"),
                          ("caller", "left"), ("callee", "left"), ("DID", "left"), ("answered", "left"),
                          ("duration", "right"), ("est. cost", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        where = f"{Path(row['source']).name}:{row['line']}"
        if row["status"] != "accepted":
            style = "dim" if row["status"] == "paired" else "red"
            table.add_row(where, row["status"], "", "", f"[{style}]{escape(row['reason'] or '')}[/{style}]")
            continue
        cost = row["estimated_cost"]
        table.add_row(
            where, row["format"], f"{row['customer_id']} ({row['country']})", row["direction"],
            _number_cell(row["caller"]), _number_cell(row["callee"]), row["did"] or "",
            f"yes, {row['billsec_s']:g} s" if row["answered"] else f"no ({row['disposition']})",
            f"{row['duration_s']:g} s", f"{cost:.4f} {row['currency']}" if cost is not None else "",
        )
    return table


@app.command()
def inspect(
    files: Annotated[list[Path], typer.Argument(help="CDR files, read in this order")],
    fmt: Annotated[str, typer.Option("--format", help="a format name, an ingest.mappings name, or auto")] = "auto",
    rules: Annotated[Path | None, typer.Option(help="rules file (default: the packaged rules/default.yaml)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="lines shown (all lines are read for the counts)")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line on stdout, for scripts")] = False,
    timezone: Annotated[str | None, typer.Option(help=TIMEZONE_HELP)] = None,
    country: Annotated[str | None, typer.Option(help=COUNTRY_HELP)] = None,
) -> None:
    """Show how each CDR line is read (format, customer, direction, E.164 numbers with type and region,
    DID, answered, duration, estimated cost) or why it is refused; nothing is detected or written."""
    from streams.inspect import inspect_files

    _check_format(fmt)
    _check_files(files)
    ruleset = _rules(rules, timezone, country)
    _check_format(fmt, ruleset)
    result = inspect_files(files, fmt, ruleset, limit)
    summary = result.summary
    notes = summary.assumption_notes(ruleset, *_chosen(rules, ruleset, timezone, country))
    if as_json:
        for row in result.rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
    else:
        Console(width=None if sys.stdout.isatty() else 180).print(_inspect_table(result.rows))
    more = f" (first {len(result.rows)} shown; --limit)" if result.shown_limit_hit else ""
    paired = f" ({summary.paired:,} of them transactions paired into the CDR of a later line)" if summary.paired else ""
    err.print(f"{summary.lines_read:,} CDR line(s): {summary.accepted:,} accepted{paired}, {summary.rejected:,} "
              f"rejected{more}; rules {ruleset.version}", highlight=False)
    for note in notes:
        err.print(f"[yellow]note:[/yellow] {note}", highlight=False)


@app.command("simulate")
def simulate_cmd(
    minutes: Annotated[
        int, typer.Option(min=1, max=60 * 24 * 31, help="length of the simulated traffic")
    ] = 1440,
    customers: Annotated[int, typer.Option(min=0, max=100_000, help="number of customers")] = 10,
    scenario: Annotated[str, typer.Option(help=(
        "benign, all, one episode kind, varied (all, with --variety and --traps) "
        "or traps (benign with traps)"))] = "all",
    seed: Annotated[int, typer.Option(help="random seed (same seed, same traffic)")] = 0,
    fmt: Annotated[str, typer.Option("--format", help=(
        "jsonl, asterisk-csv, freeswitch-csv, freeswitch-json; the CSV formats carry no RTP counters, "
        "so a bandwidth episode gives no notice there"))] = "jsonl",
    out: Annotated[str, typer.Option(help="CDR output file ('-' = stdout)")] = "-",
    labels: Annotated[str | None, typer.Option(help="labels output: one JSON per injected episode")] = None,
    rules_out: Annotated[str | None, typer.Option("--rules-out", help=(
        "also write a rules YAML giving each customer its country and DIDs (and --timezone): "
        "replay --rules FILE then normalises the national numbers of the switch formats right"))] = None,
    start: Annotated[
        str | None, typer.Option(help="start time, ISO 8601 UTC (default 2025-03-11T00:00Z)")
    ] = None,
    timezone: Annotated[str, typer.Option(help="time zone of the written local times (CSV formats)")] = "UTC",
    disorder_s: Annotated[
        float, typer.Option(help="arrival disorder, seconds (CDRs out of end order)")
    ] = 0.0,
    variety: Annotated[bool, typer.Option(help=(
        "draw customers and each episode's pace, duration, destinations, call lengths, answer ratio and time "
        "of day from wide field ranges (seeded); off: the classic episodes of the built-in example"))] = False,
    traps: Annotated[bool, typer.Option(help=(
        "add honest traps (a hotline at exactly 20 calls, a heavy toll-free caller, a firm calling 40 "
        "countries, a G.729 customer, CDRs delivered twice, emergency calls, ...); labelled with no "
        "required level"))] = False,
    call_events: Annotated[str | None, typer.Option("--call-events", help=(
        "also write the calls' call events (start, answer, end; call-events-jsonl, in time order) to this "
        "file: replay them with --call-events FILE"))] = None,
) -> None:
    """Write labelled simulated traffic: benign customers plus injected fraud episodes.

    The switch formats write numbers as dialled (national, e.g. a British CLI 01617086800):
    replay them with the rules file of --rules-out, or they are normalised with the default
    country (IT). Bandwidth compliance notices need RTP byte/packet counters, which Asterisk
    cdr_csv (asterisk-csv) and FreeSWITCH mod_cdr_csv (freeswitch-csv) do not carry: only
    freeswitch-json and jsonl give the bandwidth episode its notice.
    """
    from datetime import datetime

    from tollguard import simulate
    from tollguard.adapters import WRITE_FORMATS

    if fmt not in WRITE_FORMATS:
        raise _usage(f"--format must be one of {', '.join(WRITE_FORMATS)}, got {fmt!r}")
    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        if begin is not None and begin.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2025-03-11T00:00Z")
        sim = simulate.run_scenario(
            scenario, start=begin, minutes=minutes, customers=customers, seed=seed, disorder_s=disorder_s,
            variety=variety, traps=traps,
        )
    except ValueError as exc:
        raise _usage(str(exc)) from None
    for path in (out, call_events, labels, rules_out):
        if path:
            _out_dir(path)
    try:
        _write_simulation(sim, fmt, out, timezone, call_events, labels, rules_out, scenario, seed)
    except OSError as exc:
        raise _usage(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None


def _write_simulation(
    sim: Any, fmt: str, out: str, timezone: str, call_events: str | None, labels: str | None,
    rules_out: str | None, scenario: str, seed: int,
) -> None:
    """Write ``simulate``'s CDRs (and its call events, labels, rules) and say what was written."""
    from tollguard import simulate

    if call_events:
        from tollguard.simulate.call_events import call_events_of, write_call_events

        records = list(sim.records())
        count = simulate.write(records, fmt, out, timezone=timezone)
        n_events = write_call_events(call_events_of(records), call_events)
        err.print(f"{n_events:,} call events written to {call_events}")
    else:
        count = simulate.write(sim.records(), fmt, out, timezone=timezone)
    if labels:
        simulate.write_labels(sim.labels + sim.trap_labels, labels)
    if rules_out:
        simulate.write_rules(sim.profiles, rules_out, timezone, version=f"simulated-{scenario}-seed{seed}")
    err.print(f"{_plural(count, 'CDR')} written ({fmt}) to {out}; {_plural(len(sim.labels), 'episode')}" +
              (f", {_plural(len(sim.trap_labels), 'honest trap')}" if sim.trap_labels else "") +
              (f", labels in {labels}" if labels else "") + (f", rules in {rules_out}" if rules_out else ""))
    if fmt in ("asterisk-csv", "freeswitch-csv") and any(lab.kind == "bandwidth" for lab in sim.labels):
        err.print(f"note: {fmt} carries no RTP counters: the bandwidth episode gives no notice in this format")


@app.command()
def worker(
    broker: Annotated[str | None, typer.Option(help=(
        "Kafka bootstrap, kafka://host:port (default: env TOLLGUARD_BROKER or KAFKA_BOOTSTRAP_SERVERS, "
        "else kafka://127.0.0.1:9092)"))] = None,
    rules: Annotated[Path | None, typer.Option(help="rules file (default: the packaged rules/default.yaml)")] = None,
    app_id: Annotated[str | None, typer.Option("--app-id", help=(
        "consumer group / changelog prefix (default: env TOLLGUARD_APP_ID, else tollguard)"))] = None,
    topic_prefix: Annotated[str | None, typer.Option(help=(
        "prefix of every topic name (default: env TOLLGUARD_TOPIC_PREFIX, else none)"))] = None,
    partitions: Annotated[int | None, typer.Option(help=(
        "partitions of the repartition topic and state table (default: env TOLLGUARD_PARTITIONS, else 4)"))] = None,
    datadir: Annotated[str | None, typer.Option(help=(
        "local data directory (one per worker on a host) (default: tollguard-data)"))] = None,
    web_port: Annotated[int | None, typer.Option(help=(
        "port of the web server (one per worker on a host) (default: 6066)"))] = None,
    fast_rebalance: Annotated[bool, typer.Option(help="short group timeouts (tests, single host)")] = False,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="debug, info, warn, error")] = "warn",
    model: Annotated[Path | None, typer.Option(help=MODEL_HELP)] = None,
    timezone: Annotated[str | None, typer.Option(help=TIMEZONE_HELP)] = None,
    country: Annotated[str | None, typer.Option(help=COUNTRY_HELP)] = None,
    tokens_file: Annotated[Path | None, typer.Option(help=(
        "web API tokens with roles, YAML (env TOLLGUARD_API_TOKENS_FILE; see README, Security)"))] = None,
    audit_log: Annotated[Path | None, typer.Option(help=(
        "verdict audit log, JSON lines (env TOLLGUARD_AUDIT_LOG; default DATADIR/verdicts-audit.jsonl)"))] = None,
) -> None:
    """Run the streaming job: Faust agents consuming CDRs from Kafka, producing events.

    The rules file is watched (every 2 s, and on SIGHUP): a changed file that validates becomes
    live without a restart; an invalid one is refused (line and field in the log) and the last
    good rules stay. A restart that finds it invalid runs with the last good rules kept on the
    ``tollguard-rules`` topic (the file's error is printed); the tokens file is checked first.
    """
    from streams.app import StreamSettings
    from streams.auth import AuthConfigError, token_registry
    from streams.worker import run_worker

    try:
        token_registry(tokens_file=tokens_file)  # a bad tokens file stops here, with its reason
    except AuthConfigError as exc:
        raise _usage(str(exc)) from None
    settings = StreamSettings.from_env(broker=broker, app_id=app_id, topic_prefix=topic_prefix)
    ingest = _ingest_overrides(timezone, country)
    _reach(settings.broker)
    ruleset = _worker_rules(rules, ingest, settings)
    _assumption_warning(rules, ruleset, timezone, country)
    anomaly_model = _load_model(model, ruleset) if model is not None else None
    watched = rules if rules is not None else default_rules_path()
    try:
        run_worker(
            ruleset,
            model=anomaly_model,
            rules_path=str(watched) if watched is not None else None,
            broker=broker,
            app_id=app_id,
            topic_prefix=topic_prefix,
            partitions=partitions,
            datadir=datadir,
            web_port=web_port,
            fast_rebalance=fast_rebalance,
            loglevel=loglevel,
            tokens_file=str(tokens_file) if tokens_file else None,
            audit_log=str(audit_log) if audit_log else None,
            rules_ingest=ingest,
        )
    except AuthConfigError as exc:
        raise _usage(str(exc)) from None


def _worker_rules(rules: Path | None, ingest: dict[str, str], settings: Any) -> Rules:
    """The worker's rules: the file's, or the last good ones kept for its app id when the file is invalid
    (the file's error is printed); exit 2 when neither (see :func:`streams.lastgood.worker_rules`)."""
    from streams.app import topic_name
    from streams.lastgood import RULES_TOPIC, worker_rules

    try:
        ruleset, warning = worker_rules(
            rules, settings.broker, topic_name(settings, RULES_TOPIC), settings.app_id, ingest or None)
    except RulesError as exc:
        raise _usage(str(exc)) from None
    if warning:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    return ruleset


@app.command()
def produce(
    files: Annotated[list[Path], typer.Argument(help="CDR files, sent in this order")],
    broker: Annotated[str | None, typer.Option(help="Kafka bootstrap (env KAFKA_BOOTSTRAP_SERVERS)")] = None,
    topic: Annotated[str, typer.Option(help="topic to send to (prefix included)")] = "cdrs",
    fmt: Annotated[str, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "auto",
    rate: Annotated[float | None, typer.Option(help="offered load, CDRs per second (default: unpaced)")] = None,
    flush: Annotated[bool, typer.Option(help="end with the end-of-input control message (backfills, tests)")] = False,
    rules: Annotated[Path | None, typer.Option(help="rules file (ingest settings)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Feed CDR files into Kafka (kafka-python producer), one message per CDR line.

    With ``--topic [prefix]call-events`` the files are call events (DESIGN §3b; ``--format`` one of
    the call-event formats), one message per event.
    """
    from streams.app import StreamSettings
    from streams.produce import produce_call_events, produce_files

    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise _usage(f"--rate must be a positive number of messages per second (leave it out to send unpaced), "
                     f"got {rate:g}")
    if topic.endswith("call-events"):
        if fmt not in CALL_EVENT_FORMATS:
            raise _usage(f"--format must be one of {', '.join(CALL_EVENT_FORMATS)} for call events, got {fmt!r}")
        _check_files(files)
        ruleset = _rules(rules)
        settings = StreamSettings.from_env(broker=broker)
        summary = produce_call_events(files, settings.broker, topic, ruleset, fmt=fmt, rate=rate)
        if not quiet:
            err.print(f"sent {summary.sent:,} call event(s) to {topic}; {summary.unparsable:,} of them will be "
                      f"dead-lettered by the worker; {summary.skipped:,} comment(s) or other event(s) not sent")
        return
    _check_format(fmt)
    _check_files(files)
    ruleset = _rules(rules)
    settings = StreamSettings.from_env(broker=broker)
    _reach(settings.broker)
    total = sum(p.stat().st_size for p in files)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, disable=quiet, transient=True,
    ) as bar:
        task = bar.add_task("produce", total=total)
        with _kafka_errors(settings.broker):
            summary = produce_files(
                files, settings.broker, topic, ruleset, fmt=fmt, rate=rate, flush=flush,
                progress=lambda n: bar.advance(task, n),
            )
    if not quiet:
        err.print(
            f"sent {summary.sent:,} CDR message(s) to {topic} in {summary.elapsed_s:.1f} s "
            f"({summary.sent / max(summary.elapsed_s, 1e-9):,.0f}/s); {summary.unparsable:,} of them will be "
            f"dead-lettered by the worker; {summary.dead_lettered:,} line(s) the reader could not take whole "
            f"(too long, undecodable) put on {summary.dead_letter_topic} directly; "
            f"{summary.skipped:,} comment/blank/header line(s) (and acc transactions, sent paired as CDRs) not sent"
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
    address = StreamSettings.from_env(broker=broker).broker
    _reach(address)
    try:
        with _kafka_errors(address):
            send_verdict(address, topic_prefix, verdict)
    except VerdictError as exc:
        err.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from None
    err.print(f"verdict {verdict.verdict} on {suspension_event_id} sent to {topic_prefix}verifications")


#: The packages of the ``ml`` extra (import name, distribution name).
ML_PACKAGES = (("numpy", "numpy"), ("sklearn", "scikit-learn"), ("skops", "skops"))


def _need_ml(what: str) -> None:
    """Exit 2 naming the extra to install when a package of the ``ml`` extra is missing."""
    import importlib

    missing = []
    for module, dist in ML_PACKAGES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    if missing:
        raise _usage(f"{what} needs the ml extra: pip install 'tollguard[ml]' (missing: {', '.join(missing)})")


def _load_model(path: Path, ruleset: Rules | None) -> AnomalyModel:
    """Load a model file (refusing untrusted content) and check it against the rules; usage error if not."""
    if not path.is_file():
        raise _usage(f"no such file: {path}")
    _need_ml("the anomaly model")
    try:
        from models.model import AnomalyModel, ModelError
    except ImportError as exc:
        raise _usage(f"the anomaly model needs the ml extra (pip install 'tollguard[ml]'): {exc}") from None
    try:
        loaded = AnomalyModel.load(path)
        if ruleset is not None:
            loaded.check_rules(ruleset)
    except ModelError as exc:
        raise _usage(str(exc)) from None
    return loaded


@app.command("train")
def train_cmd(
    files: Annotated[list[Path], typer.Argument(help="CDR files of benign history, read in this order")],
    out: Annotated[Path, typer.Option(help="model file to write (skops)")],
    fmt: Annotated[str, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "auto",
    rules: Annotated[Path | None, typer.Option(help="rules file (detectors.anomaly settings)")] = None,
    trees: Annotated[int, typer.Option(min=1, max=5_000, help="trees of the IsolationForest")] = 200,
    max_samples: Annotated[int, typer.Option(min=2, max=1_000_000, help="windows drawn per tree")] = 1024,
    seed: Annotated[int, typer.Option(help="random seed (same data and seed, same model)")] = 0,
) -> None:
    """Fit the anomaly model (clause 8.6) on CDR history and save it with skops."""
    _check_format(fmt)
    _check_files(files)
    ruleset = _rules(rules)
    _need_ml("training")
    try:
        from models.model import ModelError
        from streams.train import train as fit_model
    except RulesError as exc:
        raise _usage(str(exc)) from None
    except ImportError as exc:
        raise _usage(f"training needs the ml extra (pip install 'tollguard[ml]'): {exc}") from None
    try:
        model, got = fit_model(
            list(files), ruleset, fmt, n_estimators=trees, random_state=seed, max_samples=max_samples
        )
    except ModelError as exc:
        raise _usage(str(exc)) from None
    model.save(out)
    info = model.info()
    training = info["training"]
    q = info["score_quantiles"]
    err.print(
        f"model {info['model_id']} written to {out}: {info['n_windows']:,} windows of "
        f"{training['customers']} customer(s), {training['period_start']} to {training['period_end']}; "
        "training scores "
        f"median {q['q50']:.3f}, q99.9 {q['q99.9']:.3f}, max {q['q100']:.3f} (higher = more suspicious); "
        f"suggested thresholds {info['suggested_thresholds']}",
        highlight=False,
    )
    summary = got.summary
    if summary is not None and summary.rejected:
        err.print(f"[yellow]{summary.rejected} line(s) rejected[/yellow] while reading the history")
        raise typer.Exit(1)


def _echo_mapping(data: dict[str, Any], indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in data.items():
        if isinstance(value, dict):
            typer.echo(f"{pad}{key}:")
            _echo_mapping(value, indent + 1)
        elif isinstance(value, list):
            typer.echo(f"{pad}{key}: {', '.join(str(v) for v in value)}")
        else:
            typer.echo(f"{pad}{key}: {value}")


@model_app.command("info")
def model_info(
    model: Annotated[Path, typer.Argument(help="model file (tollguard train)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the metadata as JSON")] = False,
) -> None:
    """Print a model's metadata: features, training period, library versions, score distribution."""
    info = _load_model(model, None).info()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        _echo_mapping(info)


@model_app.command("evaluate")
def model_evaluate(
    model: Annotated[Path, typer.Argument(help="model file (tollguard train)")],
    files: Annotated[list[Path], typer.Argument(help="labelled CDR files (tollguard simulate), in order")],
    labels: Annotated[Path, typer.Option(help="labels file of the episodes (tollguard simulate --labels)")],
    fmt: Annotated[str, typer.Option("--format", help=f"one of {', '.join(FORMATS)}")] = "auto",
    rules: Annotated[Path | None, typer.Option(help="rules file (thresholds: detectors.anomaly)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Recall per episode kind and false-alert rate on benign traffic of labelled simulated CDRs."""
    _check_format(fmt)
    _check_files([*files, labels])
    ruleset = _rules(rules)
    loaded = _load_model(model, ruleset)
    from streams.train import evaluate, read_labels

    report = evaluate(loaded, list(files), read_labels(labels), ruleset, fmt)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    th = report["thresholds"]
    typer.echo(
        f"model {report['model_id']}  warn_score {th['warn_score']}  critical_score {th['critical_score']}  "
        f"(higher = more suspicious)  windows {report['windows']}"
    )
    typer.echo(f"{'episode kind':<22}{'episodes':>9}{'flagged':>9}{'recall':>8}{'suspended':>11}  max score")
    for kind, row in report["per_kind"].items():
        typer.echo(
            f"{kind:<22}{row['episodes']:>9}{row['flagged']:>9}{row['recall']:>8.2f}{row['suspended']:>11}  "
            f"{', '.join(f'{s:.3f}' for s in row['max_scores'])}"
        )
    for title, key in (("benign customers", "benign"), ("episode customers, other windows",
                                                         "episode_customers_outside_episodes")):
        row = report[key]
        typer.echo(
            f"{title}: {row['windows']} windows of {row['customers']} customer(s); false-alert rate "
            f"{row['false_alert_rate']:.4f} ({row['flagged_windows']} windows), false-suspension rate "
            f"{row['false_suspension_rate']:.4f}; suspended: "
            f"{', '.join(row['customers_suspended']) or 'none'}; max score {row['max_score']:.3f}"
        )


@rules_app.command("check")
def rules_check(file: Annotated[Path, typer.Argument(help="rules YAML file")]) -> None:
    """Validate a rules file; print the first error with its line and field."""
    try:
        ruleset = load_rules(file)
    except RulesError as exc:
        err.print(f"[red]invalid:[/red] {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"{file}: OK (version {ruleset.version}, {len(ruleset.customers)} customer(s))")


@rules_app.command("explain")
def rules_explain(
    customer: Annotated[str, typer.Argument(help="customer id (accountcode)")],
    rules: Annotated[Path | None, typer.Option(help="rules file (default rules/default.yaml)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the explanation as JSON")] = False,
) -> None:
    """Effective thresholds of one customer, where each comes from, and the rate-table entries."""
    from tollguard.explain import BUILT_IN, DEFAULT, explain

    info = explain(_rules(rules), customer)
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    out = Console(soft_wrap=True, highlight=False)
    known = "" if info["in_rules"] else " (no section in the rules: defaults only)"
    out.print(f"[bold]customer {customer}[/bold]{known}  rules {info['rules_version']}")
    out.print(f"country {info['country']} ({info['country_source']}); mode {info['mode']}; "
              f"link {info['link_kbps'] if info['link_kbps'] is not None else 'not declared'} kbit/s")
    for did, row in info["dids"].items():
        out.print(f"DID {did}: capacity {row['capacity']} ({row['source']})")
    if info["allow_destinations"]:
        out.print(f"allowed destinations: {', '.join(info['allow_destinations'])}")
    for name, fields in info["detectors"].items():
        out.print(f"[bold]{name}[/bold]")
        for field, row in fields.items():
            own = row["source"] not in (DEFAULT, BUILT_IN)
            style = "yellow" if own else "dim" if row["source"] == BUILT_IN else ""
            line = f"  {field} = {json.dumps(row['value'])}  ({row['source']})"
            out.print(f"[{style}]{line}[/{style}]" if style else line, markup=bool(style))
    rates = info["rates"]
    out.print(f"[bold]rates[/bold] ({rates['currency']}, {rates['rule']})")
    for row in rates["entries"]:
        tags = f"  [{', '.join(row['tags'])}]" if row["tags"] else ""
        out.print(f"  {row['prefix']}: {row['per_min']:g}/min + {row['per_call']:g}/call  {row['note']}{tags}",
                  markup=False)


@rules_app.command("template")
def rules_template(
    out: Annotated[str, typer.Option(help="output file ('-' = stdout)")] = "-",
) -> None:
    """Write a rules file with every setting at its default, documented in comments."""
    from engine.registry import Rules as RulesSchema
    from tollguard.rules_template import render_rules_yaml

    text = render_rules_yaml(RulesSchema())
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
