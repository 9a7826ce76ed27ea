"""The project's own switch, replayed natively (issue 12, DESIGN §8): Kamailio's acc log -> CDRs -> DID peak.

Debian's Kamailio with ``infra/kamailio/kamailio.cfg`` relays calls to a SIPp UAS; no worker runs,
so the ``/v1/authorize`` query fails and the config lets every call through (fail open). A SIPp UAC
(``uac-hold.xml``) places twelve calls to acme's DID +390298765432 within about a second, each held
5 s. ``tollguard replay`` of Kamailio's log (``--format auto``, no converter) pairs each INVITE with
its BYE and finds the true peak: 12 simultaneous calls on a DID whose capacity is 5.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kafka_fixtures import REPO
from test_kamailio import KAMAILIO_DIR, Switch, _switch_problem, free_udp_port
from typer.testing import CliRunner

from streams.cli import app

pytestmark = [pytest.mark.switch]
DID = "+390298765432"
CALLS = 12


def test_kamailio_acc_log_replays_with_its_true_did_peak(tmp_path: Path) -> None:
    problem = _switch_problem()
    if problem:
        pytest.skip(problem)
    switch = Switch(tmp_path / "switch", f"http://127.0.0.1:{free_udp_port()}/v1/authorize")  # nobody answers
    try:
        switch.start()
        inf = tmp_path / "calls.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"acme;+3906123456{i:02d};{DID}\n" for i in range(CALLS)))
        uac = subprocess.run(
            ["sipp", f"127.0.0.1:{switch.sip_port}", "-sf", str(KAMAILIO_DIR / "uac-hold.xml"), "-inf", str(inf),
             "-i", "127.0.0.1", "-p", str(free_udp_port()), "-m", str(CALLS), "-r", str(CALLS), "-d", "5000",
             "-nostdin", "-timeout", "40", "-timeout_error"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )
        assert uac.returncode == 0, uac.stdout[-2000:] + uac.stderr[-2000:] + switch.log()
    finally:
        switch.stop()
    log = tmp_path / "switch" / "kamailio" / "kamailio.log"
    acc = [line for line in log.read_text("utf-8", "replace").splitlines() if "ACC:" in line]
    assert len(acc) == 2 * CALLS, acc

    rules = tmp_path / "rules.yaml"
    rules.write_text(f'customers:\n  acme: {{country: IT, dids: {{"{DID}": {{capacity: 5}}}}}}\n')
    events, rejects = tmp_path / "events.jsonl", tmp_path / "rejects.jsonl"
    result = CliRunner().invoke(app, ["replay", str(log), "--rules", str(rules), "--out", str(events),
                                      "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output + rejects.read_text()
    output = " ".join(result.output.split())
    assert "accepted 24 distinct calls 12 merged legs 12 acc transactions paired 12" in output
    assert "rejected 0" in output
    (increase,) = [json.loads(line) for line in events.read_text().splitlines()]
    assert (increase["type"], increase["customer_id"], increase["did"]) == ("capacity_increase", "acme", DID)
    assert (increase["observed_peak"], increase["current_capacity"]) == (CALLS, 5)
    assert REPO.is_dir()
