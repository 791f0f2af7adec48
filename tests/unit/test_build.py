"""The builder's pure-ish parts, without root: the context walk and its hashes, the layer
tar a COPY/ADD writes, the checks of an ADD archive's members, the cache keys, the flags."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from shellctr.cli.build import (
    add_build_flags,
    build_args,
    key_values,
    rm_and_context,
    truthy,
)
from shellctr.core.errors import UsageError
from shellctr.engine.build import State, cache_key
from shellctr.engine.build_context import Tree, read_context
from shellctr.engine.build_copy import Transfer, check_member, transfer_digest, write_transfer
from shellctr.parts.copyrules import CopyError, CopyOp, Source, match_sources, plan
from shellctr.parts.dockerfile_config import begin_stage


def make(root: Path, files: dict[str, str]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
    return root


def test_the_context_walk_leaves_out_what_dockerignore_excludes(tmp_path: Path) -> None:
    make(tmp_path, {"Dockerfile": "", "a/keep": "", "a/drop.log": "", "b/x.log": "",
                    "b/keep.log": "", "secret": ""})
    tree = read_context(tmp_path, "Dockerfile", "**/*.log\n!b/keep.log\nsecret\nDockerfile\n")
    assert sorted(p for p in tree.walk() if p) == ["a", "a/keep", "b", "b/keep.log"]


def test_a_symlink_in_the_context_is_an_entry_never_followed(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc/passwd")
    tree = read_context(tmp_path, "Dockerfile", None)
    entry = tree.lookup("link")
    assert entry is not None and entry.kind == "symlink" and entry.link == "/etc/passwd"
    with pytest.raises(CopyError, match="file not found in build context"):
        match_sources(["link"], tree)  # /etc/passwd means the context's etc/passwd


def test_the_source_hash_sees_content_mode_and_owner_not_mtime(tmp_path: Path) -> None:
    make(tmp_path, {"d/f": "one"})
    first = read_context(tmp_path, "Dockerfile", None).digest("d")
    os.utime(tmp_path / "d" / "f", (1, 1))
    assert read_context(tmp_path, "Dockerfile", None).digest("d") == first
    (tmp_path / "d" / "f").chmod(0o600)
    second = read_context(tmp_path, "Dockerfile", None).digest("d")
    assert second != first
    tree = read_context(tmp_path, "Dockerfile", None)
    assert tree.digest("d", owner=(1000, 1000)) != second
    (tmp_path / "d" / "f").write_text("two")
    assert read_context(tmp_path, "Dockerfile", None).digest("d") != second


def copy_layer(tree: Tree, sources: list[str], dest: str, owner: tuple[int, int] | None = None,
               mode: int | None = None) -> dict[str, tarfile.TarInfo]:
    found = match_sources(sources, tree)
    ops = plan(found, dest, "/", lambda path: False)
    out = io.BytesIO()
    write_transfer(out, Transfer(ops, tree, [], owner, mode), Tree({}))
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return {member.name: member for member in tar}


def test_copy_writes_root_owned_files_with_their_modes_and_new_parents(tmp_path: Path) -> None:
    make(tmp_path, {"src/a": "a", "src/sub/b": "bb", "one": "1"})
    (tmp_path / "src" / "a").chmod(0o750)
    tree = read_context(tmp_path, "Dockerfile", None)
    layer = copy_layer(tree, ["src", "one"], "/opt/app/")
    assert sorted(layer) == ["opt", "opt/app", "opt/app/a", "opt/app/one", "opt/app/sub",
                             "opt/app/sub/b"]
    assert layer["opt/app/a"].mode == 0o750
    assert {(m.uid, m.gid) for m in layer.values()} == {(0, 0)}
    assert layer["opt"].mode == 0o755 and layer["opt"].isdir()
    owned = copy_layer(tree, ["one"], "/x", owner=(1000, 50), mode=0o600)
    assert (owned["x"].uid, owned["x"].gid, owned["x"].mode) == (1000, 50, 0o600)


def archive_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    return member


@pytest.mark.parametrize(("member", "problem"), [
    (archive_member("../../etc/passwd"), "leaves the destination"),
    (archive_member("a/../../b"), "leaves the destination"),
    (archive_member("h", tarfile.LNKTYPE, "../outside"), "points outside"),
    (archive_member("null", tarfile.CHRTYPE), "device or special file"),
    (archive_member("fifo", tarfile.FIFOTYPE), "device or special file"),
])
def test_add_refuses_archive_members_that_leave_the_destination(
        member: tarfile.TarInfo, problem: str) -> None:
    with pytest.raises(CopyError, match=problem):
        check_member(member, "ADD failed: archive x.tar")


def test_add_keeps_absolute_member_names_under_the_destination() -> None:
    assert check_member(archive_member("/etc/conf"), "where") == "etc/conf"
    assert check_member(archive_member("./"), "where") == ""


def test_the_transfer_hash_names_its_kind_and_follows_targets(tmp_path: Path) -> None:
    make(tmp_path, {"f": "x", "d/g": "y"})
    tree = read_context(tmp_path, "Dockerfile", None)
    file_op = CopyOp(Source("f", "f", "file"), "/f")
    assert transfer_digest(Transfer([file_op], tree)).startswith("file:")
    dir_op = CopyOp(Source("d", "d", "dir"), "/d", contents=True)
    assert transfer_digest(Transfer([dir_op], tree)).startswith("dir:")
    assert transfer_digest(Transfer([file_op, dir_op], tree)).startswith("multi:")
    elsewhere = CopyOp(Source("f", "f", "file"), "/elsewhere")
    assert transfer_digest(Transfer([file_op], tree)) != \
        transfer_digest(Transfer([elsewhere], tree))


def test_cache_keys_follow_the_parent_and_the_step() -> None:
    config, _ = begin_stage(None)
    parent = State("a" * 64, {"history": []}, config, ["l"], [1])
    other = State("b" * 64, {"history": []}, config, ["l"], [1])
    assert cache_key(parent, "RUN x") == cache_key(parent, "RUN x")
    assert cache_key(parent, "RUN x") != cache_key(parent, "RUN y")
    assert cache_key(parent, "RUN x") != cache_key(other, "RUN x")
    scratch = State("", {"history": []}, config, [], [])
    changed = State("", {"history": [{"created_by": "ENV A=1"}]}, config, [], [])
    assert scratch.key.startswith("scratch:") and scratch.key != changed.key


def test_rm_takes_an_optional_value_and_leaves_the_context_alone() -> None:
    import argparse

    def parsed(*argv: str) -> tuple[bool, str]:
        parser = argparse.ArgumentParser()
        add_build_flags(parser)  # type: ignore[arg-type]
        return rm_and_context(parser.parse_args(argv))

    assert parsed("--rm", ".") == (True, ".")
    assert parsed("--rm=false", ".") == (False, ".")
    assert parsed(".") == (True, ".")
    assert parsed("--rm=true", "-") == (True, "-")
    with pytest.raises(UsageError, match="needs a context"):
        parsed("--rm=false")


def test_a_build_arg_without_a_value_comes_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_ENV", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    assert build_args(["FROM_ENV", "NOT_SET", "X=1"]) == {"FROM_ENV": "yes", "NOT_SET": None,
                                                         "X": "1"}


def test_build_flags() -> None:
    assert truthy("false") is False and truthy("TRUE") is True and truthy("1") is True
    assert key_values(["A=1", "B", "C="], "--build-arg", False) == {"A": "1", "B": None,
                                                                    "C": ""}
    assert key_values(["a=b", "c"], "--label", True) == {"a": "b", "c": ""}
    with pytest.raises(UsageError):
        key_values(["=x"], "--label", True)
