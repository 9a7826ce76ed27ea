"""The anomaly model (clause 8.6): features, detector state, persistence, training, scoring, CLI."""

from __future__ import annotations

import io
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

import skops.io as sio
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from detectors.base import CustomerContext
from engine.core import CustomerState, Engine
from engine.registry import (
    ALL_DETECTORS,
    Rules,
    parse_rules,
)
from models.detector import AnomalyDetector, AnomalyParams
from models.features import (
    FEATURE_NAMES,
    FeatureSettings,
    add_cdr,
    finish_window,
    new_history,
    new_window,
    window_features,
)
from models.model import MODEL_FORMAT, AnomalyModel, ModelError
from streams.cli import app as cli_app
from streams.replay import Replay
from streams.train import collect_windows, evaluate, read_labels, train
from tollguard import simulate
from tollguard.cdr import Direction, Disposition
from tollguard.errors import RulesError
from tollguard.events import ScopeKind
from tollguard.rates import RateTable
from tollguard.testing import BASE_TIME, make_cdr

T0 = BASE_TIME.timestamp()  # Monday 2026-01-05 09:00 UTC = 10:00 in Rome, a window start


def _window_cdrs() -> list[Any]:
    out, nat, intl = Direction.OUTBOUND, "+390612345678", "+4930123456"
    return [
        make_cdr(call_id="o1", direction=out, callee=nat, start_s=0, end_s=120),
        make_cdr(call_id="o2", direction=out, callee=intl, start_s=60, end_s=240),
        make_cdr(call_id="o3", direction=out, callee=nat, start_s=300, end_s=320,
                 disposition=Disposition.NO_ANSWER),
        make_cdr(call_id="o4", direction=out, callee="+39899123456", start_s=400, end_s=460),  # IT premium
        make_cdr(call_id="o5", direction=out, callee="+881631234567", start_s=500, end_s=530,
                 disposition=Disposition.NO_ANSWER),  # +881: high-cost prefix, region 001
        make_cdr(call_id="i1", direction=Direction.INBOUND, start_s=0, end_s=600),
        make_cdr(call_id="x1", direction=Direction.INTERNAL, caller="201", callee="202", did=None, start_s=0,
                 end_s=3000),
    ]  # fmt: skip


def _history() -> dict[str, Any]:
    hist = new_history()
    hist.update(
        n=24, ewma={"attempts": 4.0, "inbound_attempts": 1.0, "international_attempts": 0.0}, countries=["IT"]
    )
    hist["hour"][10] = 2.0  # attempts usually seen at 10:00 local
    return hist


# ---------------------------------------------------------------------- features


def test_features_of_a_hand_built_window_are_exact():
    feats = window_features(_window_cdrs(), country="IT", window_start_s=T0, history=_history())
    assert list(feats) == list(FEATURE_NAMES)
    expected = {
        "attempts": 5.0,
        "answered": 3.0,
        "inbound_attempts": 1.0,
        "distinct_destinations": 4.0,
        "international_share": 0.4,  # DE and +881 of 5
        "high_cost_share": 0.4,  # premium-rate +39 899 and the +881 prefix
        "high_cost_minutes": 1.0,  # the answered premium call: 60 s
        "new_countries": 2.0,  # DE and 001, the history knows IT only
        "asr": 0.6,
        "acd_s": 120.0,  # (120 + 180 + 60) / 3
        "night_share": 0.0,
        "weekend_share": 0.0,
        "peak_concurrency": 3.0,  # minute 1: o1, o2 and i1 for 60 s each
        "attempts_rel": math.log(6 / 5),
        "inbound_attempts_rel": 0.0,
        "international_attempts_rel": math.log(3 / 1),
        "attempts_hour_rel": math.log(6 / 3),
    }
    assert feats == pytest.approx(expected, abs=1e-12)


def test_features_without_history_are_neutral_and_inputs_not_mutated():
    cdrs = _window_cdrs()
    before = [c.model_dump() for c in cdrs]
    hist = _history()
    hist["n"] = 23  # one window short of min_history_windows
    snapshot = json.dumps(hist, sort_keys=True)
    feats = window_features(cdrs, country="IT", window_start_s=T0, history=hist)
    assert feats["new_countries"] == 0.0
    assert all(feats[n] == 0.0 for n in FEATURE_NAMES if n.endswith("_rel"))
    assert [c.model_dump() for c in cdrs] == before and json.dumps(hist, sort_keys=True) == snapshot


