"""Event schemas, written once.

The pydantic models below are the single definition of what travels on the Kafka topics.
Everything else is derived from them: producers serialise with ``to_json``, the API validates
request bodies with the models themselves, Spark parses with ``spark_schema(model)`` and the
JSON Schema for outside users comes from ``json_schema(model)``.
"""

from __future__ import annotations

import base64
import types
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructType

SCHEMA_VERSION = 1
#: the dead-letter reason of a report's price cell that holds no price (empty, 0, ``-``);
#: silver quarantines such a record with this reason
NOT_REPORTED = "not_reported"
#: namespace of the deterministic event ids (uuid5): the same reading always gets the same id
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a52-5d0e-4d8e-9a51-8f3f0c6b7a10")


def deterministic_id(*parts: object) -> uuid.UUID:
    """Event id derived from what identifies a reading, so a re-sent copy is a recognisable
    duplicate (silver keeps one)."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, "|".join(str(p) for p in parts))


class Metric(StrEnum):
    """What a market sensor measures (physical ranges: conf/sensors.yaml)."""

    temperature_c = "temperature_c"
    humidity_pct = "humidity_pct"
    crowd_count = "crowd_count"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: int = Field(SCHEMA_VERSION, ge=1)
    market_id: str = Field(min_length=1, max_length=64)
    observed_at: AwareDatetime = Field(description="ISO-8601 time of observation, with offset")
    source: str = Field(min_length=1, max_length=128, description="feed or device that reported")

    def to_json(self) -> bytes:
        """The wire format: compact UTF-8 JSON."""
        return self.model_dump_json().encode()


class PriceEvent(_Event):
    """A price observed at a market: IDR per ``unit`` of ``commodity``."""

    event_type: Literal["price"] = "price"
    commodity: str = Field(min_length=1, max_length=64, examples=["bawang_merah"])
    price: float = Field(gt=0, description="IDR per unit", examples=[42054.0])
    unit: str = Field(min_length=1, max_length=16, examples=["kg"])
    region: str | None = Field(None, max_length=128, examples=["DKI Jakarta"])
    device_id: str | None = Field(None, max_length=64)
    attributes: dict[str, str] | None = Field(
        None, description="extra columns of the report, kept as text"
    )

    @property
    def key(self) -> str:
        """Kafka message key: all prices of one market × commodity stay in order."""
        return f"{self.market_id}:{self.commodity}"


class SensorEvent(_Event):
    """One reading of a market sensor device."""

    event_type: Literal["sensor"] = "sensor"
    device_id: str = Field(min_length=1, max_length=64)
    metric: Metric
    value: float

    @property
    def key(self) -> str:
        """Kafka message key: all readings of one device stay in order."""
        return f"{self.market_id}:{self.device_id}"

    @staticmethod
    def reading_id(device_id: str, metric: str, observed_at: datetime) -> uuid.UUID:
        """The event id of a reading: the same device, metric and time give the same id."""
        return deterministic_id("sensor", device_id, metric, observed_at.isoformat())


class DeadLetter(BaseModel):
    """Input that could not become an event, with where it came from and why.

    Published to the dead-letter topic so that nothing that entered the platform is silently
    lost. Binary input is kept base64-encoded (``raw_encoding``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: Literal["deadletter"] = "deadletter"
    schema_version: int = SCHEMA_VERSION
    dead_letter_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    origin: Literal["csv", "replay", "mqtt", "api"]
    reason: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    file: str | None = None
    line: int | None = None
    mqtt_topic: str | None = None
    received_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of_bytes(cls, raw: bytes, **fields: Any) -> DeadLetter:
        """Dead letter for raw bytes: kept as text when valid UTF-8, base64 otherwise."""
        try:
            return cls(raw=raw.decode("utf-8"), **fields)
        except UnicodeDecodeError:
            return cls(raw=base64.b64encode(raw).decode(), raw_encoding="base64", **fields)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class HoldStatus(StrEnum):
    """Where a held price stands (``silver.holds``; lakehouse.domain.validation.holds decides)."""

    held = "held"
    not_confirmed = "not_confirmed"  # a later report came back to the earlier level: still held
    released = "released"  # into silver: confirmed by later reports, or by an operator
    rejected = "rejected"  # by an operator: out of silver for good

    @classmethod
    def reviewable(cls) -> tuple[HoldStatus, ...]:
        """The statuses an operator may still release or reject."""
        return cls.held, cls.not_confirmed


class ReviewDecision(StrEnum):
    """What an operator asks of a held price."""

    release = "release"
    reject = "reject"

    @property
    def outcome(self) -> HoldStatus:
        return HoldStatus.released if self is ReviewDecision.release else HoldStatus.rejected


class ReviewEvent(BaseModel):
    """An operator's decision on a held price, as the API writes it to the reviews topic; the
    next silver micro-batch applies it where the held price waits: in the state of its
    market × commodity's province (a review without them cannot reach it and is ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="the review's own id")
    target_event_id: str = Field(min_length=1, description="the held price's event id")
    market_id: str | None = Field(None, description="the held price's market")
    commodity: str | None = Field(None, description="the held price's commodity")
    decision: ReviewDecision
    note: str
    reviewer: str = Field(description="name of the API key that decided")
    requested_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


EVENT_MODELS: dict[str, type[_Event]] = {"price": PriceEvent, "sensor": SensorEvent}


# ---- supply chain (issue 35): stock and shipment events on the supply topic ------------------


class EntityKind(StrEnum):
    """What a supply entity is (lakehouse.domain.supply_chain.supply: the registry)."""

    warehouse = "warehouse"
    distributor = "distributor"
    farmer_group = "farmer_group"
    market = "market"


class _SupplyEvent(BaseModel):
    """What stock and shipment events share. Quantities are not range-checked here: a negative
    or implausible quantity still reaches Kafka and is quarantined by silver with its reason."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: int = Field(SCHEMA_VERSION, ge=1)
    commodity: str = Field(min_length=1, max_length=64, examples=["beras"])
    quantity: float = Field(description="kg, or litres for oils", examples=[125000.0])
    unit: str = Field("kg", min_length=1, max_length=16, examples=["kg"])
    observed_at: AwareDatetime = Field(description="ISO-8601 time of the report, with offset")
    source: str = Field(min_length=1, max_length=128, description="feed or system that reported")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class StockEvent(_SupplyEvent):
    """The stock of one commodity held by one supply entity at ``observed_at``."""

    event_type: Literal["stock"] = "stock"
    entity_id: str = Field(min_length=1, max_length=64, examples=["WH-3273-BULOG"])

    @property
    def key(self) -> str:
        """Kafka message key: the stock reports of one entity × commodity stay in order."""
        return f"{self.entity_id}:{self.commodity}"

    @staticmethod
    def report_id(entity_id: str, commodity: str, observed_at: datetime) -> uuid.UUID:
        """The same entity, commodity and time give the same id (a re-sent copy is a
        duplicate)."""
        return deterministic_id("stock", entity_id, commodity, observed_at.isoformat())


class ShipmentEvent(_SupplyEvent):
    """One report of a shipment: sent when it departs, again as it moves, and when it arrives
    (``arrived_at``). Silver keeps the latest report of each ``shipment_id``."""

    event_type: Literal["shipment"] = "shipment"
    shipment_id: str = Field(min_length=1, max_length=64)
    origin_id: str = Field(min_length=1, max_length=64, description="entity shipping")
    destination_id: str = Field(min_length=1, max_length=64, description="entity receiving")
    departed_at: AwareDatetime
    expected_at: AwareDatetime = Field(description="when the shipment is due at its destination")
    arrived_at: AwareDatetime | None = Field(None, description="set once it has arrived")

    @property
    def key(self) -> str:
        """Kafka message key: the reports of one shipment stay in order."""
        return self.shipment_id

    @staticmethod
    def report_id(shipment_id: str, observed_at: datetime) -> uuid.UUID:
        """The same shipment reported at the same time gives the same id."""
        return deterministic_id("shipment", shipment_id, observed_at.isoformat())


SUPPLY_EVENT_MODELS: dict[str, type[_SupplyEvent]] = {
    "stock": StockEvent,
    "shipment": ShipmentEvent,
}


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """JSON Schema of an event, as published for producers outside this code base."""
    return model.model_json_schema(mode="serialization")


def _spark_type(annotation: Any) -> DataType:
    from pyspark.sql import types as T

    if get_origin(annotation) in (Union, types.UnionType):
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        return _spark_type(inner)
    if get_origin(annotation) is Literal:
        return _spark_type(type(get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return T.StringType()
    if get_origin(annotation) is dict:
        key, value = get_args(annotation)
        return T.MapType(_spark_type(key), _spark_type(value), True)
    mapping: dict[Any, DataType] = {
        str: T.StringType(),
        uuid.UUID: T.StringType(),
        int: T.IntegerType(),
        float: T.DoubleType(),
        bool: T.BooleanType(),
        datetime: T.TimestampType(),
        AwareDatetime: T.TimestampType(),
    }
    if annotation not in mapping:
        raise TypeError(f"no Spark type for {annotation!r}")
    return mapping[annotation]


def spark_schema(model: type[BaseModel]) -> StructType:
    """Spark StructType of an event model, in field order; every field nullable so that a
    missing field parses to null and is reported by validation rather than lost."""
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField(name, _spark_type(f.annotation), True)
            for name, f in model.model_fields.items()
        ]
    )


# --- news (issue 36) -------------------------------------------------------------------------


class NewsEvent(BaseModel):
    """A news headline (with its lead paragraph when known) as it enters the platform on the
    news topic; what it says (commodities, direction, place) is read in silver
    (``lakehouse.domain.intake.news_text``), so a better lexicon re-reads old headlines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: Literal["news"] = "news"
    event_id: uuid.UUID = Field(
        description="same headline (its link, else source + title), same id"
    )
    schema_version: int = Field(SCHEMA_VERSION, ge=1)
    published_at: AwareDatetime = Field(description="ISO-8601 publication time, with offset")
    title: str = Field(min_length=1, max_length=1000, examples=["Harga Cabai Rawit Melonjak"])
    source: str = Field(
        min_length=1, max_length=200, description="publisher", examples=["kompas.tv"]
    )
    url: str | None = Field(None, max_length=2048, description="link to the article")
    text: str | None = Field(None, max_length=20000, description="lead paragraph, when given")
    collected_from: str | None = Field(
        None, max_length=2048, description="file, feed or API that brought the headline in"
    )

    @property
    def key(self) -> str:
        """Kafka message key: the headline's id (one headline, one partition)."""
        return str(self.event_id)

    @property
    def observed_at(self) -> datetime:
        """When it happened, the name replay and the producers sort events by."""
        return self.published_at

    @staticmethod
    def headline_id(title: str, source: str, url: str | None) -> uuid.UUID:
        """The event id of a headline: its link when it has one (the same article re-sent,
        whatever its date), else its publisher and title in normal form."""
        if url and url.strip():
            return deterministic_id("news", url.strip())
        normal = " ".join(title.lower().split())
        return deterministic_id("news", " ".join(source.lower().split()), normal)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
