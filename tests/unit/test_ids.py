"""ids: finding containers by id, prefix or name; generated and checked names."""

from __future__ import annotations

import pytest

from shellctr.core import ids
from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.ids import check_name, find, generate_name, new_id, short_id

A = "aaaa1111" + "0" * 56
B = "aaaa2222" + "0" * 56
C = "cccc3333" + "0" * 56
CANDIDATES = {A: "web", B: "db", C: "cache"}


def test_new_ids_are_64_hex_and_short_ids_12() -> None:
    one, two = new_id(), new_id()
    assert len(one) == len(two) == 64 and ids.HEX_DIGITS.issuperset(one + two) and one != two
    assert short_id(one) == one[:12]


@pytest.mark.parametrize(("ref", "cid"), [
    (A, A),  # full id
    ("web", A),  # name
    ("db", B),
    ("aaaa1", A),  # unique prefix
    ("c", C),
    (short_id(B), B),
])
def test_find_by_full_id_name_or_unique_prefix(ref: str, cid: str) -> None:
    assert find(ref, CANDIDATES, "container") == cid


def test_find_prefers_a_name_over_an_id_prefix() -> None:
    assert find("cafe", {A: "cafe", "cafe" + "0" * 60: "other"}, "container") == A


def test_find_ambiguous_prefix_is_an_error() -> None:
    with pytest.raises(ShellctrError, match="multiple containers match the prefix 'aaaa'"):
        find("aaaa", CANDIDATES, "container")


@pytest.mark.parametrize("ref", ["nope", "", "ffff", "WEB", "aaaa1111x"])
def test_find_not_found(ref: str) -> None:
    with pytest.raises(NotFound, match=f"^no such container: {ref}$"):
        find(ref, CANDIDATES, "container")


def test_generate_name_is_adjective_underscore_scientist() -> None:
    adjective, _, scientist = generate_name([]).partition("_")
    assert adjective in ids._ADJECTIVES and scientist in ids._NAMES


def test_generate_name_avoids_taken_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_choice", lambda words: words[0])
    first = f"{ids._ADJECTIVES[0]}_{ids._NAMES[0]}"
    assert generate_name([]) == first
    assert generate_name([first]) == first + "0"


def test_generated_names_are_unique() -> None:
    taken: list[str] = []
    for _ in range(300):
        name = generate_name(taken)
        assert name not in taken
        check_name(name)
        taken.append(name)


@pytest.mark.parametrize("name", ["web", "web-1", "a.b_c", "X", "9lives", "a" * 100])
def test_check_name_accepts_docker_names(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize("name", ["", "-web", "_web", ".web", "a b", "a/b", "é", "a:b"])
def test_check_name_refuses_what_docker_refuses(name: str) -> None:
    with pytest.raises(ShellctrError, match="invalid container name"):
        check_name(name)
