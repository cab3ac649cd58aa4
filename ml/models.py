"""Forecasting models behind one small interface.

``make_model(name, horizon, seed)`` (or ``configured_model(name, ml)``, with the trees'
hyper-parameters of ``ml.hyperparameters``) returns a ``Forecaster``: ``fit(y)`` on a regular daily
price series (DatetimeIndex, no gaps — see ``ml.series.regular``), then ``predict()`` the next
``horizon`` days as a frame indexed by target date with ``yhat`` and 80 %/95 % intervals.

Naive and seasonal naive take their intervals from their own recent errors per horizon
(quantiles of the log ratio actual/forecast over the last ``calibration_days``); XGBoost
borrows naive's; ETS and Theta (statsforecast) and Prophet have native ones; a combination
averages its members'. These are provisional: the backtest and the retrain replace every
model's bands by conformal ones from its own backtest errors (``Forecaster.conformal``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd

from lakehouse.config.settings import ConfigError, Hyperparameters, MlSettings
from ml.features import design, holiday_table

INTERVAL_COLUMNS = ["yhat_lower_80", "yhat_upper_80", "yhat_lower_95", "yhat_upper_95"]
FORECAST_COLUMNS = ["horizon", "yhat", *INTERVAL_COLUMNS]
QUANTILES = (0.1, 0.9, 0.025, 0.975)  # in the order of INTERVAL_COLUMNS
ROBUST_DAYS = 3  # days whose median is the robust level (odd: the median is one of them)
SEASON = 7  # days: the weekly season of seasonal naive
TRAINED_CACHE = 4  # boosters kept per process for reuse (see XGBoost._train)
_TRAINED: OrderedDict[tuple, Any] = OrderedDict()
# Prophet tries to import plotly (not installed, not needed) and logs an error when it cannot —
# also where fitted Prophet models are only unpickled, so this is set before any import of it.
logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


class Forecaster(ABC):
    name: str

    def __init__(
        self,
        horizon: int,
        seed: int = 0,
        calibration_days: int = 182,
        hyperparameters: Hyperparameters | None = None,
    ) -> None:
        self.horizon = horizon
        self.seed = seed
        self.calibration_days = calibration_days
        self.hyperparameters = hyperparameters or Hyperparameters()
        self.last_day: pd.Timestamp | None = None
        # scaled log-error quantiles from the backtest (see ml.backtest.residual_quantiles):
        # when set, they give the bands instead of the model's own
        self.conformal: np.ndarray | None = None
        # the global model's points for this series and origin (ml.global_model): set before
        # ``fit`` for the models that serve or combine them
        self.global_points: np.ndarray | None = None

    @abstractmethod
    def fit(self, y: pd.Series) -> Forecaster: ...

    @abstractmethod
    def predict(self) -> pd.DataFrame: ...

    def _frame(self, yhat: np.ndarray, bands: np.ndarray) -> pd.DataFrame:
        """Forecast frame from point forecasts (horizon,) and bands (horizon, 4)."""
        assert self.last_day is not None, "fit first"
        targets = pd.date_range(self.last_day + pd.Timedelta(days=1), periods=self.horizon)
        if self.conformal is not None:
            bands = conformal_bands(yhat, np.arange(1, self.horizon + 1), self.conformal)
        columns = {"horizon": np.arange(1, self.horizon + 1), "yhat": yhat}
        columns |= dict(zip(INTERVAL_COLUMNS, np.asarray(bands).T, strict=True))
        return pd.DataFrame(columns, index=targets.rename("target_date"))


def conformal_bands(yhat: np.ndarray, horizons: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Bands (n, 4) yhat · exp(q · √h) from quantiles ``q`` (in ``QUANTILES`` order) of log
    errors scaled by 1/√horizon: errors of a random walk grow with the square root of h."""
    scale = np.sqrt(np.asarray(horizons, dtype=float))[:, None]
    return np.asarray(yhat, dtype=float)[:, None] * np.exp(quantiles[None, :] * scale)