@pytest.mark.parametrize(
    ("cdrs", "expected"),
    [
        ([], {"attempts": 0.0, "asr": 0.0, "acd_s": 0.0, "night_share": 0.0, "peak_concurrency": 0.0}),
        ([make_cdr(direction=Direction.OUTBOUND, callee="+390612345678", start_s=14 * 3600,
                   end_s=14 * 3600 + 60)],
         {"attempts": 1.0, "night_share": 1.0, "weekend_share": 0.0}),  # 23:00 in Rome
    ],
)  # fmt: skip
def test_feature_table(cdrs, expected):
    start = T0 + (14 * 3600 if cdrs else 0)
    feats = window_features(cdrs, country="IT", window_start_s=start)
    assert {k: feats[k] for k in expected} == expected


def test_fold_path_equals_pure_function():
    settings = FeatureSettings()
    win = new_window(T0, 10)
    for cdr in _window_cdrs():
        add_cdr(win, cdr, "IT", settings)
    assert finish_window(win, _history(), settings) == window_features(
        _window_cdrs(), country="IT", window_start_s=T0, history=_history()
    )


# ---------------------------------------------------------------------- detector without a model


def _ctx(**overrides: Any) -> CustomerContext:
    return CustomerContext("c1", params={"anomaly": AnomalyParams(**overrides)})


def test_registered_and_configurable_in_the_rules_file():
    assert AnomalyDetector in ALL_DETECTORS
    rules = parse_rules("detectors:\n  anomaly:\n    warn_score: 0.6\n    critical_score: 0.75\n")
    assert rules.detectors.anomaly.critical_score == 0.75
    with pytest.raises(RulesError, match=r"detectors\.anomaly"):
        parse_rules("detectors:\n  anomaly:\n    warn_score: 0.8\n    critical_score: 0.7\n")
    with pytest.raises(RulesError, match="window_s"):
        parse_rules("detectors:\n  anomaly:\n    window_s: 10\n")


def test_without_a_model_the_detector_does_nothing():
    det, ctx = AnomalyDetector(), _ctx()
    state = det.initial_state()
    decisions = [d for c in _window_cdrs() for d in det.update(state, c, ctx)]
    assert decisions == [] and det.advance(state, math.inf, ctx) == []
    assert state == det.initial_state()  # no aggregation either
    (anomaly,) = [d for d in Engine(Rules(version="t")).detectors if d.name == "anomaly"]
    assert isinstance(anomaly, AnomalyDetector) and anomaly.model is None


def test_the_sink_gets_every_closed_window_and_the_history_learns_it():
    # (the state's JSON round trip, split runs and repeat runs: tests/test_detector_checks.py)
    windows: list[tuple[float, dict[str, float]]] = []
    det = AnomalyDetector(sink=lambda cid, start, feats, score, level: windows.append((start, feats)))
    ctx = _ctx()
    state = det.initial_state()
    cdrs = [*_window_cdrs(), make_cdr(call_id="late", direction=Direction.OUTBOUND, start_s=4000, end_s=4100)]
    for cdr in cdrs:
        det.update(state, cdr, ctx)
    det.advance(state, math.inf, ctx)
    assert [w[0] for w in windows] == [T0, T0 + 3600]
    assert windows[0][1] == window_features(_window_cdrs(), country="IT", window_start_s=T0)
    assert (
        state["win"] is None and state["hist"]["n"] == 2 and state["hist"]["countries"] == ["001", "DE", "IT"]
    )


class _StubModel:
    """Scores every window with a fixed score (decision logic without a forest)."""

    settings = FeatureSettings()
    baselines: ClassVar[dict[str, Any]] = {}
    model_id = "stub"

    def __init__(self, score: float) -> None:
        self.score = score

    def score_one(self, features: dict[str, float]) -> float:
        return self.score

    def contributions(self, features: dict[str, float]) -> list[dict[str, Any]]:
        top = {"feature": "attempts", "value": features["attempts"], "training_median": 1.0, "robust_z": 3.0}
        return [top | {"contribution": 0.1}]


