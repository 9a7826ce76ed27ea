"""Per-line and per-file entry points of the adapters, and format sniffing."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

from tollguard.cdr import CallDetailRecord
from tollguard.errors import RejectError

from . import asterisk, canonical, freeswitch
from ._common import CountryOf, Ctx, ctx_for
from .asterisk import layout_hint, looks_like_ts
from .settings import IngestSettings

try:  # orjson is a dependency, but keep a pure-python fallback
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

#: Format names accepted by :func:`parse_line` and :func:`read_file`.
FORMATS = ("auto", "asterisk-csv", "freeswitch-csv", "freeswitch-json", "jsonl")
JSON_FORMATS = frozenset({"freeswitch-json", "jsonl"})
#: Longest line, and longest (pretty-printed) JSON document, the file reader accepts.
MAX_DOC_BYTES = 1 << 20

DEFAULT_SETTINGS = IngestSettings()
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_FS_KEYS = ('"variables"', '"channel_data"', '"core-uuid"')


@dataclass(frozen=True, slots=True)
class Parsed:
    """The outcome of one CDR line (or one multi-line JSON document) of a file.

    Exactly one of: ``record`` set (accepted); ``reason`` set (rejected; ``raw``
    holds the line for the rejects output); ``skipped`` (blank line, ``#`` comment or
    CSV header row of column names).

    Attributes
    ----------
    source : str
        The file (or stream) name, as given by the caller.
    line : int
        1-based line number (first line of a multi-line JSON document).
    raw : str
        The line without its newline (undecodable bytes backslash-escaped).
    record : CallDetailRecord or None
    reason : str or None
    skipped : bool
    exact : bool
        False when ``raw`` is not the line's text as written, so it cannot be parsed
        again: undecodable bytes escaped, a line or JSON document over
        :data:`MAX_DOC_BYTES` cut to a short prefix, or the empty ``raw`` of the reject
        ending a truncated / corrupt gzip stream. Always rejected.
    """

    source: str
    line: int
    raw: str
    record: CallDetailRecord | None
    reason: str | None
    skipped: bool = False
    exact: bool = True

    @property
    def accepted(self) -> bool:
        """True when the line gave a record."""
        return self.record is not None


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown CDR format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _csv_row(text: str, fmt: str) -> list[str]:
    try:
        return next(csv.reader((text,), skipinitialspace=True))
    except (csv.Error, StopIteration) as exc:
        raise RejectError(f"{fmt}: bad CSV: {exc}") from None


def _sniff_row(row: list[str]) -> str:
    """asterisk-csv or freeswitch-csv from the column count and where the timestamps are."""
    n = len(row)
    if n in asterisk.WIDTHS and looks_like_ts(row[9]) and looks_like_ts(row[11]):
        return asterisk.FMT
    if n in freeswitch.CSV_WIDTHS and looks_like_ts(row[4]) and looks_like_ts(row[6]):
        return freeswitch.CSV_FMT
    raise RejectError(
        f"auto: unknown layout ({n} CSV columns): neither Asterisk cdr_csv (16, 18 or 21 columns, "
        f"start/answer/end at columns 10-12) nor FreeSWITCH mod_cdr_csv (15 columns, timestamps at "
        f"columns 5-7){layout_hint(row)}"
    )


def _sniff_obj(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise RejectError("auto: JSON value is not an object")
    if "variables" in obj or "channel_data" in obj or "core-uuid" in obj:
        return freeswitch.JSON_FMT
    return canonical.FMT


def _parse_obj(fmt: str, obj: Any, ctx: Ctx, country_of: CountryOf) -> CallDetailRecord:
    if fmt == freeswitch.JSON_FMT:
        return freeswitch.parse_json_doc(obj, ctx, country_of)
    return canonical.parse_obj(obj, ctx)


def sniff(text: str) -> str:
    """The format of one CDR line: '{' -> freeswitch-json (``variables`` / ``channel_data`` /
    ``core-uuid`` keys) or jsonl; "INSERT INTO" -> freeswitch-csv ("sql" template); else the
    CSV column count and timestamp positions decide.

    Raises
    ------
    RejectError
        "auto: unknown layout (19 CSV columns) ..." (naming a cdr_custom mapping when
        it looks like one).
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return freeswitch.JSON_FMT if any(k in stripped for k in _FS_KEYS) else canonical.FMT
    if stripped.startswith(freeswitch.SQL_PREFIX):
        row = _csv_row(freeswitch.sql_values(stripped), "auto")
        if len(row) == 13 and looks_like_ts(row[4]) and looks_like_ts(row[6]):
            return freeswitch.CSV_FMT
        n = len(row)
        reason = f"auto: unknown layout: SQL INSERT with {n} values"  # noqa: S608 (a message, not a query)
        raise RejectError(
            f"{reason} (only the FreeSWITCH mod_cdr_csv 'sql' template, 13 values, is supported)"
        )
    return _sniff_row(_csv_row(text, "auto"))


def _load(fmt: str, text: str) -> Any:
    try:
        return _loads(text)
    except ValueError as exc:
        raise RejectError(f"{fmt}: invalid JSON: {str(exc).splitlines()[0][:120]}") from None


