"""A real switch in the loop (DESIGN §4b, §8): Kamailio asks the worker before routing each call.

On 127.0.0.1, all started and stopped here: a real Kafka broker and ``tollguard worker``
(with ``TOLLGUARD_API_TOKEN``, so the switch authenticates), Debian's Kamailio 5.6 with
``infra/kamailio/kamailio.cfg`` (``http_client`` asks ``/v1/authorize`` for every INVITE),
and SIPp: a UAS answering every relayed call, UACs placing calls as a customer
(``X-Customer``).

The customer ``acme`` dials twelve +979 numbers (a high-risk range of the default rules) in
twelve minutes; its CDRs reach the worker, which suspends ``destination_prefix +979`` for it.
Then (b) acme's next call to +979 gets 403 from Kamailio, naming that suspension, while
acme's call to Rome and ``globex``'s call to +979 connect; (c) after ``tollguard verify ID
--cleared`` the worker emits the reactivation and acme's call to +979 connects again.

Skipped, with the reason, where kamailio, its ``http_client`` module
(kamailio-utils-modules) or sipp (sip-tester) is not installed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from kafka_fixtures import REPO, WorkerProcess, cli_env, free_port, read_topics, run_cli, unique_names

from tollguard.cdr import CallDetailRecord

pytestmark = [pytest.mark.kafka, pytest.mark.switch]

KAMAILIO_DIR = REPO / "infra" / "kamailio"
TOKEN = "kamailio-test-token-0123456789"
INSTALL = "apt-get install -y kamailio kamailio-utils-modules sip-tester"
ACME_CLI, GLOBEX_CLI = "+390212345600", "+390298765400"
PREMIUM, ROME = "+97912345678", "+390612345678"


#: Debian installs kamailio in /usr/sbin, which is not on every user's PATH.
KAMAILIO = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")


def _switch_problem() -> str | None:
    if KAMAILIO is None:
        return f"kamailio is not installed ({INSTALL})"
    if not any(glob.glob(f"{lib}/kamailio/modules/http_client.so") for lib in ("/usr/lib/*", "/usr/lib*")):
        return f"Kamailio's http_client module is not installed (kamailio-utils-modules; {INSTALL})"
    if shutil.which("sipp") is None:
        return f"sipp is not installed (sip-tester; {INSTALL})"
    return None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the CDRs


def premium_episode(t0: datetime) -> list[CallDetailRecord]:
    """acme: twelve unanswered calls to +979 numbers, one a minute; globex: twelve answered calls to Rome."""
    calls = []
    for i in range(12):
        for customer, cli, callee, answered in (("acme", ACME_CLI, f"+9791234567{i:02d}", False),
                                                ("globex", GLOBEX_CLI, f"+3906123456{i:02d}", True)):
            start = t0 + timedelta(minutes=i)
            end = start + timedelta(seconds=20)
            calls.append(CallDetailRecord(
                call_id=f"{customer}-{i}", customer_id=customer, direction="outbound", caller=cli, callee=callee,
                did=cli, start=start, answer=start if answered else None, end=end, duration_s=20.0,
                billsec_s=20.0 if answered else 0.0, disposition="ANSWERED" if answered else "NO ANSWER",
                hangup_cause=16 if answered else 19,
            ))
    return sorted(calls, key=lambda c: c.end)


# --------------------------------------------------------------------------- the worker's API


def authorize(port: int, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/v1/authorize?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})  # loopback
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def wait_until_allow(port: int, allow: bool, timeout_s: float = 60, **params: str) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = authorize(port, **params)
            if answer["allow"] is allow:
                return answer
        except (urllib.error.URLError, OSError) as exc:  # 503 while recovering, or not listening yet
            answer = {"error": str(exc)}
        if time.monotonic() > deadline:
            raise TimeoutError(f"authorize {params} still {answer} after {timeout_s}s (wanted allow={allow})")
        time.sleep(0.5)


def wait_for(bootstrap: str, topic: str, n: int, timeout_s: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        values = [json.loads(r.value) for r in read_topics(bootstrap, [topic], idle_s=1.0)[topic]]
        if len(values) >= n or time.monotonic() > deadline:
            return values
        time.sleep(1)


# --------------------------------------------------------------------------- the switch


class Switch:
    """Kamailio (infra/kamailio/start.sh) relaying to a SIPp UAS; SIPp UACs place calls through it."""

    def __init__(self, workdir: Path, authorize_url: str) -> None:
        self.workdir = workdir
        self.sip_port = free_udp_port()
        self.uas_port = free_udp_port()
        self.env = dict(os.environ,
                        KAMAILIO_RUN_DIR=str(workdir / "kamailio"), KAMAILIO_SIP_PORT=str(self.sip_port),
                        KAMAILIO_NEXT_HOP=f"sip:127.0.0.1:{self.uas_port}", TOLLGUARD_AUTHORIZE_URL=authorize_url,
                        TOLLGUARD_API_TOKEN=TOKEN, KAMAILIO=str(KAMAILIO))
        self.uas: subprocess.Popen[bytes] | None = None
        self.calls = 0

    def start(self) -> Switch:
        workdir = self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        started = subprocess.run(["bash", str(KAMAILIO_DIR / "start.sh")], env=self.env, capture_output=True,
                                 text=True, timeout=60, check=False)
        assert started.returncode == 0, f"kamailio did not start:\n{started.stderr}\n{self.log()}"
        assert started.stdout.strip().splitlines()[-1] == f"127.0.0.1:{self.sip_port}"
        with open(workdir / "uas.out", "wb") as out:
            self.uas = subprocess.Popen(
                ["sipp", "-sf", str(KAMAILIO_DIR / "uas.xml"), "-i", "127.0.0.1", "-p", str(self.uas_port),
                 "-nostdin", "-trace_err", "-error_file", str(workdir / "uas-errors.log")],
                cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        time.sleep(0.5)
        assert self.uas.poll() is None, (workdir / "uas.out").read_text()
        return self

    def stop(self) -> None:
        if self.uas is not None and self.uas.poll() is None:
            self.uas.send_signal(signal.SIGTERM)
            try:
                self.uas.wait(10)
            except subprocess.TimeoutExpired:
                self.uas.kill()
                self.uas.wait(10)
        subprocess.run(["bash", str(KAMAILIO_DIR / "stop.sh")], env=self.env, capture_output=True, timeout=30,
                       check=False)

    def log(self) -> str:
        return self.log_all()[-4000:]

    def log_all(self) -> str:
        path = self.workdir / "kamailio" / "kamailio.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def call(self, scenario: str, customer: str, caller: str, callee: str) -> tuple[int, str]:
        """One call with ``uac-<scenario>.xml``; (sipp's exit status: 0 = as the scenario expects, its log)."""
        self.calls += 1
        name = f"call-{self.calls}-{scenario}-{customer}"
        inf = self.workdir / f"{name}.csv"
        inf.write_text(f"SEQUENTIAL\n{customer};{caller};{callee}\n")
        log = self.workdir / f"{name}.log"
        proc = subprocess.run(
            ["sipp", f"127.0.0.1:{self.sip_port}", "-sf", str(KAMAILIO_DIR / f"uac-{scenario}.xml"),
             "-inf", str(inf), "-i", "127.0.0.1", "-p", str(free_udp_port()), "-m", "1", "-nostdin",
             "-timeout", "20", "-timeout_error", "-trace_logs", "-log_file", str(log),
             "-trace_err", "-error_file", str(self.workdir / f"{name}-errors.log")],
            cwd=self.workdir, capture_output=True, text=True, timeout=40, check=False,
        )
        errors = self.workdir / f"{name}-errors.log"
        detail = (log.read_text() if log.exists() else "") + (errors.read_text()[-2000:] if errors.exists() else "")
        return proc.returncode, detail


@pytest.fixture
def switch_available() -> None:
    problem = _switch_problem()
    if problem:
        pytest.skip(problem)


def test_kamailio_refuses_a_suspended_call_and_lets_it_through_once_cleared(
    switch_available: None, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGUARD_API_TOKEN", TOKEN)  # the worker (cli_env copies os.environ) and Kamailio
    monkeypatch.delenv("TOLLGUARD_WEB_BIND", raising=False)
    prefix, app_id = unique_names("switch")
    port = free_port()
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "worker",
                           extra_args=("--web-port", str(port))).start()
    switch = Switch(tmp_path / "switch", f"http://127.0.0.1:{port}/v1/authorize")
    try:
        assert cli_env(kafka_bootstrap)["TOLLGUARD_API_TOKEN"] == TOKEN
        # the episode, through the broker
        t0 = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
        day = tmp_path / "cdrs.jsonl"
        day.write_bytes(b"".join(orjson.dumps(c.to_json_dict()) + b"\n" for c in premium_episode(t0)))
        run_cli(["produce", str(day), "--topic", f"{prefix}cdrs", "--flush", "-q"], kafka_bootstrap)
        (suspension,) = wait_for(kafka_bootstrap, f"{prefix}suspensions", 1)
        assert (suspension["customer_id"], suspension["scope"]) == (
            "acme", {"kind": "destination_prefix", "value": "+979"})
        sid = suspension["event_id"]
        refused = wait_until_allow(port, False, customer="acme", caller=ACME_CLI, callee=PREMIUM, did=ACME_CLI)
        assert refused["suspension_event_id"] == sid

        switch.start()
        # (b) acme's premium call: 403 from Kamailio, naming the suspension; its other calls and globex's go through
        rc, detail = switch.call("refused", "acme", ACME_CLI, PREMIUM)
        assert rc == 0, f"acme -> {PREMIUM} was not refused with 403:\n{detail}\n{switch.log()}"
        assert f"suspension={sid}" in detail
        rc, detail = switch.call("connect", "acme", ACME_CLI, ROME)
        assert rc == 0, f"acme -> {ROME} did not connect:\n{detail}\n{switch.log()}"
        rc, detail = switch.call("connect", "globex", GLOBEX_CLI, PREMIUM)
        assert rc == 0, f"globex -> {PREMIUM} did not connect:\n{detail}\n{switch.log()}"

        # (c) a cleared verdict: the reactivation, then acme's premium call connects
        assert "sent to" in run_cli(
            ["verify", sid, "--cleared", "--by", "noc-test", "--topic-prefix", prefix], kafka_bootstrap)
        (reactivation,) = wait_for(kafka_bootstrap, f"{prefix}reactivations", 1)
        assert reactivation["suspension_event_id"] == sid
        wait_until_allow(port, True, customer="acme", caller=ACME_CLI, callee=PREMIUM, did=ACME_CLI)
        rc, detail = switch.call("connect", "acme", ACME_CLI, PREMIUM)
        assert rc == 0, f"acme -> {PREMIUM} did not connect after the reactivation:\n{detail}\n{switch.log()}"

        kamailio_log = switch.log()
        assert f"refused by suspension {sid}" in kamailio_log
        assert "tollguard: authorize for" not in kamailio_log  # every query answered (token accepted)
    finally:
        switch.stop()
        assert worker.stop() == 0, worker.log()[-3000:]


# --------------------------------------------------------------------------- (a) a DID over capacity, live

DID = "+390212345600"


def test_kamailio_acc_records_report_a_did_over_capacity_while_the_calls_are_up(
    switch_available: None, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(a): SIPp places 25 simultaneous 40-second calls to one DID through Kamailio; Kamailio's acc
    INVITE records, produced to ``call-events``, give the ``capacity_increase`` while the calls are up."""
    monkeypatch.setenv("TOLLGUARD_API_TOKEN", TOKEN)
    monkeypatch.delenv("TOLLGUARD_WEB_BIND", raising=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text(f'customers:\n  acme:\n    dids:\n      "{DID}": {{}}\n')
    prefix, app_id = unique_names("switch-did")
    port = free_port()
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "worker",
                           extra_args=("--web-port", str(port), "--rules", str(rules))).start()
    switch = Switch(tmp_path / "switch", f"http://127.0.0.1:{port}/v1/authorize")
    uac: subprocess.Popen[bytes] | None = None
    try:
        switch.start()
        inf = switch.workdir / "did-calls.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"acme;+3906123456{i:02d};{DID}\n" for i in range(25)))
        with open(switch.workdir / "did-calls.out", "wb") as out:
            uac = subprocess.Popen(
                ["sipp", f"127.0.0.1:{switch.sip_port}", "-sf", str(KAMAILIO_DIR / "uac-long.xml"), "-inf", str(inf),
                 "-i", "127.0.0.1", "-p", str(free_udp_port()), "-m", "25", "-l", "25", "-r", "25", "-d", "40000",
                 "-nostdin", "-timeout", "90", "-timeout_error"],
                cwd=switch.workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        # Kamailio's acc records of the 25 answered INVITEs (its log: what a tail of it would feed)
        deadline = time.monotonic() + 20
        records: list[str] = []
        while len(records) < 25:
            records = [x for x in switch.log_all().splitlines() if "ACC:" in x and "method=INVITE" in x]
            assert time.monotonic() < deadline, f"{len(records)} INVITE acc records:\n{switch.log()}"
            time.sleep(0.2)
        acc = tmp_path / "acc.log"
        acc.write_text("\n".join(records) + "\n")
        run_cli(["produce", str(acc), "--topic", f"{prefix}call-events", "--rules", str(rules), "-q"], kafka_bootstrap)
        (event,) = wait_for(kafka_bootstrap, f"{prefix}capacity-increases", 1, timeout_s=30)
        assert uac.poll() is None, "the calls ended before the capacity_increase"
        calls = api_get(port, "/v1/calls", customer="acme")["calls"]
        assert uac.poll() is None
        assert len(calls) == 25 and {c["did"] for c in calls} == {DID} and {c["state"] for c in calls} == {"answered"}
        answers = sorted(int(x.split("timestamp=")[1].split(";")[0]) for x in records)
        assert (event["customer_id"], event["did"], event["observed_peak"], event["current_capacity"],
                event["proposed_capacity"]) == ("acme", DID, 21, 20, 30)
        assert event["occurred_at"] == (datetime.fromtimestamp(answers[20], UTC) + timedelta(seconds=0.001)).isoformat(
            ).replace("+00:00", "Z")
        assert uac.wait(90) == 0, (switch.workdir / "did-calls.out").read_text()[-3000:]
    finally:
        if uac is not None and uac.poll() is None:
            uac.kill()
            uac.wait(10)
        switch.stop()
        assert worker.stop() == 0, worker.log()[-3000:]


def api_get(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})  # loopback
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())