@pytest.mark.parametrize(
    ("score", "history_n", "expected"),
    [
        (0.50, 24, None),
        (0.62, 24, ("alert", "warning")),  # exactly at warn_score fires
        (0.67, 24, ("alert", "warning")),
        (0.68, 24, ("suspension", "critical")),  # exactly at critical_score
        (0.90, 23, ("alert", "warning")),  # too little history: never a suspension
    ],
)
def test_thresholds_and_cold_customers(score, history_n, expected):
    det, ctx = AnomalyDetector(_StubModel(score)), _ctx()  # type: ignore[arg-type]
    state = det.initial_state()
    state["seeded"], state["hist"] = True, _history()
    state["hist"]["n"] = history_n
    for cdr in _window_cdrs():
        det.update(state, cdr, ctx)
    decisions = det.advance(state, T0 + 3600, ctx)
    if expected is None:
        assert decisions == []
        return
    (dec,) = decisions
    assert (str(dec.type), dec.level) == expected
    assert dec.scope_kind is ScopeKind.ACCOUNT  # 2 of 5 attempts international < 0.5
    assert dec.occurred_at_s == T0 + 600  # latest CDR end of the window's external calls
    ev = dec.evidence
    assert ev["score"] == score and ev["warn_score"] == 0.62 and ev["critical_score"] == 0.68
    assert ev["score_direction"].startswith("higher = more suspicious")
    assert ev["top_features"][0]["feature"] == "attempts"
    assert ev["new_countries"] == (["001", "DE"] if history_n >= 24 else [])  # no history: nothing is "new"
    assert ev["window_start"] == "2026-01-05T09:00:00Z" and ev["history_windows"] == history_n
    # a flagged window's countries are held back, and learned when a verdict clears it
    assert state["held"] == ["001", "DE"] and state["hist"]["countries"] == ["IT"]
    det.reset(state, ScopeKind.ACCOUNT, "c1")
    assert state["held"] == [] and state["hist"]["countries"] == ["001", "DE", "IT"]


def test_features_ignore_outbound_emergency_and_toll_free_calls():
    # never evidence (issue 9): 40 long parallel calls to 112 / 113 / toll-free numbers at night add nothing
    out = Direction.OUTBOUND
    flood = [make_cdr(call_id=f"n{i}", direction=out, callee=("112", "113", "+39800123456", "+80012345678")[i % 4],
                      start_s=100 + i, end_s=3000 + i) for i in range(40)]
    for start in (T0, T0 + 14 * 3600):
        base = window_features(_window_cdrs(), country="IT", window_start_s=start, history=_history())
        assert window_features(_window_cdrs() + flood, country="IT", window_start_s=start, history=_history()) == base
    # an inbound caller id can be spoofed: a call "from 112" counts like any other
    spoofed = [make_cdr(call_id="s1", caller="112", start_s=100, end_s=200)]
    assert window_features(_window_cdrs() + spoofed, country="IT", window_start_s=T0)["inbound_attempts"] == 2.0


@pytest.mark.parametrize(("rates", "cost"), [(RateTable(), 2.0), (RateTable(prefixes={}), None)])
def test_the_evidence_carries_the_window_s_estimated_cost(rates, cost):
    # the answered IT 899 call of the window (60 s: EUR 0.50 + 1.50) and the unanswered +881 one (free)
    det = AnomalyDetector(_StubModel(0.65))  # type: ignore[arg-type]
    ctx = CustomerContext("c1", params={"anomaly": AnomalyParams()}, rates=rates)
    state = det.initial_state()
    for cdr in _window_cdrs():
        det.update(state, cdr, ctx)
    (dec,) = det.advance(state, T0 + 3600, ctx)
    assert (dec.evidence["estimated_cost"], dec.evidence["currency"]) == (cost, "EUR")


# ---------------------------------------------------------------------- trained on simulated traffic


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory) -> dict[str, Path]:
    """Four days of benign history (Fri-Mon), then the 'all' day (one episode of each kind)."""
    root = tmp_path_factory.mktemp("anomaly")
    hist = simulate.run_scenario("benign", start=datetime(2025, 3, 7, tzinfo=UTC), minutes=4 * 1440,
                                 customers=10, seed=3)  # fmt: skip
    simulate.write(hist.records(), "jsonl", root / "hist.jsonl")
    day = simulate.run_scenario("all", customers=10, seed=3)  # Tue 2025-03-11
    simulate.write(day.records(), "jsonl", root / "day.jsonl")
    simulate.write_labels(day.labels, root / "day.labels.jsonl")
    return {"hist": root / "hist.jsonl", "day": root / "day.jsonl", "labels": root / "day.labels.jsonl"}


@pytest.fixture(scope="module")
def trained(sim_files, tmp_path_factory) -> tuple[AnomalyModel, Path]:
    model, _ = train([sim_files["hist"]], Rules(version="test"), n_estimators=100)
    path = model.save(tmp_path_factory.mktemp("model") / "model.skops")
    return model, path


