"""`--filter KEY=VALUE`, as Docker reads it for ps, images, volume ls, network ls and
events: values of one key OR, different keys AND; but every `label=` given must hold."""

from __future__ import annotations

from shellctr.core.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    Tests = Mapping[str, Callable[[str], bool]]


# keys whose values must all hold, not one of them (Docker's MatchKVList): `-f label=a
# -f label=b` lists what has both labels
ALL_OF = frozenset({"label"})


def parse_filters(items: Iterable[str], keys: Iterable[str]) -> dict[str, list[str]]:
    """`KEY=VALUE` items grouped by key; an unknown key or a missing `=` is a usage error."""
    keys = tuple(keys)
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in keys:
            raise UsageError(f"invalid filter {item!r}",
                             f"use KEY=VALUE with KEY one of {', '.join(keys)}")
        filters.setdefault(key, []).append(value)
    return filters


def matches(filters: Mapping[str, list[str]], tests: Tests) -> bool:
    """Whether one thing passes: for every key given, one of its values' test holds (all of
    them for a key of ALL_OF)."""
    return all((all if key in ALL_OF else any)(tests[key](value) for value in values)
               for key, values in filters.items())


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """`label=KEY` (has the label) or `label=KEY=VALUE` (has it with that value)."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


NETWORK_KEYS = ("name", "id", "driver", "label", "type")


def network_matches(record: Mapping[str, Any], wanted: Mapping[str, list[str]]) -> bool:
    """`network ls -f` and the API's `GET /networks?filters=`, of a network record."""
    from shellctr.parts.netopts import DEFAULT_NETWORK

    labels = record.get("labels", {})
    kind = "builtin" if record["name"] == DEFAULT_NETWORK else "custom"
    return matches(wanted, {
        "name": lambda v: v in record["name"],
        "id": lambda v: record["id"].startswith(v),
        "driver": lambda v: record["driver"] == v,
        "label": lambda v: label_matches(labels, v),
        "type": lambda v: v == kind,
    })
