"""Reading an Indonesian food-price headline: which catalogue commodities it names, which way it
says each price goes, where, and what it is about. Pure functions over text; the lexicon is
``conf/news.yaml`` (loaded once), the places are the reference files of the project.

How a headline is read (``read_headline``):

1. Text is lower-cased, punctuation becomes spaces, spellings are normalised (``cabe`` →
   ``cabai``) and the headline is cut into clauses at punctuation and at contrast, concessive
   and causal words (``tapi``, ``meski``, ``akibat``).
2. Commodities: the longest phrase of the lexicon or the catalogue at each place; a generic word
   (``cabai``, ``bawang``) counts only when no more specific member of its family is named.
3. Direction of a clause: its first direction word that is not negated (``tidak naik`` →
   stable), not about another subject (``omzet menurun``, ``pasar murah``) and not a fixed phrase
   (``turun ke pasar``). A commodity takes its own clause's direction; else the direction of a
   clause naming no commodity (``Naik Sebulan Terakhir, Harga Cabai … Capai Rp 90 Ribu``); a
   clause after a contrast word wins over the others, a concessive or causal one counts last.
4. Place: the first province, regency or city named (cities map to their province), in the
   headline, else in the lead.
5. Topic: the first of intervention, supply disruption, stock, price whose phrases occur.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.reference import regencies as official_regencies
from lakehouse.config.settings import ConfigError
from lakehouse.config.yaml_text import parse_yaml

Direction = Literal["up", "down", "stable"]
Topic = Literal["price", "stock", "supply_disruption", "intervention", "other"]
DIRECTIONS: tuple[Direction, ...] = ("up", "down", "stable")
TOPICS: tuple[Topic, ...] = ("intervention", "supply_disruption", "stock", "price")
_CLAUSE_MARKS = re.compile(r"[,;:!?()\[\]|\"“”]|\s[-–—]\s|\.\s")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_REGENCY_PREFIX = re.compile(r"^(kabupaten administrasi|kota administrasi|kabupaten|kota)\s+")


@dataclass(frozen=True)
class Mention:
    """One catalogue commodity a headline names, and which way it says its price goes (None:
    it does not say)."""

    commodity: str
    direction: Direction | None


@dataclass(frozen=True)
class Reading:
    """What a headline says."""

    mentions: tuple[Mention, ...] = ()
    province: str | None = None  # name as in conf/provinces.csv; None: no place named
    regency: str | None = None  # as in datasets/indonesia_regencies.csv
    topic: Topic = "other"


@dataclass(frozen=True)
class Place:
    province: str
    regency: str | None = None


@dataclass(frozen=True)
class Lexicon:
    """conf/news.yaml, compiled: every phrase as a tuple of words."""

    spellings: dict[str, tuple[str, ...]]
    commodities: dict[tuple[str, ...], str]
    generic: dict[tuple[str, ...], tuple[str, frozenset[str]]]
    directions: dict[tuple[str, ...], Direction]
    negations: frozenset[str]
    negation_window: int
    subjects: frozenset[tuple[str, ...]]
    subject_window: int
    not_directions: frozenset[tuple[str, ...]]
    contrast: frozenset[str]
    concessive: frozenset[str]
    causal: frozenset[str]
    topics: dict[Topic, frozenset[tuple[str, ...]]]
    places: dict[tuple[str, ...], Place] = field(repr=False)
    longest: int = 6  # words in the longest phrase


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, punctuation dropped."""
    return [w for w in _NON_WORD.split(text.lower()) if w]


def _phrases(items: Iterable[str]) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(words(i)) for i in items if words(i))


def _regency_name(name: str) -> str:
    return _REGENCY_PREFIX.sub("", name.strip().lower())


