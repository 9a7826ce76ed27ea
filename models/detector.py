"""``anomaly``: a customer's traffic deemed anomalous by the trained model (clause 8.6).

Clause 8.6 lets the operator suspend services, even selectively, on anomalous traffic,
and reactivate them when verification does not confirm the suspicion. The rule
detectors catch the patterns that have a name; this one scores each customer's
tumbling event-time window of traffic (``models.features``) with the trained
:class:`models.model.AnomalyModel` when the window closes (the engine's watermark passes
its end, or end of input), against the customer's own baseline.

Score: **higher = more suspicious** (the negated IsolationForest ``score_samples``, about
0.5 for ordinary windows). ``score >= warn_score`` → ``alert`` (level ``warning``);
``score >= critical_score`` → ``suspension`` (level ``critical``) of
``outbound_international`` when at least ``international_scope_share`` of the window's
outbound attempts were international, else of the ``account``. A customer with fewer
than the model's ``min_history_windows`` windows of history gets at most an alert (the
model has no baseline to compare it with). The evidence names the features that pushed
the score, each with its value, training median, robust z and contribution (the score
drop when that feature alone is set to its training median), with score and thresholds, and
what the window's priced outbound calls cost (``estimated_cost`` in the rate table's ``currency``,
null when none is priced). Outbound calls to emergency and toll-free numbers are no part of any
feature (never evidence).

Without a model the detector does nothing (no aggregation, no decisions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from detectors.base import AlertLevel, CustomerContext, Decision, Detector, DetectorParams, iso, level_decision
from models.features import (
    FeatureSettings,
    add_cdr,
    finish_window,
    fold_history,
    learn,
    local_hour,
    new_countries_of,
    new_history,
    new_window,
    window_start_of,
)
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind

if TYPE_CHECKING:
    from models.model import AnomalyModel

#: Called with (customer_id, window_start_s, features, score or None, level or None) for every closed window.
WindowSink = Callable[[str, float, dict[str, float], float | None, str | None], None]

_DEFAULTS = FeatureSettings()


class AnomalyParams(DetectorParams):
    """Thresholds of ``anomaly`` (score: higher = more suspicious, about 0.5 for ordinary windows).

    ``window_s``, ``baseline_alpha``, ``hour_alpha``, ``min_history_windows`` and the night
    hours are the training settings (``tollguard train`` reads them); scoring uses the values the model
    was trained with (``tollguard model info`` shows them), and replay and worker refuse a
    rules ``window_s`` that differs from the model's.
    """

    window_s: float = Field(
        3600, ge=300, le=86_400, description="tumbling event-time window per customer, s (training setting)"
    )
    warn_score: float = Field(
        0.62, gt=0, lt=1, description="anomaly score (higher = more suspicious) at or above which → alert"
    )
    critical_score: float = Field(
        0.68, gt=0, lt=1, description="anomaly score at or above which → suspension (clause 8.6)"
    )
    min_history_windows: int = Field(
        _DEFAULTS.min_history_windows, ge=0, le=100_000,
        description="windows with traffic before the customer's baseline counts; before that at most an "
        "alert (training setting)",
    )  # fmt: skip
    baseline_alpha: float = Field(
        _DEFAULTS.baseline_alpha,
        gt=0,
        le=1,
        description="EWMA weight of each window in the customer's baseline (training setting)",
    )
    hour_alpha: float = Field(
        _DEFAULTS.hour_alpha, gt=0, le=1,
        description="EWMA weight of each day in the customer's hour-of-day baseline (training setting)",
    )  # fmt: skip
    night_start_hour: int = Field(
        _DEFAULTS.night_start_hour, ge=0, le=23, description="local night starts (training setting)"
    )
    night_end_hour: int = Field(
        _DEFAULTS.night_end_hour, ge=0, le=23, description="local night ends (training setting)"
    )
    international_scope_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="international share of outbound attempts from which a suspension is "
        "outbound_international",
    )
    top_features: int = Field(5, ge=1, le=30, description="features named in the evidence")
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="call ids kept as evidence per window")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (("warn_score", "critical_score"),)

    def feature_settings(self) -> FeatureSettings:
        """The feature settings these params describe (what ``tollguard train`` uses)."""
        return FeatureSettings(
            window_s=self.window_s,
            baseline_alpha=self.baseline_alpha,
            hour_alpha=self.hour_alpha,
            min_history_windows=self.min_history_windows,
            night_start_hour=self.night_start_hour,
            night_end_hour=self.night_end_hour,
        )


class AnomalyDetector(Detector[AnomalyParams]):
    """Scores each closed window of a customer's traffic with the trained model.

    Parameters
    ----------
    model : AnomalyModel, optional
        The trained model; None = the detector does nothing (unless ``sink`` is set).
    sink : callable, optional
        Receives every closed window (training and evaluation collect features this way).
    settings : FeatureSettings, optional
        Feature settings when there is no model (training); with a model, the model's.

    State (JSON)::

        {"seeded": bool, "win": None | window aggregate (models.features.new_window),
         "hist": customer history (models.features.new_history),
         "held": [region, ...]}

    ``held``: destination countries of flagged windows, not learned into the history
    until a verdict clears the suspicion (:meth:`reset`), so that a second anomalous
    window still counts them as new.

    O(1) per CDR; one model evaluation per customer window (plus the attribution, only
    for a window at or above ``warn_score``).

    Examples
    --------
    >>> from tollguard.testing import make_cdr
    >>> class Fixed:  # stands in for a trained models.model.AnomalyModel: every window scores 0.65
    ...     settings, baselines, model_id = FeatureSettings(), {}, "demo"
    ...     def score_one(self, features): return 0.65
    ...     def contributions(self, features): return []
    >>> det, ctx = AnomalyDetector(Fixed()), CustomerContext("c1", params={"anomaly": AnomalyParams()})
    >>> state = det.initial_state()
    >>> for i in range(3):
    ...     _ = det.update(state, make_cdr(call_id=f"a{i}", direction="outbound", callee="+2399901234",
    ...                                    start_s=60 * i, end_s=60 * i + 30), ctx)
    >>> # 0.65 >= warn_score 0.62; no history yet, so at most an alert (the window closes at end of input)
    >>> [(str(d.type), d.level, str(d.scope_kind), d.evidence["score"]) for d in det.advance(state, float("inf"), ctx)]
    [('alert', 'warning', 'outbound_international', 0.65)]
    >>> AnomalyDetector().update(state, make_cdr(), ctx)  # no model: enabled, but no decisions
    []
    """

    name = "anomaly"
    clause = "8.6"
    params_model = AnomalyParams
    #: The engine passes its ``model`` to this detector's constructor.
    uses_model = True

    def __init__(
        self,
        model: AnomalyModel | None = None,
        *,
        sink: WindowSink | None = None,
        settings: FeatureSettings | None = None,
    ) -> None:
        self.model = model
        self.sink = sink
        self.settings = model.settings if model is not None else (settings or FeatureSettings())
        self._active = model is not None or sink is not None

    def initial_state(self) -> dict[str, Any]:
        return {"seeded": False, "win": None, "hist": new_history(), "held": []}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        if not self._active:
            return []
        if not state["seeded"]:
            state["seeded"] = True
            if self.model is not None and state["hist"]["n"] == 0:
                seed = self.model.baselines.get(ctx.customer_id)
                if seed is not None:  # warm start: the customer's history at the end of training
                    state["hist"] = {**new_history(), **json_copy(seed)}
        params = self.params(ctx)
        start_s = window_start_of(cdr.end.timestamp(), self.settings.window_s)
        decisions: list[Decision] = []
        win = state["win"]
        if win is not None and start_s > win["start_s"]:
            decisions = self._close(state, ctx)
            win = None
        if win is None:
            win = state["win"] = new_window(start_s, local_hour(start_s, ctx.country))
        add_cdr(win, cdr, ctx.country, self.settings, ctx.high_risk_prefixes, params.sample_call_ids, ctx.rates)
        return decisions

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        win = state.get("win")
        if win is None or now_s < win["start_s"] + self.settings.window_s:
            return []
        return self._close(state, ctx)

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        """A cleared verdict: the flagged windows' destination countries become known to the customer."""
        if scope_kind not in (ScopeKind.ACCOUNT, ScopeKind.OUTBOUND_INTERNATIONAL) or "hist" not in state:
            return
        learn(state["hist"], state["held"], self.settings)
        state["held"] = []

    # ------------------------------------------------------------------ closing a window

    def _close(self, state: dict[str, Any], ctx: CustomerContext) -> list[Decision]:
        win, hist = state["win"], state["hist"]
        state["win"] = None
        if win["n_ext"] == 0:
            return []  # internal calls only: nothing to score, nothing to learn
        params = self.params(ctx)
        feats = finish_window(win, hist, self.settings)
        decisions: list[Decision] = []
        score: float | None = None
        level: AlertLevel | None = None
        if self.model is not None:
            score = self.model.score_one(feats)
            if score >= params.warn_score:
                cold = hist["n"] < self.settings.min_history_windows
                level = "critical" if score >= params.critical_score and not cold else "warning"
                decisions.append(self._decide(win, hist, feats, score, level, cold, params, ctx))
        if self.sink is not None:
            self.sink(ctx.customer_id, win["start_s"], feats, score, level)
        fold_history(hist, win, self.settings, ctx.country, learn_countries=level is None)
        if level is not None:
            held = state["held"]
            held.extend(c for c in sorted(win["countries"]) if c not in held and c not in hist["countries"])
            del held[self.settings.max_countries :]
        return decisions

    def _decide(
        self,
        win: dict[str, Any],
        hist: dict[str, Any],
        feats: dict[str, float],
        score: float,
        level: AlertLevel,
        cold: bool,
        params: AnomalyParams,
        ctx: CustomerContext,
    ) -> Decision:
        assert self.model is not None
        window_s = self.settings.window_s
        start_s, end_s = win["start_s"], win["start_s"] + window_s
        top = [c for c in self.model.contributions(feats) if c["contribution"] > 0][: params.top_features]
        new = new_countries_of(win, hist, self.settings)
        intl = feats["international_share"] >= params.international_scope_share and feats["attempts"] > 0
        critical = level == "critical"
        scope_kind = ScopeKind.OUTBOUND_INTERNATIONAL if intl else ScopeKind.ACCOUNT
        named = ", ".join(
            f"{c['feature']} {_fmt(c['value'])} (training median {_fmt(c['training_median'])})"
            for c in top[:3]
        )
        threshold = params.critical_score if critical else params.warn_score
        if critical:
            action = (
                "outbound international calls suspended" if intl else "account suspended"
            ) + " pending verification (clause 8.6)"
        elif cold and score >= params.critical_score:
            action = (
                f"review: critical score, but only {hist['n']} window(s) of history "
                f"(< {self.settings.min_history_windows}), so no suspension (clause 8.6)"
            )
        else:
            action = "review the customer's traffic (clause 8.6)"
        reason = (
            f"Traffic of customer {ctx.customer_id} in {iso(start_s)}-{iso(end_s)[11:]} is anomalous for it: "
            f"score {score:.3f} >= {threshold:.3f} (higher = more suspicious); "
            + (f"driven by {named}" if named else "no single feature stands out")
            + (f"; new countries {', '.join(new)}" if new else "")
            + f"; {action}."
        )
        evidence: dict[str, Any] = {
            "score": round(score, 4),
            "score_direction": "higher = more suspicious (negated IsolationForest.score_samples)",
            "warn_score": params.warn_score,
            "critical_score": params.critical_score,
            "window_start": iso(start_s),
            "window_end": iso(end_s),
            "window_s": window_s,
            "top_features": top,
            "features": {k: round(v, 4) for k, v in feats.items()},
            "new_countries": new,
            "history_windows": hist["n"],
            "min_history_windows": self.settings.min_history_windows,
            "baseline": {k: round(v, 4) for k, v in sorted(hist["ewma"].items())},
            "sample_call_ids": list(win["ids"]),
            "estimated_cost": round(win["cost"], 2) if win.get("priced") else None,
            "currency": ctx.rates.currency,
            "model_id": self.model.model_id,
        }
        return level_decision(
            level,
            scope_kind,
            ctx.customer_id,
            episode=iso(start_s),
            occurred_at_s=win["last_end_s"],
            reason=reason,
            evidence=evidence,
        )


def json_copy(value: Any) -> Any:
    """Deep copy of JSON data (dicts, lists, scalars)."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def _fmt(value: float) -> str:
    if math.isclose(value, round(value)):
        return str(round(value))
    return f"{value:.2f}"
