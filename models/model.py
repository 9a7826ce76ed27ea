"""The trained anomaly model: an IsolationForest over window features, saved with skops.

Score direction: tollguard's anomaly score is **higher = more suspicious**. It is the
negated ``IsolationForest.score_samples`` (the anomaly score ``s = 2 ** (-E[h] / c(n))`` of
Liu et al., between 0 and 1; about 0.5 for ordinary points, towards 1 for points that
random splits isolate quickly).

A model file is a skops archive (``skops.io.dump``) of ``{"format", "estimator", "meta"}``
where ``meta`` is JSON text: feature names and settings, training period, library
versions, score quantiles on the training windows, suggested thresholds, the training
medians and scales of every feature, check rows with their scores, and the customers'
baselines at the end of training (their histories, so that scoring can start warm).

Loading never unpickles: :meth:`AnomalyModel.load` lists the file's types that skops does
not trust by default (``skops.io.get_untrusted_types``) and refuses the file unless every
one of them is in :data:`TRUSTED_TYPES`.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.features import FEATURE_NAMES, LOG_FEATURES, FeatureSettings
from tollguard.errors import TollguardError

#: Value of the file's ``format`` entry.
MODEL_FORMAT = "tollguard-anomaly/1"

#: Types a model file may hold beyond the ones skops trusts by default (explicit list, nothing else).
TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)

#: Quantiles of the training scores recorded in the model.
SCORE_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0)

#: Margins above the training scores for the suggested thresholds (score units).
WARN_MARGIN = 0.01
CRITICAL_MARGIN = 0.02

#: Training rows kept in the file to check, at load, that scoring gives the recorded scores.
CHECK_ROWS = 16


class ModelError(TollguardError):
    """A model file that cannot be used: unreadable, untrusted types, wrong format, mismatching scores."""


def _average_path_length(n: float) -> float:
    """c(n): average path length of an unsuccessful BST search among ``n`` points (Liu et al. 2008)."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (math.log(n - 1.0) + 0.5772156649015329) - 2.0 * (n - 1.0) / n


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import numpy
    import sklearn
    import skops

    try:
        tollguard_version = version("tollguard")
    except PackageNotFoundError:
        tollguard_version = "unknown"
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "tollguard": tollguard_version,
    }


class _FastForest:
    """Pure-Python traversal of a fitted IsolationForest for one row at a time.

    ``IsolationForest.score_samples`` costs milliseconds per call whatever the number of
    rows; a window is scored alone, so the trees are flattened once and walked here.
    Same arithmetic as scikit-learn (inputs rounded to float32, depth + c(leaf size) - 1
    summed over trees, ``2 ** (-sum / (n_trees * c(max_samples)))``); a load-time check
    compares both on recorded rows.
    """

    def __init__(self, estimator: Any) -> None:
        self.trees: list[tuple[list[int], list[int], list[int], list[float], list[float]]] = []
        for tree, features in zip(estimator.estimators_, estimator.estimators_features_, strict=True):
            t = tree.tree_
            left, right = t.children_left.tolist(), t.children_right.tolist()
            cols = [int(features[f]) if f >= 0 else -1 for f in t.feature.tolist()]
            depth = [0] * len(left)
            depth[0] = 1
            for node in range(len(left)):  # parents come before children in sklearn trees
                if left[node] != -1:
                    depth[left[node]] = depth[right[node]] = depth[node] + 1
            leaf = [depth[n] + _average_path_length(s) - 1.0 for n, s in enumerate(t.n_node_samples.tolist())]
            self.trees.append((left, right, cols, t.threshold.tolist(), leaf))
        self.denominator = len(self.trees) * _average_path_length(estimator.max_samples_)

    def score_samples(self, row: Sequence[float]) -> float:
        """Same as ``IsolationForest.score_samples`` of one row (lower = more abnormal)."""
        import numpy as np

        x = np.asarray(row, dtype=np.float32).astype(np.float64).tolist()
        total = 0.0
        for left, right, cols, thr, leaf in self.trees:
            node = 0
            while left[node] != -1:
                node = left[node] if x[cols[node]] <= thr[node] else right[node]
            total += leaf[node]
        if self.denominator == 0:
            return -1.0
        return -(2.0 ** (-total / self.denominator))


