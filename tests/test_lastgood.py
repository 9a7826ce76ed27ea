"""The last good rules (issue 14): kept on a compacted topic by a worker that starts with a valid file,
used by a restart that finds the file invalid, with the failure reported; on the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_fixtures import WorkerProcess, run_cli, unique_names

from streams.lastgood import RULES_TOPIC, load_last_good, worker_rules
from tollguard.errors import RulesError

pytestmark = pytest.mark.kafka

GOOD = "version: good-1\nengine:\n  allowed_lateness_s: 120\n"
GOOD_2 = "version: good-2\nengine:\n  allowed_lateness_s: 60\n"
BAD = "version: bad\nengine:\n  allowed_lateness_s: -5\n"


def test_an_invalid_file_falls_back_to_the_last_good_rules(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, app_id = unique_names("rules")
    topic, broker = f"{prefix}{RULES_TOPIC}", f"kafka://{kafka_bootstrap}"
    path = tmp_path / "rules.yaml"
    path.write_text(BAD)
    with pytest.raises(RulesError, match="allowed_lateness_s"):  # nothing kept yet: refused
        worker_rules(path, broker, topic, app_id)
    path.write_text(GOOD)
    assert worker_rules(path, broker, topic, app_id) == (worker_rules(path, broker, topic, app_id)[0], None)
    path.write_text(GOOD_2)
    good, warning = worker_rules(path, broker, topic, app_id)
    assert good.version.startswith("good-2+") and warning is None
    saved = load_last_good(broker, topic, app_id)
    assert saved is not None and (saved.text, saved.version, saved.source) == (GOOD_2, good.version, str(path))
    path.write_text(BAD)
    rules, warning = worker_rules(path, broker, topic, app_id)
    assert rules.version == good.version and rules.engine.allowed_lateness_s == 60
    assert warning is not None and warning.startswith("rules file invalid: ") and "allowed_lateness_s" in warning
    assert f"running with the last good rules instead (version {good.version}, from " in warning
    assert load_last_good(broker, topic, "another-app") is None  # kept per app id


def test_worker_restart_with_an_invalid_file_runs_on_the_last_good_rules(kafka_bootstrap: str,
                                                                         tmp_path: Path) -> None:
    prefix, app_id = unique_names("rules-worker")
    path = tmp_path / "rules.yaml"
    path.write_text(BAD)
    err = run_cli(["worker", "--broker", kafka_bootstrap, "--topic-prefix", prefix, "--app-id", app_id,
                   "--rules", str(path)], kafka_bootstrap, ok=(2,), timeout=120)
    assert "allowed_lateness_s" in err and "Traceback" not in err  # first start, nothing kept: exit 2
    path.write_text(GOOD)
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "w", extra_args=("--rules", str(path)))
    worker.start()
    assert worker.stop() == 0
    path.write_text(BAD)
    worker.start()
    try:
        log = worker.log()
        assert "warning: rules file invalid:" in log and "(version good-1+" in log
        assert worker.alive() and "Traceback" not in log
    finally:
        assert worker.stop() == 0
