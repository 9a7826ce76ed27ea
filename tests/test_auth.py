"""Access to the worker's web API by token and role, the verdict audit log, and the worker's log filters.

Issue 14: tokens with roles from a file (or ``TOLLGUARD_API_TOKEN`` as one ``noc`` token), never
from the rules or the command line; 401 without or with an unknown token, 403 for a wrong role;
a posted verdict's ``by`` is the token's name and every posted verdict is in the audit log; phone
numbers masked in log lines; repeated log lines rate-limited. In process: the views on a Faust
app served by aiohttp's test server, as in tests/test_authorize.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from test_authorize import RULES_YAML, _states, premium_episode

from engine.core import Engine
from engine.registry import parse_rules
from engine.runner import Runner
from streams.auth import AuditLog, AuthConfigError, Identity, load_tokens_file, token_registry
from streams.logfilter import MaskNumbers, RateLimit, install
from streams.web import Metrics, register_views
from tollguard.events import Verdict

NOC, SWITCH, VIEWER, OTHER = ("noc-token-0123456789", "switch-token-0123456789", "viewer-token-0123456789",
                              "other-token-0123456789")


def tokens_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        f"  - {{name: noc-anna, role: noc, token: {NOC}}}\n"
        f"  - {{name: kamailio-1, role: switch, token: {SWITCH}}}\n"
        f"  - {{name: wallboard, role: viewer, sha256: {hashlib.sha256(VIEWER.encode()).hexdigest()}}}\n"
    )
    path.chmod(mode)
    return path


class Served:
    """The views of one worker over a runner with one active suspension, on aiohttp's test server."""

    def __init__(self, environ: dict[str, str], tokens: Path | None, audit: Path) -> None:
        import faust

        rules = parse_rules(RULES_YAML)
        self.engine = Engine(rules)
        self.runner = Runner(self.engine)
        self.events = []
        for cdr in premium_episode():
            self.events += self.runner.take_record(cdr, "test", None, "").events
        self.events += self.runner.flush(list(self.runner.store.customers())).events
        self.app = faust.App(f"auth-test-{id(self)}", broker="kafka://127.0.0.1:9", web_port=6066)  # never dialled
        self.sent: list[tuple[Verdict, str]] = []

        async def send_verdict(verdict: Verdict, customer: str) -> None:
            self.sent.append((verdict, customer))

        register_views(self.app, self.engine, lambda: _states(self.runner), deque(), Metrics(), send_verdict,
                       environ=environ, tokens_file=tokens, audit=AuditLog(audit))

    async def __aenter__(self) -> Any:
        from aiohttp.test_utils import TestClient, TestServer

        self.app.tables.recovery.completed.set()
        self.client = TestClient(TestServer(self.app.web.web_app))
        await self.client.start_server()
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_each_role_may_do_exactly_its_part(tmp_path: Path) -> None:
    audit = tmp_path / "audit" / "verdicts.jsonl"
    served = Served({}, tokens_file(tmp_path), audit)
    assert served.app.conf.web_bind == "127.0.0.1"  # tokens configured, no TOLLGUARD_WEB_BIND: still the host only
    (suspension,) = [e for e in served.events if e.type == "suspension"]
    query = {"customer": "acme", "caller": "+390212345600", "callee": "+979123456799"}
    verdict = {"suspension_event_id": suspension.event_id, "verdict": "cleared", "by": "mallory"}

    async def scenario() -> list[tuple[str, str, int]]:
        got = []
        async with served as client:
            for who, headers in (("none", {}), ("bad", bearer(OTHER)), ("noc", bearer(NOC)),
                                 ("switch", bearer(SWITCH)), ("viewer", bearer(VIEWER)),
                                 ("basic-viewer", {"Authorization": "Basic " + base64.b64encode(
                                     f"any:{VIEWER}".encode()).decode()})):
                for what, call in (
                    ("authorize", client.get("/v1/authorize", params=query, headers=headers)),
                    ("page", client.get("/noc/", headers=headers)),
                    ("suspensions", client.get("/api/suspensions", headers=headers)),
                    ("metrics", client.get("/metrics", headers=headers)),
                    ("calls", client.get("/v1/calls", params={"customer": "acme"}, headers=headers)),
                    ("verdict-bad-body", client.post("/api/verdicts", data=b"[1]", headers=headers)),
                ):
                    got.append((who, what, (await call).status))
            # the one verdict that goes through: posted by the noc token, signed with its name
            r = await client.post("/api/verdicts", json=verdict, headers=bearer(NOC))
            got.append(("noc", "verdict", r.status))
            assert (await r.json())["sent"]["by"] == "noc-anna"
            r = await client.post("/api/verdicts", json=verdict, headers=bearer(VIEWER))
            assert (await r.json())["error"] == "forbidden: wallboard (role viewer) may not verdict"
            got.append(("viewer", "verdict", r.status))
            r = await client.post("/api/verdicts", json=verdict)
            got.append(("none", "verdict", r.status))
            r = await client.get("/api/whoami", headers=bearer(VIEWER))
            assert (r.status, await r.json()) == (200, {"name": "wallboard", "role": "viewer"})
        return got

    got = asyncio.run(scenario())
    status = {(who, what): code for who, what, code in got}
    reads = ("page", "suspensions", "metrics", "calls")
    for who in ("none", "bad"):
        assert {status[(who, w)] for w in (*reads, "authorize", "verdict-bad-body")} == {401}, who
    assert status[("none", "verdict")] == 401
    assert [status[("noc", w)] for w in (*reads, "authorize", "verdict-bad-body", "verdict")] == [
        200, 200, 200, 200, 200, 400, 202]
    assert [status[("switch", w)] for w in (*reads, "authorize", "verdict-bad-body")] == [403, 403, 403, 403, 200, 403]
    for who in ("viewer", "basic-viewer"):
        assert [status[(who, w)] for w in (*reads, "authorize", "verdict-bad-body")] == [200, 200, 200, 200, 403, 403]
    assert status[("viewer", "verdict")] == 403
    # one verdict sent, by the authenticated identity (the "by" in the body is not taken)
    assert [(v.suspension_event_id, v.verdict, v.by, c) for v, c in served.sent] == [
        (suspension.event_id, "cleared", "noc-anna", "acme")]
    # the audit log holds every verdict posted, in order: refused without or with an unknown token (401) or
    # for the role (403), the noc token's bad body (400) and sent verdict (202), the viewer's and the anonymous one
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [(x["who"], x["role"], x["status"]) for x in lines] == [
        (None, None, 401), (None, None, 401), ("noc-anna", "noc", 400), ("kamailio-1", "switch", 403),
        ("wallboard", "viewer", 403), ("wallboard", "viewer", 403), ("noc-anna", "noc", 202),
        ("wallboard", "viewer", 403), (None, None, 401)]
    assert {x["what"] for x in lines} == {"api"} and all(x["peer"] == "127.0.0.1" for x in lines)
    sent = lines[6]["verdict"]
    assert sent["by"] == "noc-anna" and sent["suspension_event_id"] == suspension.event_id
    assert lines[2]["reason"].startswith("bad verdict") and lines[2]["verdict"] is None
    assert lines[3]["reason"] == "forbidden: kamailio-1 (role switch) may not verdict"


