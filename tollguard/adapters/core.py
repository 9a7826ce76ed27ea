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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

from tollguard.cdr import CallDetailRecord
from tollguard.errors import RejectError

from . import asterisk, canonical, cucm, freeswitch, kamailio, mapping, threecx
from ._common import MAPPING_HINT, CountryOf, Ctx, OwnerOf, ctx_for
from .asterisk import layout_hint, looks_like_ts
from .settings import BUILTIN_FORMATS, IngestSettings

try:  # orjson is a dependency, but keep a pure-python fallback
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

#: Format names accepted by :func:`parse_line` and :func:`read_file`.
FORMATS = BUILTIN_FORMATS
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
    fmt : str or None
        The format that read an accepted line (an ``ingest.mappings`` name for a mapping).
    paired : bool
        With ``skipped``: a transaction record (Kamailio ``acc`` INVITE 200, an auth challenge)
        that went into the CDR of a later line (its BYE), not a line of its own.
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
    paired: bool = False
    fmt: str | None = None

    @property
    def accepted(self) -> bool:
        """True when the line gave a record."""
        return self.record is not None


def _check_fmt(fmt: str, settings: IngestSettings | None = None) -> None:
    known = (settings or DEFAULT_SETTINGS).formats()
    if fmt not in known:
        raise ValueError(f"unknown CDR format {fmt!r}; expected one of {', '.join(known)}")


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. ")


def _looks_like_names(row: list[str]) -> bool:
    """A row of column names: 3 or more cells, all identifiers (a header no layout knows)."""
    cells = [c.strip() for c in row if c.strip()]
    return len(cells) >= 3 and all(c[0].isalpha() and set(c) <= _NAME_CHARS for c in cells)


def _closest(row: list[str]) -> str:
    """Which known layout a row of unknown layout is closest to, by column count and timestamp positions."""
    n = len(row)
    ts = [i for i, c in enumerate(row) if looks_like_ts(c)]
    if _looks_like_names(row):
        shown = ", ".join(c.strip() for c in row[:6]) + (", …" if n > 6 else "")
        return f"; a header row naming {n} columns ({shown}) that no layout has"
    candidates = (
        ("Asterisk cdr_csv (asterisk-csv)", (16, 18, 21), (9, 11)),
        ("FreeSWITCH mod_cdr_csv (freeswitch-csv)", (13, 15, 17, 20), (4, 6)),
        ("3CX (3cx)", (26, 27), (3, 5)),
    )
    best, score = "", 0.0
    for name, widths, (a, b) in candidates:
        points = 2 * (n in widths) + (a in ts) + (b in ts) - min(abs(n - w) for w in widths) / 10
        if points > score:
            best, score = f"; closest to {name}, {'/'.join(map(str, widths))} columns with times at columns "\
                          f"{a + 1} and {b + 1}", points
    where = f" (timestamps at column(s) {', '.join(str(i + 1) for i in ts[:4])})" if ts else ""
    return (best + where) if best else where


