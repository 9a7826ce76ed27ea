"""``tollguard worker``: create the topics, build the Faust app and run it until stopped."""

from __future__ import annotations

from typing import Any

from streams.app import StreamSettings, create_app, topic_name
from streams.produce import ensure_topics
from tollguard.events import TOPIC_OF_TYPE
from tollguard.rules import Rules

#: Topics the worker reads or writes besides its internal ones (DESIGN §4).
PUBLIC_TOPICS = ("cdrs", "verifications", "cdrs-dead-letter", *TOPIC_OF_TYPE.values())


def declare_topics(settings: StreamSettings) -> None:
    """Create the public topics that do not exist yet.

    Faust only creates its internal topics, and ignores a source topic that does not
    exist when it starts (until the next metadata refresh, minutes later).
    """
    ensure_topics(settings.broker, {topic_name(settings, t): settings.partitions for t in PUBLIC_TOPICS})


def run_worker(rules: Rules, loglevel: str = "warn", **options: Any) -> None:
    """Run the streaming job in this process until SIGINT/SIGTERM.

    Parameters
    ----------
    rules : Rules
        Validated rules.
    loglevel : str
        ``debug``, ``info``, ``warn`` or ``error``.
    **options
        :class:`StreamSettings` fields (None = environment or default).
    """
    import faust

    settings = StreamSettings.from_env(**options)
    declare_topics(settings)
    app = create_app(settings, rules)
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
