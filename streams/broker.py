"""A quick check that the Kafka broker answers, so a command fails in seconds with one line, not a traceback."""

from __future__ import annotations

import socket

from tollguard.errors import TollguardError

#: What to check when the broker cannot be reached (printed after the address).
WHAT_TO_CHECK = (
    "check that the broker runs (infra/kafka/start.sh prints its address) and that --broker or "
    "KAFKA_BOOTSTRAP_SERVERS names it (host:port, or kafka://host:port)"
)


class BrokerUnreachable(TollguardError):
    """No Kafka bootstrap address accepted a connection; the message names them and what to check."""


def addresses(broker: str) -> list[tuple[str, int]]:
    """``kafka://h1:9092,h2:9093`` -> ``[("h1", 9092), ("h2", 9093)]`` (port 9092 when omitted).

    Raises
    ------
    BrokerUnreachable
        A port that is not a number.
    """
    out = []
    for part in broker.split(","):
        hostport = part.strip().split("://", 1)[-1].rstrip("/")
        host, sep, port = hostport.rpartition(":")
        if not sep:
            host, port = hostport, "9092"
        if not port.isdigit():
            raise BrokerUnreachable(f"bad Kafka broker address {part.strip()!r}: expected host:port")
        out.append((host.strip("[]") or "localhost", int(port)))
    return out


def check_broker(broker: str, timeout_s: float = 5.0) -> None:
    """Return when one bootstrap address of ``broker`` accepts a TCP connection within ``timeout_s`` (seconds).

    Raises
    ------
    BrokerUnreachable
        "cannot reach the Kafka broker at 127.0.0.1:1 (connection refused): check that …".
    """
    problems = []
    for host, port in addresses(broker):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError | socket.timeout):
                why = f"no answer in {timeout_s:g} s"
            problems.append(f"{host}:{port} ({why.lower()})")
    raise BrokerUnreachable(f"cannot reach the Kafka broker at {', '.join(problems)}: {WHAT_TO_CHECK}")
