"""Security costs: the price ledger's build and verify rates over a synthetic silver.prices, and
the per-request cost of the credential checks and the rate limiter.

    ./run.sh bench security [--rows 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.catalog.tables import SILVER_PRICES
from lakehouse.config.settings import Settings, load_settings
from lakehouse.domain import ledger
from serving_api.auth import Keyring, Permission, mint_key
from serving_api.hardening import RateLimits


def silver(settings: Settings, rows: int, batches: int = 20) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    per_batch = rows // batches
    for batch in range(batches):
        ids = range(batch * per_batch, (batch + 1) * per_batch)
        write_deltalake(
            str(SILVER_PRICES.path(settings)),
            pa.table(
                {
                    "event_id": [f"e{i:09d}" for i in ids],
                    "market_id": [f"IP-{i % 60:03d}" for i in ids],
                    "commodity": [("beras", "cabai_merah", "bawang_merah")[i % 3] for i in ids],
                    "observed_at": [start + timedelta(minutes=i) for i in ids],
                    "price": [14000.0 + i % 997 for i in ids],
                    "unit": ["kg"] * per_batch,
                    "source": ["bench"] * per_batch,
                    "silver_batch_id": [batch] * per_batch,
                }
            ),
            mode="append",
        )


def per_call_us(fn: Callable[[], object], calls: int = 20_000) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - began) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = load_settings()
        root = Path(tmp)
        settings = base.model_copy(
            update={
                "paths": base.paths.model_copy(
                    update={"data_dir": root, "lakehouse_root": root / "lakehouse"}
                )
            }
        )
        silver(settings, args.rows)
        began = time.perf_counter()
        built = ledger.build(settings)
        build_s = time.perf_counter() - began
        began = time.perf_counter()
        verdict = ledger.verify(settings)
        verify_s = time.perf_counter() - began
        assert verdict.ok and built == verdict.entries

        key, entry = mint_key("bench", "reader")
        keyring = Keyring(
            settings.model_copy(update={"api": settings.api.model_copy(update={"keys": [entry]})})
        )
        token, _ = keyring.tokens.issue("bench", "reader", "user", timedelta(minutes=5))
        limits = RateLimits(settings.security.model_copy(update={"rate_limit_per_minute": 10**9}))
        costs = {
            "API key check": per_call_us(lambda: keyring.check(key, None, Permission.read)),
            "JWT check (HS256 decode)": per_call_us(
                lambda: keyring.check(None, token, Permission.read)
            ),
            "rate limiter (one bucket)": per_call_us(lambda: limits.take("c:bench")),
        }

    print(f"\nprice ledger over {args.rows:,} silver rows ({verdict.chains} chains)")
    print(f"  build   {build_s:8.2f} s   {built / build_s:12,.0f} entries/s")
    print(f"  verify  {verify_s:8.2f} s   {verdict.entries / verify_s:12,.0f} entries/s")
    print("per-request cost")
    for label, us in costs.items():
        print(f"  {label:<28}{us:8.1f} µs")


if __name__ == "__main__":
    main()