def _places(
    spec: dict, stopwords: frozenset[str], conf: Conf, where: Path
) -> dict[tuple[str, ...], Place]:
    """Every place name → its province (and regency): provinces and their aliases, regencies
    and cities without their ``Kabupaten``/``Kota`` prefix (with it too, and written as one
    word: ``tanjungpinang``), the markets of ``conf``, and the lexicon's own (from ``where``)."""
    found: dict[tuple[str, ...], Place] = {}
    by_code = {p.code: p.name for p in conf.provinces.values()}
    regencies: dict[str, Place] = {}
    # kabupaten first, then kota: a bare name shared by both ("Bandung") is the city
    for regency in sorted(official_regencies().values(), key=lambda r: r.kind != "kabupaten"):
        place = Place(by_code[regency.province_code], regency.name)
        regencies[regency.name.lower()] = place
        bare = _regency_name(regency.name)
        for name in (regency.name, bare, bare.replace(" ", "")):
            key = tuple(words(name))
            if key and not (len(key) == 1 and key[0] in stopwords):
                found[key] = place
    for market in conf.markets.values():
        if market.kind == "pasar":
            found[tuple(words(market.name))] = Place(market.province)
            # without "Pasar" only a name of two words or more: "Pasar Minggu" is a market,
            # "minggu" a week
            bare = words(re.sub(r"^pasar( induk)?\s+", "", market.name.lower()))
            if len(bare) > 1:
                found.setdefault(tuple(bare), Place(market.province))
                found.setdefault(("".join(bare),), Place(market.province))
    for p in conf.provinces.values():
        for name in (p.name, *p.aliases):
            found[tuple(words(name))] = Place(p.name)
    for name, regency in (spec.get("places") or {}).items():
        if regency.lower() not in regencies:
            raise ConfigError(f"{where}: place {name!r}: no regency {regency!r}")
        found[tuple(words(name))] = regencies[regency.lower()]
    return found


def _commodity_phrases(spec: dict, conf: Conf, where: Path) -> dict[tuple[str, ...], str]:
    known = conf.commodities
    found: dict[tuple[str, ...], str] = {}
    for c in known.values():
        for name in (c.name, *c.aliases):
            found[tuple(words(name))] = c.id
    for phrase, commodity in (spec.get("commodities") or {}).items():
        if commodity not in known:
            raise ConfigError(f"{where}: {phrase!r} names unknown commodity {commodity!r}")
        found[tuple(words(phrase))] = commodity
    return found


@cache
def lexicon(conf: Conf) -> Lexicon:
    """``news.yaml`` of the configuration folder, read and checked once."""
    path = conf.path("news.yaml")
    try:
        spec = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    directions: dict[tuple[str, ...], Direction] = {}
    for direction in DIRECTIONS:
        for phrase in _phrases(spec.get("directions", {}).get(direction, [])):
            directions[phrase] = direction
    generic = {
        tuple(words(word)): (g["commodity"], frozenset(g["family"]))
        for word, g in (spec.get("generic") or {}).items()
    }
    stopwords = frozenset(spec.get("place_stopwords") or [])
    phrases = _commodity_phrases(spec, conf, path)
    places = _places(spec, stopwords, conf, path)
    return Lexicon(
        spellings={k: tuple(words(v)) for k, v in (spec.get("spellings") or {}).items()},
        commodities=phrases,
        generic=generic,
        directions=directions,
        negations=frozenset(spec.get("negations") or []),
        negation_window=int(spec.get("negation_window", 4)),
        subjects=_phrases(spec.get("subjects") or []),
        subject_window=int(spec.get("subject_window", 2)),
        not_directions=_phrases(spec.get("not_directions") or []),
        contrast=frozenset(spec.get("contrast") or []),
        concessive=frozenset(spec.get("concessive") or []),
        causal=frozenset(spec.get("causal") or []),
        topics={t: _phrases(spec.get("topics", {}).get(t, [])) for t in TOPICS},
        places=places,
        longest=max(len(k) for k in [*phrases, *directions, *places, *generic]),
    )


def _normalised(text: str, lex: Lexicon) -> list[str]:
    out: list[str] = []
    for w in words(text):
        out.extend(lex.spellings.get(w, (w,)))
    return out


@dataclass
class _Clause:
    tokens: list[str]
    kind: Literal["plain", "contrast", "concessive", "causal"] = "plain"


def _clauses(text: str, lex: Lexicon) -> list[_Clause]:
    """The clauses of a text: cut at punctuation and at contrast/concessive/causal words."""
    clauses: list[_Clause] = []
    for part in _CLAUSE_MARKS.split(text):
        current = _Clause([])
        for token in _normalised(part, lex):
            kind = (
                "contrast"
                if token in lex.contrast
                else "concessive"
                if token in lex.concessive
                else "causal"
                if token in lex.causal
                else None
            )
            if kind is not None:
                if current.tokens:
                    clauses.append(current)
                current = _Clause([], kind)
                continue
            current.tokens.append(token)
        if current.tokens:
            clauses.append(current)
    return clauses


def _matches(
    tokens: list[str], phrases: dict[tuple[str, ...], object] | frozenset, longest: int
) -> Iterator[tuple[int, int, tuple[str, ...]]]:
    """(start, end, phrase) of the longest phrase at each position, left to right, never
    overlapping."""
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            phrase = tuple(tokens[i : i + n])
            if phrase in phrases:
                yield i, i + n, phrase
                i += n
                break
        else:
            i += 1


