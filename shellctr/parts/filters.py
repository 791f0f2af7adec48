"""`--filter KEY=VALUE`, as Docker reads it for ps, images, volume ls and network ls:
values of one key OR, different keys AND."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from shellctr.core.errors import UsageError

Tests = Mapping[str, Callable[[str], bool]]


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
    """Whether one thing passes: for every key given, one of its values' test holds."""
    return all(any(tests[key](value) for value in values) for key, values in filters.items())


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """`label=KEY` (has the label) or `label=KEY=VALUE` (has it with that value)."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
