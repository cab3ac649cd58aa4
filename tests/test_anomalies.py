"""Anomaly models: evaluation on the real sample series with injected, labelled anomalies, plus
shape, determinism and edge-case checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings
from ml.anomalies import MODEL_NAMES, OUTPUT_COLUMNS, detect, model_params
from tests.shipped import SHIPPED

# Real places around Jakarta (and one in Bandung) the sample national series is fanned out to.
EVAL_MARKETS = (
    "IP-001", "IP-005", "IP-007", "IP-009", "IP-013", "IP-020", "IP-063", "IP-065",
)  # fmt: skip
LEVEL_SD = 0.05  # spread of the markets' price levels
NOISE_SD = 0.02  # day-to-day noise of a market around the real series
SPIKES = (
    0.10,
    0.20,
    0.35,
    0.50,
    -0.10,
    -0.20,
    -0.35,
)  # one-day spikes/drops injected in every market
SHIFT = 0.30  # a level shift of one market per commodity ...
SHIFT_DAYS = 10  # ... lasting this many days
WARM_UP = 35  # no injection before the models have history
GLITCH = 0.12  # the real series' own one-day glitches: this far (log) from the centred median
PRECISION_FLOOR = 0.9
RECALL_FLOOR = 0.7


def _base(path: Path) -> tuple[pd.DataFrame, int]:
    """The real national series, one close per commodity × day, its own one-day glitches
    (found with hindsight: far from the centred 7-day median) repaired so that every anomaly in
    the evaluation is a labelled one. Returns the series and how many points were repaired."""
    raw = pd.read_csv(path, parse_dates=["observed_at"])
    raw["date"] = raw["observed_at"].dt.normalize()
    base = raw.groupby(["commodity", "date"], as_index=False)["price"].last()
    repaired = 0
    parts = []
    for _, g in base.groupby("commodity"):
        g = g.sort_values("date").copy()
        centred = g["price"].rolling(7, center=True, min_periods=3).median()
        glitch = np.abs(np.log(g["price"] / centred)) > GLITCH
        repaired += int(glitch.sum())
        g.loc[glitch, "price"] = centred[glitch]
        parts.append(g)
    return pd.concat(parts, ignore_index=True), repaired


Label = tuple[str, str, pd.Timestamp]  # market_id, commodity, date


def _evaluation_set(path: Path) -> tuple[pd.DataFrame, dict[Label, str], int]:
    """The base fanned out to ``EVAL_MARKETS`` with deterministic levels and noise, with labelled
    spikes/drops in every market and a level shift in one market per commodity. Labels map to
    the kind of injection."""
    base, repaired = _base(path)
    rng = np.random.default_rng(7)
    frames, labels = [], {}
    for commodity, g in base.groupby("commodity"):
        dates = g["date"].to_numpy()
        shifted = EVAL_MARKETS[rng.integers(len(EVAL_MARKETS))]
        shift_start = int(rng.integers(WARM_UP, len(dates) - SHIFT_DAYS))
        for market_id in EVAL_MARKETS:
            level = np.exp(rng.normal(0, LEVEL_SD))
            factor = level * np.exp(rng.normal(0, NOISE_SD, len(dates)))
            taken = set(range(shift_start - 3, shift_start + SHIFT_DAYS + 3))
            if market_id == shifted:
                factor[shift_start : shift_start + SHIFT_DAYS] *= 1 + SHIFT
                labels.update(
                    ((market_id, commodity, d), f"shift {SHIFT:+.0%}")
                    for d in dates[shift_start:][:SHIFT_DAYS]
                )
            for size in SPIKES:
                while (day := int(rng.integers(WARM_UP, len(dates)))) in taken:
                    pass
                taken.update(range(day - 4, day + 5))
                factor[day] *= 1 + size
                labels[(market_id, commodity, dates[day])] = f"spike {size:+.0%}"
            frames.append(
                pd.DataFrame(
                    {
                        "market_id": market_id,
                        "region": SHIPPED.markets[market_id].province,
                        "commodity": commodity,
                        "date": g["date"].to_numpy(),
                        "price": np.round(g["price"].to_numpy() * factor),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True), labels, repaired


def _flagged(found: pd.DataFrame) -> set[Label]:
    keys = found[["market_id", "commodity", "date"]].itertuples(index=False)
    return {(m, c, pd.Timestamp(d)) for m, c, d in keys}


def _scores(flagged: set[Label], labels: set[Label]) -> tuple[float, float]:
    hits = len(flagged & labels)
    return (hits / len(flagged) if flagged else 1.0), hits / len(labels)


def test_precision_and_recall_on_injected_anomalies(sample_prices: Path, conf_settings: Settings):
    daily, labels, repaired = _evaluation_set(sample_prices)
    found = detect(daily, conf_settings)
    flagged = _flagged(found)
    precision, recall = _scores(flagged, set(labels))
    print(
        f"\nanomaly evaluation: {len(daily)} market-days, {len(labels)} labelled anomalies "
        f"({repaired} real one-day glitches repaired in the base), {len(flagged)} flagged: "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    for kind in MODEL_NAMES:
        p, r = _scores(_flagged(found[found["kind"] == kind]), set(labels))
        print(f"  {kind:<10} precision {p:.3f}  recall {r:.3f}")
    for injection in sorted(set(labels.values())):
        of_kind = {k for k, v in labels.items() if v == injection}
        print(f"  recall of {injection:<11} {len(flagged & of_kind) / len(of_kind):.3f}")
    assert precision >= PRECISION_FLOOR
    assert recall >= RECALL_FLOOR


def test_single_series_has_temporal_scores_only(sample_prices: Path, conf_settings: Settings):
    """The national aggregate alone (no geography): what the temporal model finds by itself.
    Precision-first defaults: it flags about ``contamination`` of the days at most."""
    base, _ = _base(sample_prices)
    rng = np.random.default_rng(11)
    frames, labels = [], set()
    for commodity, g in base.groupby("commodity"):
        price, dates, taken = g["price"].to_numpy().copy(), g["date"].to_numpy(), set()
        for size in SPIKES * 3:
            while (day := int(rng.integers(WARM_UP, len(dates)))) in taken:
                pass
            taken.update(range(day - 4, day + 5))
            price[day] *= 1 + size
            labels.add(("PIHPS-AGG", commodity, pd.Timestamp(dates[day])))
        frames.append(g.assign(market_id="PIHPS-AGG", region="Indonesia", price=price))
    found = detect(pd.concat(frames, ignore_index=True), conf_settings)
    assert set(found["kind"]) <= {"temporal"}
    precision, recall = _scores(_flagged(found), labels)
    print(
        f"\nsingle national series, {len(labels)} injected one-day moves: "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    assert precision >= PRECISION_FLOOR


def _small(days: int = 60, markets_ids: tuple[str, ...] = EVAL_MARKETS[:5]) -> pd.DataFrame:
    """A calm synthetic commodity in a few markets with one obvious spike on the last day."""
    rng = np.random.default_rng(1)
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    rows = [
        {
            "market_id": m,
            "region": SHIPPED.markets[m].province,
            "commodity": "beras",
            "date": d,
            "price": 14_000 * np.exp(rng.normal(0, 0.01)),
        }
        for m in markets_ids
        for d in dates
    ]
    frame = pd.DataFrame(rows)
    frame.loc[frame.index[-1], "price"] *= 1.6
    return frame


def test_output_shape_and_explanation(conf_settings: Settings):
    found = detect(_small(), conf_settings)
    assert tuple(found.columns) == OUTPUT_COLUMNS
    assert set(found["kind"]) <= set(MODEL_NAMES)
    assert found["score"].between(0, 1).all()
    spike = found[(found["market_id"] == EVAL_MARKETS[4]) & (found["date"] == found["date"].max())]
    assert set(spike["kind"]) == {"temporal", "geographic"}
    assert all("above" in text for text in spike["explanation"])
    assert set(model_params(conf_settings)) == set(MODEL_NAMES.values())


def test_deterministic(conf_settings: Settings):
    daily = _small()
    pd.testing.assert_frame_equal(
        detect(daily, conf_settings), detect(daily.sample(frac=1, random_state=3), conf_settings)
    )


def test_empty_and_short_input_give_no_rows(conf_settings: Settings):
    assert detect(_small().iloc[:0], conf_settings).empty
    assert detect(_small(days=3), conf_settings).empty


def test_markets_without_coordinates_get_temporal_scores_only(conf_settings: Settings):
    daily = _small(markets_ids=("PIHPS-AGG",))
    assert set(detect(daily, conf_settings)["kind"]) == {"temporal"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="region"), "lack the column(s) region"),
        (lambda d: d.assign(price=d["price"].where(d.index != 3, -1.0)), "must be positive"),
        (lambda d: d.assign(price=d["price"].astype(object).where(d.index != 3, "n/a")), "posi"),
        (lambda d: d.assign(date=d["date"].astype(object).where(d.index != 3, "?")), "a date"),
        (lambda d: pd.concat([d, d.iloc[:1]]), "more than one close"),
    ],
)
def test_bad_input_is_a_clear_error(change, message: str, conf_settings: Settings):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        detect(change(_small()), conf_settings)
