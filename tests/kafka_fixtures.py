"""Kafka fixtures and helpers for the streaming tests (``@pytest.mark.kafka``).

``kafka_bootstrap`` (session) gives ``"host:port"`` of a real broker, from the first
of these that works:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set (CI starts the broker itself);
2. a testcontainers Kafka container when a Docker engine answers ``docker info``
   and the optional ``testcontainers`` package is importable;
3. ``infra/kafka/start.sh`` on free ports with its run dir in a pytest tmp dir,
   stopped with ``infra/kafka/stop.sh`` at the end of the session.

Kafka tests are skipped (with the reason) only when none of these is possible
(no Java, or no Kafka jars and no Maven to fetch them).

Helpers: :class:`WorkerProcess` runs ``tollguard worker`` as a subprocess (log in a
file, ready when Faust logs "Worker ready", stopped with SIGTERM then SIGKILL),
:func:`read_topics` reads whole topics until they are idle, :func:`group_lag` and
:func:`wait_for_lag_zero` watch the worker's consumer group, :func:`run_cli` runs
``tollguard`` subcommands.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KAFKA_INFRA = REPO / "infra" / "kafka"

#: Output topics of the worker (without prefix): one per event type.
EVENT_TOPICS = ("suspensions", "reactivations", "capacity-increases", "compliance-notices", "alerts")
DEAD_LETTER = "cdrs-dead-letter"
#: Faust logs this (``[^---Recovery]: Worker ready``) once the group is joined and tables recovered.
READY_LINE = "Worker ready"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bootstrap_of(broker: str) -> str:
    """``kafka://h:p`` or ``h:p`` (comma-separated lists kept) → ``h:p``."""
    return ",".join(part.strip().split("://", 1)[-1] for part in broker.split(","))


def unique_names(tag: str) -> tuple[str, str]:
    """(topic prefix, app id) unique to one test: tests never see each other's data."""
    suffix = uuid.uuid4().hex[:10]
    return f"t-{tag}-{suffix}.", f"tollguard-test-{tag}-{suffix}"


# --------------------------------------------------------------------------- broker


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _testcontainers_kafka() -> Iterator[str] | None:
    """A generator yielding a container's bootstrap, or None when testcontainers is absent."""
    try:
        from testcontainers.kafka import KafkaContainer
    except ImportError:
        return None

    def run() -> Iterator[str]:
        image = os.environ.get("TOLLGUARD_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.1")
        container = KafkaContainer(image)
        if hasattr(container, "with_kraft"):
            container = container.with_kraft()
        with container as kafka:
            yield bootstrap_of(kafka.get_bootstrap_server())

    return run()


def _local_broker_problem() -> str | None:
    """Why ``infra/kafka/start.sh`` cannot run here, or None."""
    if shutil.which(os.environ.get("JAVA", "java")) is None:
        return "no Kafka broker: KAFKA_BOOTSTRAP_SERVERS unset, no Docker engine, and no java for infra/kafka"
    has_jars = any((KAFKA_INFRA / "lib").glob("kafka_2.13-*.jar"))
    if not has_jars and shutil.which("mvn") is None:
        return (
            "no Kafka broker: KAFKA_BOOTSTRAP_SERVERS unset, no Docker engine, "
            "no Kafka jars and no mvn to fetch them"
        )
    return None


