"""Logging filters of the worker: phone numbers masked, repeated messages rate-limited.

Installed on the handlers of the root logger once Faust has set up logging
(:func:`install`), so they see every line the worker writes, Faust's, aiokafka's and ours.

* :class:`MaskNumbers` rewrites each record's message (arguments merged in) and its
  traceback text so that a phone number (7 to 15 digits, optionally after ``+`` or ``00``, also
  written in groups with spaces or dashes) shows only its first three and last two characters:
  ``+39********00``, ``+39 ** **** **78``. A CDR value in a
  crash message or a rejected line logged by a library does not leak its numbers.
* :class:`RateLimit` lets through the first ``burst`` records of one kind (logger, level,
  message template, exception type) per ``window_s`` seconds and drops the rest; the first
  record of that kind let through after a window with drops says how many were dropped.
  During a broker outage aiokafka and Faust log the same connection errors many times a
  second; the log keeps one line per change and a count.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

#: A phone number in free text, not part of a longer token (an IP address, a UUID, a decimal, a path):
#: 7-15 digits, maybe after ``+`` or ``00``; or written in groups (the count checked by :func:`_mask`):
#: after ``+`` or ``0``, groups separated by single spaces or dashes (``+39 06 1234 5678``,
#: ``0039-06-12345678``, ``06 1234 5678``, ``+39 (06) 12345678``); without them, dashes only
#: (``555-123-4567``). A date (``2025-03-11``) is no number. The groups are possessive: a number
#: followed by something else is not cut back to a shorter one that leaks its end.
NUMBER = re.compile(
    r"(?<![\w:/-])(?<!\w\.)(?:"
    r"(?:\+|0)\d{0,4}+(?:[ -](?:\d{1,8}+|\(\d{1,5}\)))++"
    r"|\d{2,4}+(?:-\d{2,8}+)++"
    r"|(?:\+|00)?\d{7,15}+"
    r")(?![\w:/-]|\.\w)"
)
#: ISO dates, which the dashed form above also matches.
_DATE = re.compile(r"(?:19|20)\d\d-[01]\d-[0-3]\d")

#: Records of one kind let through per window, and the window (s).
BURST = 3
WINDOW_S = 60.0


def mask_numbers(text: str) -> str:
    """``text`` with every phone number shortened to its first 3 and last 2 characters.

    >>> mask_numbers('call from +390212345600 to 00447911123456, port 6066, id 12345, t=1741651200.5')
    'call from +39********00 to 004*********56, port 6066, id 12345, t=1741651200.5'
    >>> mask_numbers('caller="0612345678" uuid 1b4e28ba-2fa1-11d2-883f-0016d3cca427')
    'caller="061*****78" uuid 1b4e28ba-2fa1-11d2-883f-0016d3cca427'
    >>> mask_numbers('from +39 06 1234 5678 to 0039-06-12345678 on 2025-03-11, 3 of 12 calls')
    'from +39 ** **** **78 to 003*-**-******78 on 2025-03-11, 3 of 12 calls'
    """
    return NUMBER.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    """The matched number with the digits between its first 3 and last 2 characters starred (separators
    kept); the text as it was when it holds fewer than 7 digits or is a date."""
    text = match[0]
    if sum(c.isdigit() for c in text) < 7 or _DATE.fullmatch(text):
        return text
    return text[:3] + "".join("*" if c.isdigit() else c for c in text[3:-2]) + text[-2:]


class MaskNumbers(logging.Filter):
    """Masks phone numbers in a record's message and traceback (see :func:`mask_numbers`); never drops."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self._formatter = formatter or logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place (message with its arguments, exception and stack text)."""
        if getattr(record, "tollguard_masked", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: mask what there is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = mask_numbers(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_numbers(record.stack_info)
        record.tollguard_masked = True
        return True


class RateLimit(logging.Filter):
    """At most ``burst`` records of one kind per ``window_s`` seconds (see the module docstring).

    Parameters
    ----------
    burst : int
        Records of one kind let through per window.
    window_s : float
        Window length, seconds.
    clock : callable
        Monotonic time in seconds (tests give their own).
    max_kinds : int
        Kinds remembered; the table is cleared beyond (a bound on memory).
    """

    def __init__(self, burst: int = BURST, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic, max_kinds: int = 10_000) -> None:
        super().__init__()
        self.burst, self.window_s, self.clock, self.max_kinds = burst, window_s, clock, max_kinds
        self._kinds: dict[tuple[Any, ...], list[float]] = {}  # kind -> [window start, passed, dropped]
        self._lock = threading.Lock()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record over its kind's budget; a record after drops gets the count appended."""
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        kind = (record.name, record.levelno, str(getattr(record, "tollguard_template", record.msg))[:200], exc)
        now = self.clock()
        with self._lock:
            slot = self._kinds.get(kind)
            if slot is None:
                if len(self._kinds) >= self.max_kinds:
                    self._kinds.clear()
                slot = self._kinds[kind] = [now, 0, 0]
            if now - slot[0] >= self.window_s:
                suppressed = int(slot[2])
                slot[:] = [now, 0, 0]
                if suppressed:
                    _append(record, f" [{suppressed} more like this in the last {self.window_s:.0f} s not logged]")
            if slot[1] < self.burst:
                slot[1] += 1
                if slot[1] == self.burst:
                    _append(record, f" [further lines like this are limited to {self.burst} per "
                                    f"{self.window_s:.0f} s]")
                return True
            slot[2] += 1
            self.dropped += 1
            return False


def _append(record: logging.LogRecord, note: str) -> None:
    record.msg = record.getMessage() + note
    record.args = ()


class _Template(logging.Filter):
    """Keeps a record's message template before :class:`MaskNumbers` merges the arguments into it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "tollguard_template"):
            record.tollguard_template = record.msg
        return True


def install(logger: logging.Logger | None = None, mask: bool = True, limit: bool = True) -> list[logging.Filter]:
    """Add the filters to every handler of ``logger`` (default: the root logger); returns them.

    Idempotent: a handler that already has them is left alone.
    """
    logger = logger or logging.getLogger()
    filters: list[logging.Filter] = [_Template()]
    if limit:
        filters.append(RateLimit())
    if mask:
        filters.append(MaskNumbers())
    for handler in logger.handlers:
        if any(isinstance(f, _Template) for f in handler.filters):
            continue
        for f in filters:
            handler.addFilter(f)
    return filters
