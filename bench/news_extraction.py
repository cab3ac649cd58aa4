"""How well ``lakehouse.domain.intake.news_text`` reads real headlines: precision and recall of the
commodities,
commodity × direction pairs and provinces it finds, against the hand labels of
``datasets/news_headlines_labelled.csv``, on the part the lexicon was written on (the first 60 %
of the rows by id) and on the held-out rest.

``./run.sh bench news_extraction`` (``--errors`` also lists the held-out headlines it gets wrong).
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

from lakehouse.catalog.conf import conf_of
from lakehouse.config.settings import PROJECT_ROOT, load_settings
from lakehouse.domain.intake.news_text import Lexicon, lexicon, read_headline

LABELS = PROJECT_ROOT / "datasets" / "news_headlines_labelled.csv"
DEV_SHARE = 0.6


@dataclass(frozen=True)
class Labelled:
    id: int
    title: str
    mentions: frozenset[tuple[str, str]]  # (commodity, up|down|stable|none)
    province: str | None


def load(path: Path = LABELS) -> list[Labelled]:
    """The labelled headlines, by id."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        pairs = [m.split(":") for m in row["mentions"].split(";") if m]
        out.append(
            Labelled(
                int(row["id"]),
                row["title"],
                frozenset((c, d) for c, d in pairs),
                row["province"] or None,
            )
        )
    return sorted(out, key=lambda r: r.id)


def split(rows: list[Labelled]) -> tuple[list[Labelled], list[Labelled]]:
    """(development part, held-out part): the first 60 % of the ids, the rest."""
    cut = round(len(rows) * DEV_SHARE)
    return rows[:cut], rows[cut:]


@dataclass
class Counts:
    true_positive: int = 0
    predicted: int = 0
    labelled: int = 0

    def add(self, predicted: set, labelled: set) -> None:
        self.true_positive += len(predicted & labelled)
        self.predicted += len(predicted)
        self.labelled += len(labelled)

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.labelled if self.labelled else 0.0

    def __str__(self) -> str:
        return (
            f"precision {self.precision:.2f} ({self.true_positive}/{self.predicted})  "
            f"recall {self.recall:.2f} ({self.true_positive}/{self.labelled})"
        )


@dataclass(frozen=True)
class Scores:
    headlines: int
    commodities: Counts
    pairs: Counts
    provinces: Counts
    wrong: list[tuple[Labelled, set, str | None]]


def score(rows: list[Labelled], lex: Lexicon) -> Scores:
    commodities, pairs, places = Counts(), Counts(), Counts()
    wrong = []
    for row in rows:
        reading = read_headline(lex, row.title)
        found = {(m.commodity, m.direction or "none") for m in reading.mentions}
        commodities.add({c for c, _ in found}, {c for c, _ in row.mentions})
        pairs.add(found, set(row.mentions))
        places.add({reading.province} - {None}, {row.province} - {None})  # one place a headline
        if found != set(row.mentions) or reading.province != row.province:
            wrong.append((row, found, reading.province))
    return Scores(len(rows), commodities, pairs, places, wrong)


def report(name: str, scores: Scores) -> None:
    print(f"{name}: {scores.headlines} headlines")
    print(f"  commodity            {scores.commodities}")
    print(f"  commodity+direction  {scores.pairs}")
    print(f"  province             {scores.provinces}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", action="store_true", help="list the held-out misreadings")
    args = parser.parse_args()
    lex = lexicon(conf_of(load_settings()))
    dev, held_out = split(load())
    report(f"development (ids 1-{dev[-1].id})", score(dev, lex))
    held = score(held_out, lex)
    report(f"held-out (ids {held_out[0].id}-{held_out[-1].id})", held)
    if args.errors:
        for row, found, province in held.wrong:
            print(f"  #{row.id} {row.title!r}\n     labelled {sorted(row.mentions)} {row.province}")
            print(f"     read     {sorted(found)} {province}")


if __name__ == "__main__":
    main()
