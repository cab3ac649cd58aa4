"""The surge classifier: P(a rise ≥ ``ml.surge_rise`` within ``ml.horizon`` days), learnt
across every series of a run at once, calibrated on later origins than it was fitted on, with
the warning threshold chosen there for ``ml.surge_precision`` and every warning explained.

**Rows.** One per (series, day) of every series (``surge_frame``): the day is an origin, its
features use prices up to that day only (trailing windows of the forward-filled daily series),
and its label ``came`` says whether an observed price of the next ``ml.horizon`` days reached
(1 + ``ml.surge_rise``) × the day's price — the backtest's definition (``ml.backtest
.surge_scores``). A label is known ``ml.horizon`` days after its day.

**Features** (windows in ``ml.surge_model``): trailing log returns, the volatility of daily
returns, the largest one-day rise and fall of the last ``ml.horizon`` days, the distance of the
price from its rolling median, maximum and minimum; the raw first-passage probability of a
driftless walk at the recent volatility (``first_passage``: naive's ``surge_prob`` before its
conformal scale, ``ml.models.surge_probability``); the commodity's median move over every
province (``nat_ret_*``) and the share of provinces up by half a surge over the horizon's length
(``nat_up_share``), the mean move of the nearest provinces (``nb_ret_*``, by centroid,
``conf/provinces.csv``); the calendar of the origin from ``ml.features`` (days to and since the
holidays that move food prices, Ramadan's day at the end of the horizon, weeks to Idul Adha and
Nataru, month, weekday); the commodity and the province as categoricals.

**Fit, calibrate, threshold** (``fit_surge_model``, at a cutoff day): only rows whose label is
known by the cutoff; the latest ``calibration_weeks`` of them calibrate (an isotonic map and
the precision threshold of ``ml.surge.calibrate``), the earlier ones — every
``origin_step_days``-th day — fit one LightGBM classifier. Nothing after the cutoff is read.

**Explanation** (``SurgeModel.explain``): the features that pushed a probability up most, by
their exact contributions to the log-odds (LightGBM ``pred_contrib``, TreeSHAP).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lakehouse.config.settings import MlSettings
from ml.features import (
    dayofweek,
    holiday_distances,
    month,
    ramadan_day,
    weeks_to_idul_adha,
    weeks_to_nataru,
)
from ml.models import MIN_VOLATILITY, VOLATILITY_DAYS
from ml.series import regular
from ml.surge import Calibration, calibrate

if TYPE_CHECKING:
    from lightgbm import LGBMClassifier

    from lakehouse.catalog.conf import Conf

CATEGORICAL = ("commodity", "region")
KEYS = ["series_id", "date"]
BASE = "base"  # the name of the contributions' bias column (the log-odds of no feature)


def province_centroids(conf: Conf) -> dict[str, tuple[float, float]]:
    """Every province's centroid (latitude, longitude) by the name series carry."""
    return {p.name: (p.latitude, p.longitude) for p in conf.provinces.values()}


def nearest(
    regions: Sequence[str], centroids: Mapping[str, tuple[float, float]], k: int
) -> dict[str, list[str]]:
    """Per region of ``regions`` with a centroid, the ``k`` others of ``regions`` nearest to it
    (great-circle distance)."""
    placed = [r for r in regions if r in centroids]
    if k == 0 or len(placed) < 2:
        return {}
    lat, lon = (np.radians([centroids[r][i] for r in placed]) for i in (0, 1))
    cos = np.sin(lat[:, None]) * np.sin(lat) + np.cos(lat[:, None]) * np.cos(lat) * np.cos(
        lon[:, None] - lon
    )
    distance = np.arccos(np.clip(cos, -1, 1))
    np.fill_diagonal(distance, np.inf)
    order = np.argsort(distance, axis=1)[:, : min(k, len(placed) - 1)]
    return {r: [placed[j] for j in order[i]] for i, r in enumerate(placed)}


def feature_names(ml: MlSettings) -> list[str]:
    """The classifier's features in column order (their windows from ``ml.surge_model``)."""
    s = ml.surge_model
    own = [f"ret_{k}" for k in s.returns] + [f"vol_{w}" for w in s.volatility_days]
    own += [f"jump_{ml.horizon}", f"drop_{ml.horizon}"]
    own += [f"from_{kind}_{w}" for w in s.level_days for kind in ("median", "max", "min")]
    panel = [f"nat_ret_{k}" for k in s.returns] + ["nat_up_share"]
    panel += [f"nb_ret_{k}" for k in s.returns] if s.neighbours else []
    calendar = [*holiday_distances(pd.DatetimeIndex([pd.Timestamp(0)])).columns]
    calendar += ["ramadan_day_end", "weeks_to_idul_adha", "weeks_to_nataru", "month", "dow"]
    return [*own, "first_passage", *panel, *calendar, *CATEGORICAL]


