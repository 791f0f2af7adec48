"""The image verbs in-process: listings, history, tag, inspect, prune, their errors."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import shellctr.core.host
from shellctr.core.layout import Layout

from .helpers import ROOTFS, RecordingHost, fake_tar, tar_bytes


@pytest.fixture
def cli(cli: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """conftest's `cli`, with tar done in Python."""
    def make(**kwargs: Any) -> RecordingHost:
        return RecordingHost(**kwargs, err=sys.stderr, substitute={"tar": fake_tar})

    monkeypatch.setattr(shellctr.core.host, "Host", make)
    return cli


@pytest.fixture
def imported(cli: Any, tmp_path: Path) -> str:
    path = tmp_path / "rootfs.tar"
    path.write_bytes(tar_bytes(ROOTFS))
    code, out, err = cli("import", "-c", "LABEL tier=web", "-c", "EXPOSE 80", str(path),
                         "base:1")
    assert code == 0, err
    return str(out.strip())


def test_images_digests_and_no_trunc(cli: Any, imported: str) -> None:
    code, out, _ = cli("images", "--digests", "--no-trunc")
    assert code == 0
    header, row = out.splitlines()
    assert re.split(r"\s{2,}", header) == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID",
                                           "CREATED", "SIZE"]
    assert re.split(r"\s{2,}", row)[:4] == ["base", "1", row.split()[2], imported]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", row.split()[2])
    assert cli("images", "-q", "--no-trunc") == (0, imported + "\n", "")
    assert cli("image", "ls", "-q") == (0, imported[7:19] + "\n", "")
    assert cli("images", "-q", "-f", "label=tier=web") == (0, imported[7:19] + "\n", "")
    assert cli("images", "-q", "-f", "label=tier", "-f", "label=other") == (0, "", "")
    assert cli("images", "-q", "-f", "reference=nope", "-f", "reference=base") == (
        0, imported[7:19] + "\n", "")  # references are alternatives
    assert cli("images", "-q", "-f", "dangling=true") == (0, "", "")
    assert cli("images", "-q", "other") == (0, "", "")


def test_history_shows_the_import(cli: Any, imported: str) -> None:
    code, out, _ = cli("history", "base:1")
    assert code == 0
    header, row = out.splitlines()
    assert re.split(r"\s{2,}", header) == ["IMAGE", "CREATED", "CREATED BY", "SIZE",
                                           "COMMENT"]
    assert row.startswith(imported[7:19]) and "shellctr import" in row
    assert row.rstrip().endswith("Imported from rootfs.tar")
    assert cli("history", "-q", "--no-trunc", "base:1") == (0, imported + "\n", "")


def test_tag_names_the_image_again_and_rmi_by_tag_only_untags(cli: Any,
                                                              imported: str) -> None:
    assert cli("tag", "base:1", "other/name:2") == (0, "", "")
    assert cli("images", "-q", "other/name:2") == (0, imported[7:19] + "\n", "")
    assert cli("rmi", "other/name:2") == (0, "Untagged: other/name:2\n", "")
    code, out, err = cli("tag", "nope", "x")
    assert (code, out) == (1, "")
    assert err == ("shellctr: unable to find image 'nope:latest' locally (pull it first: "
                   "shellctr pull nope:latest)\n")
    code, _, err = cli("tag", "base:1", "UPPER")
    assert code == 1 and "invalid reference format" in err


def test_image_inspect(cli: Any, imported: str) -> None:
    code, out, _ = cli("image", "inspect", "base:1")
    (data,) = json.loads(out)
    assert data["Id"] == imported and data["RepoTags"] == ["base:1"]
    assert data["Config"]["Labels"] == {"tier": "web"}
    assert data["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert data["Architecture"] and data["Os"] == "linux"
    assert data["RepoDigests"][0].startswith("base@sha256:")
    assert cli("image", "inspect", "-f", "{{.Id}}", "base:1") == (0, imported + "\n", "")
    code, out, err = cli("image", "inspect", "nope")
    assert (code, out) == (1, "[]\n") and err == "shellctr: no such image: nope\n"


def test_image_prune_asks_first_and_removes_only_dangling_images(
        cli: Any, imported: str, monkeypatch: pytest.MonkeyPatch, layout: Layout) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, out, _ = cli("image", "prune")
    assert code == 0 and out.startswith("WARNING! This will remove all dangling images.")
    assert cli("image", "prune", "-f") == (0, "Total reclaimed space: 0B\n", "")
    assert cli("images", "-q") == (0, imported[7:19] + "\n", "")
    code, out, _ = cli("image", "prune", "-a", "-f")
    assert code == 0
    assert out.splitlines()[:3] == ["Deleted Images:", "untagged: base:1",
                                    f"deleted: {imported}"]
    assert out.splitlines()[-1] == "Total reclaimed space: 43B"
    assert cli("images", "-q") == (0, "", "")
    assert [p.name for p in layout.layers_dir.iterdir()] == []
    assert [p.name for p in layout.blobs_dir.iterdir()] == []


def test_load_save_commit_diff_errors_are_one_line(cli: Any, tmp_path: Path) -> None:
    code, _, err = cli("load", "-i", str(tmp_path / "missing.tar"))
    assert code == 1 and err.startswith("shellctr: no such file: ")
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    code, _, err = cli("load", "-i", str(tmp_path / "junk.tar"))
    assert code == 1 and err.startswith("shellctr: invalid archive: ")
    code, _, err = cli("save", "-o", str(tmp_path / "o.tar"), "nope")
    assert code == 1 and "unable to find image 'nope:latest'" in err
    assert not (tmp_path / "o.tar").exists()
    for verb in ("commit", "diff"):
        code, _, err = cli(verb, "nope")
        assert code == 1 and err.count("\n") == 1 and "nope" in err


def test_system_prune_asks_first_then_removes_containers_volumes_and_images(
        cli: Any, imported: str, monkeypatch: pytest.MonkeyPatch, layout: Layout) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, out, _ = cli("system", "prune", "-a", "--volumes")
    assert code == 0 and out == (
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all anonymous volumes not used by at least one container\n"
        "  - all images without at least one container associated to them\n"
        "Are you sure you want to continue? [y/N] ")
    code, cid, err = cli("create", "-v", "/data", "base:1", "true")
    assert code == 0, err
    # without flags: the stopped container; its anonymous volume and a tagged image stay
    assert cli("system", "prune", "-f") == (
        0, f"Deleted Containers:\n{cid.strip()}\n\nTotal reclaimed space: 0B\n", "")
    assert cli("images", "-q") == (0, imported[7:19] + "\n", "")
    code, out, err = cli("system", "prune", "-a", "--volumes", "-f")
    assert code == 0, err
    volumes, images, total = out.split("\n\n")
    assert volumes.startswith("Deleted Volumes:\n") and len(volumes.splitlines()) == 2
    assert images.splitlines()[:3] == ["Deleted Images:", "untagged: base:1",
                                       f"deleted: {imported}"]
    assert total == "Total reclaimed space: 43B\n"
    assert cli("images", "-q") == (0, "", "") and cli("volume", "ls", "-q") == (0, "", "")
    assert [p.name for p in layout.layers_dir.iterdir()] == []