def _parse_text(fmt: str, text: str, ctx: Ctx, country_of: CountryOf) -> tuple[str, CallDetailRecord]:
    """(format actually used, record) of one line / document; ``fmt`` may be "auto"."""
    head = text.lstrip()[:1]
    if fmt == "auto":
        if head == "{":
            obj = _load("auto", text)
            fmt = _sniff_obj(obj)
            return fmt, _parse_obj(fmt, obj, ctx, country_of)
        if text.lstrip().startswith(freeswitch.SQL_PREFIX):
            fmt = sniff(text)
        else:
            row = _csv_row(text, "auto")
            fmt = _sniff_row(row)
            parse = asterisk.parse_row if fmt == asterisk.FMT else freeswitch.parse_csv_row
            return fmt, parse(row, ctx, country_of)
    if fmt in JSON_FORMATS:
        if head != "{":
            raise RejectError(f"{fmt}: not a JSON object (expected '{{' at the start of the line)")
        return fmt, _parse_obj(fmt, _load(fmt, text), ctx, country_of)
    if fmt == asterisk.FMT:
        return fmt, asterisk.parse_row(_csv_row(text, fmt), ctx, country_of)
    if text.lstrip().startswith(freeswitch.SQL_PREFIX):
        text = freeswitch.sql_values(text.strip())
    return fmt, freeswitch.parse_csv_row(_csv_row(text, fmt), ctx, country_of)


