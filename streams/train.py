"""Training and evaluation of the anomaly model on CDR files (``tollguard train`` / ``model evaluate``).

Both read CDR files the way ``tollguard replay`` does (:class:`streams.replay.Replay`:
the adapters, then the engine's per-customer event-time ordering), with the ``anomaly``
detector alone, and collect every closed customer window: its features (training) or
its score and decision level (evaluation). So the windows a model is trained on are the
windows it scores in replay and in the stream.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from detectors.base import iso
from engine.core import Engine
from models.detector import AnomalyDetector, AnomalyParams
from models.features import FeatureSettings
from models.model import AnomalyModel, ModelError
from streams.replay import Replay, ReplaySummary
from tollguard.rules import Rules


@dataclass
class WindowRecord:
    """One closed customer window: features, and score / level when a model scored it."""

    customer_id: str
    start_s: float
    features: dict[str, float]
    score: float | None = None
    level: str | None = None


@dataclass
class Collected:
    """Windows of a replay of files, with the replay's counts and the customers' final histories."""

    windows: list[WindowRecord] = field(default_factory=list)
    summary: ReplaySummary | None = None
    histories: dict[str, Any] = field(default_factory=dict)
    first_s: float | None = None
    last_s: float | None = None


def collect_windows(
    paths: Iterable[str | Path],
    rules: Rules,
    fmt: str = "auto",
    model: AnomalyModel | None = None,
    settings: FeatureSettings | None = None,
) -> Collected:
    """Replay CDR files with the ``anomaly`` detector only and collect every closed window.

    Parameters
    ----------
    paths : iterable of path
        CDR files, read in this order (like ``tollguard replay``).
    rules : Rules
        Customers' countries, high-risk prefixes, allowed lateness, thresholds.
    fmt : str
        Input format (``auto`` sniffs).
    model : AnomalyModel, optional
        When given, every window is also scored (evaluation); features follow its settings.
    settings : FeatureSettings, optional
        Feature settings without a model (training); default: the rules' ``detectors.anomaly``.
    """
    out = Collected()
    params: AnomalyParams = rules.detectors.anomaly  # type: ignore[attr-defined]

    def sink(
        customer_id: str, start_s: float, feats: dict[str, float], score: float | None, level: str | None
    ) -> None:
        out.windows.append(WindowRecord(customer_id, start_s, feats, score, level))

    detector = AnomalyDetector(model, sink=sink, settings=settings or params.feature_settings())
    engine = Engine(rules, detectors=[detector])
    run = Replay(rules, io.StringIO(), io.StringIO(), engine=engine)
    for path in paths:
        run.run_file(path, fmt)
    out.summary = run.finish()
    out.histories = {cid: st.detectors[detector.name]["hist"] for cid, st in run.states.items()}
    if out.windows:
        out.first_s = min(w.start_s for w in out.windows)
        out.last_s = max(w.start_s for w in out.windows) + detector.settings.window_s
    return out


def train(
    paths: list[str | Path],
    rules: Rules,
    fmt: str = "auto",
    n_estimators: int = 200,
    random_state: int = 0,
    max_samples: int | str = 1024,
) -> tuple[AnomalyModel, Collected]:
    """Fit an :class:`AnomalyModel` on the windows of CDR files (benign history).

    Returns
    -------
    (AnomalyModel, Collected)
        The fitted model (metadata filled in) and what was read.

    Raises
    ------
    ModelError
        Fewer than 2 windows with traffic in the files.
    """
    params: AnomalyParams = rules.detectors.anomaly  # type: ignore[attr-defined]
    settings = params.feature_settings()
    got = collect_windows(paths, rules, fmt, settings=settings)
    summary = got.summary
    assert summary is not None
    if len(got.windows) < 2:
        raise ModelError(
            f"training needs at least 2 customer windows with traffic, the files gave {len(got.windows)}"
        )
    training = {
        "files": [Path(p).name for p in paths],
        "period_start": iso(got.first_s) if got.first_s is not None else None,
        "period_end": iso(got.last_s) if got.last_s is not None else None,
        "customers": summary.customers,
        "calls": summary.calls,
        "rejected_lines": summary.rejected,
        "rules_version": rules.version,
    }
    model = AnomalyModel(
        settings, n_estimators=n_estimators, max_samples=max_samples, random_state=random_state
    )
    model.fit([w.features for w in got.windows], baselines=got.histories, training=training)
    return model, got


# ---------------------------------------------------------------------- evaluation


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """Episode labels written by ``tollguard simulate --labels`` (one JSON object a line)."""
    labels = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                lab = json.loads(line)
                for key in ("start", "end"):
                    lab[f"{key}_s"] = datetime.fromisoformat(lab[key].replace("Z", "+00:00")).timestamp()
                labels.append(lab)
    return labels


def evaluate(
    model: AnomalyModel,
    paths: list[str | Path],
    labels: Sequence[Mapping[str, Any]],
    rules: Rules,
    fmt: str = "auto",
) -> dict[str, Any]:
    """Score labelled traffic and report recall per episode kind and the false-alert rate.

    An episode is *flagged* when a window of its customer that overlaps the episode's
    time span gets an alert or a suspension (``suspended``: a suspension); recall of a
    kind = flagged episodes / episodes of that kind. The false-alert rate is measured on
    the windows of the customers without any episode (benign traffic): windows with an
    alert or a suspension / windows; it is also given for the episode customers' windows
    that overlap no episode.

    Returns
    -------
    dict
        ``{"thresholds", "windows", "per_kind": {kind: {...}}, "benign": {...},
        "episode_customers_outside_episodes": {...}, "top_benign_scores": [...]}``.
    """
    params: AnomalyParams = rules.detectors.anomaly  # type: ignore[attr-defined]
    got = collect_windows(paths, rules, fmt, model=model)
    window_s = model.settings.window_s
    by_customer: dict[str, list[WindowRecord]] = {}
    for w in got.windows:
        by_customer.setdefault(w.customer_id, []).append(w)
    per_kind: dict[str, dict[str, Any]] = {}
    episode_windows: set[tuple[str, float]] = set()
    # honest traps (simulate --traps) are labelled with no required level: benign traffic, not episodes
    labels = [lab for lab in labels if not ("required_level" in lab and lab["required_level"] is None)]
    for lab in labels:
        cid = lab["customer_id"]
        hit = [
            w for w in by_customer.get(cid, [])
            if w.start_s <= lab["end_s"] and w.start_s + window_s > lab["start_s"] and lab.get("n_calls", 1)
        ]  # fmt: skip
        episode_windows.update((cid, w.start_s) for w in hit)
        kind = per_kind.setdefault(
            lab["kind"], {"episodes": 0, "flagged": 0, "suspended": 0, "max_scores": [], "recall": 0.0}
        )
        kind["episodes"] += 1
        kind["flagged"] += any(w.level is not None for w in hit)
        kind["suspended"] += any(w.level == "critical" for w in hit)
        kind["max_scores"].append(round(max((w.score or 0.0 for w in hit), default=0.0), 4))
    for kind in per_kind.values():
        kind["recall"] = round(kind["flagged"] / kind["episodes"], 4) if kind["episodes"] else 0.0
    episode_customers = {lab["customer_id"] for lab in labels}

    def rates(windows: list[WindowRecord]) -> dict[str, Any]:
        n = len(windows)
        alerts = sum(w.level is not None for w in windows)
        susp = sum(w.level == "critical" for w in windows)
        return {
            "windows": n,
            "customers": len({w.customer_id for w in windows}),
            "flagged_windows": alerts,
            "suspension_windows": susp,
            "false_alert_rate": round(alerts / n, 6) if n else 0.0,
            "false_suspension_rate": round(susp / n, 6) if n else 0.0,
            "customers_suspended": sorted({w.customer_id for w in windows if w.level == "critical"}),
            "max_score": round(max((w.score or 0.0 for w in windows), default=0.0), 4),
        }

    benign = [w for w in got.windows if w.customer_id not in episode_customers]
    outside = [
        w for w in got.windows
        if w.customer_id in episode_customers and (w.customer_id, w.start_s) not in episode_windows
    ]  # fmt: skip
    top_benign = sorted(benign + outside, key=lambda w: -(w.score or 0.0))[:5]
    return {
        "model_id": model.model_id,
        "thresholds": {"warn_score": params.warn_score, "critical_score": params.critical_score},
        "windows": len(got.windows),
        "per_kind": dict(sorted(per_kind.items())),
        "benign": rates(benign),
        "episode_customers_outside_episodes": rates(outside),
        "top_benign_scores": [
            {"customer_id": w.customer_id, "window_start": iso(w.start_s), "score": round(w.score or 0.0, 4)}
            for w in top_benign
        ],
    }
