"""Hot reload of a running worker's rules file (DESIGN §6: "a running worker keeps its last good rules").

The worker polls its rules file (every :data:`RULES_POLL_S` seconds: size and modification time,
then the content's digest) and re-reads it on SIGHUP. A changed file that validates becomes live
between two records, at the event time the worker has reached (the newest CDR end it took, logged
so that ``tollguard replay --rules-change AT=FILE`` can replay the same change); every later event
carries its ``rules_version``, and every customer's state is kept (a detector whose window changed
restarts that window: :meth:`engine.core.Engine.set_rules`). A file that does not validate is
refused with its line and field in the log and counted in ``tollguard_rules_reload_failures_total``
(once per distinct content); the worker keeps its last good rules. ``tollguard_rules_info`` carries
the active version as its ``version`` label. A version made live is handed to ``on_live`` (the worker
keeps it as the last good rules on the ``tollguard-rules`` topic, :mod:`streams.lastgood`, so a restart
that finds the file invalid later runs on it).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from engine.registry import parse_rules
from tollguard.context import from_epoch
from tollguard.errors import TollguardError
from tollguard.rules import Rules

log = logging.getLogger("tollguard.worker")

#: Seconds between two looks at the rules file.
RULES_POLL_S = 2.0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


class RulesReloader:
    """Watches one rules file and makes each valid new version live through ``apply``.

    Parameters
    ----------
    path : str or Path
        The rules file the worker was started with.
    rules : Rules
        The rules in force (loaded from ``path``).
    apply : callable
        Called with the new :class:`Rules` to make them live (the worker's engine, parser, web API).
    event_time_s : callable
        The worker's event time (UTC epoch s: the newest CDR end taken), logged with each change.
    registry : prometheus_client.CollectorRegistry
        Where the reload metrics live (the worker's ``/metrics``).
    check : callable, optional
        An extra check of new rules (the anomaly model's ``check_rules``), raising
        :class:`tollguard.errors.TollguardError` to refuse them.
    ingest : dict, optional
        The worker's ``--timezone`` / ``--country`` overrides, applied to every reloaded file as at start.
    on_live : callable, optional
        Called with the file's text and the new :class:`Rules` after they became live (the worker
        keeps them as its last good rules); it must not block (the worker hands the write to a thread).
    """

    def __init__(
        self,
        path: str | Path,
        rules: Rules,
        apply: Callable[[Rules], None],
        event_time_s: Callable[[], float],
        registry: CollectorRegistry,
        check: Callable[[Rules], Any] | None = None,
        on_live: Callable[[str, Rules], None] | None = None,
        ingest: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.rules = rules
        self.apply = apply
        self.event_time_s = event_time_s
        self.check = check
        self.on_live = on_live
        self.ingest = dict(ingest or {})
        self.failures = Counter(
            "tollguard_rules_reload_failures_total",
            "changed rules files refused (invalid: line and field in the log); the worker keeps its last good rules",
            registry=registry,
        )
        self.reloads = Counter("tollguard_rules_reloads_total", "changed rules files made live", registry=registry)
        self.info = Gauge("tollguard_rules_info", "the rules in force (label version)", ["version"],
                          registry=registry)
        self.info.labels(rules.version).set(1)
        self._stat = self._stat_now()
        try:
            self._live = _digest(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            self._live = ""
        self._refused = ""

    def _stat_now(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def poll(self) -> bool:
        """Reload when the file's size or modification time moved; True when new rules became live."""
        stat = self._stat_now()
        if stat == self._stat:
            return False
        self._stat = stat
        return self.reload("file changed")

    def reload(self, why: str = "SIGHUP") -> bool:
        """Read the file now: make it live if it changed and validates; True when it became live.

        A file that cannot be read or does not validate is logged (with its line and field) and
        counted once per distinct content; the rules in force stay.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return self._refuse(f"cannot read {self.path}: {exc}", f"unreadable:{exc}", why)
        digest = _digest(text)
        if digest == self._live:
            return False
        if digest == self._refused:
            return False  # already refused and counted
        try:
            new = parse_rules(text, str(self.path), self.ingest or None)
            if self.check is not None:
                self.check(new)
        except TollguardError as exc:
            return self._refuse(str(exc), digest, why)
        old, self.rules = self.rules, new
        self.apply(new)
        self._live, self._refused = digest, ""
        self.reloads.inc()
        self.info.remove(old.version)
        self.info.labels(new.version).set(1)
        at = self.event_time_s()
        log.warning("rules %s live from event time %s (%s; was %s); states kept", new.version,
                    from_epoch(at).isoformat() if math.isfinite(at) else "before the first CDR", why, old.version)
        if self.on_live is not None:
            self.on_live(text, new)
        return True

    def _refuse(self, reason: str, ident: str, why: str) -> bool:
        if ident != self._refused:
            self._refused = ident
            self.failures.inc()
            log.error("rules reload refused (%s), keeping %s: %s", why, self.rules.version, reason)
        return False
