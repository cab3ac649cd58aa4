"""Forecasts on the national panel shipped in ``datasets/`` (PIHPS, 34 provinces × 10
commodities, 2022-01 → 2024-06): a rolling-origin backtest of the 340 region series, the later
origins scored (2024 by default: Ramadan, Lebaran) and the earlier ones only selecting and
calibrating — nothing is tuned on the scored window. Prints, against naive: the served
(``selected``) MAPE overall, per commodity, over the volatile commodities and on three
West-Java series; the served bands' coverage; the surge warnings (≥ +``ml.surge_rise`` within
the horizon) raw, calibrated (``ml.surge``) and by the surge classifier (``ml.surge_model``):
Brier score, reliability, recall and precision at the threshold chosen on the earlier origins
for ``ml.surge_precision``; which model serves
each commodity and why (``ml.selection``); the wall time.

    ./run.sh bench forecast_panel [--origins 52] [--scored 26] [--models naive,lgbm_global]
        [--provinces A,B] [--end DATE] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lakehouse.catalog.conf import conf_of
from lakehouse.config.settings import PROVINCE_PANEL, MlSettings, load_settings
from ml.backtest import COVERAGES, SELECTED, WARN_AT, SeriesBacktest, run_backtests
from ml.models import FALLBACK, check_model_names
from ml.series import panel_series
from ml.surge import brier, calibrate, outcomes, reliability
from ml.surge_model import province_centroids

VOLATILE = ("cabai_merah", "cabai_rawit", "bawang_merah")  # issue 55's volatile commodities
WEST_JAVA = tuple(f"region:Jawa Barat:{c}" for c in ("bawang_merah", "bawang_putih", "cabai_rawit"))


def _ape(f: pd.DataFrame) -> pd.Series:
    return (f["y"] - f["yhat"]).abs() / f["y"]


def ratios(scored: pd.DataFrame, by: pd.Series | None = None) -> pd.DataFrame:
    """Served and naive MAPE (%) and their ratio, overall or per value of ``by``."""
    f = scored.assign(ape=_ape(scored), key="all" if by is None else by)
    table = f.pivot_table(index="key", columns="model", values="ape", aggfunc="mean") * 100
    return pd.DataFrame({"served": table[SELECTED], "naive": table[FALLBACK]}).assign(
        ratio=lambda t: t["served"] / t["naive"]
    )


def surge_report(forecasts: pd.DataFrame, rise: float, precision: float) -> dict:
    """The surge warnings of the served forecasts at the scored origins, three ways: the raw
    first-passage ``surge_prob`` at ``WARN_AT``; the same calibrated per served model on its own
    forecasts at the unscored (earlier) origins, warned at the threshold chosen there; and the
    surge classifier (``ml.surge_model``: fitted, calibrated and thresholded at origins before
    the ones it warns at), where it was trained — the raw probability elsewhere. Also, as a
    bound and not a result, the best precision any threshold gives at recall ≥ 0.6 on the
    scored origins themselves (hindsight)."""
    rows = forecasts[forecasts["model"] == SELECTED]
    rows = rows.assign(
        surge_prob_raw=rows.get("surge_prob_raw", rows["surge_prob"]),
        warn_at=rows.get("warn_at", np.nan),
        surge_because=rows.get("surge_because", ""),
    )
    served = outcomes(rows, rise)
    extra = rows.groupby(["series", "origin"])[
        ["chosen", "surge_prob_raw", "warn_at", "surge_because"]
    ].first()
    served = served.merge(extra.reset_index(), on=["series", "origin"])
    raw = served["surge_prob_raw"].to_numpy(dtype=float)
    calibrated = raw.copy()
    thresholds = {}
    for model, group in served.groupby("chosen"):
        past = forecasts[(forecasts["model"] == model) & ~forecasts["scored"]]
        calibration = calibrate(outcomes(past, rise), precision)
        calibrated[group.index] = calibration(group["surge_prob_raw"])
        thresholds[model] = calibration.threshold
    came = served["came"].to_numpy(dtype=bool)
    classified = served["warn_at"].notna().to_numpy()
    classifier = served["prob"].to_numpy(dtype=float)
    classifier_at = served["warn_at"].fillna(WARN_AT).to_numpy(dtype=float)

    def scores(prob: np.ndarray, at: float | np.ndarray | None) -> dict:
        warned = prob >= at if at is not None else np.zeros(len(prob), dtype=bool)
        hits = int((warned & came).sum())
        return {
            "brier": brier(prob, came),
            "warn_at": at if at is None or np.isscalar(at) else _one(at),
            "warnings": int(warned.sum()),
            "recall": hits / came.sum() if came.any() else None,
            "precision": hits / warned.sum() if warned.any() else None,
            "precision_at_recall_0.6": hindsight_precision(prob, came, 0.6),
        }

    served_at = {m: t for m, t in thresholds.items() if t is not None}
    at = min(served_at.values()) if served_at else None  # one alert threshold for all
    top = served.iloc[np.argsort(-classifier, kind="stable")[:5]]
    return {
        "origins": len(served),
        "surges": int(came.sum()),
        "classified": int(classified.sum()),
        "raw": scores(raw, WARN_AT),
        "calibrated": scores(calibrated, at),
        "classifier": scores(classifier, classifier_at),
        "thresholds": thresholds,
        "classifier_thresholds": sorted({_fmt(t) for t in served.loc[classified, "warn_at"]}),
        "top_warnings": [
            f"{r.series} {r.origin:%Y-%m-%d} ({'surge' if r.came else 'no surge'}): "
            f"{r.surge_because}"
            for r in top.itertuples()
            if r.surge_because
        ],
        "reliability_raw": reliability(raw, came),
        "reliability_calibrated": reliability(calibrated, came),
        "reliability_classifier": reliability(classifier, came),
    }


def _one(values: np.ndarray) -> float | str | None:
    """A threshold column as one value: itself when all agree, else ``"per origin"``."""
    unique = np.unique(values)
    if len(unique) != 1:
        return "per origin"
    return None if np.isinf(unique[0]) else float(unique[0])


def hindsight_precision(prob: np.ndarray, came: np.ndarray, recall: float) -> float | None:
    """The best precision of any threshold whose recall is ≥ ``recall`` on these very
    outcomes (hindsight: a bound on what a threshold could give, not a result)."""
    if not came.any():
        return None
    order = np.argsort(-prob, kind="stable")
    p, hits = prob[order], np.cumsum(came[order])
    last = np.r_[p[1:] != p[:-1], True]
    ok = last & (hits / came.sum() >= recall)
    return float((hits / np.arange(1, len(p) + 1))[ok].max()) if ok.any() else None


def _fmt(value: float | str | None, spec: str = ".3f") -> str:
    if isinstance(value, str):
        return value
    return "–" if value is None or not np.isfinite(value) else format(value, spec)


def report(results: list[SeriesBacktest], ml: MlSettings, seconds: float) -> dict:
    """Print the tables and return the numbers (``--json``)."""
    forecasts = pd.concat([r.forecasts for r in results], ignore_index=True)
    scored = forecasts[forecasts["scored"]]
    commodity = scored["series"].str.rsplit(":", n=1).str[-1]
    per_commodity = ratios(scored, commodity)
    groups = {
        "volatile (3)": scored[commodity.isin(VOLATILE)],
        "West Java (3)": scored[scored["series"].isin(WEST_JAVA)],
        "ALL": scored,
    }
    totals = {name: ratios(f).iloc[0] for name, f in groups.items() if len(f)}
    by_model = scored.assign(ape=_ape(scored)).groupby("model")["ape"].mean() * 100
    served = scored[scored["model"] == SELECTED]
    coverage = [
        float(served["y"].between(served[lo], served[hi]).mean())
        for lo, hi in (("yhat_lower_80", "yhat_upper_80"), ("yhat_lower_95", "yhat_upper_95"))
    ]
    surge = surge_report(forecasts, ml.surge_rise, ml.surge_precision)
    reasons = {}
    for r in results:
        reasons.setdefault(r.series_id.rsplit(":", 1)[-1], (r.selected, r.reason))

    origins = sorted(scored["origin"].unique())
    print(
        f"{PROVINCE_PANEL.name}: {len(results)} series, {ml.origins} origins "
        f"({ml.selection_origins} select/calibrate, {len(origins)} scored: "
        f"{origins[0]:%Y-%m-%d} → {origins[-1]:%Y-%m-%d}),"
        f" horizon {ml.horizon}; selection per {ml.selection.level}, ≥ {ml.selection.min_origins}"
        f" origins, margin {ml.selection.margin:.0%}, p < {ml.selection.significance}; "
        f"wall {seconds:.0f} s, {ml.n_jobs} workers, load {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"\n{'model':<16}{'MAPE %':>9}{'× naive':>9}")
    for model, mape in by_model.items():
        print(f"{model:<16}{mape:>9.3f}{mape / by_model[FALLBACK]:>9.3f}")
    print(f"\n{'commodity':<16}{'served %':>9}{'naive %':>9}{'× naive':>9}  served because")
    for name, row in per_commodity.iterrows():
        _, why = reasons.get(str(name), ("", ""))
        print(f"{name:<16}{row['served']:>9.3f}{row['naive']:>9.3f}{row['ratio']:>9.3f}  {why}")
    for name, row in totals.items():
        print(f"{name:<16}{row['served']:>9.3f}{row['naive']:>9.3f}{row['ratio']:>9.3f}")
    print(f"\nserved bands: coverage 80 % {coverage[0]:.3f}, 95 % {coverage[1]:.3f}")
    print(
        f"\nsurges (≥ +{ml.surge_rise:.0%} within {ml.horizon} days): {surge['surges']} of "
        f"{surge['origins']} scored series-origins"
    )
    print(
        f"surge classifier (ml.surge_model) at {surge['classified']} of them, thresholds "
        f"{', '.join(surge['classifier_thresholds']) or '–'}; elsewhere the raw probability"
    )
    print(
        f"{'surge_prob':<12}{'warn at':>11}{'warned':>8}{'recall':>8}{'precision':>10}"
        f"{'Brier':>8}{'prec@rec0.6 (hindsight)':>25}"
    )
    for kind in ("raw", "calibrated", "classifier"):
        s = surge[kind]
        print(
            f"{kind:<12}{_fmt(s['warn_at'], '.3f'):>11}{s['warnings']:>8}{_fmt(s['recall']):>8}"
            f"{_fmt(s['precision']):>10}{s['brier']:>8.4f}"
            f"{_fmt(s['precision_at_recall_0.6']):>25}"
        )
    print("\nthe surge classifier's highest probabilities, and why:")
    for line in surge["top_warnings"]:
        print(f"  {line}")
    for kind in ("raw", "calibrated", "classifier"):
        print(f"\nreliability ({kind}):")
        print(surge[f"reliability_{kind}"].to_string(float_format=lambda v: f"{v:.3f}"))
    return {
        **{name: row.to_dict() for name, row in totals.items()},
        "per_commodity": per_commodity.to_dict(orient="index"),
        "models": by_model.to_dict(),
        "coverage": dict(zip(map(str, COVERAGES), coverage, strict=True)),
        "surge": {k: v for k, v in surge.items() if not k.startswith("reliability")},
        "served_because": {c: why for c, (_, why) in reasons.items()},
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origins", type=int, default=52, help="weekly origins in all")
    parser.add_argument("--scored", type=int, default=26, help="the last ones, scored")
    parser.add_argument("--models", default="naive,lgbm_global", help="the candidates")
    parser.add_argument("--provinces", help="only these provinces, comma-separated")
    parser.add_argument(
        "--end", help="cut the panel after this day (develop on 2023, never on the scored 2024)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    settings = load_settings()
    ml = settings.ml.model_copy(
        update={"origins": args.origins, "selection_origins": args.origins - args.scored}
    )
    models = check_model_names(args.models.split(","))
    series = panel_series(PROVINCE_PANEL, conf_of(settings))
    if args.provinces:
        series = series[series["region"].isin(args.provinces.split(","))]
    if args.end:
        series = series[series["date"] <= pd.Timestamp(args.end)]
    began = time.monotonic()
    results = run_backtests(
        series, models, ml, models, centroids=province_centroids(conf_of(settings))
    )
    doc = report(results, ml, time.monotonic() - began)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