def _series_rows(y: pd.Series, ml: MlSettings) -> pd.DataFrame:
    """One series' own features and label per day (see the module's docstring)."""
    from scipy.stats import norm

    s, h = ml.surge_model, ml.horizon
    filled, observed = regular(y)
    log_y = np.log(filled)
    daily = log_y.diff()
    f: dict[str, pd.Series] = {f"ret_{k}": log_y - log_y.shift(k) for k in s.returns}
    for w in s.volatility_days:
        f[f"vol_{w}"] = daily.rolling(w, min_periods=max(2, w // 2)).std()
    f[f"jump_{h}"] = daily.rolling(h, min_periods=1).max()  # the largest one-day rise …
    f[f"drop_{h}"] = daily.rolling(h, min_periods=1).min()  # … and fall of the last h days
    for w in s.level_days:
        rolling = filled.rolling(w, min_periods=max(2, w // 2))
        f[f"from_median_{w}"] = log_y - np.log(rolling.median())
        f[f"from_max_{w}"] = log_y - np.log(rolling.max())
        f[f"from_min_{w}"] = log_y - np.log(rolling.min())
    vol = daily.rolling(VOLATILITY_DAYS, min_periods=2).std().clip(lower=MIN_VOLATILITY)
    f["first_passage"] = pd.Series(
        2 * norm.sf(math.log1p(ml.surge_rise) / (vol.to_numpy() * h**0.5)), index=vol.index
    )
    actual = filled.where(observed)
    peak = pd.concat([actual.shift(-j) for j in range(1, h + 1)], axis=1).max(axis=1)
    came = (peak >= (1 + ml.surge_rise) * filled).astype(float).where(peak.notna())
    came[filled.index > filled.index[-1] - pd.Timedelta(days=h)] = np.nan  # horizon not over
    week = log_y - log_y.shift(h)  # the move over the horizon's length (nat_up_share)
    return pd.DataFrame(f, index=filled.index).assign(last=filled, came=came, _move=week)


def _panel_moves(frame: pd.DataFrame, ml: MlSettings, neighbours: Mapping[str, list[str]]) -> None:
    """Add (in place) the commodity's national moves and the nearest provinces' moves."""
    s = ml.surge_model
    for k in s.returns:
        column = f"ret_{k}"
        wide = frame.pivot_table(index=["commodity", "date"], columns="region", values=column)
        national = wide.median(axis=1).rename(f"nat_ret_{k}")
        frame[national.name] = national.reindex(
            pd.MultiIndex.from_frame(frame[["commodity", "date"]])
        ).to_numpy()
        if s.neighbours:
            near = pd.DataFrame(
                {
                    r: wide[[n for n in others if n in wide]].mean(axis=1)
                    for r, others in neighbours.items()
                    if r in wide
                }
            )
            stacked = near.stack().rename("v") if len(near.columns) else pd.Series(dtype=float)
            index = pd.MultiIndex.from_frame(frame[["commodity", "date", "region"]])
            frame[f"nb_ret_{k}"] = stacked.reindex(index).to_numpy() if len(stacked) else np.nan
    up = frame.assign(up=frame["_move"] >= ml.surge_rise / 2)
    share = up.groupby(["commodity", "date"])["up"].mean().rename("nat_up_share")
    frame["nat_up_share"] = share.reindex(
        pd.MultiIndex.from_frame(frame[["commodity", "date"]])
    ).to_numpy()


def _calendar(days: pd.DatetimeIndex, horizon: int) -> pd.DataFrame:
    """The calendar features of origin days (``ml.features``: the ``holidays`` package's
    Indonesian and Islamic calendars)."""
    out = holiday_distances(days)
    out["ramadan_day_end"] = ramadan_day(days + pd.Timedelta(days=horizon))
    out["weeks_to_idul_adha"] = weeks_to_idul_adha(days)
    out["weeks_to_nataru"] = weeks_to_nataru(days)
    out["month"] = month(days)
    out["dow"] = dayofweek(days)  # PIHPS carries Friday's price over the weekend
    return out


def surge_frame(
    series: pd.DataFrame, ml: MlSettings, centroids: Mapping[str, tuple[float, float]] | None = None
) -> pd.DataFrame:
    """The classifier's rows of a ``SERIES_COLUMNS`` frame: ``series_id``, ``date``, ``last``
    (the day's price), every feature of ``feature_names`` and ``came`` (1.0 / 0.0; NaN until
    the horizon has passed). ``centroids``: of the provinces (``province_centroids``; None: no
    neighbours' moves)."""
    parts = []
    for sid, g in series.groupby("series_id", sort=True):
        rows = _series_rows(g.set_index("date")["y"], ml)
        first = g.iloc[0]
        region = first.get("region")
        parts.append(
            rows.rename_axis("date")
            .reset_index()
            .assign(
                series_id=sid,
                commodity=first["commodity"],
                region="" if region is None or pd.isna(region) else str(region),
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    regions = sorted(r for r in frame["region"].unique() if r)
    _panel_moves(frame, ml, nearest(regions, centroids or {}, ml.surge_model.neighbours))
    days = pd.DatetimeIndex(sorted(frame["date"].unique()))
    calendar = _calendar(days, ml.horizon)
    frame = frame.join(calendar, on="date")
    return frame[[*KEYS, "last", *feature_names(ml), "came"]]


def _format(feature: str, value: object) -> str:
    """A feature's value as a warning names it."""
    if feature in CATEGORICAL:
        return str(value)
    v = float(value)  # type: ignore[arg-type]
    if not np.isfinite(v):
        return "n/a"
    if feature.startswith(("ret_", "nat_ret_", "nb_ret_", "from_", "vol_", "jump_", "drop_")):
        return f"{v:+.1%}" if not feature.startswith("vol_") else f"{v:.1%}"
    if feature in ("first_passage", "nat_up_share"):
        return f"{v:.2f}"
    return f"{v:.0f}"


@dataclass(frozen=True)
class SurgeWarning:
    """A series' surge probability at an origin and why: the calibrated probability, the
    threshold it is warned at (None: no threshold reached the precision asked for) and the
    explanation (``surge_because``)."""

    prob: float
    warn_at: float | None
    because: str


@dataclass(frozen=True)
class SurgeModel:
    """A fitted surge classifier with its calibration (``ml.surge.Calibration``: isotonic map
    and threshold), fitted on rows whose label was known by ``cutoff``."""

    booster: LGBMClassifier
    calibration: Calibration
    features: tuple[str, ...]
    categories: Mapping[str, list[str]]
    cutoff: pd.Timestamp
    fit_rows: int
    fit_surges: int
    calibration_rows: int
    top: int = 3

    def design(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows``' features as the booster takes them (categoricals on the fit's levels)."""
        x = rows[list(self.features)].copy()
        for c in CATEGORICAL:
            x[c] = pd.Categorical(x[c], categories=self.categories[c])
        return x

    def raw(self, rows: pd.DataFrame) -> np.ndarray:
        """The booster's uncalibrated probability of a surge."""
        return self.booster.predict_proba(self.design(rows))[:, 1]

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """The calibrated probability of a surge of every row."""
        return np.asarray(self.calibration(self.raw(rows)), dtype=float)

    def contributions(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Each feature's contribution to each row's log-odds (TreeSHAP), and ``BASE``."""
        values = self.booster.predict(self.design(rows), pred_contrib=True)
        return pd.DataFrame(values, columns=[*self.features, BASE], index=rows.index)

    def explain(self, rows: pd.DataFrame, prob: np.ndarray | None = None) -> list[str]:
        """Per row: its probability, the threshold, and the ``top`` features that pushed it up
        most (value and contribution to the log-odds), e.g. ``surge classifier 0.71 (warns at
        ≥ 0.55): ret_7 +8.2 % (+1.10), nat_up_share 0.41 (+0.52), …``."""
        prob = self.predict(rows) if prob is None else prob
        contrib = self.contributions(rows).drop(columns=BASE)
        at = self.calibration.threshold
        head = (
            "no threshold reached the precision asked for" if at is None else f"warns at ≥ {at:.2f}"
        )
        out = []
        for (i, c), p in zip(contrib.iterrows(), prob, strict=True):
            pushed = c[c > 0].sort_values(ascending=False).head(self.top)
            named = ", ".join(
                f"{f} {_format(f, rows.at[i, f])} ({v:+.2f})" for f, v in pushed.items()
            )
            out.append(
                f"surge classifier {p:.2f} ({head}; cutoff {self.cutoff:%Y-%m-%d}): "
                + (named or "no feature pushed it above the base rate")
            )
        return out

    def warnings(self, rows: pd.DataFrame) -> list[SurgeWarning]:
        """``SurgeWarning`` of every row."""
        prob = self.predict(rows)
        return [
            SurgeWarning(float(p), self.calibration.threshold, why)
            for p, why in zip(prob, self.explain(rows, prob), strict=True)
        ]


def _booster(ml: MlSettings) -> LGBMClassifier:
    from lightgbm import LGBMClassifier

    params = {**ml.surge_model.hyperparameters, "n_jobs": 1, "random_state": ml.seed, "verbose": -1}
    return LGBMClassifier(**params)


def fit_surge_model(frame: pd.DataFrame, cutoff: pd.Timestamp, ml: MlSettings) -> SurgeModel | None:
    """The classifier of ``surge_frame`` rows fitted at ``cutoff``: the rows whose label is
    known by then, the latest ``calibration_weeks`` calibrating (and choosing the threshold for
    ``ml.surge_precision``), every ``origin_step_days``-th day of the earlier ones fitting.
    None when the fit's rows hold fewer than ``min_surges`` surges or the calibration rows too
    few outcomes (``ml.surge.calibrate``)."""
    s, h = ml.surge_model, pd.Timedelta(days=ml.horizon)
    known = frame[frame["came"].notna() & (frame["date"] + h <= cutoff)]
    calibrating = calibration_start(cutoff, ml)
    fit = known[known["date"] + h < calibrating]
    fit = fit[(fit["date"] - pd.Timestamp(0)).dt.days % s.origin_step_days == 0]
    held = known[known["date"] >= calibrating]
    features = feature_names(ml)
    categories = {c: sorted(frame[c].astype(str).unique()) for c in CATEGORICAL}
    y = fit["came"].to_numpy(dtype=int)
    if y.sum() < s.min_surges or y.sum() == len(y) or held.empty:
        return None
    model = SurgeModel(
        booster=_booster(ml),
        calibration=Calibration(None, None),
        features=tuple(features),
        categories=categories,
        cutoff=cutoff,
        fit_rows=len(fit),
        fit_surges=int(y.sum()),
        calibration_rows=len(held),
        top=s.top_features,
    )
    model.booster.fit(model.design(fit), y, categorical_feature=list(CATEGORICAL))
    outcomes = pd.DataFrame({"prob": model.raw(held), "came": held["came"].to_numpy(dtype=bool)})
    calibration = calibrate(outcomes, ml.surge_precision)
    if calibration.model is None:
        return None
    return dataclasses.replace(model, calibration=calibration)


def calibration_start(cutoff: pd.Timestamp, ml: MlSettings) -> pd.Timestamp:
    """The first day whose row calibrates a classifier fitted at ``cutoff``: the rows of the
    ``calibration_weeks`` before the last known label; those whose label came before it fit."""
    return (
        cutoff
        - pd.Timedelta(days=ml.horizon)
        - pd.Timedelta(weeks=ml.surge_model.calibration_weeks)
    )


def latest_warnings(
    series: pd.DataFrame, ml: MlSettings, centroids: Mapping[str, tuple[float, float]] | None
) -> dict[str, SurgeWarning]:
    """Per series of a ``SERIES_COLUMNS`` frame, the warning at its last day from a classifier
    fitted on everything (cutoff: the last day; ``centroids`` as for ``surge_frame``); empty
    when none could be fitted (``fit_surge_model``) — without building the classifier's rows
    when no label is old enough to fit on (a first start's few weeks)."""
    if not ml.surge_model.enabled or series.empty:
        return {}
    first, last = series["date"].min(), series["date"].max()
    if first + pd.Timedelta(days=ml.horizon) >= calibration_start(last, ml):
        return {}
    frame = surge_frame(series, ml, centroids)
    model = fit_surge_model(frame, frame["date"].max(), ml)
    if model is None:
        return {}
    last = frame.groupby("series_id", sort=True).tail(1)
    return dict(zip(last["series_id"], model.warnings(last), strict=True))


def backtest_warnings(
    frame: pd.DataFrame, origins: Sequence[pd.Timestamp], ml: MlSettings
) -> dict[tuple[str, pd.Timestamp], SurgeWarning]:
    """Per (series, origin) of ``origins``, the warning of a classifier fitted at the first
    origin of its block of ``refit_origins`` consecutive origins (so never on a label known
    after the origin it warns at); none in a block whose fit failed."""
    out: dict[tuple[str, pd.Timestamp], SurgeWarning] = {}
    origins = sorted(origins)
    step = ml.surge_model.refit_origins
    for start in range(0, len(origins), step):
        block = origins[start : start + step]
        model = fit_surge_model(frame, block[0], ml)
        if model is None:
            continue
        rows = frame[frame["date"].isin(block)]
        keys = zip(rows["series_id"], rows["date"], strict=True)
        out.update(zip(keys, model.warnings(rows), strict=True))
    return out