def _replay(path: Path, model: AnomalyModel | None) -> list[dict[str, Any]]:
    out = io.StringIO()
    run = Replay(Rules(version="test"), out, io.StringIO(), model=model)
    run.run_file(path)
    run.finish()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_training_records_metadata(trained):
    model, _ = trained
    info = model.info()
    assert info["format"] == MODEL_FORMAT and info["feature_names"] == list(FEATURE_NAMES)
    assert info["training"]["period_start"] == "2025-03-07T00:00:00Z" and info["training"]["customers"] == 10
    assert set(info["library_versions"]) >= {"python", "numpy", "scikit-learn", "skops"}
    q = info["score_quantiles"]
    assert q["q50"] < q["q99"] <= q["q100"] == info["score_max"]
    th = info["suggested_thresholds"]
    assert q["q99.9"] < th["warn_score"] < th["critical_score"]
    assert info["customers_with_baseline"] == 10 and info["score_direction"].startswith("higher")


def test_skops_round_trip_gives_the_same_scores(trained, sim_files):
    model, path = trained
    loaded = AnomalyModel.load(path)
    rows = [
        w.features for w in collect_windows([sim_files["day"]], Rules(version="test"), model=model).windows
    ]
    assert list(loaded.score(rows)) == list(model.score(rows))
    assert [loaded.score_one(r) for r in rows] == pytest.approx([model.score_one(r) for r in rows], abs=1e-12)
    assert [loaded.score_one(r) for r in rows] == pytest.approx(list(model.score(rows)), abs=1e-12)
    assert loaded.model_id == model.model_id and loaded.baselines == model.baselines


def test_a_model_file_with_untrusted_types_is_refused(tmp_path):
    evil = tmp_path / "evil.skops"
    sio.dump({"format": MODEL_FORMAT, "estimator": FunctionTransformer(func=os.system), "meta": "{}"}, evil)
    with pytest.raises(ModelError, match=r"not trusted: posix\.system|not trusted: nt\.system"):
        AnomalyModel.load(evil)
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable skops model"):
        AnomalyModel.load(tmp_path / "junk.skops")


def test_the_volume_anomaly_is_suspended_and_no_rule_detector_catches_it(trained, sim_files):
    model, _ = trained
    labels = {lab["kind"]: lab for lab in read_labels(sim_files["labels"])}
    victim = labels["volume_anomaly"]["customer_id"]
    events = [e for e in _replay(sim_files["day"], model) if e["customer_id"] == victim]
    assert [e["detector"] for e in events if e["detector"] != "anomaly"] == []
    (susp,) = [e for e in events if e["type"] == "suspension"]
    assert susp["clause"] == "8.6" and susp["cos"] == "critical"
    assert susp["scope"] == {"kind": "outbound_international", "value": victim}
    ev = susp["evidence"]
    assert ev["score"] >= ev["critical_score"] == 0.68 and ev["window_start"] == "2025-03-11T01:00:00Z"
    assert ev["new_countries"] == ["ID", "PH", "VN"]
    assert {"new_countries", "attempts_hour_rel"} <= {c["feature"] for c in ev["top_features"]}
    assert all(c["contribution"] > 0 for c in ev["top_features"])
    assert "higher = more suspicious" in susp["reason"]


def test_no_benign_customer_is_suspended(trained, sim_files):
    model, _ = trained
    labels = read_labels(sim_files["labels"])
    report = evaluate(model, [sim_files["day"]], labels, Rules(version="test"))
    assert report["per_kind"]["volume_anomaly"] | {"max_scores": None} == {
        "episodes": 1, "flagged": 1, "suspended": 1, "recall": 1.0, "max_scores": None
    }  # fmt: skip
    for key in ("benign", "episode_customers_outside_episodes"):
        assert report[key]["customers_suspended"] == [] and report[key]["suspension_windows"] == 0
    assert report["benign"]["customers"] == 1 and report["benign"]["windows"] > 20
    # in the replay: every anomaly suspension falls on an episode of its customer
    spans = [(lab["customer_id"], lab["start_s"], lab["end_s"]) for lab in labels]
    for e in _replay(sim_files["day"], model):
        if e["detector"] == "anomaly" and e["type"] == "suspension":
            start = datetime.fromisoformat(e["evidence"]["window_start"].replace("Z", "+00:00")).timestamp()
            assert any(c == e["customer_id"] and s < start + 3600 and start <= t for c, s, t in spans), e[
                "reason"
            ]


