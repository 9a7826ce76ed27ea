"""The NOC page end to end: real broker, real worker, headless Chromium driven by Playwright.

A simulated autodialer campaign is suspended; the page lists the suspension with its
evidence; an operator types a name and clicks *Clear*; the worker emits the reactivation
naming the suspension, and the page shows it among the recent events.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from kafka_fixtures import WorkerProcess, free_port, read_topics, run_cli, unique_names

from tollguard import simulate

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

#: Debian's chromium package; Playwright never downloads a browser here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Flags for a closed network (no background connections) and running as root in CI.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def test_clearing_a_suspension_on_the_page_emits_the_reactivation(kafka_bootstrap, browser, tmp_path):
    prefix, app_id = unique_names("noc")
    port = free_port()
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path, extra_args=("--web-port", str(port))).start()
    try:
        day = tmp_path / "campaign.jsonl"
        simulate.write(simulate.run_scenario("autodialer", customers=3, seed=2).records(), "jsonl", day)
        run_cli(["produce", str(day), "--topic", f"{prefix}cdrs", "--flush", "-q"], kafka_bootstrap)

        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/noc/")
        # step 1: the suspension, with its evidence
        row = page.locator("#suspensions tbody tr", has_text="autodialer")
        row.wait_for(timeout=90_000)
        assert "cli:+39" in row.inner_text() and re.search(r"placed \d+ call attempts", row.inner_text())
        clear = row.locator("button[data-kind=cleared]")
        suspension_id = clear.get_attribute("data-id")
        # step 2: the verdict, signed
        clear.click()
        page.locator("#status", has_text="Enter your name first").wait_for(timeout=5_000)
        page.fill("#who", "noc-anna")
        clear.click()
        page.locator("#status", has_text=f'Verdict "cleared" sent for {suspension_id}').wait_for(timeout=10_000)
        # step 3: the reactivation on the page, and no active suspension left
        page.locator("#events tbody tr", has_text="reactivation").wait_for(timeout=60_000)
        page.locator("#suspensions tbody", has_text="none").wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "noc.png"), full_page=True)

        topic = f"{prefix}reactivations"
        reactivations = [json.loads(r.value) for r in read_topics(kafka_bootstrap, [topic])[topic]]
        assert [(r["suspension_event_id"], r["evidence"]["by"], r["scope"]["kind"]) for r in reactivations] == [
            (suspension_id, "noc-anna", "cli")
        ]
        susp_topic = f"{prefix}suspensions"
        suspensions = [json.loads(r.value) for r in read_topics(kafka_bootstrap, [susp_topic])[susp_topic]]
        assert [s["event_id"] for s in suspensions] == [suspension_id]
        assert reactivations[0]["scope"] == suspensions[0]["scope"]
    finally:
        worker.stop()