def test_the_single_token_is_one_noc_token_and_unreadable_audit_log_refuses(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the audit directory should be")
    served = Served({"TOLLGUARD_API_TOKEN": NOC}, None, tmp_path / "blocked" / "audit.jsonl")
    (suspension,) = [e for e in served.events if e.type == "suspension"]

    async def scenario() -> tuple[int, dict[str, Any]]:
        async with served as client:
            r = await client.post("/api/verdicts", headers=bearer(NOC), json={
                "suspension_event_id": suspension.event_id, "verdict": "confirmed"})
            return r.status, await r.json()

    assert asyncio.run(scenario()) == (503, {"error": "the audit log cannot be written: verdict not sent"})
    assert served.sent == []
    assert token_registry({"TOLLGUARD_API_TOKEN": NOC}).identities == [Identity("noc", "noc")]


def test_without_tokens_loopback_only_and_by_from_the_body(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    served = Served({}, None, audit)
    assert served.app.conf.web_bind == "127.0.0.1"
    (suspension,) = [e for e in served.events if e.type == "suspension"]

    async def scenario() -> tuple[int, Any]:
        async with served as client:
            r = await client.post("/api/verdicts", json={
                "suspension_event_id": suspension.event_id, "verdict": "cleared", "by": "anna"})
            return r.status, await (await client.get("/api/whoami")).json()

    assert asyncio.run(scenario()) == (202, {"name": None, "role": None})
    assert [v.by for v, _ in served.sent] == ["anna"]
    (line,) = [json.loads(x) for x in audit.read_text().splitlines()]
    assert (line["who"], line["status"], line["verdict"]["by"]) == (None, 202, "anna")


@pytest.mark.parametrize(("text", "mode", "error"), [
    ("tokens: []", 0o600, "tokens: List should have at least 1 item"),
    ("tokens:\n  - {name: a, role: admin, token: 0123456789abcdefgh}", 0o600, "tokens.entry 1.role: Input should be"),
    ("tokens:\n  - {name: a, role: noc, token: short}", 0o600, "tokens.entry 1.token: String should have at least 16"),
    ("tokens:\n  - {name: a, role: noc}", 0o600, "give exactly one of token or sha256"),
    ("tokens:\n  - {name: a, role: noc, token: 0123456789abcdefgh}\n"
     "  - {name: a, role: viewer, token: 0123456789abcdefgX}", 0o600, "name 'a' given twice"),
    ("tokens:\n  - {name: a, role: noc, token: 0123456789abcdefgh}\n"
     "  - {name: b, role: viewer, token: 0123456789abcdefgh}", 0o600, "'b' has the token of 'a'"),
    ("tokens: [", 0o600, "t.yaml:1: not YAML: expected the node content, but found '<stream end>'"),
    ("tokens:\n  - {name: a, role: noc, token: 0123456789abcdefgh}\n  - name: b\n   role: noc\n", 0o600,
     "t.yaml:4: not YAML: expected <block end>, but found '<block mapping start>': check the indentation of this "
     "line, of line 3 before it"),
    ("tokens:\n  - {name: a, role: noc, token: 0123456789abcdefgh}", 0o644,
     "t.yaml is open to other users (mode 0644: group or others may read or write it): chmod 600 "),
    ("tokens:\n  - {name: a, role: noc, token: 0123456789abcdefgh}", 0o640,
     "t.yaml is open to other users (mode 0640: group or others may read or write it): chmod 600 "),
    ("tokens:\n  - {name: a, role: noc, token: 0123456789abcdefgh}", 0o620, "(mode 0620: group or others"),
])
def test_a_bad_tokens_file_is_refused_with_its_reason(tmp_path: Path, text: str, mode: int, error: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(AuthConfigError, match="tokens file .*: .*" if "open to" not in error else "open to"):
        load_tokens_file(path)
    with pytest.raises(AuthConfigError) as info:
        load_tokens_file(path)
    assert error in str(info.value)


def test_worker_refuses_a_bad_tokens_file_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "t.yaml"
    path.write_text("tokens: []")
    path.chmod(0o600)
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "worker", "--tokens-file", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "tokens: List should have at least 1 item" in proc.stderr


def _record(msg: str, *args: Any, level: int = logging.ERROR, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("aiokafka", level, __file__, 1, msg, args, exc_info)


def test_phone_numbers_are_masked_in_messages_and_tracebacks() -> None:
    try:
        raise ValueError('bad CDR {"caller": "+390212345600", "callee": "0612345678"}')
    except ValueError as exc:
        record = _record("crashed on %s from %s", b"+447911123456", "10.0.0.1:5060", exc=exc)
    assert MaskNumbers().filter(record)
    from mode.utils.logging import ExtensionFormatter  # the formatter of Faust's worker: it re-reads the args

    text = ExtensionFormatter().format(record)
    assert "crashed on b'+44********56' from 10.0.0.1:5060" in text
    assert '"caller": "+39********00", "callee": "061*****78"' in text
    for number in ("390212345600", "0612345678", "447911123456"):
        assert number not in text


@pytest.mark.parametrize(("text", "masked"), [
    ("caller +39 06 1234 5678 rejected", "caller +39 ** **** **78 rejected"),
    ("callee 0039-06-12345678.", "callee 003*-**-******78."),
    ("did 06 1234 5678, cli +39 (06) 12345678", "did 06 **** **78, cli +39 (**) ******78"),
    ("from 555-123-4567 to +44 7911 123456", "from 555-***-**67 to +44 **** ****56"),
    ("to +390612345678.", "to +39********78."),  # a sentence's full stop does not shield a number
    # not numbers: dates and times, IP:port, UUIDs, decimals, small counts and offsets
    ("at 2025-03-11 12:00:20 and 2025-03-11T12:00:20+00:00", "at 2025-03-11 12:00:20 and 2025-03-11T12:00:20+00:00"),
    ("10.0.0.1:5060 1b4e28ba-2fa1-11d2-883f-0016d3cca427 0.0123456 s",
     "10.0.0.1:5060 1b4e28ba-2fa1-11d2-883f-0016d3cca427 0.0123456 s"),
    ("partition 3 offset 1234, 12 of 40 calls", "partition 3 offset 1234, 12 of 40 calls"),
])
def test_numbers_written_with_spaces_or_dashes_are_masked(text: str, masked: str) -> None:
    record = _record("rejected: %s", text)
    assert MaskNumbers().filter(record)
    assert record.getMessage() == f"rejected: {masked}"


def test_repeated_lines_are_rate_limited_with_a_count() -> None:
    now = [0.0]
    limit = RateLimit(burst=3, window_s=60, clock=lambda: now[0])
    passed = []
    for i in range(1000):  # an outage: the same error 1000 times in 50 s, with varying arguments
        now[0] = i * 0.05
        record = _record("Unable connect to node with id %s: %s", 1, f"attempt {i}")
        if limit.filter(record):
            passed.append(record.getMessage())
    assert passed == [
        "Unable connect to node with id 1: attempt 0",
        "Unable connect to node with id 1: attempt 1",
        "Unable connect to node with id 1: attempt 2 [further lines like this are limited to 3 per 60 s]",
    ]
    assert limit.dropped == 997
    now[0] = 61.0
    record = _record("Unable connect to node with id %s: %s", 1, "back")
    assert limit.filter(record)
    assert record.getMessage() == (
        "Unable connect to node with id 1: back [997 more like this in the last 60 s not logged]")
    other = _record("Worker ready", level=logging.INFO)
    assert limit.filter(other) and other.getMessage() == "Worker ready"  # another kind: its own budget


def test_install_puts_the_filters_on_the_root_handlers_once() -> None:
    logger = logging.getLogger("tollguard-test-install")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        install(logger)
        install(logger)
        assert [type(f).__name__ for f in handler.filters] == ["_Template", "RateLimit", "MaskNumbers"]
    finally:
        logger.removeHandler(handler)