class AnomalyModel:
    """IsolationForest over window features; ``score`` is higher = more suspicious.

    Parameters
    ----------
    settings : FeatureSettings, optional
        How the features were computed (window length, baseline weight, ...); scoring uses them.
    n_estimators : int
        Trees of the forest (default 200).
    max_samples : int or "auto"
        Windows drawn per tree, at most the number of training windows (default 1024: on
        simulated traffic it separates anomalies from benign windows better than
        scikit-learn's "auto" = 256; "auto" is accepted).
    random_state : int
        Seed: the same training windows and seed give the same model.

    Attributes
    ----------
    estimator_ : sklearn.ensemble.IsolationForest
    feature_names_ : tuple of str
    medians_, scales_ : list of float
        Per model input (after ``ln(1 + x)`` of the count features): training median and
        robust scale (1.4826 x MAD, else IQR / 1.349, else 0 = constant in training).
    meta_ : dict
        Everything recorded with the model (see :meth:`info`).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> rows = [{n: rng.uniform(0, 1) for n in FEATURE_NAMES} for _ in range(200)]
    >>> model = AnomalyModel(n_estimators=50).fit(rows)
    >>> typical = {n: 0.5 for n in FEATURE_NAMES}
    >>> odd = {n: 3.0 for n in FEATURE_NAMES}      # outside the training range in every feature
    >>> round(model.score_one(typical), 2), round(model.score_one(odd), 2)
    (0.41, 0.63)
    """

    def __init__(
        self,
        settings: FeatureSettings | None = None,
        n_estimators: int = 200,
        max_samples: int | str = 1024,
        random_state: int = 0,
    ) -> None:
        if n_estimators < 1:
            raise ValueError(
                f"The 'n_estimators' parameter of AnomalyModel must be >= 1. Got {n_estimators} instead."
            )
        self.settings = settings or FeatureSettings()
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.feature_names_: tuple[str, ...] = FEATURE_NAMES
        self.meta_: dict[str, Any] = {}
        self._fast: _FastForest | None = None

    # ------------------------------------------------------------------ features -> matrix

    def vector(self, features: Mapping[str, float]) -> list[float]:
        """Model input of one window: features in model order, ``ln(1 + x)`` for counts."""
        out = []
        for name in self.feature_names_:
            value = float(features[name])
            out.append(math.log1p(max(value, 0.0)) if name in LOG_FEATURES else value)
        return out

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> Any:
        """Model inputs of many windows, shape (n_windows, n_features), float64."""
        import numpy as np

        return np.array([self.vector(r) for r in rows], dtype=np.float64).reshape(
            len(rows), len(self.feature_names_)
        )

    # ------------------------------------------------------------------ fit / score

    def fit(
        self,
        rows: Sequence[Mapping[str, float]],
        *,
        baselines: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> AnomalyModel:
        """Fit on benign windows; returns self.

        Parameters
        ----------
        rows : sequence of dict
            One feature dict per window (``models.features.FEATURE_NAMES``), at least 2.
        baselines : mapping, optional
            Customer id -> history at the end of training (warm start of scoring).
        training : mapping, optional
            Description of the training data (files, period, counts) stored as is.
        """
        import numpy as np
        from sklearn.ensemble import IsolationForest

        if len(rows) < 2:
            raise ModelError(f"training needs at least 2 windows with traffic, got {len(rows)}")
        X = self.matrix(rows)
        max_samples = (
            min(self.max_samples, len(rows)) if isinstance(self.max_samples, int) else self.max_samples
        )
        self.estimator_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            contamination="auto",
            random_state=self.random_state,
        ).fit(X)
        self._fast = _FastForest(self.estimator_)
        median = np.median(X, axis=0)
        mad = 1.4826 * np.median(np.abs(X - median), axis=0)
        iqr = (np.quantile(X, 0.75, axis=0) - np.quantile(X, 0.25, axis=0)) / 1.349
        scale = np.where(mad > 0, mad, iqr)
        self.medians_ = [float(v) for v in median]
        self.scales_ = [float(v) for v in scale]
        scores = -self.estimator_.score_samples(X)
        quantiles = {f"q{q * 100:g}": float(np.quantile(scores, q)) for q in SCORE_QUANTILES}
        warn = math.ceil((quantiles["q99.9"] + WARN_MARGIN) * 100) / 100
        critical = max(math.ceil((float(scores.max()) + CRITICAL_MARGIN) * 100) / 100, warn + 0.01)
        step = max(1, len(rows) // CHECK_ROWS)
        check = [(self.vector(rows[i]), float(scores[i])) for i in range(0, len(rows), step)][:CHECK_ROWS]
        self.meta_ = {
            "format": MODEL_FORMAT,
            "estimator": "sklearn.ensemble.IsolationForest",
            "estimator_params": {
                "n_estimators": self.n_estimators,
                "max_samples": self.max_samples,
                "max_samples_": int(self.estimator_.max_samples_),
                "contamination": "auto",
                "random_state": self.random_state,
            },
            "score_direction": "higher = more suspicious (negated IsolationForest.score_samples)",
            "feature_names": list(self.feature_names_),
            "log_features": sorted(LOG_FEATURES),
            "feature_settings": self.settings.to_json_dict(),
            "training": dict(training or {}),
            "n_windows": len(rows),
            "library_versions": _versions(),
            "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "score_quantiles": quantiles,
            "score_max": float(scores.max()),
            "suggested_thresholds": {"warn_score": warn, "critical_score": critical},
            "medians": self.medians_,
            "scales": self.scales_,
            "check_rows": [{"x": x, "score": s} for x, s in check],
            "baselines": dict(baselines or {}),
        }
        return self

    def _require_fitted(self) -> _FastForest:
        if self._fast is None:
            raise ModelError("the model is not fitted; call fit() or load a model file")
        return self._fast

    def score(self, rows: Sequence[Mapping[str, float]]) -> Any:
        """Anomaly scores of many windows (numpy array), higher = more suspicious."""
        self._require_fitted()
        if not rows:
            import numpy as np

            return np.zeros(0)
        return -self.estimator_.score_samples(self.matrix(rows))

    def score_one(self, features: Mapping[str, float]) -> float:
        """Anomaly score of one window, higher = more suspicious (fast path, same value as :meth:`score`)."""
        return -self._require_fitted().score_samples(self.vector(features))

    def contributions(self, features: Mapping[str, float]) -> list[dict[str, Any]]:
        """How much each feature pushed the score: the score drop when it alone is set to its training median.

        Returns
        -------
        list of dict
            ``{"feature", "value", "training_median", "robust_z", "contribution"}`` per
            feature, largest contribution first. ``value`` and ``training_median`` are in
            feature units (counts back from their log); ``robust_z`` is the distance from
            the median in robust standard deviations of the model input (None when the
            feature was constant in training); ``contribution`` is in score units.
        """
        fast = self._require_fitted()
        x = self.vector(features)
        base = -fast.score_samples(x)
        out: list[dict[str, Any]] = []
        for i, name in enumerate(self.feature_names_):
            median, scale = self.medians_[i], self.scales_[i]
            if x[i] == median:
                delta = 0.0
            else:
                moved = list(x)
                moved[i] = median
                delta = base - (-fast.score_samples(moved))
            out.append(
                {
                    "feature": name,
                    "value": round(float(features[name]), 4),
                    "training_median": round(math.expm1(median) if name in LOG_FEATURES else median, 4),
                    "robust_z": round((x[i] - median) / scale, 2) if scale > 0 else None,
                    "contribution": round(delta, 4),
                }
            )
        out.sort(key=lambda c: (-c["contribution"], c["feature"]))
        return out

    # ------------------------------------------------------------------ metadata

    @property
    def baselines(self) -> dict[str, Any]:
        """Customer id -> history (``models.features.new_history`` shape) at the end of training."""
        return self.meta_.get("baselines", {})

    @property
    def suggested_thresholds(self) -> dict[str, float]:
        """``{"warn_score", "critical_score"}`` from the training score distribution."""
        return dict(self.meta_.get("suggested_thresholds", {}))

    @property
    def model_id(self) -> str:
        """Short stable id of the fitted model (hash of its metadata without wall-clock fields)."""
        stable = {k: v for k, v in self.meta_.items() if k not in ("trained_at", "baselines")}
        return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:12]

    def info(self) -> dict[str, Any]:
        """The recorded metadata, without the bulky parts (baselines, check rows, medians)."""
        skip = {"baselines", "check_rows", "medians", "scales"}
        info = {k: v for k, v in self.meta_.items() if k not in skip}
        info["model_id"] = self.model_id
        info["customers_with_baseline"] = len(self.baselines)
        return info

    def check_rules(self, rules: Any) -> None:
        """Refuse rules whose training settings (``detectors.anomaly``) disagree with the model's window.

        Raises
        ------
        ModelError
            ``window_s`` of the rules (or of a customer override) differs from the model's.
        """
        window_s = self.settings.window_s
        found = [("detectors.anomaly.window_s", rules.detectors.anomaly.window_s)]
        for cid, cust in rules.customers.items():
            if "window_s" in cust.overrides.get("anomaly", {}):
                found.append(
                    (f"customers.{cid}.overrides.anomaly.window_s", cust.overrides["anomaly"]["window_s"])
                )
        for where, value in found:
            if float(value) != window_s:
                raise ModelError(
                    f"the rules' {where} is {value:g} s but the model was trained with window_s "
                    f"{window_s:g} s; retrain the model or align the rules"
                )

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the model as a skops archive; returns the path."""
        import skops.io as sio

        self._require_fitted()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        sio.dump(
            {"format": MODEL_FORMAT, "estimator": self.estimator_, "meta": json.dumps(self.meta_)}, target
        )
        return target

    @classmethod
    def load(cls, path: str | Path) -> AnomalyModel:
        """Read a model file written by :meth:`save`, refusing untrusted content.

        Raises
        ------
        ModelError
            Unreadable file, a type outside skops' defaults and :data:`TRUSTED_TYPES`, a
            wrong format, or scores that differ from the ones recorded at training.
        """
        import skops.io as sio

        file = Path(path)
        try:
            untrusted = sio.get_untrusted_types(file=file)
        except Exception as exc:
            raise ModelError(f"{file}: not a readable skops model file ({exc})") from None
        refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if refused:
            raise ModelError(
                f"{file}: refused: it holds types that are not trusted: {', '.join(refused)} "
                f"(trusted beyond skops' defaults: {', '.join(TRUSTED_TYPES)})"
            )
        try:
            data = sio.load(file, trusted=[t for t in untrusted if t in TRUSTED_TYPES])
        except Exception as exc:
            raise ModelError(f"{file}: cannot load the model ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ModelError(f"{file}: not a tollguard anomaly model (expected format {MODEL_FORMAT})")
        from sklearn.ensemble import IsolationForest

        if not isinstance(data.get("estimator"), IsolationForest):
            raise ModelError(f"{file}: the estimator is not an IsolationForest")
        meta = json.loads(data["meta"])
        model = cls(
            settings=FeatureSettings.from_json_dict(meta["feature_settings"]),
            n_estimators=meta["estimator_params"]["n_estimators"],
            max_samples=meta["estimator_params"]["max_samples"],
            random_state=meta["estimator_params"]["random_state"],
        )
        names = tuple(meta["feature_names"])
        if set(names) - set(FEATURE_NAMES):
            raise ModelError(
                f"{file}: features unknown to this tollguard: {sorted(set(names) - set(FEATURE_NAMES))}"
            )
        model.feature_names_ = names
        model.estimator_ = data["estimator"]
        model._fast = _FastForest(model.estimator_)
        model.medians_, model.scales_ = list(meta["medians"]), list(meta["scales"])
        model.meta_ = meta
        for row in meta.get("check_rows", []):
            got = -model._fast.score_samples(row["x"])
            if abs(got - row["score"]) > 1e-9:
                raise ModelError(
                    f"{file}: scores differ from the ones recorded at training "
                    f"({got:.6f} != {row['score']:.6f}); trained with {meta['library_versions']}"
                )
        return model
