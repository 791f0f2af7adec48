"""image.scan_layer: every member of a layer tar is checked before anything is extracted."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.errors import ShellctrError
from shellctr.engine.image import LayerScan, scan_layer

from .helpers import ROOTFS, tar_bytes

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
CHR, BLK, FIFO = tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE


def scan(tmp_path: Path, members: list[Any]) -> LayerScan:
    path = tmp_path / "layer.tar"
    path.write_bytes(tar_bytes(members))
    return scan_layer(path)


@pytest.mark.parametrize(("members", "message"), [
    ([("/etc/passwd", REG, b"x")], "member '/etc/passwd' has an absolute path"),
    ([("/etc", DIR)], "member '/etc' has an absolute path"),
    ([("../escape", REG, b"x")], "member '../escape' climbs out with '..'"),
    ([("a/../../etc/passwd", REG, b"x")], "climbs out with '..'"),
    ([("a/b/..", DIR)], "climbs out with '..'"),
    ([("ok", DIR), ("ok/..", SYM, "/")], "climbs out"),
])
def test_unsafe_names_are_refused(tmp_path: Path, members: list[Any], message: str) -> None:
    with pytest.raises(ShellctrError, match=f"^refusing layer: .*{message}"):
        scan(tmp_path, members)


@pytest.mark.parametrize("members", [
    [("etc", SYM, "/etc"), ("etc/passwd", REG, b"pwned")],
    [("etc", SYM, "/etc"), ("etc/cron.d", DIR)],
    [("a", DIR), ("a/link", SYM, "../../.."), ("a/link/b/c", REG, b"x")],
    [("./x", SYM, "/"), ("x/y", REG, b"x")],
    [("x", SYM, "/"), ("./x/y", SYM, "z")],
])
def test_a_member_through_an_earlier_symlink_is_refused(tmp_path: Path,
                                                        members: list[Any]) -> None:
    with pytest.raises(ShellctrError, match="would be written through the symlink"):
        scan(tmp_path, members)


def test_a_symlink_replaced_by_a_directory_may_hold_files(tmp_path: Path) -> None:
    members = [("x", SYM, "/etc"), ("x", DIR), ("x/file", REG, b"ok")]
    assert scan(tmp_path, members).size == 2


@pytest.mark.parametrize(("members", "message"), [
    ([("h", LNK, "missing")], "hard link 'h' points outside the layer"),
    ([("h", LNK, "later"), ("later", REG, b"x")], "points outside the layer"),
    ([("h", LNK, "/etc/shadow")], "'/etc/shadow' has an absolute path"),
    ([("h", LNK, "../outside")], "climbs out with '..'"),
    ([("s", SYM, "/etc/shadow"), ("h", LNK, "s")], "points outside the layer"),
])
def test_hard_links_leaving_the_layer_are_refused(tmp_path: Path, members: list[Any],
                                                  message: str) -> None:
    with pytest.raises(ShellctrError, match=message):
        scan(tmp_path, members)


def test_hard_link_to_an_earlier_file_is_fine(tmp_path: Path) -> None:
    result = scan(tmp_path, [("bin", DIR), ("bin/a", REG, b"abc"), ("bin/b", LNK, "bin/a"),
                             ("c", LNK, "./bin/a")])
    assert result.size == 3  # a hard link carries no content of its own


@pytest.mark.parametrize("members", [
    [("etc/evil", CHR)],
    [("sda", BLK)],
    [("devices/null", CHR)],
    [("dev", SYM, "/tmp"), ("dev/null", CHR)],
])
def test_device_nodes_outside_dev_are_refused(tmp_path: Path, members: list[Any]) -> None:
    with pytest.raises(ShellctrError, match=r"refusing layer: .*(device node|symlink)"):
        scan(tmp_path, members)


def test_device_nodes_under_dev_are_skipped(tmp_path: Path) -> None:
    result = scan(tmp_path, [("dev", DIR), ("dev/null", CHR), ("./dev/sda", BLK),
                             ("dev/fifo", FIFO), ("etc", DIR)])
    assert result.skipped == ["dev/null", "./dev/sda"]
    assert result.size == 0


def test_diff_id_is_the_sha256_of_the_tar_and_size_sums_regular_files(tmp_path: Path) -> None:
    data = tar_bytes([*ROOTFS, ("bin/big", REG, b"x" * 5000), ("bin/same", LNK, "bin/big")])
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    result = scan_layer(path)
    assert result.diff_id == hashlib.sha256(data).hexdigest()
    assert result.size == len(b"#!fake shell\n") + len(b"root:x:0:0:root:/root:/bin/sh\n") + 5000
    assert result.skipped == []


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress],
                         ids=["gzip", "bzip2", "xz"])
def test_diff_id_of_a_compressed_tar_is_the_sha256_of_the_uncompressed_tar(
        tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    data = tar_bytes(ROOTFS)
    path = tmp_path / "layer.tar.z"
    path.write_bytes(compress(data))
    assert scan_layer(path).diff_id == hashlib.sha256(data).hexdigest()


def test_diff_id_covers_bytes_after_the_end_of_archive_marker(tmp_path: Path) -> None:
    data = tar_bytes(ROOTFS) + b"\0" * 10240  # extra zero records, as some tools write
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    assert scan_layer(path).diff_id == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("data", "detail"), [
    (b"", "empty file"),
    (b"garbage " * 200, "invalid header"),
    (b"\0" * 10240, "it holds no files"),
    (tar_bytes([("big", REG, b"x" * 4000)])[:1500], "unexpected end of data"),
    (b"\x1f\x8b" + b"not really gzip" * 10, ""),
    (gzip.compress(b"plain text, not a tar\n" * 50, mtime=0), ""),  # fixed id for xdist
])
def test_empty_or_garbage_input_is_not_a_valid_tar_archive(tmp_path: Path, data: bytes,
                                                           detail: str) -> None:
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    with pytest.raises(ShellctrError, match=f"^not a valid tar archive: .*{detail}"):
        scan_layer(path)


# -- gunzip: a kept gzip blob decompressed at a pulled layer's first use ---------------
def gunzipped(data: bytes) -> bytes:
    from shellctr.engine.layers import gunzip

    out = io.BytesIO()
    gunzip(io.BytesIO(data), out)  # type: ignore[arg-type]
    return out.getvalue()


def test_gunzip_joins_members_and_ignores_zero_padding() -> None:
    first, second = os.urandom(3 << 20), b"text\n" * 100_000
    data = gzip.compress(first) + gzip.compress(second) + bytes(4096)
    assert gunzipped(data) == first + second


@pytest.mark.parametrize("tail", [b"garbage after the end", bytes(100) + b"\x01"])
def test_gunzip_refuses_data_after_the_end(tail: bytes) -> None:
    with pytest.raises(zlib.error):
        gunzipped(gzip.compress(b"payload") + tail)


def test_gunzip_refuses_a_stream_cut_half_way() -> None:
    with pytest.raises(EOFError):
        gunzipped(gzip.compress(os.urandom(1 << 16))[:-100])