def log_error_quantiles(errors: np.ndarray) -> np.ndarray:
    """Per horizon (columns 1..H of ``errors``: log actual/forecast, NaN where there is none),
    the quantiles that bound the 80 % and 95 % intervals; shape (H, 4). Zero width when there
    is nothing to learn from."""
    out = np.zeros((errors.shape[1], len(QUANTILES)))
    for i, column in enumerate(errors.T):
        values = column[~np.isnan(column)]
        if len(values):
            out[i] = np.quantile(values, QUANTILES)
    return out


class Naive(Forecaster):
    """Tomorrow and the next days cost what today cost."""

    name = "naive"

    def _level(self, log_y: np.ndarray) -> np.ndarray:
        """The log level each day's forecasts start from (``_point``'s, for every day)."""
        return log_y

    def _lag(self, h: int) -> int:
        """How many days before its target day the ``h``-day forecast's level was read."""
        return h

    def fit(self, y: pd.Series) -> Naive:
        self.y = y
        self.last_day = y.index[-1]
        log_y = np.log(y.to_numpy(dtype=float))
        level = self._level(log_y)
        errors = np.full((len(log_y), self.horizon), np.nan)  # day × horizon: log actual/forecast
        for i, h in enumerate(self._hs()):
            lag = self._lag(h)
            if lag < len(log_y):
                errors[lag:, i] = log_y[lag:] - level[:-lag]
        self.error_quantiles = log_error_quantiles(errors[-self.calibration_days :])
        return self

    def _hs(self) -> range:
        return range(1, self.horizon + 1)

    def _point(self) -> np.ndarray:
        return np.full(self.horizon, self.y.iloc[-1])

    def predict(self) -> pd.DataFrame:
        yhat = self._point()
        return self._frame(yhat, yhat[:, None] * np.exp(self.error_quantiles))


class RobustNaive(Naive):
    """The next days cost the median of the last ``ROBUST_DAYS`` days: a level that ignores a
    one-day data-entry spike (a +40 % day that comes back the next)."""

    name = "naive_median3"

    def _level(self, log_y: np.ndarray) -> np.ndarray:
        return pd.Series(log_y).rolling(ROBUST_DAYS).median().to_numpy()

    def _point(self) -> np.ndarray:
        return np.full(self.horizon, self.y.iloc[-ROBUST_DAYS:].median())