def parse_line(
    fmt: str,
    raw: str | bytes,
    settings: IngestSettings | None = None,
    country_of: CountryOf | None = None,
) -> CallDetailRecord:
    """Parse one CDR line (a Kafka message, a line of a file) into the canonical record.

    Parameters
    ----------
    fmt : str
        One of :data:`FORMATS`; "auto" sniffs this one line ('{' -> freeswitch-json
        when it has ``variables``/``channel_data``/``core-uuid``, else jsonl;
        otherwise the CSV column count and timestamp positions).
    raw : str or bytes
        The line, with or without its trailing newline; a freeswitch-json or jsonl
        document may span several lines. Bytes must be UTF-8.
    settings : IngestSettings, optional
        Time zone of naive timestamps, direction rules... (default ``IngestSettings()``).
    country_of : callable, optional
        customer_id -> ISO 3166 region used to normalise that customer's numbers
        (default: always ``settings.default_country``).

    Returns
    -------
    CallDetailRecord
        Times tz-aware UTC; durations in seconds; caller/callee E.164 where they
        normalise.

    Raises
    ------
    RejectError
        With a one-line ``reason`` (e.g. "asterisk-csv: expected 16, 18 or 21
        columns, got 7", "asterisk-csv: bad timestamp 'xyz' in column end",
        "...: end before start ...", "...: negative duration '-5'",
        "...: non-numeric billsec 'abc'"); pydantic errors are converted too.
    ValueError
        On an unknown ``fmt`` (a caller error, not a bad line).
    """
    _check_fmt(fmt)
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RejectError(f"undecodable bytes (not UTF-8) at byte {exc.start}") from None
    text = raw.rstrip("\r\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.strip()
    if not stripped:
        raise RejectError("empty line")
    if stripped[0] == "#":
        raise RejectError("comment line, not a CDR")
    if "\x00" in text:
        raise RejectError("NUL byte in line (binary data?)")
    ctx = ctx_for(settings or DEFAULT_SETTINGS)
    return _parse_text(fmt, text, ctx, country_of or ctx.default_country_of)[1]


def json_depth(text: str) -> int:
    """Net nesting change of one line of pretty-printed JSON (strings ignored)."""
    if '"' in text:
        text = _STRING_RE.sub("", text)
    return text.count("{") + text.count("[") - text.count("}") - text.count("]")


class _Doc:
    """A JSON document being accumulated over several lines."""

    __slots__ = ("line", "parts", "depth", "size", "bad")

    def __init__(self, line: int, text: str, size: int) -> None:
        self.line = line
        self.parts = [text]
        self.depth = json_depth(text)
        self.size = size
        self.bad: str | None = None

    def add(self, text: str, size: int, bad: str | None) -> None:
        self.size += size
        self.depth += json_depth(text)
        if bad and not self.bad:
            self.bad = bad
        if self.size > MAX_DOC_BYTES:
            self.bad = self.bad or f"JSON document larger than {MAX_DOC_BYTES} bytes"
        else:
            self.parts.append(text)


def read_stream(
    stream: IO[bytes],
    source: str,
    fmt: str = "auto",
    settings: IngestSettings | None = None,
    country_of: CountryOf | None = None,
) -> Iterator[Parsed]:
    """Stream :class:`Parsed` outcomes from a binary stream (a file, stdin.buffer...).

    Same contract as :func:`read_file`; ``source`` names the stream in the outcomes.
    """
    _check_fmt(fmt)
    return _read(stream, source, fmt, settings or DEFAULT_SETTINGS, country_of)


def read_file(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    settings: IngestSettings | None = None,
    country_of: CountryOf | None = None,
) -> Iterator[Parsed]:
    """Stream one :class:`Parsed` per CDR line of a file, accepted or rejected.

    The file is read as bytes, line by line (never loaded whole), and decoded per
    line, so a binary or partly corrupt file yields rejects instead of crashing.
    Blank lines and ``#`` comments are yielded with ``skipped=True``; an empty file
    yields nothing; a freeswitch-json / jsonl document pretty-printed over several
    lines is one outcome (``line`` = its first line, at most :data:`MAX_DOC_BYTES`).
    With ``fmt="auto"`` the first CDR line whose layout is recognised fixes the
    format for the rest of the file (lines before it are rejected as unknown).

    Parameters
    ----------
    path : str or PathLike
    fmt : str
        One of :data:`FORMATS`.
    settings : IngestSettings, optional
    country_of : callable, optional
        customer_id -> ISO region (default: ``settings.default_country``).

    Returns
    -------
    Iterator[Parsed]
        Lazily; the file is opened on the first ``next()``.

    Raises
    ------
    ValueError
        Unknown ``fmt`` (raised immediately).
    OSError
        The file cannot be opened or read (raised while iterating).
    """
    _check_fmt(fmt)
    return _read_path(path, fmt, settings or DEFAULT_SETTINGS, country_of)


def _read_path(
    path: str | os.PathLike[str], fmt: str, settings: IngestSettings, country_of: CountryOf | None
) -> Iterator[Parsed]:
    with open(path, "rb") as fh:
        yield from _read(fh, os.fspath(path), fmt, settings, country_of)


def _decode(b: bytes) -> tuple[str, str | None]:
    """(text without newline, reject reason or None)."""
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = b.decode("utf-8", "backslashreplace").rstrip("\r\n").replace("\x00", "\\x00")
        return text, f"undecodable bytes (not UTF-8) at byte {exc.start}"
    text = text.rstrip("\r\n")
    if "\x00" in text:
        return text.replace("\x00", "\\x00"), "NUL byte in line (binary data?)"
    return text, None


def _read(
    stream: IO[bytes], source: str, fmt: str, settings: IngestSettings, country_of: CountryOf | None
) -> Iterator[Parsed]:
    ctx = ctx_for(settings)
    cof = country_of or ctx.default_country_of
    fixed: str | None = None if fmt == "auto" else fmt
    readline = partial(stream.readline, MAX_DOC_BYTES + 1)
    doc: _Doc | None = None
    lineno = 0

    def finish(d: _Doc) -> Parsed:
        nonlocal fixed
        text = "\n".join(d.parts)
        if d.bad:
            return Parsed(source, d.line, text, None, d.bad)
        if d.depth > 0:
            return Parsed(source, d.line, text, None, "unterminated JSON document")
        try:
            obj = _load(fixed or "auto", text)
            used = fixed or _sniff_obj(obj)
            fixed = used
            record = _parse_obj(used, obj, ctx, cof)
        except RejectError as exc:
            return Parsed(source, d.line, text, None, exc.reason)
        return Parsed(source, d.line, text, record, None)

    for b in iter(readline, b""):
        lineno += 1
        overlong = len(b) > MAX_DOC_BYTES and not b.endswith(b"\n")
        if overlong:  # drop the rest of this physical line
            while True:
                more = readline()
                if not more or more.endswith(b"\n"):
                    break
        text, bad = _decode(b)
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if overlong:
            bad = f"line longer than {MAX_DOC_BYTES} bytes"
            text = text[:200] + "..."
        if doc is not None:
            if text.startswith("{"):  # an unindented '{' opens the next document: resync
                yield finish(doc)
                doc = None
            else:
                doc.add(text, len(b), bad)
                if doc.depth <= 0:
                    yield finish(doc)
                    doc = None
                continue
        if bad:
            yield Parsed(source, lineno, text, None, bad)
            continue
        stripped = text.strip()
        if not stripped or stripped[0] == "#":
            yield Parsed(source, lineno, text, None, None, True)
            continue
        if stripped[0] == "{" and (fixed is None or fixed in JSON_FORMATS):
            try:
                obj = _loads(text)
            except ValueError as exc:
                if json_depth(text) > 0:
                    doc = _Doc(lineno, text, len(b))
                    continue
                reason = f"{fixed or 'auto'}: invalid JSON: {str(exc).splitlines()[0][:120]}"
                yield Parsed(source, lineno, text, None, reason)
                continue
            try:
                used = fixed or _sniff_obj(obj)
                fixed = used
                record = _parse_obj(used, obj, ctx, cof)
            except RejectError as exc:
                yield Parsed(source, lineno, text, None, exc.reason)
                continue
            yield Parsed(source, lineno, text, record, None)
            continue
        try:
            if fixed is None:
                fixed = sniff(text)
            record = _parse_text(fixed, text, ctx, cof)[1]
        except RejectError as exc:
            yield Parsed(source, lineno, text, None, exc.reason)
            continue
        yield Parsed(source, lineno, text, record, None)
    if doc is not None:
        yield finish(doc)
