"""load, save, commit and the layer store: exact commands, undo on failure, whiteouts."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.cmd import Cmd
from shellctr.core.errors import HostCommandError, ShellctrError
from shellctr.core.layout import Layout
from shellctr.core.store import Store
from shellctr.engine import archive, commit, image
from shellctr.engine.create import create
from shellctr.engine.layers import LayerScan, extract_layer, scan_layer
from shellctr.engine.pack import pack, pack_argv

from .helpers import (
    ROOTFS,
    T0,
    RecordingHost,
    fake_tar,
    prepared_store,
    run_request,
    snapshot,
    tar_bytes,
)

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
PID = os.getpid()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- whiteouts in layer tars ----------------------------------------------------------
def test_scan_learns_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    path = tmp_path / "l.tar"
    path.write_bytes(tar_bytes([("etc", DIR), ("etc/.wh.passwd", REG), ("srv", DIR),
                                ("srv/.wh..wh..opq", REG), ("srv/new", REG, b"n"),
                                (".wh.top", REG), ("a/.wh..wh.plnk", REG)]))
    scan = scan_layer(path)
    assert (scan.whiteouts, scan.opaque, scan.size) == (["etc/passwd", "top"], ["srv"], 1)


@pytest.mark.parametrize(("members", "message"), [
    ([(".wh.x", DIR)], "whiteout '.wh.x' is not a plain file"),
    ([(".wh.x", SYM, "y")], "not a plain file"),
    ([(".wh.x/y", REG, b"")], "lies inside a whiteout"),
    ([("x", REG, b"1"), (".wh.x", REG)], "'x' is both a file and a whiteout"),
    ([(".wh.", REG)], "names nothing"),
    ([(".wh...", REG)], "names nothing"),
    ([(".wh.x", REG), ("y", LNK, ".wh.x")], "points outside the layer"),
])
def test_malformed_whiteouts_are_refused(tmp_path: Path, members: list[Any],
                                         message: str) -> None:
    path = tmp_path / "l.tar"
    path.write_bytes(tar_bytes(members))
    with pytest.raises(ShellctrError, match=message):
        scan_layer(path)


def test_extraction_leaves_whiteouts_to_python_and_makes_overlays_own(
        layout: Layout) -> None:
    prepared_store(layout)
    host = RecordingHost()
    scan = LayerScan(diff_id="ee" * 32, whiteouts=["etc/passwd", "a/b/c"], opaque=["srv"])
    from shellctr.core.host import Rollback
    extract_layer(host, layout, scan, Rollback(host))
    partial = layout.layers_dir / f".{'ee' * 32}.{PID}.partial"
    assert [cmd.argv for cmd in host.cmds] == [
        ["mkdir", "--mode=755", str(partial)],
        ["tar", "--extract", f"--file={layout.blob('ee' * 32)}", f"--directory={partial}",
         "--numeric-owner", "--same-owner", "--preserve-permissions", "--xattrs",
         "--xattrs-include=*", "--xattrs-exclude=trusted.overlay.*",
         "--wildcards", "--no-anchored", "--exclude=.wh.*"],
        ["mkdir", "--parents", "--mode=755", str(partial / "srv")],
        ["setfattr", "--name=trusted.overlay.opaque", "--value=y", str(partial / "srv")],
        ["mkdir", "--parents", "--mode=755", str(partial / "etc")],
        ["mknod", "--mode=0", str(partial / "etc" / "passwd"), "c", "0", "0"],
        ["mkdir", "--parents", "--mode=755", str(partial / "a")],
        ["mkdir", "--parents", "--mode=755", str(partial / "a" / "b")],
        ["mknod", "--mode=0", str(partial / "a" / "b" / "c"), "c", "0", "0"],
        ["mv", "--no-target-directory", str(partial), str(layout.layer_dir("ee" * 32))],
    ]


def test_pack_writes_a_deterministic_layer_with_links_and_xattrs(tmp_path: Path) -> None:
    top = tmp_path / "upper"
    (top / "d").mkdir(parents=True)
    (top / "d" / "f").write_bytes(b"data")
    os.link(top / "d" / "f", top / "d" / "g")
    os.symlink("f", top / "d" / "s")
    os.mkfifo(top / "p")
    os.setxattr(top / "d" / "f", "user.k", b"v")
    os.chmod(top / "d" / "f", 0o4750)
    out = io.BytesIO()
    scan = pack(top, out, skip=lambda name: name == "p")
    assert scan.diff_id == sha(out.getvalue()) and scan.tar_size == len(out.getvalue())
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["d", "d/f", "d/g", "d/s"]
    assert members["d/f"].mode == 0o4750 and members["d/f"].uname == ""
    assert members["d/f"].pax_headers["SCHILY.xattr.user.k"] == "v"
    assert (members["d/g"].type, members["d/g"].linkname) == (LNK, "d/f")
    assert (members["d/s"].type, members["d/s"].linkname) == (SYM, "f")
    again = io.BytesIO()
    pack(top, again, skip=lambda name: name == "p")
    assert again.getvalue() == out.getvalue()


# -- load ------------------------------------------------------------------------------
class StoreHost(RecordingHost):
    """Runs what writes into the store (copies of layer tars, packs) in Python too."""

    def apply(self, cmd: Cmd, action: Callable[[], Any], effect: Any = None) -> Any:
        if cmd.redirect is not None and cmd.argv[0] in ("tar", "env", "sh") \
                and not self.dry_run and len(self.cmds) + 1 != self.fail_at:
            self.cmds.append(cmd)
            return action()
        return super().apply(cmd, action, effect)


def layer_tar(*members: Any) -> bytes:
    return tar_bytes(list(members))


LAYERS = [tar_bytes(ROOTFS), layer_tar(("etc", DIR), ("etc/.wh.passwd", REG),
                                       ("etc/motd", REG, b"hi\n"))]


def config_blob(layers: list[bytes]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "created": T0,
                       "config": {"Cmd": ["sh"], "Labels": {"a": "b"}},
                       "rootfs": {"type": "layers",
                                  "diff_ids": [f"sha256:{sha(d)}" for d in layers]}}).encode()


def docker_archive(path: Path, layers: list[bytes], config: bytes | None = None) -> Path:
    config = config or config_blob(layers)
    with tarfile.open(path, "w") as tar:
        files = {f"{sha(config)}.json": config,
                 **{f"{sha(d)}.tar": d for d in layers},
                 "manifest.json": json.dumps([{"Config": f"{sha(config)}.json",
                                               "RepoTags": ["docker.io/library/img:1"],
                                               "Layers": [f"{sha(d)}.tar" for d in layers]}
                                              ]).encode()}
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def load_steps(layout: Layout, source: Path, dry_run: bool = False) -> list[list[str]]:
    """Outside the lock: each layer's tar copied, checked and extracted under temporary
    names; under it: each moved into place, then the config and the record written."""
    steps, publish = [], []
    for data in LAYERS:
        digest = sha(data)
        partial = layout.blobs_dir / f".{digest}.{PID}.partial"
        dir_partial = layout.layers_dir / f".{digest}.{PID}.partial"
        steps += [
            ["tar", "--extract", "--to-stdout", f"--file={source}", f"{digest}.tar", ">",
             str(partial)],
            ["mkdir", "--mode=755", str(dir_partial)],
            ["tar", "--extract", f"--file={partial}", f"--directory={dir_partial}"],
        ]
        if data is LAYERS[1]:
            if dry_run:  # the script cannot know tar made etc/ already: --parents
                steps.append(["mkdir", "--parents", "--mode=755", str(dir_partial / "etc")])
            steps.append(["mknod", "--mode=0", str(dir_partial / "etc" / "passwd"), "c", "0",
                          "0"])
        publish += [["mv", "--no-target-directory", str(partial), str(layout.blob(digest))],
                    ["mv", "--no-target-directory", str(dir_partial),
                     str(layout.layer_dir(digest))]]
    image_id = sha(config_blob(LAYERS))
    return [*steps, *publish, ["printf", ">", str(layout.blob(image_id))],
            ["cat", ">", str(layout.image_file(image_id))]]


def short(host: RecordingHost) -> list[list[str]]:
    """Each command's argv, tar's flags after --directory left out, writes as `> FILE`."""
    result = []
    for cmd in host.cmds:
        argv = cmd.argv
        if argv[0] == "tar" and any(a.startswith("--directory=") for a in argv):
            argv = argv[:4]
        if cmd.stdin is not None and not cmd.stdin.endswith("\n"):
            argv = ["printf"]
        result.append(argv + ([">", cmd.redirect] if cmd.redirect else []))
    return result


def whiteout_as_file(cmd: Cmd) -> None:
    """`mknod` needs root: unit tests make a plain file in the whiteout's place."""
    Path(cmd.argv[2]).write_bytes(b"")