def _csv_row(text: str, fmt: str, delimiter: str = ",") -> list[str]:
    try:
        return next(csv.reader((text,), skipinitialspace=True, delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise RejectError(f"{fmt}: bad CSV: {exc}") from None


def _not_ts(row: list[str], columns: tuple[int, int], names: tuple[str, ...]) -> str:
    """'column 10 (start) 'xyz' is not a timestamp' for the first of ``columns`` that is not one."""
    i = next(i for i in columns if not looks_like_ts(row[i]))
    return f"column {i + 1} ({names[i]}) {row[i][:40]!r} is not a timestamp"


def _sniff_row(row: list[str]) -> str:
    """asterisk-csv or freeswitch-csv from the column count and where the timestamps are.

    The reject says what did not fit: a column count neither layout writes, or the
    count of one layout whose timestamp columns hold something else.
    """
    n = len(row)
    if n in asterisk.WIDTHS:
        if looks_like_ts(row[9]) and looks_like_ts(row[11]):
            return asterisk.FMT
        why = f" like Asterisk cdr_csv, but {_not_ts(row, (9, 11), asterisk.COLUMNS)})"
    elif n in freeswitch.CSV_WIDTHS:
        if looks_like_ts(row[4]) and looks_like_ts(row[6]):
            return freeswitch.CSV_FMT
        why = f" like FreeSWITCH mod_cdr_csv, but {_not_ts(row, (4, 6), freeswitch.CSV_COLUMNS)})"
    else:
        why = (
            "): Asterisk cdr_csv writes 16, 18 or 21 columns (start/answer/end at columns 10-12), "
            "FreeSWITCH mod_cdr_csv 13, 15, 17 or 20 (timestamps at columns 5-7)"
        )
        hint = layout_hint(row)
        raise RejectError(f"auto: unknown layout ({n} CSV columns{why}{hint or _closest(row)}{MAPPING_HINT}")
    raise RejectError(f"auto: unknown layout ({n} CSV columns{why}{layout_hint(row)}{MAPPING_HINT}")


def _row_format(row: list[str], settings: IngestSettings, text: str) -> str:
    """The format of a CSV row: 3CX, CUCM, a positional or named mapping of its width, else
    Asterisk / FreeSWITCH by column count and timestamps (:func:`_sniff_row`, which raises)."""
    if threecx.looks_like(row):
        return threecx.FMT
    if cucm.looks_like(row):
        return cucm.FMT
    if settings.mappings:
        for m in settings.mappings:
            cells = row if m.delimiter == "," else _csv_row(text, m.name, m.delimiter)
            if len(cells) == m.width and not (len(row) in asterisk.WIDTHS + freeswitch.CSV_WIDTHS
                                              and _sniffs_as_builtin(row)):
                return m.name
    return _sniff_row(row)


def _sniffs_as_builtin(row: list[str]) -> bool:
    try:
        _sniff_row(row)
    except RejectError:
        return False
    return True


def header_format(text: str, settings: IngestSettings) -> tuple[str, tuple[str, ...] | None] | None:
    """(format, column names or None) when ``text`` is a header row a layout names, else None.

    CUCM's header (``cdrRecordType,globalCallID_callManagerId,…``) and its SQL-types row, a Kamailio
    acc table header (``id,method,from_tag,…``), the 3CX field names, an ``ingest.mappings`` entry's
    ``columns``. The names returned locate the fields of the rows that follow.
    """
    head = text.lstrip()[:1]
    if not head or not (head.isalpha() or head in "\"'"):
        return None
    try:
        row = next(csv.reader((text,), skipinitialspace=True))
    except (csv.Error, StopIteration):
        return None
    names = tuple(c.strip() for c in row)
    if cucm.is_header(row):
        return cucm.FMT, names
    if cucm.is_types_row(row):
        return cucm.FMT, None
    if names[: len(kamailio.CORE_COLUMNS)] == kamailio.CORE_COLUMNS:
        return kamailio.FMT, names
    if tuple(n.lower() for n in names[: len(threecx.COLUMNS)]) == threecx.COLUMNS:
        return threecx.FMT, None
    for m in settings.mappings:
        cells = row if m.delimiter == "," else next(csv.reader((text,), delimiter=m.delimiter))
        if mapping.header_matches(m, cells):
            return m.name, None
    return None


#: Column names of the Asterisk (cdr_csv, cdr_custom / cdr_adaptive_odbc) and FreeSWITCH
#: (mod_cdr_csv templates, channel variables) layouts, as header rows of exports name them.
KNOWN_COLUMNS = frozenset(asterisk.COLUMNS) | frozenset(freeswitch.CSV_COLUMNS) | frozenset({
    "calldate", "answerdate", "enddate", "callerid", "caller_id", "cnum", "cnam", "did",
    "recordingfile", "outbound_cnum", "outbound_cnam", "dst_cnam",
    "sip_user_agent", "network_addr", "sip_hangup_disposition", "hangup_cause_q850", "direction",
    "sip_from_user", "sip_req_user", "sip_call_id", "progress_stamp", "progress_media_stamp",
    "start_epoch", "answer_epoch", "end_epoch", "start_uepoch", "answer_uepoch", "end_uepoch",
    "billmsec", "mduration", "progresssec", "answersec", "waitsec", "flow_billsec",
    "effective_caller_id_name", "effective_caller_id_number", "dialed_number", "last_app",
    "last_arg", "read_rate", "write_rate", "remote_media_ip", "domain_name", "username",
})  # fmt: skip
_HEADER_JUNK = str.maketrans({" ": "_", "-": "_", "$": None, "{": None, "}": None, '"': None, "'": None})


def is_header_row(text: str) -> bool:
    """True for a CSV row of column names (``accountcode,src,dst,...``), quoted or not.

    A row of at least 3 non-empty cells, most of which (more than half) are column
    names of the Asterisk / FreeSWITCH layouts (:data:`KNOWN_COLUMNS`; case, spaces,
    dashes and ``${...}`` ignored).
    """
    try:
        row = next(csv.reader((text,), skipinitialspace=True))
    except (csv.Error, StopIteration):
        return False
    cells = [c.strip().lower().translate(_HEADER_JUNK) for c in row if c.strip()]
    if len(cells) < 3:
        return False
    return 2 * sum(c in KNOWN_COLUMNS for c in cells) > len(cells)


def _sniff_obj(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise RejectError("auto: JSON value is not an object")
    if "variables" in obj or "channel_data" in obj or "core-uuid" in obj:
        return freeswitch.JSON_FMT
    return canonical.FMT


def _parse_obj(fmt: str, obj: Any, ctx: Ctx, country_of: CountryOf) -> CallDetailRecord:
    if fmt == freeswitch.JSON_FMT:
        return freeswitch.parse_json_doc(obj, ctx, country_of)
    return canonical.parse_obj(obj, ctx, country_of)


def sniff(text: str, settings: IngestSettings | None = None) -> str:
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
    if kamailio.looks_like_log(stripped) or kamailio.db_row(stripped) is not None:
        return kamailio.FMT
    if stripped.startswith(freeswitch.SQL_PREFIX):
        row = freeswitch.sql_row(stripped)
        if len(row) in (13, 15) and looks_like_ts(row[4]) and looks_like_ts(row[6]):
            return freeswitch.CSV_FMT
        n = len(row)
        reason = f"auto: unknown layout: SQL INSERT with {n} values"
        raise RejectError(
            f"{reason} (FreeSWITCH mod_cdr_csv's 'sql' template has 13, mod_cdr_sqlite's default table 14)"
            + MAPPING_HINT
        )
    return _row_format(_csv_row(text, "auto"), settings or DEFAULT_SETTINGS, text)


def _load(fmt: str, text: str) -> Any:
    try:
        return _loads(text)
    except ValueError as exc:
        raise RejectError(f"{fmt}: invalid JSON: {str(exc).splitlines()[0][:120]}") from None


def _parse_row(
    fmt: str, row: list[str], ctx: Ctx, country_of: CountryOf, owner_of: OwnerOf | None,
    names: tuple[str, ...] | None = None,
) -> CallDetailRecord:
    """A CSV row of a known CSV format (not Kamailio: :func:`_parse_text`) -> record."""
    if fmt == asterisk.FMT:
        return asterisk.parse_row(row, ctx, country_of)
    if fmt == freeswitch.CSV_FMT:
        return freeswitch.parse_csv_row(row, ctx, country_of)
    if fmt == threecx.FMT:
        return threecx.parse_row(row, ctx, country_of, owner_of)
    if fmt == cucm.FMT:
        index = {n: i for i, n in enumerate(names)} if names else None
        return cucm.parse_row(row, ctx, country_of, index, owner_of)
    m = ctx.settings.mapping(fmt)
    if m is None:  # pragma: no cover - formats are checked first
        raise ValueError(f"unknown CDR format {fmt!r}")
    return mapping.parse_row(m, row, ctx, country_of, owner_of)


def _parse_text(
    fmt: str, text: str, ctx: Ctx, country_of: CountryOf, owner_of: OwnerOf | None = None,
    names: tuple[str, ...] | None = None,
) -> tuple[str, CallDetailRecord]:
    """(format actually used, record) of one line / document; ``fmt`` may be "auto"."""
    head = text.lstrip()[:1]
    if fmt == "auto":
        if head == "{":
            obj = _load("auto", text)
            fmt = _sniff_obj(obj)
            return fmt, _parse_obj(fmt, obj, ctx, country_of)
        fmt = sniff(text, ctx.settings)
    if fmt == kamailio.FMT:
        return fmt, kamailio.parse_single(text, ctx, country_of, owner_of)
    if fmt in JSON_FORMATS:
        if head != "{":
            raise RejectError(f"{fmt}: not a JSON object (expected '{{' at the start of the line)")
        return fmt, _parse_obj(fmt, _load(fmt, text), ctx, country_of)
    if fmt == freeswitch.CSV_FMT and text.lstrip().startswith(freeswitch.SQL_PREFIX):
        return fmt, freeswitch.parse_csv_row(freeswitch.sql_row(text), ctx, country_of)
    m = None if fmt in BUILTIN_FORMATS else ctx.settings.mapping(fmt)  # a mapping never takes a built-in name
    return fmt, _parse_row(fmt, _csv_row(text, fmt, m.delimiter if m else ","), ctx, country_of, owner_of, names)


def parse_line(
    fmt: str,
    raw: str | bytes,
    settings: IngestSettings | None = None,
    country_of: CountryOf | None = None,
    owner_of: OwnerOf | None = None,
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
    owner_of : callable, optional
        E.164 DID -> the customer the rules list it under (formats without an account
        code: kamailio-acc, 3cx, cucm, mappings).

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
        "...: non-numeric billsec 'abc'", "CSV header row (column names), not a
        CDR"); pydantic errors are converted too.
    ValueError
        On an unknown ``fmt`` (a caller error, not a bad line).
    """
    _check_fmt(fmt, settings)
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
    try:
        return _parse_text(fmt, text, ctx, country_of or ctx.default_country_of, owner_of)[1]
    except RejectError:
        if stripped[0] != "{" and fmt not in JSON_FORMATS and is_header_row(text):
            raise RejectError("CSV header row (column names), not a CDR") from None
        raise


def json_depth(text: str) -> int:
    """Net nesting change of one line of pretty-printed JSON (strings ignored)."""
    if '"' in text:
        text = _STRING_RE.sub("", text)
    return text.count("{") + text.count("[") - text.count("}") - text.count("]")


class _Doc:
    """A JSON document being accumulated over several lines."""

    __slots__ = ("bad", "depth", "line", "parts", "size")

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
    owner_of: OwnerOf | None = None,
) -> Iterator[Parsed]:
    """Stream :class:`Parsed` outcomes from a binary stream (a file, stdin.buffer...).

    Same contract as :func:`read_file`; ``source`` names the stream in the outcomes.
    """
    _check_fmt(fmt, settings)
    return _read(stream, source, fmt, settings or DEFAULT_SETTINGS, country_of, owner_of)


def read_file(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    settings: IngestSettings | None = None,
    country_of: CountryOf | None = None,
    owner_of: OwnerOf | None = None,
) -> Iterator[Parsed]:
    """Stream one :class:`Parsed` per CDR line of a file, accepted or rejected.

    The file is read as bytes, line by line (never loaded whole), and decoded per
    line, so a binary or partly corrupt file yields rejects instead of crashing.
    Whatever its name, a gzip file (magic bytes ``1f 8b``, e.g. a rotated
    ``Master.csv.gz``) is decompressed on the fly; a truncated or corrupt gzip stream
    keeps the lines read so far and ends with one reject ("truncated gzip stream
    after line N"). A UTF-16 text (BOM ``FF FE`` or ``FE FF``, Windows exports) is
    decoded to text; a UTF-8 BOM is dropped.
    Blank lines, ``#`` comments and CSV header rows (column names, see
    :func:`is_header_row`) are yielded with ``skipped=True``; an empty file
    yields nothing; a freeswitch-json / jsonl document pretty-printed over several
    lines is one outcome (``line`` = its first line, at most :data:`MAX_DOC_BYTES`).
    With ``fmt="auto"`` the first CDR line whose layout is recognised fixes the
    format for the rest of the file (lines before it are rejected as unknown); a header
    row a layout names (CUCM's two, a Kamailio acc table's, an ``ingest.mappings``
    entry's ``columns``) fixes it too and locates the columns.
    Kamailio ``acc`` transactions are paired into CDRs (INVITE 200 with its BYE, by
    Call-ID): the INVITE's outcome is ``skipped`` and ``paired``, yielded just before its
    BYE's record; an answered INVITE without a BYE is rejected at the end of the file. The
    other lines of a Kamailio log (start-up, warnings) are ``skipped``.

    Parameters
    ----------
    path : str or PathLike
    fmt : str
        One of :data:`FORMATS`.
    settings : IngestSettings, optional
    country_of : callable, optional
        customer_id -> ISO region (default: ``settings.default_country``).
    owner_of : callable, optional
        E.164 DID -> customer listing it (see :func:`parse_line`).

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
    _check_fmt(fmt, settings)
    return _read_path(path, fmt, settings or DEFAULT_SETTINGS, country_of, owner_of)


def _read_path(
    path: str | os.PathLike[str], fmt: str, settings: IngestSettings, country_of: CountryOf | None,
    owner_of: OwnerOf | None,
) -> Iterator[Parsed]:
    with open(path, "rb") as fh:
        yield from _read(fh, os.fspath(path), fmt, settings, country_of, owner_of)


GZIP_MAGIC = b"\x1f\x8b"
#: Statements of an SQL dump around its INSERT lines (schema, session, comments): skipped, not CDR lines.
_SQL_NOISE = re.compile(
    r"(?:CREATE|DROP|ALTER|LOCK|UNLOCK|SET|BEGIN|COMMIT|START TRANSACTION|USE|PRAGMA)\b[^;]*(?:;|\($)|--|/\*",
    re.IGNORECASE,
)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: Errors of a damaged gzip stream (truncated: EOFError; bad CRC, trailing garbage, bad data).
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


class _Utf16ToUtf8(io.RawIOBase):
    """A UTF-16 byte stream (with its BOM) served as UTF-8 bytes, chunk by chunk.

    Lone surrogates survive (``surrogatepass``), so such a line fails the UTF-8 decode
    of :func:`_decode` and is rejected; so is an odd byte at the end of the stream.
    """

    def __init__(self, src: IO[bytes]) -> None:
        super().__init__()
        self._src = src
        self._dec = codecs.getincrementaldecoder("utf-16")(errors="surrogatepass")
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf and not self._eof:
            chunk = self._src.read(1 << 16)
            if chunk:
                text = self._dec.decode(chunk)
            else:
                self._eof = True
                try:
                    text = self._dec.decode(b"", final=True)
                except UnicodeDecodeError:  # an odd trailing byte
                    text = "\ud800"
            self._buf = text.encode("utf-8", "surrogatepass")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Borrowed(io.BufferedReader):
    """A buffer over the caller's stream that leaves it open when dropped."""

    def close(self) -> None:
        try:
            self.detach()
        except ValueError:  # already detached
            pass


def _peekable(stream: IO[bytes]) -> Any:
    return stream if hasattr(stream, "peek") else _Borrowed(stream)  # type: ignore[arg-type]


def _unwrap(stream: IO[bytes]) -> tuple[Any, bool, bool, Exception | None]:
    """(byte stream of the text as UTF-8, gzip?, UTF-16?, gzip error at the start or None).

    The gzip and UTF-16 layers undone, whatever the file is called.
    """
    reader: Any = _peekable(stream)
    gz = reader.peek(2)[:2] == GZIP_MAGIC
    if not gz:
        head = reader.peek(2)[:2]
    else:
        reader = gzip.GzipFile(fileobj=reader, mode="rb")
        try:
            head = reader.peek(2)[:2]
        except _GZIP_ERRORS as exc:  # broken right at the start (header, first block)
            return reader, True, False, exc
    utf16 = head in _UTF16_BOMS
    if utf16:
        reader = io.BufferedReader(_Utf16ToUtf8(reader), 1 << 16)
    return reader, gz, utf16, None


def _decode(b: bytes, utf16: bool = False) -> tuple[str, str | None]:
    """(text without newline, reject reason or None)."""
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = b.decode("utf-8", "backslashreplace").rstrip("\r\n").replace("\x00", "\\x00")
        if utf16:
            at = len(b[: exc.start].decode("utf-8", "replace"))
            return text, f"undecodable text (invalid UTF-16) at character {at}"
        return text, f"undecodable bytes (not UTF-8) at byte {exc.start}"
    text = text.rstrip("\r\n")
    if "\x00" in text:
        return text.replace("\x00", "\\x00"), "NUL byte in line (binary data?)"
    return text, None


def _read(
    stream: IO[bytes], source: str, fmt: str, settings: IngestSettings, country_of: CountryOf | None,
    owner_of: OwnerOf | None = None,
) -> Iterator[Parsed]:
    # a generator, so nothing is read before the first next()
    yield from _Reader(stream, source, fmt, settings, country_of, owner_of).outcomes()


class _Reader:
    """One pass of :func:`_read` over a stream: the format once fixed, the line count, a gzip error."""

    def __init__(
        self, stream: IO[bytes], source: str, fmt: str, settings: IngestSettings, country_of: CountryOf | None,
        owner_of: OwnerOf | None = None,
    ) -> None:
        self.source = source
        self.ctx = ctx_for(settings)
        self.cof = country_of or self.ctx.default_country_of
        self.owner_of = owner_of
        self.fixed: str | None = None if fmt == "auto" else fmt
        self.names: tuple[str, ...] | None = None  # column names of a header row (CUCM, Kamailio acc table)
        self.pairer: kamailio.Pairer | None = None
        text_stream, gz, self.utf16, self.broken = _unwrap(stream)
        self._readline: Callable[[], bytes] = partial(text_stream.readline, MAX_DOC_BYTES + 1)
        self.readline = self._gz_readline if gz else self._readline
        self.lineno = 0

    def _gz_readline(self) -> bytes:
        """The next line of a gzip stream; b"" from the first decompression error on (kept in ``broken``)."""
        if self.broken is not None:
            return b""
        try:
            return self._readline()
        except _GZIP_ERRORS as exc:
            self.broken = exc
            return b""

    def outcomes(self) -> Iterator[Parsed]:
        doc: _Doc | None = None
        for b in iter(self.readline, b""):
            self.lineno += 1
            text, bad = self._line_text(b)
            if doc is not None:
                if not text.startswith("{"):
                    doc.add(text, len(b), bad)
                    if doc.depth <= 0:
                        yield self._finish(doc)
                        doc = None
                    continue
                yield self._finish(doc)  # an unindented '{' opens the next document: resync
                doc = None
            if bad:
                yield Parsed(self.source, self.lineno, text, None, bad, exact=False)
                continue
            outcome = self._parse_line(text, len(b))
            if isinstance(outcome, _Doc):
                doc = outcome
            elif isinstance(outcome, list):
                yield from outcome
            else:
                yield outcome
        if doc is not None:
            yield self._finish(doc)
        if self.pairer is not None:
            yield from (self._paired(*item) for item in self.pairer.finish())
        if self.broken is not None:
            yield self._gzip_reject()

    def _line_text(self, b: bytes) -> tuple[str, str | None]:
        """(text of a physical line, reject reason or None); an overlong line is cut and its rest dropped."""
        overlong = len(b) > MAX_DOC_BYTES and not b.endswith(b"\n")
        if overlong:  # drop the rest of this physical line
            while True:
                more = self.readline()
                if not more or more.endswith(b"\n"):
                    break
        text, bad = _decode(b, self.utf16)
        if self.lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if overlong:
            bad = f"line longer than {MAX_DOC_BYTES} bytes"
            text = text[:200] + "..."
        return text, bad

    def _parse_line(self, text: str, size: int) -> Parsed | _Doc | list[Parsed]:
        """The outcome(s) of one decoded line outside a document, or the document it opens."""
        stripped = text.strip()
        if not stripped or stripped[0] == "#":
            return Parsed(self.source, self.lineno, text, None, None, True)
        if stripped[0] == "{" and (self.fixed is None or self.fixed in JSON_FORMATS):
            return self._parse_json_line(text, size)
        if _SQL_NOISE.match(stripped):  # an SQL dump's schema and session statements
            return Parsed(self.source, self.lineno, text, None, None, True)
        try:
            if self.fixed in (None, kamailio.FMT) and kamailio.is_other_log_line(text):
                self.fixed = kamailio.FMT  # the switch's own log around its acc records
                return Parsed(self.source, self.lineno, text, None, None, True)
            if self.fixed is None:
                if self._header(text):
                    return Parsed(self.source, self.lineno, text, None, None, True)
                self.fixed = sniff(text, self.ctx.settings)
            if self.fixed == kamailio.FMT:
                return self._pair(text)
            used, record = _parse_text(self.fixed, text, self.ctx, self.cof, self.owner_of, self.names)
        except RejectError as exc:
            # checked only once a line failed: costs nothing on the CDR lines
            header = self.fixed not in JSON_FORMATS and stripped[0] != "{" and (
                self._header(text) or is_header_row(text))
            return Parsed(self.source, self.lineno, text, None, None if header else exc.reason, header)
        return Parsed(self.source, self.lineno, text, record, None, fmt=used)

    def _header(self, text: str) -> bool:
        """A header row of the file's layout (or, format not fixed yet, of any): take its names."""
        found = header_format(text, self.ctx.settings)
        if found is None or (self.fixed is not None and found[0] != self.fixed):
            return False
        self.fixed = found[0]
        if found[1] is not None:
            self.names = found[1]
            if self.pairer is not None:
                self.pairer.names = found[1]
        return True

    def _pair(self, text: str) -> list[Parsed]:
        """A Kamailio acc line: the outcomes it settles (see :class:`kamailio.Pairer`)."""
        if self.pairer is None:
            self.pairer = kamailio.Pairer(self.ctx, self.cof, self.owner_of, self.names)
        if text[:1].isalpha() and "ACC:" not in text and self._header(text):  # a table export's header row
            return [Parsed(self.source, self.lineno, text, None, None, True)]
        return [self._paired(*item) for item in self.pairer.take(self.lineno, text)]

    def _paired(self, line: int, raw: str, kind: str, value: Any) -> Parsed:
        if kind == "record":
            return Parsed(self.source, line, raw, value, None, fmt=kamailio.FMT)
        if kind == "paired":
            return Parsed(self.source, line, raw, None, None, skipped=True, paired=True)
        return Parsed(self.source, line, raw, None, value)

    def _parse_json_line(self, text: str, size: int) -> Parsed | _Doc:
        try:
            obj = _loads(text)
        except ValueError as exc:
            if json_depth(text) > 0:
                return _Doc(self.lineno, text, size)
            reason = f"{self.fixed or 'auto'}: invalid JSON: {str(exc).splitlines()[0][:120]}"
            return Parsed(self.source, self.lineno, text, None, reason)
        return self._record_of(self.lineno, text, obj)

    def _record_of(self, line: int, text: str, obj: Any) -> Parsed:
        """A decoded JSON document; the first one fixes the format when it is "auto"."""
        try:
            used = self.fixed or _sniff_obj(obj)
            self.fixed = used
            record = _parse_obj(used, obj, self.ctx, self.cof)
        except RejectError as exc:
            return Parsed(self.source, line, text, None, exc.reason)
        return Parsed(self.source, line, text, record, None, fmt=used)

    def _finish(self, d: _Doc) -> Parsed:
        """The outcome of a document accumulated over several lines."""
        text = "\n".join(d.parts)
        if d.bad:
            return Parsed(self.source, d.line, text, None, d.bad, exact=False)
        if d.depth > 0:
            return Parsed(self.source, d.line, text, None, "unterminated JSON document")
        try:
            obj = _load(self.fixed or "auto", text)
        except RejectError as exc:
            return Parsed(self.source, d.line, text, None, exc.reason)
        return self._record_of(d.line, text, obj)

    def _gzip_reject(self) -> Parsed:
        broken, lineno = self.broken, self.lineno
        if isinstance(broken, EOFError):
            reason = f"truncated gzip stream after line {lineno}"
        else:
            reason = f"corrupt gzip stream after line {lineno} ({str(broken)[:80] or type(broken).__name__})"
        return Parsed(self.source, lineno + 1, "", None, reason, exact=False)