def _local_broker(run_dir: Path) -> Iterator[str]:
    env = dict(os.environ)
    env.update(
        KAFKA_RUN_DIR=str(run_dir),
        KAFKA_PORT=str(free_port()),
        KAFKA_CONTROLLER_PORT=str(free_port()),
        PYTHON=sys.executable,
    )
    proc = subprocess.run(
        ["bash", str(KAFKA_INFRA / "start.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(
                f"infra/kafka/start.sh failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(KAFKA_INFRA / "stop.sh")], env=env, capture_output=True, timeout=120, check=False
        )


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``"host:port"`` of a real Kafka broker for this test session (see the module docstring)."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield bootstrap_of(env)
        return
    if _docker_answers():
        container = _testcontainers_kafka()
        if container is not None:
            yield from container
            return
    problem = _local_broker_problem()
    if problem:
        pytest.skip(problem)
    yield from _local_broker(tmp_path_factory.mktemp("kafka") / "run")


class PrivateBroker:
    """A broker of one test module (or bench script) only: ``infra/kafka/start.sh`` on free ports, own run dir.

    For faults that must not touch the shared broker: :meth:`stop` (SIGTERM, an orderly shutdown)
    or :meth:`kill` (SIGKILL) it, :meth:`restart` it on the same data (the same JVM command line;
    start.sh would wipe the run dir), :meth:`close` it (``stop.sh``).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.env = dict(os.environ, KAFKA_RUN_DIR=str(run_dir), KAFKA_PORT=str(free_port()),
                        KAFKA_CONTROLLER_PORT=str(free_port()), PYTHON=sys.executable)
        proc = subprocess.run(["bash", str(KAFKA_INFRA / "start.sh")], env=self.env, capture_output=True,
                              text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"start.sh failed: {proc.stderr[-3000:]}")
        self.bootstrap = proc.stdout.strip().splitlines()[-1]
        self.pid = int((run_dir / "kafka.pid").read_text().strip())
        self.argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")

    def _signal(self, sig: int, timeout: float = 60) -> None:
        os.kill(self.pid, sig)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            try:  # reap it if it is our child (a restarted broker)
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def restart(self, timeout: float = 120) -> None:
        with open(self.run_dir / "kafka-restart.log", "ab") as out:
            proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid = proc.pid
        (self.run_dir / "kafka.pid").write_text(f"{self.pid}\n")
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                admin.list_topics()
                admin.close()
                return
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        subprocess.run(["bash", str(KAFKA_INFRA / "stop.sh")], env=self.env, capture_output=True, timeout=120,
                       check=False)


# --------------------------------------------------------------------------- CLI and worker


def cli_env(bootstrap: str) -> dict[str, str]:
    """Environment for ``tollguard`` subprocesses: the repo on the path, the broker set."""
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    env.pop("TOLLGUARD_BROKER", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(args: Iterable[str], bootstrap: str = "", timeout: float = 300, ok: Iterable[int] = (0,)) -> str:
    """Run ``python -m streams.cli ARGS`` from the repo root; return stderr (asserts the exit code)."""
    argv = [sys.executable, "-m", "streams.cli", *args]
    proc = subprocess.run(
        argv, cwd=REPO, env=cli_env(bootstrap), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode in tuple(ok), (
        f"{' '.join(argv[2:])} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return proc.stderr


@dataclass
class WorkerProcess:
    """``tollguard worker`` in a subprocess; its log goes to ``workdir/worker-N.log``.

    ``start()`` waits for Faust's "Worker ready" line (group joined, table recovered),
    ``stop()`` sends SIGTERM (a clean stop: offsets committed, group left) and SIGKILL
    after ``timeout``. Restarting the same object reuses the app id (same group and
    changelog) and a fresh data dir.
    """

    bootstrap: str
    topic_prefix: str
    app_id: str
    workdir: Path
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)
    web_port: int = 0
    #: ``--fast-rebalance`` (6 s session timeout); False: the worker's production group timeouts
    fast_rebalance: bool = True

    def start(self, timeout: float = 90) -> WorkerProcess:
        self.starts += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"worker-{self.starts}.log"
        self.logs.append(self.log_path)
        argv = [
            sys.executable, "-m", "streams.cli", "worker",
            "--broker", self.bootstrap,
            "--topic-prefix", self.topic_prefix,
            "--app-id", self.app_id,
            *(["--fast-rebalance"] if self.fast_rebalance else []),
            "--datadir", str(self.workdir / f"data-{self.starts}"),
            "--web-port", str(self._new_port()),
            "-l", "info",
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=cli_env(self.bootstrap),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited {self.proc.returncode} before ready:\n{self.log()[-4000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        return self

    def _new_port(self) -> int:
        self.web_port = free_port()
        return self.web_port

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", "replace")

    def all_logs(self) -> str:
        return "\n".join(p.read_text("utf-8", "replace") for p in self.logs if p.exists())

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# --------------------------------------------------------------------------- reading topics


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def read_topics(
    bootstrap: str, topics: Iterable[str], idle_s: float = 2.0, timeout: float = 60
) -> dict[str, list[Record]]:
    """Every record of ``topics`` from the beginning, once all partitions are at their end and idle.

    Reads without a consumer group (manual assignment). Stops when every partition
    has reached its end offset and nothing new came for ``idle_s`` seconds.
    """
    from kafka import KafkaConsumer, TopicPartition

    topics = list(topics)
    out: dict[str, list[Record]] = {t: [] for t in topics}
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        client_id="tollguard-test-reader",
    )
    try:
        tps = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return out
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=200, max_records=5000)
            for tp, recs in batch.items():
                for r in recs:
                    out[tp.topic].append(Record(tp.topic, tp.partition, r.offset, r.key, r.value,
                                              tuple(r.headers or ())))
            now = time.monotonic()
            if batch:
                last_new = now
            elif now - last_new >= idle_s:
                ends = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= ends[tp] for tp in tps):
                    return out
            if now > deadline:
                raise TimeoutError(f"topics {topics} not drained after {timeout}s")
    finally:
        consumer.close()


def group_lag(bootstrap: str, group: str, topics: Iterable[str]) -> dict[str, int]:
    """Per topic: end offsets minus the group's committed offsets (no commit = 0)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    topics = list(topics)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, client_id="tollguard-test-lag")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tollguard-test-lag-admin")
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps)
        if hasattr(admin, "list_group_offsets"):
            committed = admin.list_group_offsets({group: None})[group]
        else:  # kafka-python < 3.0
            committed = admin.list_consumer_group_offsets(group)
        lag = dict.fromkeys(topics, 0)
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[tp.topic] += max(0, ends[tp] - done)
        return lag
    finally:
        consumer.close()
        admin.close()


def wait_for_lag_zero(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    timeout: float = 120,
    worker: WorkerProcess | None = None,
) -> float:
    """Poll until the group has committed every record of ``topics``; returns the seconds waited."""
    topics = list(topics)
    started = time.monotonic()
    lag: dict[str, int] = {}
    while time.monotonic() - started < timeout:
        lag = group_lag(bootstrap, group, topics)
        if not any(lag.values()):
            return time.monotonic() - started
        if worker is not None and worker.proc is not None and not worker.alive():
            raise RuntimeError(f"worker died:\n{worker.log()[-4000:]}")
        time.sleep(0.5)
    tail = worker.log()[-4000:] if worker is not None else ""
    raise TimeoutError(f"group {group} still lagging after {timeout}s: {lag}\n{tail}")