class SeasonalNaive(Naive):
    """Each day costs what the same weekday cost in the last observed week."""

    name = "seasonal_naive"

    def _lag(self, h: int) -> int:
        return SEASON * -(-h // SEASON)  # the nearest whole weeks back that are observed

    def _point(self) -> np.ndarray:
        return np.array([self.y.iloc[-1 - (self._lag(h) - h)] for h in self._hs()], dtype=float)


class GlobalForecast(Naive):
    """The global model's forecast of this series (``ml.global_model``: one LightGBM model over
    every series, calendar features), handed in as ``global_points``; provisional bands from
    naive's recent errors until the backtest's conformal ones replace them."""

    name = "lgbm_global"

    def _point(self) -> np.ndarray:
        if self.global_points is None:
            raise ValueError("lgbm_global: no global forecast for this series and origin")
        return np.asarray(self.global_points, dtype=float)


class XGBoost(Forecaster):
    """Gradient-boosted trees predicting the log ratio of the price h days ahead to today's,
    from ``ml.features`` (one direct model for all horizons, horizon as a feature)."""

    name = "xgboost"
    shrink = 1.0  # share of the predicted change that is kept (1: all of it)

    def _model(self):
        from xgboost import XGBRegressor

        return XGBRegressor(
            **self.hyperparameters.xgboost,
            n_jobs=1,  # one thread: the parallelism is across series (joblib processes)
            random_state=self.seed,
        )

    def _train(self, y: pd.Series, origins: pd.DatetimeIndex) -> Any:
        """The booster for ``y``; memoised per process (a few entries), so that xgboost and
        xgboost_damped at the same backtest origin share one training."""
        data = hash(y.to_numpy().tobytes())
        params = tuple(sorted(self.hyperparameters.xgboost.items()))
        key = (self.horizon, self.seed, params, origins[0], len(y), y.index[-1], data)
        if (model := _TRAINED.get(key)) is None:
            rows = design(y, origins, self.horizon)
            rows = rows[rows["target"] <= y.index[-1]]
            target = np.log(y.loc[rows["target"]].to_numpy() / y.loc[rows["origin"]].to_numpy())
            model = self._model()
            model.fit(rows[self._columns(rows)].to_numpy(), target)
            _TRAINED[key] = model
            while len(_TRAINED) > TRAINED_CACHE:
                _TRAINED.popitem(last=False)
        return model

    @staticmethod
    def _columns(rows: pd.DataFrame) -> list[str]:
        return [c for c in rows.columns if c not in ("origin", "target")]

    def _predict_log_ratio(
        self, model: Any, y: pd.Series, origins: pd.DatetimeIndex
    ) -> pd.DataFrame:
        rows = design(y, origins, self.horizon)
        rows["pred"] = self.shrink * model.predict(rows[self._columns(rows)].to_numpy())
        return rows

    def fit(self, y: pd.Series) -> XGBoost:
        self.y = y
        self.last_day = y.index[-1]
        # provisional bands: naive's recent errors around this forecast (one training, not two);
        # the backtest replaces them by this model's own out-of-sample errors (ml.backtest)
        naive = Naive(self.horizon, self.seed, self.calibration_days).fit(y)
        self.error_quantiles = naive.error_quantiles
        self.model = self._train(y, y.index[min(SEASON * 4, len(y) - 2) :])
        return self

    def predict(self) -> pd.DataFrame:
        rows = self._predict_log_ratio(self.model, self.y, pd.DatetimeIndex([self.last_day]))
        log_yhat = np.log(self.y.iloc[-1]) + rows["pred"].to_numpy()
        yhat = np.exp(log_yhat)
        return self._frame(yhat, np.exp(log_yhat[:, None] + self.error_quantiles))


class XGBoostDamped(XGBoost):
    """XGBoost keeping half of the predicted change: the geometric mean of the XGBoost and the
    naive forecast. On real daily food prices, where most day-to-day change is noise, the blend
    beats both parts in the backtest (see bench/forecast_accuracy.py)."""

    name = "xgboost_damped"
    shrink = 0.5


#: the bands statsforecast computes (80 % and 95 %: ``INTERVAL_COLUMNS``)
NATIVE_LEVELS = [80, 95]


class StatsForecastModel(Forecaster):
    """A statsforecast model fitted on log prices, with its native 80 %/95 % intervals. Its fit
    (a search over model forms, each optimised) is most of a backtest's time; ``advance`` runs
    the fitted form and parameters through a longer history (statsforecast's ``forward``), so
    a backtest fits it only every ``ml.fit_every_origins`` origins."""

    def _model(self) -> Any:
        raise NotImplementedError

    def fit(self, y: pd.Series) -> StatsForecastModel:
        self.last_day = y.index[-1]
        self.model = self._model().fit(np.log(y.to_numpy(dtype=float)))
        self.ahead = self.model.predict(self.horizon, level=NATIVE_LEVELS)
        return self

    def advance(self, y: pd.Series) -> StatsForecastModel:
        """The model at a later origin of the series it was fitted on (``y``: the history up to
        there), with the form and parameters of its last fit: no later day estimated them."""
        self.last_day = y.index[-1]
        log_y = np.log(y.to_numpy(dtype=float))
        self.ahead = self.model.forward(log_y, self.horizon, level=NATIVE_LEVELS)
        return self

    def predict(self) -> pd.DataFrame:
        f = self.ahead
        bands = np.column_stack([f["lo-80"], f["hi-80"], f["lo-95"], f["hi-95"]])
        return self._frame(np.exp(f["mean"]), np.exp(bands))


class ETS(StatsForecastModel):
    """Exponential smoothing (statsforecast AutoETS: error, trend and damping chosen by AICc;
    no seasonal term — a weekly one costs ten times the time and did not pay on real prices)."""

    name = "ets"

    def _model(self) -> Any:
        from statsforecast.models import AutoETS

        return AutoETS(season_length=1)


class Theta(StatsForecastModel):
    """The theta method (statsforecast AutoTheta, variant chosen by in-sample fit)."""

    name = "theta"

    def _model(self) -> Any:
        from statsforecast.models import AutoTheta

        return AutoTheta(season_length=1)


class Combination(Forecaster):
    """The mean, in log space, of several models' forecasts and bands: averaging models whose
    errors differ beats each of them more reliably than picking one by a noisy backtest."""

    name = "combo"
    members: tuple[str, ...] = ("naive", "ets", "xgboost")

    def fit(self, y: pd.Series) -> Combination:
        self.last_day = y.index[-1]
        self.parts = []
        for m in self.members:
            part = make_model(
                m, self.horizon, self.seed, self.calibration_days, self.hyperparameters
            )
            part.global_points = self.global_points
            self.parts.append(part.fit(y))
        return self

    def predict(self) -> pd.DataFrame:
        frames = [np.log(p.predict()[["yhat", *INTERVAL_COLUMNS]].to_numpy()) for p in self.parts]
        mean = np.exp(np.mean(frames, axis=0))
        return self._frame(mean[:, 0], mean[:, 1:])


class CombinationGlobal(Combination):
    """The combination with the global model in XGBoost's place: naive, ETS and
    ``lgbm_global``."""

    name = "combo_global"
    members = ("naive", "ets", "lgbm_global")


def _quiet_prophet() -> type:
    """Prophet's class, with its chatter off: CmdStan progress and the warning that yearly
    seasonality needs two years (we fit it on purpose on ~1 year; the backtest decides whether
    that pays)."""
    from cmdstanpy.utils import get_logger
    from prophet import Prophet

    # after the imports: prophet sets its logger's level and cmdstanpy adds its own handler there
    logging.getLogger("prophet").setLevel(logging.ERROR)
    get_logger().setLevel(logging.WARNING)
    return Prophet


class ProphetDefault(Forecaster):
    """Prophet with the library's defaults on the price level: the baseline Prophet."""

    name = "prophet_default"

    def _prophet(self, y: pd.Series):
        Prophet = _quiet_prophet()
        return Prophet()

    def _transform(self, y: pd.Series) -> pd.Series:
        return y

    def _inverse(self, values: np.ndarray) -> np.ndarray:
        return values

    def fit(self, y: pd.Series) -> ProphetDefault:
        self.last_day = y.index[-1]
        self.model = self._prophet(y)
        history = pd.DataFrame({"ds": y.index, "y": self._transform(y).to_numpy()})
        self.model.fit(history)
        return self

    def predict(self) -> pd.DataFrame:
        future = pd.DataFrame(
            {"ds": pd.date_range(self.last_day + pd.Timedelta(days=1), periods=self.horizon)}
        )
        np.random.seed(self.seed)  # Prophet samples its intervals with numpy's global generator
        point = self.model.predict(future)["yhat"].to_numpy()
        samples = self.model.predictive_samples(future)["yhat"]
        bands = np.quantile(samples, QUANTILES, axis=1).T
        return self._frame(self._inverse(point), self._inverse(bands))


class ProphetTuned(ProphetDefault):
    """Prophet on log prices with weekly and yearly seasonality and Indonesian holidays (Idul
    Fitri with the run-up week, Idul Adha, Natal, Tahun Baru, Imlek, Ramadan start), a more
    flexible recent trend."""

    name = "prophet"

    def _prophet(self, y: pd.Series):
        Prophet = _quiet_prophet()
        table = holiday_table(y.index[0], y.index[-1] + pd.Timedelta(days=self.horizon))
        table = table.assign(lower_window=-7, upper_window=3)
        return Prophet(
            holidays=table,
            weekly_seasonality=True,
            yearly_seasonality=len(y) >= 365,
            daily_seasonality=False,
            changepoint_prior_scale=0.1,
            changepoint_range=0.95,
            holidays_prior_scale=5.0,
            uncertainty_samples=300,
        )

    def _transform(self, y: pd.Series) -> pd.Series:
        return np.log(y)

    def _inverse(self, values: np.ndarray) -> np.ndarray:
        return np.exp(values)


MODELS: dict[str, type[Forecaster]] = {
    m.name: m
    for m in (
        Naive,
        RobustNaive,
        SeasonalNaive,
        ProphetDefault,
        ProphetTuned,
        XGBoost,
        XGBoostDamped,
        ETS,
        Theta,
        Combination,
        GlobalForecast,
        CombinationGlobal,
    )
}
GLOBAL_MODELS = ("lgbm_global", "combo_global")  # need ``global_points`` (ml.global_model)
BASELINES = ("naive", "seasonal_naive", "prophet_default")
FALLBACK = "naive"


def make_model(
    name: str,
    horizon: int,
    seed: int = 0,
    calibration_days: int = 182,
    hyperparameters: Hyperparameters | None = None,
) -> Forecaster:
    return MODELS[name](horizon, seed, calibration_days, hyperparameters)


def configured_model(name: str, ml: MlSettings) -> Forecaster:
    """Model ``name`` as the ``ml`` settings configure it (horizon, seed, bands, trees)."""
    return make_model(name, ml.horizon, ml.seed, ml.calibration_days, ml.hyperparameters)


def check_model_names(names: list[str]) -> list[str]:
    """The names as given, or ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    return names


def configured_models(ml: MlSettings) -> list[str]:
    """``ml.models``, or ConfigError when the configuration names an unknown model."""
    try:
        return check_model_names(ml.models)
    except ValueError as exc:
        raise ConfigError(f"ml.models: {exc}") from None


# ---- surge warnings --------------------------------------------------------------------------
Z80 = 1.2815515655446004  # the standard normal's 90 % quantile: an 80 % band is ±Z80 σ
VOLATILITY_DAYS = 28  # recent days whose log returns give the volatility that scales the bands
MIN_VOLATILITY = 0.002  # a floor (0.2 % a day): a flat stretch must not give a zero-width band


def recent_volatility(y: pd.Series) -> float:
    """The standard deviation of the daily log returns over the last ``VOLATILITY_DAYS`` days
    of a regular daily series (at least ``MIN_VOLATILITY``)."""
    returns = np.diff(np.log(y.to_numpy(dtype=float)[-VOLATILITY_DAYS - 1 :]))
    sd = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    return max(sd, MIN_VOLATILITY) if np.isfinite(sd) else MIN_VOLATILITY


def surge_probability(last: float, forecast: pd.DataFrame, rise: float) -> float:
    """P(the price rises to ≥ (1 + rise) × ``last`` on some day of the forecast horizon), from
    the forecast frame's point path and 80 % band (``surge_probabilities``)."""
    end = forecast.iloc[-1]
    ends = [np.array([v], dtype=float) for v in end[["yhat", *INTERVAL_COLUMNS[:2]]]]
    peak = np.array([forecast["yhat"].max()], dtype=float)
    return float(surge_probabilities(np.array([last], dtype=float), *ends, peak, rise)[0])


def surge_probabilities(
    last: np.ndarray,
    end: np.ndarray,
    end_lower_80: np.ndarray,
    end_upper_80: np.ndarray,
    peak: np.ndarray,
    rise: float,
) -> np.ndarray:
    """Per forecast, P(the price rises to ≥ (1 + rise) × ``last`` on some day of its horizon),
    from its point at the last horizon (``end``), its 80 % band there and its highest point
    (``peak``): the log price is taken as a Brownian motion with the drift of the point
    forecast to the last horizon and the spread of its 80 % band there, and the probability is
    that of its maximum reaching the threshold (first passage:
    Φ((μT − a)/σ√T) + e^{2μa/σ²} Φ((−a − μT)/σ√T)). A point forecast at or above the
    threshold on any day is probability ≥ 0.5 by itself."""
    from scipy.stats import norm

    a = float(np.log1p(rise))
    drift = np.log(end / last)  # μT
    spread = np.log(end_upper_80 / end_lower_80) / (2 * Z80)  # σ√T
    peak = np.log(peak / last)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        first_passage = norm.cdf((drift - a) / spread) + np.exp(
            2 * drift * a / spread**2 + norm.logcdf((-a - drift) / spread)
        )
        at_peak = norm.sf((a - peak) / spread)  # the day the point path is highest
    banded = np.clip(np.where(at_peak > first_passage, at_peak, first_passage), 0.0, 1.0)
    return np.where(spread > 0, banded, (peak >= a).astype(float))
