"""``tollguard worker``: create the topics, build the Faust app and run it until stopped."""

from __future__ import annotations

import logging
import sys
from typing import Any

from streams.app import StreamSettings, create_app, topic_name
from streams.produce import ensure_topics
from tollguard.events import TOPIC_OF_TYPE
from tollguard.rules import Rules

#: Topics the worker reads or writes besides its internal ones (DESIGN §4).
PUBLIC_TOPICS = ("cdrs", "verifications", "cdrs-dead-letter", *TOPIC_OF_TYPE.values())


def declare_topics(settings: StreamSettings, app: Any = None) -> None:
    """Create the public topics, and the internal ones of ``app``, that do not exist yet.

    Faust only creates its internal topics, and ignores a source topic that does not
    exist when it starts (until the next metadata refresh, minutes later). It creates
    its internal topics (the repartition topic, table changelogs) only milliseconds
    before its consumer subscribes, so the consumer may not see them yet: "Ignoring
    missing topic", and the agent on that topic gets no partition. So create them first.
    """
    topics = {topic_name(settings, t): settings.partitions for t in PUBLIC_TOPICS}
    configs: dict[str, dict[str, str]] = {}
    if app is not None:
        for agent in app.agents.values():
            channel = agent.channel
            if getattr(channel, "internal", False):
                for name in channel.topics:
                    topics[name] = channel.partitions or settings.partitions
        for table in app.tables.values():
            changelog = table.changelog_topic
            name = changelog.get_topic_name()
            topics[name] = changelog.partitions or settings.partitions
            flags = (("compact", changelog.compacting), ("delete", changelog.deleting))
            policy = [p for p, on in flags if on]
            if policy:
                configs[name] = {"cleanup.policy": ",".join(policy)}
    ensure_topics(settings.broker, topics, configs)


def run_worker(rules: Rules, loglevel: str = "warn", model: Any = None, **options: Any) -> None:
    """Run the streaming job in this process until SIGINT/SIGTERM.

    Parameters
    ----------
    rules : Rules
        Validated rules.
    loglevel : str
        ``debug``, ``info``, ``warn`` or ``error``. Below ``debug``, phone numbers are masked in
        every log line; at every level, repeated lines are rate-limited (:mod:`streams.logfilter`).
    model : models.model.AnomalyModel, optional
        Trained anomaly model (``tollguard worker --model``), passed to the engine.
    **options
        :class:`StreamSettings` fields (None = environment or default).

    Raises
    ------
    streams.auth.AuthConfigError
        Unusable web access settings (tokens file, bind address).
    """
    import faust

    from streams import logfilter

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            logfilter.install(logger, mask=loglevel.lower() != "debug")

    settings = StreamSettings.from_env(**options)
    app = create_app(settings, rules, model=model)
    declare_topics(settings, app)
    worker = Worker(app, loglevel=loglevel, redirect_stdouts=False)
    if not worker.stdout.isatty():
        worker.spinner = None  # no spinner control codes in a log file or a pipe

    @app.task
    async def _announce() -> None:
        """One line at start, whatever the log level: where the NOC page is."""
        host = app.conf.web_bind if app.conf.web_bind not in ("0.0.0.0", "", None) else "127.0.0.1"  # noqa: S104
        print(f"tollguard worker started: {settings.broker}, topics {settings.topic_prefix or ''}cdrs -> events; "
              f"NOC page on http://{host}:{app.conf.web_port}/noc/", file=sys.stderr, flush=True)

    worker.execute_from_commandline()