def test_load_keeps_each_layer_tar_then_its_files_then_the_config(
        layout: Layout, tmp_path: Path) -> None:
    source = docker_archive(tmp_path / "img.tar", LAYERS)
    prepared_store(layout)
    host = StoreHost(substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    lines = archive.load(host, Store(layout, host), source)
    assert lines == ["Loaded image: img:1"]
    assert short(host) == load_steps(layout, source)
    record = json.loads(layout.image_file(sha(config_blob(LAYERS))).read_text())
    assert record["repo_tags"] == ["img:1"] and record["config"]["Labels"] == {"a": "b"}
    assert record["layers"] == [sha(d) for d in LAYERS]
    assert [layout.blob(sha(d)).read_bytes() for d in LAYERS] == LAYERS
    assert layout.blob(record["id"]).read_bytes() == config_blob(LAYERS)


@pytest.mark.parametrize("k", range(1, 14))
def test_load_failure_at_step_k_leaves_the_store_as_it_was(
        layout: Layout, tmp_path: Path, k: int) -> None:
    source = docker_archive(tmp_path / "img.tar", LAYERS)
    prepared_store(layout)
    before = snapshot(layout.root)
    host = StoreHost(fail_at=k, substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    with pytest.raises(HostCommandError, match="injected failure"):
        archive.load(host, Store(layout, host), source)
    assert snapshot(layout.root) == before


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda layers, config: (layers, config_blob([layers[0], b"x" * 1024])),
     "layer digest mismatch"),
    (lambda layers, config: (layers[:1], config), "1 layers for 2 diff ids"),
    (lambda layers, config: ([layers[0], layer_tar(("/abs", REG, b"x"))],
                             config_blob([layers[0], layer_tar(("/abs", REG, b"x"))])),
     "absolute path"),
])
def test_a_bad_archive_is_refused_and_leaves_nothing(
        layout: Layout, tmp_path: Path, mutate: Any, message: str) -> None:
    layers, config = mutate(LAYERS, config_blob(LAYERS))
    source = docker_archive(tmp_path / "bad.tar", layers, config)
    prepared_store(layout)
    before = snapshot(layout.root)
    host = StoreHost(substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    with pytest.raises(ShellctrError, match=message):
        archive.load(host, Store(layout, host), source)
    assert snapshot(layout.root) == before


def test_dry_run_load_changes_nothing_and_shows_every_step(
        layout: Layout, tmp_path: Path) -> None:
    source = docker_archive(tmp_path / "img.tar", LAYERS)
    prepared_store(layout)
    before = snapshot(layout.root)
    out = io.StringIO()
    host = RecordingHost(dry_run=True, out=out)
    archive.load(host, Store(layout, host), source)
    assert snapshot(layout.root) == before
    assert short(host) == load_steps(layout, source, dry_run=True)
    assert out.getvalue().startswith("#!/usr/bin/env bash\n")


# -- save ------------------------------------------------------------------------------
def tar_create(cmd: Cmd) -> None:
    """Stands in for `tar --create --file=F`: an empty F (the stage is checked apart)."""
    Path(next(a for a in cmd.argv if a.startswith("--file="))[7:]).write_bytes(b"")


def loaded(layout: Layout, tmp_path: Path) -> Store:
    host = StoreHost(substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    store = Store(layout, host)
    archive.load(host, store, docker_archive(tmp_path / "img.tar", LAYERS))
    return store


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_links_the_stored_blobs_into_a_stage_and_tars_it(
        layout: Layout, tmp_path: Path, fmt: str) -> None:
    loaded(layout, tmp_path)
    host = RecordingHost(substitute={"tar": tar_create})
    out = tmp_path / "out.tar"
    archive.save(host, Store(layout, host), ["img:1"], out, fmt)
    stage = layout.tmp_dir / f"save-{PID}"
    partial = tmp_path / f".out.tar.{PID}.partial"
    config_id = sha(config_blob(LAYERS))
    if fmt == "docker-archive":
        links = [(layout.blob(config_id), stage / f"{config_id}.json"),
                 *((layout.blob(sha(d)), stage / f"{sha(d)}.tar") for d in LAYERS)]
        names = sorted([f"{config_id}.json", *(f"{sha(d)}.tar" for d in LAYERS),
                        "manifest.json"])
        writes = [["cat", ">", str(stage / "manifest.json")]]
        mkdirs: list[list[str]] = []
    else:
        blobs = stage / "blobs" / "sha256"
        links = [(layout.blob(d), blobs / d) for d in [config_id, *map(sha, LAYERS)]]
        names = ["blobs", "index.json", "oci-layout"]
        mkdirs = [["mkdir", "--mode=755", str(stage / "blobs")], ["mkdir", "--mode=755",
                                                                   str(blobs)]]
        manifest = image.oci_manifest(config_blob(LAYERS),
                                      [(sha(d), len(d)) for d in LAYERS])
        writes = [["cat", ">", str(blobs / sha(manifest))],
                  ["cat", ">", str(stage / "index.json")]]
    expected = [
        ["mkdir", "--mode=700", str(stage)],
        *mkdirs,
        *([["cat", ">", str(stage / "oci-layout")]] if fmt == "oci-archive" else []),
        *(["ln", "--no-dereference", str(src), str(dst)] for src, dst in links),
        *writes,
        ["tar", "--create", f"--file={partial}", f"--directory={stage}",
         "--hard-dereference", "--numeric-owner", "--owner=0", "--group=0", "--sort=name",
         "--format=posix", "--pax-option=delete=atime,delete=ctime", *names],
        ["mv", "--no-target-directory", str(partial), str(out)],
        ["rm", "--recursive", str(stage)],
    ]
    got = [cmd.argv + ([">", cmd.redirect] if cmd.redirect else []) for cmd in host.cmds]
    assert got == expected
    assert not stage.exists()


def test_save_of_an_unknown_image_or_format_is_an_error(layout: Layout,
                                                        tmp_path: Path) -> None:
    store = loaded(layout, tmp_path)
    with pytest.raises(ShellctrError, match="unable to find image 'nope:latest'"):
        archive.save(store.host, store, ["nope"], tmp_path / "o.tar", "docker-archive")
    with pytest.raises(ShellctrError, match="unknown format 'zip'"):
        archive.save(store.host, store, ["img:1"], tmp_path / "o.tar", "zip")


# -- commit ----------------------------------------------------------------------------
def committed(layout: Layout, tmp_path: Path, fail_at: int | None = None,
              ) -> tuple[RecordingHost, Any]:
    store = loaded(layout, tmp_path)
    config = create(store.host, store, run_request("img:1", ["sh", "-c", "edit"]))
    upper = layout.container_upper(config["id"])
    (upper / "srv").mkdir()
    (upper / "srv" / "new").write_text("new\n")
    (upper / "proc").mkdir()  # init.py's mount point: not a change
    (upper / "etc").mkdir()
    (upper / "etc" / "hostname").write_text("")  # ... as this one
    host = StoreHost(fail_at=fail_at)
    return host, commit.commit(host, Store(layout, host), config["id"], "made:1",
                               ["ENV X=1"], "msg", "me")


def members(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.getnames()


@pytest.mark.usefixtures("fixed")
def test_commit_writes_the_upper_dir_once_as_the_layer_tar_and_records_the_image(
        layout: Layout, tmp_path: Path) -> None:
    host, made = committed(layout, tmp_path)
    partial = layout.blobs_dir / f".commit-{PID}.partial"
    new_layer = made.layers[-1]
    upper = layout.container_upper(commit.find_container(Store(layout, host), "quirky_turing"))
    assert made.layers[:2] == [sha(d) for d in LAYERS]
    assert [cmd.argv for cmd in host.cmds] == [
        pack_argv(upper, list(commit.RUNTIME_PATHS)),
        ["mv", "--no-target-directory", str(partial), str(layout.blob(new_layer))],
        ["cat"],
        ["cat"],
    ]
    assert host.cmds[0].redirect == str(partial)
    blob = layout.blob(new_layer).read_bytes()
    assert sha(blob) == new_layer
    assert members(blob) == ["etc", "srv", "srv/new"]  # no mount points of init's
    assert not layout.layer_dir(new_layer).exists(), "extracted on first use, not now"
    assert sorted(os.listdir(layout.blobs_dir)) == sorted([*(sha(d) for d in LAYERS),
                                                           sha(config_blob(LAYERS)),
                                                           new_layer, made.id])
    config = json.loads(layout.blob(made.id).read_bytes())
    assert config["config"]["Env"][-1] == "X=1" and config["comment"] == "msg"
    assert config["author"] == "me" and config["history"][-1]["created_by"] == "sh -c edit"
    assert config["rootfs"]["diff_ids"][-1] == f"sha256:{new_layer}"
    assert made.repo_tags == ["made:1"] and made.config.Labels == {"a": "b"}
    assert made.tar_sizes[-1] == len(blob)


@pytest.mark.usefixtures("fixed")
@pytest.mark.parametrize("k", range(1, 5))
def test_commit_failure_at_step_k_leaves_the_store_as_it_was(
        layout: Layout, tmp_path: Path, k: int) -> None:
    store = loaded(layout, tmp_path)
    config = create(store.host, store, run_request("img:1", ["true"]))
    (layout.container_upper(config["id"]) / "f").write_text("x")
    before = snapshot(layout.root)
    failing = StoreHost(fail_at=k)
    with pytest.raises(HostCommandError, match="injected failure"):
        commit.commit(failing, Store(layout, failing), config["id"], "made:1", [])
    assert snapshot(layout.root) == before


@pytest.mark.usefixtures("fixed")
def test_dry_run_commit_prints_the_pack_and_changes_nothing(
        layout: Layout, tmp_path: Path) -> None:
    store = loaded(layout, tmp_path)
    config = create(store.host, store, run_request("img:1", ["true"]))
    (layout.container_upper(config["id"]) / "f").write_text("x")
    before = snapshot(layout.root)
    out = io.StringIO()
    dry = RecordingHost(dry_run=True, out=out)
    made = commit.commit(dry, Store(layout, dry), config["id"], "made:1", [])
    assert snapshot(layout.root) == before
    partial = layout.blobs_dir / f".commit-{PID}.partial"
    script = out.getvalue()
    assert f"shellctr.engine.pack pack {layout.container_upper(config['id'])}" in script
    assert f"> {partial}\n" in script
    assert f"mv --no-target-directory {partial} {layout.blob(made.layers[-1])}" in script


def creating(layout: Layout, fail_at: int | None = None) -> tuple[StoreHost, Store]:
    host = StoreHost(fail_at=fail_at, substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    return host, Store(layout, host)


def test_the_first_container_of_a_fresh_commit_extracts_its_layer_once(
        layout: Layout, tmp_path: Path) -> None:
    _, made = committed(layout, tmp_path)
    new_layer = made.layers[-1]
    host, store = creating(layout)
    create(host, store, run_request("made:1", ["true"]))
    partial = layout.layers_dir / f".{new_layer}.{PID}.partial"
    assert [cmd.argv[:2] for cmd in host.cmds[:3]] == [
        ["mkdir", "--mode=755"], ["tar", "--extract"],
        ["mv", "--no-target-directory"]]
    assert host.cmds[1].argv[2:4] == [f"--file={layout.blob(new_layer)}",
                                      f"--directory={partial}"]
    assert host.cmds[2].argv[2:] == [str(partial), str(layout.layer_dir(new_layer))]
    assert (layout.layer_dir(new_layer) / "srv" / "new").read_text() == "new\n"
    again, store = creating(layout)
    create(again, store, run_request("made:1", ["true"]))
    assert not any(cmd.argv[0] == "tar" for cmd in again.cmds), again.lines
    assert [p.name for p in layout.layers_dir.iterdir() if p.name.startswith(".")] == []


def test_a_corrupt_layer_tar_is_refused_at_its_first_use(
        layout: Layout, tmp_path: Path) -> None:
    _, made = committed(layout, tmp_path)
    blob = layout.blob(made.layers[-1])
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes().replace(b"new\n", b"bad\n"))
    before = snapshot(layout.root)
    host, store = creating(layout)
    with pytest.raises(ShellctrError, match="is corrupt"):
        create(host, store, run_request("made:1", ["true"]))
    assert snapshot(layout.root) == before


@pytest.mark.parametrize("k", range(1, 7))
def test_a_first_create_failing_at_step_k_leaves_no_layer_dir(
        layout: Layout, tmp_path: Path, k: int) -> None:
    _, made = committed(layout, tmp_path)
    before = snapshot(layout.root)
    host, store = creating(layout, fail_at=k)
    with pytest.raises(HostCommandError, match="injected failure"):
        create(host, store, run_request("made:1", ["true"]))
    assert snapshot(layout.root) == before
    assert not layout.layer_dir(made.layers[-1]).exists()


def test_rmi_of_a_commit_never_run_removes_its_layer_tar(
        layout: Layout, tmp_path: Path) -> None:
    _, made = committed(layout, tmp_path)
    host = RecordingHost()
    image.remove_image(host, Store(layout, host), "made:1", False, {})
    assert f"rm {layout.blob(made.layers[-1])}" in host.lines
    assert sorted(os.listdir(layout.blobs_dir)) == sorted([*(sha(d) for d in LAYERS),
                                                           sha(config_blob(LAYERS))])
    assert sorted(os.listdir(layout.layers_dir)) == sorted(sha(d) for d in LAYERS)


def test_diff_lists_changes_against_the_layers(layout: Layout, tmp_path: Path) -> None:
    store = loaded(layout, tmp_path)
    config = create(store.host, store, run_request("img:1", ["true"]))
    upper = layout.container_upper(config["id"])
    (upper / "bin").mkdir()
    (upper / "bin" / "sh").write_text("changed")
    (upper / "bin" / "new").write_text("added")
    (upper / "proc").mkdir()  # init.py's mount point: not a change
    assert commit.changes(store, config["id"]) == [("C", "/bin"), ("A", "/bin/new"),
                                                   ("C", "/bin/sh")]


def test_save_of_a_commit_writes_its_stored_tar(layout: Layout, tmp_path: Path) -> None:
    _, made = committed(layout, tmp_path)
    saver = RecordingHost(substitute={"tar": tar_create})
    archive.save(saver, Store(layout, saver), ["made:1"], tmp_path / "o.tar", "docker-archive")
    assert not any(cmd.argv[0] == "env" for cmd in saver.cmds), saver.lines
    stage = layout.tmp_dir / f"save-{PID}"
    new_layer = made.layers[-1]
    assert (f"ln --no-dereference {layout.blob(new_layer)} {stage / f'{new_layer}.tar'}"
            in saver.lines)


def test_layers_committed_before_as_files_only_are_packed_again_to_their_digest(
        layout: Layout, tmp_path: Path) -> None:
    """Stores from before commit kept tars: the layer as a dir, no blob."""
    _, made = committed(layout, tmp_path)
    new_layer = made.layers[-1]
    host, store = creating(layout)
    create(host, store, run_request("made:1", ["true"]))  # extracts it
    layout.blob(new_layer).unlink()
    out = tmp_path / "again.tar"
    saver = StoreHost(substitute={"tar": tar_create})  # packs for real, checks the digest
    archive.save(saver, Store(layout, saver), ["made:1"], out, "docker-archive")
    packed = [cmd for cmd in saver.cmds if cmd.argv[0] == "env"]
    assert len(packed) == 1 and packed[0].argv[-1] == str(layout.layer_dir(new_layer))
    scan = pack(layout.layer_dir(new_layer), io.BytesIO())
    assert scan.diff_id == new_layer
    image_record = json.loads(layout.image_file(made.id).read_text())
    assert image_record["digest"] and len(image_record["digest"]) == 64
    assert image.sha256_hex(layout.blob(made.id).read_bytes()) == made.id


def test_members_hidden_behind_a_broken_header_are_refused(tmp_path: Path) -> None:
    """Python's tarfile ends at a broken header; GNU tar skips it and extracts what
    follows: anything but zeros after Python's end is refused."""
    first = tar_bytes([("a", REG, b"a")])[:1024]  # a header and its data, no end marker
    hidden = tar_bytes([("hidden", SYM, "/etc")])
    path = tmp_path / "crafted.tar"
    path.write_bytes(first + b"\xff" * 512 + hidden)
    with pytest.raises(ShellctrError, match="data after the end of the archive"):
        scan_layer(path)
    path.write_bytes(tar_bytes([("a", REG, b"a")]) + b"\0" * 4096)  # zero padding is fine
    assert scan_layer(path).size == 1


def test_diff_leaves_out_a_dir_copied_up_only_for_init_mount_points(
        layout: Layout, tmp_path: Path) -> None:
    store = loaded(layout, tmp_path)  # /etc without hostname, hosts, resolv.conf
    config = create(store.host, store, run_request("img:1", ["true"]))
    upper = layout.container_upper(config["id"])
    (upper / "etc").mkdir()
    (upper / "etc" / "hostname").write_text("")  # made by init.py to bind over
    assert commit.changes(store, config["id"]) == []
    (upper / "etc" / "motd").write_text("changed")
    assert commit.changes(store, config["id"]) == [("C", "/etc"), ("C", "/etc/motd")]


def test_pack_writes_the_bytes_pythons_tarfile_writes(tmp_path: Path) -> None:
    """Layers packed by earlier versions (tarfile's PAX writer) keep their digests."""
    top = tmp_path / "layer"
    (top / "d" / ("long-" * 30)).mkdir(parents=True)
    (top / "d" / ("long-" * 30) / "caf\u00e9").write_bytes(b"x" * 700)
    (top / "big").write_bytes(os.urandom((1 << 20) + 1000))  # more than a read
    (top / "empty").write_bytes(b"")
    os.link(top / "big", top / "d" / "hard")
    (top / "d" / "link").symlink_to("../big")
    os.mkfifo(top / "fifo")
    os.setxattr(top / "empty", "user.note", b"kept")
    os.chmod(top / "big", 0o4755)
    packed = io.BytesIO()
    scan = pack(top, packed)
    again = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(packed.getvalue())) as source, \
            tarfile.open(fileobj=again, mode="w", format=tarfile.PAX_FORMAT) as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    assert packed.getvalue() == again.getvalue()
    assert (scan.diff_id, scan.tar_size) == (sha(packed.getvalue()), len(packed.getvalue()))
    with tarfile.open(fileobj=io.BytesIO(packed.getvalue())) as source:
        kinds = {m.name: m for m in source.getmembers()}
    assert kinds["d/hard"].islnk() and kinds["d/hard"].linkname == "big"
    assert kinds["empty"].pax_headers["SCHILY.xattr.user.note"] == "kept"
    assert kinds["big"].mode == 0o4755 and kinds["fifo"].isfifo()
    assert f"d/{'long-' * 30}/caf\u00e9" in kinds


# -- the store lock: held only to publish ---------------------------------------------------
class WatchedStore(Store):
    """A store that notes which of its host's commands ran under its lock; `meanwhile`
    runs as the lock is taken (what another process did while this one worked)."""

    def __init__(self, layout: Layout, host: RecordingHost,
                 meanwhile: Callable[[], None] = lambda: None) -> None:
        super().__init__(layout, host)
        self.recorder, self.meanwhile = host, meanwhile
        self.locked: set[int] = set()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with super().lock():
            self.meanwhile()
            start = len(self.recorder.cmds)
            try:
                yield
            finally:
                self.locked.update(range(start, len(self.recorder.cmds)))

    def under_lock(self) -> tuple[list[list[str]], list[list[str]]]:
        """(commands run outside the lock, commands run under it), as `short` shows them."""
        argvs = short(self.recorder)
        return ([a for i, a in enumerate(argvs) if i not in self.locked],
                [a for i, a in enumerate(argvs) if i in self.locked])


def partials(layout: Layout) -> list[str]:
    return [entry for directory in (layout.blobs_dir, layout.layers_dir)
            for entry in os.listdir(directory) if entry.endswith(".partial")]


def test_load_copies_checks_and_extracts_outside_the_lock_and_only_publishes_under_it(
        layout: Layout, tmp_path: Path) -> None:
    source = docker_archive(tmp_path / "img.tar", LAYERS)
    prepared_store(layout)
    host = StoreHost(substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    store = WatchedStore(layout, host)
    archive.load(host, store, source)
    outside, inside = store.under_lock()
    assert [argv[0] for argv in outside] == ["tar", "mkdir", "tar", "tar", "mkdir", "tar",
                                             "mknod"]
    assert [argv[0] for argv in inside] == ["mv", "mv", "mv", "mv", "printf", "cat"]


def test_a_layer_another_load_published_meanwhile_is_kept_and_ours_dropped(
        layout: Layout, tmp_path: Path) -> None:
    source = docker_archive(tmp_path / "img.tar", LAYERS)
    prepared_store(layout)
    first = sha(LAYERS[0])

    def other_load() -> None:
        layout.blob(first).write_bytes(LAYERS[0])
        (layout.layer_dir(first) / "theirs").mkdir(parents=True)

    host = StoreHost(substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    store = WatchedStore(layout, host, other_load)
    archive.load(host, store, source)
    _, inside = store.under_lock()
    assert inside[:2] == [["rm", str(layout.blobs_dir / f".{first}.{PID}.partial")],
                          ["rm", "--recursive", str(layout.layers_dir / f".{first}.{PID}.partial")]]
    assert os.listdir(layout.layer_dir(first)) == ["theirs"]
    assert partials(layout) == []
    assert layout.image_file(sha(config_blob(LAYERS))).is_file()


def test_a_layer_an_rmi_removed_while_loading_is_brought_in_again_under_the_lock(
        layout: Layout, tmp_path: Path) -> None:
    source = docker_archive(tmp_path / "img.tar", LAYERS)
    prepared_store(layout)
    first = sha(LAYERS[0])
    layout.blob(first).write_bytes(LAYERS[0])  # present when the load begins: not copied
    (layout.layer_dir(first) / "bin").mkdir(parents=True)

    def rmi() -> None:
        layout.blob(first).unlink()
        (layout.layer_dir(first) / "bin").rmdir()
        layout.layer_dir(first).rmdir()

    host = StoreHost(substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    store = WatchedStore(layout, host, rmi)
    archive.load(host, store, source)
    outside, inside = store.under_lock()
    assert not any(f"{first}.tar" in argv for argv in outside)
    assert inside[0][:5] == ["tar", "--extract", "--to-stdout", f"--file={source}",
                             f"{first}.tar"]
    assert layout.blob(first).read_bytes() == LAYERS[0]
    assert (layout.layer_dir(first) / "bin" / "sh").is_file()
    assert partials(layout) == []


@pytest.mark.usefixtures("fixed")
def test_commit_packs_outside_the_lock_and_only_publishes_under_it(
        layout: Layout, tmp_path: Path) -> None:
    store = loaded(layout, tmp_path)
    config = create(store.host, store, run_request("img:1", ["true"]))
    (layout.container_upper(config["id"]) / "f").write_text("x")
    host = StoreHost()
    watched = WatchedStore(layout, host)
    commit.commit(host, watched, config["id"], "made:1", [])
    outside, inside = watched.under_lock()
    assert [argv[0] for argv in outside] == ["env"]  # the pack
    assert [argv[0] for argv in inside] == ["mv", "printf", "cat"]


@pytest.mark.usefixtures("fixed")
def test_commit_of_a_container_whose_layers_went_meanwhile_fails_and_leaves_nothing(
        layout: Layout, tmp_path: Path) -> None:
    store = loaded(layout, tmp_path)
    config = create(store.host, store, run_request("img:1", ["true"]))
    (layout.container_upper(config["id"]) / "f").write_text("x")
    images = set(os.listdir(layout.images_dir))

    def rm_and_rmi() -> None:
        import shutil

        for diff_id in config["layers"]:
            layout.blob(diff_id).unlink()
            shutil.rmtree(layout.layer_dir(diff_id))

    host = StoreHost()
    with pytest.raises(ShellctrError, match="removed during the commit"):
        commit.commit(host, WatchedStore(layout, host, rm_and_rmi), config["id"], "made:1", [])
    assert partials(layout) == []
    assert set(os.listdir(layout.images_dir)) == images


def test_the_first_use_of_a_committed_layer_extracts_it_outside_the_lock(
        layout: Layout, tmp_path: Path) -> None:
    _, made = committed(layout, tmp_path)
    host = StoreHost(substitute={"tar": fake_tar, "mknod": whiteout_as_file})
    watched = WatchedStore(layout, host)
    create(host, watched, run_request("made:1", ["true"]))
    outside, inside = watched.under_lock()
    assert [argv[0] for argv in outside] == ["mkdir", "tar"]
    assert inside[0] == ["mv", "--no-target-directory",
                         str(layout.layers_dir / f".{made.layers[-1]}.{PID}.partial"),
                         str(layout.layer_dir(made.layers[-1]))]