def _has(tokens: list[str], phrases: frozenset[tuple[str, ...]], longest: int) -> bool:
    return any(True for _ in _matches(tokens, phrases, longest))


def _commodity_phrases_in(tokens: list[str], lex: Lexicon) -> Iterator[tuple[int, int, tuple]]:
    """(start, end, phrase) of the commodity phrases, specific and generic, of a clause."""
    return _matches(tokens, {**lex.commodities, **dict.fromkeys(lex.generic, "")}, lex.longest)


def _commodities_in(tokens: list[str], lex: Lexicon) -> list[tuple[str, bool]]:
    """(commodity, generic?) of each commodity phrase of a clause, in order."""
    found = []
    for _, _, phrase in _commodity_phrases_in(tokens, lex):
        if phrase in lex.commodities:
            found.append((lex.commodities[phrase], False))
        else:
            found.append((lex.generic[phrase][0], True))
    return found


def _direction_of(tokens: list[str], lex: Lexicon) -> Direction | None:
    """The first direction a clause states."""
    blocked: set[int] = set()
    for start, end, _ in _matches(tokens, lex.not_directions, lex.longest):
        blocked.update(range(start, end))
    # a subject word inside a commodity's name ("kedelai impor") is no other subject
    named = {i for start, end, _ in _commodity_phrases_in(tokens, lex) for i in range(start, end)}
    subjects = {
        i
        for start, end, _ in _matches(tokens, lex.subjects, lex.longest)
        if not named & set(range(start, end))
        for i in range(start, end)
    }
    for start, end, phrase in _matches(tokens, lex.directions, lex.longest):
        if blocked & set(range(start, end)):
            continue
        if subjects & set(range(max(0, start - lex.subject_window), start)):
            continue
        direction = lex.directions[phrase]
        window = tokens[max(0, start - lex.negation_window) : start]
        if any(w in lex.negations for w in window):
            return "stable" if direction != "stable" else None
        return direction
    return None


def _mentions(text: str, lex: Lexicon) -> tuple[Mention, ...]:
    clauses = _clauses(text, lex)
    found = [(_commodities_in(c.tokens, lex), _direction_of(c.tokens, lex), c) for c in clauses]
    specific = {c for named, _, _ in found for c, generic in named if not generic}
    rank = {"contrast": 0, "plain": 1, "concessive": 2, "causal": 2}
    # a clause that names no commodity lends its direction to those that state none
    free = sorted(
        ((rank[c.kind], d) for named, d, c in found if not named and d is not None),
        key=lambda x: x[0],
    )
    fallback = free[0][1] if free else None
    directions: dict[str, tuple[int, Direction | None]] = {}
    for named, direction, clause in found:
        for commodity, generic in named:
            if generic:
                family = next(f for c, f in lex.generic.values() if c == commodity)
                if specific & family:
                    continue
            candidate = (rank[clause.kind], direction)
            known = directions.get(commodity)
            if known is None or (
                direction is not None and (known[1] is None or candidate[0] < known[0])
            ):
                directions[commodity] = candidate
    return tuple(Mention(c, d if d is not None else fallback) for c, (_, d) in directions.items())


def _place(text: str, lex: Lexicon) -> Place | None:
    tokens = _normalised(text, lex)
    for _, _, phrase in _matches(tokens, lex.places, lex.longest):
        return lex.places[phrase]
    return None


def _topic(text: str, mentions: tuple[Mention, ...], lex: Lexicon) -> Topic:
    tokens = _normalised(text, lex)
    for topic in TOPICS:
        if _has(tokens, lex.topics[topic], lex.longest):
            return topic
    return "price" if any(m.direction for m in mentions) else "other"


def read_headline(lex: Lexicon, title: str, text: str | None = None) -> Reading:
    """What a headline (and its lead ``text``, when given) says: the commodities it names with
    their direction, the province and regency, the topic. Commodities and directions come from
    the headline alone (leads name many goods in passing); place and topic from the lead too
    when the headline has none."""
    mentions = _mentions(title, lex)
    place = _place(title, lex) or (_place(text, lex) if text else None)
    topic = _topic(title, mentions, lex)
    if topic in ("price", "other") and text:
        topic = _topic(f"{title} {text}", mentions, lex)
    return Reading(
        mentions=mentions,
        province=place.province if place else None,
        regency=place.regency if place else None,
        topic=topic,
    )