def test_stream_like_state_round_trips_give_the_same_events(trained, sim_files):
    """The worker keeps CustomerState as JSON in a Faust table: same events as replay's in-memory dict."""
    model, _ = trained
    rules = Rules(version="test")
    records = [json.loads(line) for line in sim_files["day"].read_text().splitlines()]
    records = [r for r in records if r["customer_id"] in ("cust-009", "cust-010")]
    from tollguard.cdr import CallDetailRecord

    def run(round_trip: bool) -> list[dict[str, Any]]:
        engine = Engine(rules, model=model, clock=lambda: BASE_TIME)
        states: dict[str, CustomerState] = {}
        events = []
        for raw in records:
            cdr = CallDetailRecord.model_validate(raw)
            state = states.get(cdr.customer_id) or engine.new_state(cdr.customer_id)
            events += engine.ingest(state, cdr).events
            states[cdr.customer_id] = (
                CustomerState.from_json_dict(orjson.loads(orjson.dumps(state.to_json_dict())))
                if round_trip
                else state
            )
        for state in states.values():
            events += engine.flush(state)
        return [e.to_json_dict() for e in events]

    plain = run(False)
    assert plain == run(True)
    assert any(e["detector"] == "anomaly" for e in plain)


def test_rules_window_must_match_the_model(trained):
    model, _ = trained
    model.check_rules(Rules(version="t"))
    with pytest.raises(ModelError, match="window_s"):
        model.check_rules(parse_rules("detectors:\n  anomaly:\n    window_s: 1800\n"))


# ---------------------------------------------------------------------- command line


def test_cli_train_info_evaluate_and_replay(sim_files, tmp_path):
    runner = CliRunner()
    model_path = tmp_path / "m.skops"
    res = runner.invoke(cli_app, ["train", str(sim_files["hist"]), "--out", str(model_path), "--trees", "50"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli_app, ["model", "info", str(model_path)])
    assert res.exit_code == 0, res.output
    for field in ("format: tollguard-anomaly/1", "model_id:", "feature_names: attempts, answered",
                  "period_start: 2025-03-07T00:00:00Z", "period_end:", "scikit-learn:", "skops:", "q99.9:",
                  "suggested_thresholds:", "warn_score:", "critical_score:", "window_s: 3600",
                  "score_direction: higher = more suspicious"):  # fmt: skip
        assert field in res.output, field
    res = runner.invoke(cli_app, ["model", "info", str(model_path), "--json"])
    assert json.loads(res.output)["n_windows"] > 100
    res = runner.invoke(
        cli_app,
        ["model", "evaluate", str(model_path), str(sim_files["day"]), "--labels", str(sim_files["labels"])],
    )
    assert res.exit_code == 0, res.output
    assert "volume_anomaly" in res.output and "false-alert rate" in res.output
    out = tmp_path / "events.jsonl"
    day = str(sim_files["day"])
    res = runner.invoke(cli_app, ["replay", day, "--model", str(model_path), "--out", str(out),
                                  "--rejects", str(tmp_path / "rej.jsonl"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert any(json.loads(line)["detector"] == "anomaly" for line in out.read_text().splitlines())
    # a rules window that differs from the model's, a missing file: usage errors
    rules = tmp_path / "r.yaml"
    rules.write_text("detectors:\n  anomaly:\n    window_s: 1800\n")
    res = runner.invoke(cli_app, ["replay", day, "--model", str(model_path), "--rules", str(rules),
                                  "--out", str(out), "-q"])  # fmt: skip
    assert res.exit_code == 2
    assert runner.invoke(cli_app, ["model", "info", str(tmp_path / "nope.skops")]).exit_code == 2


def test_worker_loads_the_model_and_gives_it_to_the_engine(trained, tmp_path, monkeypatch):
    model, path = trained
    seen: dict[str, Any] = {}
    monkeypatch.setattr("streams.worker.run_worker", lambda rules, model=None, **kw: seen.update(model=model))
    res = CliRunner().invoke(cli_app, ["worker", "--model", str(path)])
    assert res.exit_code == 0, res.output
    assert seen["model"].model_id == model.model_id
    assert CliRunner().invoke(cli_app, ["worker", "--model", str(tmp_path / "nope.skops")]).exit_code == 2
    from streams.app import StreamSettings, create_app

    settings = StreamSettings(app_id="anomaly-test", datadir=str(tmp_path))
    app = create_app(settings, Rules(version="t"), model=model)
    (det,) = [d for d in app.tollguard.engine.detectors if d.name == "anomaly"]  # type: ignore[attr-defined]
    assert det.model is model


def test_a_state_stored_before_the_anomaly_detector_existed_is_completed(trained):
    model, _ = trained
    engine = Engine(Rules(version="t"), model=model)
    state = engine.new_state("c1")
    data = state.to_json_dict()
    del data["detectors"]["anomaly"]  # as written by a worker without the anomaly detector
    old = CustomerState.from_json_dict(data)
    engine.ingest(old, make_cdr(direction=Direction.OUTBOUND, callee="+390612345678"))
    engine.flush(old)
    assert old.detectors["anomaly"]["hist"]["n"] == 1
