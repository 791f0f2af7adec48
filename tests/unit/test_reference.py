"""reference: normalizing image references and finding image records."""

from __future__ import annotations

import pytest

from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host
from shellctr.core.layout import Layout
from shellctr.core.store import Store
from shellctr.parts.reference import find_image_record, is_id, normalize_ref

from .helpers import image_model, install_image


@pytest.mark.parametrize(("ref", "normal"), [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("library/busybox", "busybox:latest"),  # Docker's familiar name
    ("docker.io/library/busybox:1", "busybox:1"),
    ("index.docker.io/user/app", "user/app:latest"),
    ("docker.io/user/app", "user/app:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("my-app_2.x", "my-app_2.x:latest"),
    ("a__b", "a__b:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("registry.example.com/team/app:V1.2-rc_3", "registry.example.com/team/app:V1.2-rc_3"),
    ("app:" + "t" * 128, "app:" + "t" * 128),
])
def test_normalize_ref(ref: str, normal: str) -> None:
    assert normalize_ref(ref) == normal


@pytest.mark.parametrize("ref", [
    "", "Busybox", "busybox:", "busybox:-x", "busybox:.x", "a:b:c", "-app", "app-", "a//b",
    "app:" + "t" * 129, "app name", "app@sha256", "app@sha256:" + "a" * 64,
    "Host:5000/App", "bad_host:5000/app",
])
def test_normalize_ref_refuses_invalid_references(ref: str) -> None:
    with pytest.raises(ShellctrError, match="invalid reference format"):
        normalize_ref(ref)


def test_is_id() -> None:
    assert is_id("ab12") and is_id("sha256:ab12") and is_id("a" * 64)
    assert not is_id("busybox") and not is_id("a" * 65) and not is_id("sha256:")


@pytest.fixture
def store(layout: Layout) -> Store:
    install_image(layout, image_model(id="ab12" + "0" * 60, repo_tags=["busybox:latest"]))
    install_image(layout, image_model(id="ab34" + "0" * 60, repo_tags=["app:1", "app:2"]))
    install_image(layout, image_model(id="ff" * 32, repo_tags=[]))
    return Store(layout, Host())


@pytest.mark.parametrize(("ref", "image_id"), [
    ("busybox", "ab12" + "0" * 60),
    ("busybox:latest", "ab12" + "0" * 60),
    ("app:2", "ab34" + "0" * 60),
    ("ab12", "ab12" + "0" * 60),
    ("sha256:ab34", "ab34" + "0" * 60),
    ("ff" * 32, "ff" * 32),
    ("sha256:" + "ff" * 32, "ff" * 32),
    ("f", "ff" * 32),
])
def test_find_image_record_by_tag_or_id_prefix(store: Store, ref: str, image_id: str) -> None:
    assert find_image_record(store.image_records(), ref)["id"] == image_id


def test_find_image_record_ambiguous_prefix(store: Store) -> None:
    with pytest.raises(ShellctrError, match="ambiguous image id prefix 'ab'"):
        find_image_record(store.image_records(), "ab")


def test_find_image_record_hex_name_that_is_no_id_is_a_tag(layout: Layout, store: Store) -> None:
    install_image(layout, image_model(id="12" * 32, repo_tags=["cafe:latest"]))
    assert find_image_record(store.image_records(), "cafe")["id"] == "12" * 32


@pytest.mark.parametrize(("ref", "shown"), [
    ("nope", "'nope:latest'"), ("app:3", "'app:3'"), ("abcd", "'abcd:latest'"),
])
def test_find_image_record_not_found(store: Store, ref: str, shown: str) -> None:
    with pytest.raises(NotFound, match=f"^unable to find image {shown} locally"):
        find_image_record(store.image_records(), ref)


def test_find_image_record_in_an_empty_root(layout: Layout) -> None:
    with pytest.raises(NotFound, match="unable to find image 'busybox:latest' locally"):
        find_image_record(Store(layout, Host()).image_records(), "busybox")
