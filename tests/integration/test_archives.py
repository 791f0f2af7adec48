"""Layered images through load, save, run, commit, diff: built here, byte for byte.

The suite builds its own multi-layer images (tarfile, then a docker-archive or OCI
layout around them) holding whiteouts, opaque dirs, symlinks, hard links, modes and
xattrs, and checks that they come back identical after save -> load -> run -> commit ->
save. Hostile archives are refused and write nothing outside the store (nor leave
anything in it); Podman's and Docker's own archives (tests/fixtures) load and run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import (
    APPLETS,
    GROUP,
    HOST_BUSYBOX,
    PASSWD,
    Ctr,
    Worker,
    one_line_error,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "podman"
MTIME = 1_700_000_000
Member = tuple[tarfile.TarInfo, bytes]


# -- building layers and archives ------------------------------------------------------
def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
           link: str = "", xattrs: dict[str, str] | None = None, uid: int = 0,
           gid: int = 0) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, MTIME
    info.uid, info.gid = uid, gid
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return info, data


def layer(members: list[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_for(layers: list[bytes], **runtime: Any) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"], **runtime},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(data)}" for data in layers]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"layer {n}"}
                    for n in range(len(layers))],
    }).encode()


def archive_file(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            archive.addfile(info, io.BytesIO(data))
    return path


def docker_archive(path: Path, layers: list[bytes], tags: list[str],
                   config: bytes | None = None) -> Path:
    config = config if config is not None else config_for(layers)
    files = {f"{sha(config)}.json": config}
    files.update({f"{sha(data)}/layer.tar": data for data in layers})
    files["manifest.json"] = json.dumps([{
        "Config": f"{sha(config)}.json", "RepoTags": tags,
        "Layers": [f"{sha(data)}/layer.tar" for data in layers]}]).encode()
    return archive_file(path, files)


def busybox_layer(marker: str) -> list[Member]:
    """A runnable base: the host's busybox, its applets, passwd, group, a marker."""
    members = [member(d, tarfile.DIRTYPE, mode=0o755) for d in ("bin", "etc", "tmp", "root")]
    members.append(member("bin/busybox", data=HOST_BUSYBOX.read_bytes(), mode=0o755))
    members += [member(f"bin/{a}", tarfile.SYMTYPE, mode=0o777, link="busybox")
                for a in (*APPLETS, "stat", "getfattr", "readlink", "ls", "cat", "test")]
    members += [member("etc/passwd", data=PASSWD.encode()),
                member("etc/group", data=GROUP.encode()),
                member("etc/marker", data=marker.encode())]
    return members


def rich_layers(marker: str) -> list[bytes]:
    """Three layers with every kind of content a layer can carry."""
    base = layer([
        *busybox_layer(marker),
        member("srv", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000),
        member("srv/setuid", data=b"#!/bin/sh\n", mode=0o4755),
        member("srv/sticky", tarfile.DIRTYPE, mode=0o1777),
        member("srv/owned", data=b"mine\n", mode=0o600, uid=1000, gid=1000),
        member("srv/xattr", data=b"x\n", xattrs={"user.colour": "blue",
                                                   "trusted.note": "kept"}),
        member("srv/first", data=b"linked\n"),
        member("srv/second", tarfile.LNKTYPE, link="srv/first"),
        member("srv/abs-link", tarfile.SYMTYPE, mode=0o777, link="/etc/marker"),
        member("srv/fifo", tarfile.FIFOTYPE, mode=0o644),
        member("old", tarfile.DIRTYPE, mode=0o755),
        member("old/a", data=b"a\n"),
        member("old/b", data=b"b\n"),
        member("gone.txt", data=b"bye\n"),
    ])
    middle = layer([
        member(".wh.gone.txt"),                       # deletes a file of the layer below
        member("old", tarfile.DIRTYPE, mode=0o700),
        member("old/.wh..wh..opq"),                   # hides old/a and old/b
        member("old/new", data=b"new\n"),
        member("srv", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000),
        member("srv/first", data=b"changed\n"),      # changed over the lower one
        member("deep/er/file", data=b"deep\n"),       # parents not listed
    ])
    top = layer([
        member("srv", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000),
        member("srv/.wh.fifo"),
        member("deep/er/.wh.file"),                   # deletes what the layer below made
        member("top", data=b"top\n", mode=0o640),
        member("top-link", tarfile.LNKTYPE, link="top"),
    ])
    return [base, middle, top]


@pytest.fixture
def cleanup(ctr: Ctr) -> Iterator[list[str]]:
    """Image references and container names a test makes; removed at its end."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        if ctr("inspect", ref, trace=False).code == 0:
            ctr("rm", "-f", "-v", ref)
            ctr("rmi", "-f", ref)


def load(ctr: Ctr, path: Path, cleanup: list[str], *tags: str) -> str:
    cleanup += tags
    result = ctr("load", "-i", str(path)).ok()
    assert [f"Loaded image: {t}" for t in tags] == result.out.splitlines(), str(result)
    return image_id(ctr, tags[0])


def image_id(ctr: Ctr, ref: str) -> str:
    return str(ctr("image", "inspect", "-f", "{{.Id}}", ref).ok().out.strip())


def run(ctr: Ctr, image: str, script: str) -> str:
    return ctr("run", "--rm", image, "sh", "-c", script).ok().out


def saved_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                for m in archive.getmembers() if m.isfile()}


def store_state(worker: Worker) -> dict[str, list[str]]:
    """What the store holds: image records, layer dirs, blobs, scratch."""
    root = worker.root
    return {name: sorted(os.listdir(root / path)) if (root / path).is_dir() else []
            for name, path in (("images", "images"), ("layers", "layers"),
                               ("blobs", "blobs/sha256"), ("tmp", "tmp"))}


def tree(top: Path) -> dict[str, tuple[Any, ...]]:
    """Everything under `top`: type, mode, owner, content or target, xattrs, link count."""
    found: dict[str, tuple[Any, ...]] = {}
    for directory, dirs, files in os.walk(top):
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            attrs = tuple(sorted((a, os.getxattr(path, a, follow_symlinks=False))
                                 for a in os.listxattr(path, follow_symlinks=False)))
            body: Any = ""
            if stat.S_ISREG(st.st_mode):
                body = Path(path).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode):
                body = os.major(st.st_rdev), os.minor(st.st_rdev)
            found[os.path.relpath(path, top)] = (st.st_mode, st.st_uid, st.st_gid, body, attrs,
                                                 st.st_nlink if stat.S_ISREG(st.st_mode) else 0)
    return found


def same_trees(got: list[dict[str, tuple[Any, ...]]],
               want: list[dict[str, tuple[Any, ...]]]) -> None:
    """Assert two lists of layer trees are equal, naming the paths that differ."""
    assert len(got) == len(want)
    for n, (a, b) in enumerate(zip(got, want, strict=True)):
        differ = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
        assert not differ, f"layer {n}: {differ}"


def layer_trees(worker: Worker, ref_id: str, ctr: Ctr) -> list[dict[str, tuple[Any, ...]]]:
    record = json.loads((worker.root / "images" / f"{ref_id.removeprefix('sha256:')}.json")
                        .read_text())
    return [tree(worker.root / "layers" / d) for d in record["layers"]]


# -- a multi-layer image: load, run, save, commit, save -----------------------------------
def test_layers_whiteouts_and_opaque_dirs_as_the_container_sees_them(
        ctr: Ctr, cleanup: list[str], tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    layers = rich_layers(marker)
    load(ctr, docker_archive(tmp_path / "rich.tar", layers, ["rich:1"]), cleanup, "rich:1")
    out = run(ctr, "rich:1", "ls /old; test -e /gone.txt || echo no-gone; "
              "test -e /srv/fifo || echo no-fifo; ls /deep/er; cat /srv/first /srv/second; "
              "stat -c '%a %u:%g %h' /srv /srv/setuid /srv/sticky /srv/owned /top /top-link; "
              "readlink /srv/abs-link; cat /srv/abs-link")
    assert out.splitlines() == [
        "new", "no-gone", "no-fifo", "changed", "linked",
        "750 1000:1000 1", "4755 0:0 1", "1777 0:0 2", "600 1000:1000 1", "640 0:0 2",
        "640 0:0 2", "/etc/marker", marker], out


def test_save_writes_the_loaded_bytes_back_and_the_id_survives(
        ctr: Ctr, cleanup: list[str], tmp_path: Path, worker: Worker) -> None:
    layers = rich_layers(uuid.uuid4().hex)
    config = config_for(layers, Env=["A=1"], Labels={"k": "v"})
    source = docker_archive(tmp_path / "in.tar", layers, ["rt:1"], config)
    first = load(ctr, source, cleanup, "rt:1")
    assert first == f"sha256:{sha(config)}"
    trees = layer_trees(worker, first, ctr)
    for fmt in ("docker-archive", "oci-archive"):
        out = tmp_path / f"{fmt}.tar"
        ctr("save", "--format", fmt, "-o", str(out), "rt:1").ok()
        saved = saved_members(out)
        blobs = set(saved.values())
        assert config in blobs and all(data in blobs for data in layers), fmt
        ctr("rmi", "rt:1").ok()
        assert load(ctr, out, cleanup, "rt:1") == first, fmt
        same_trees(layer_trees(worker, first, ctr), trees)


def test_oci_layout_holds_verifiable_blobs(ctr: Ctr, cleanup: list[str],
                                           tmp_path: Path) -> None:
    layers = rich_layers(uuid.uuid4().hex)
    load(ctr, docker_archive(tmp_path / "in.tar", layers, ["oci:1"]), cleanup, "oci:1")
    out = tmp_path / "oci.tar"
    ctr("save", "--format", "oci-archive", "-o", str(out), "oci:1").ok()
    files = saved_members(out)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    (descriptor,) = index["manifests"]
    assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == "oci:1"
    manifest_bytes = files[f"blobs/sha256/{descriptor['digest'][7:]}"]
    assert sha(manifest_bytes) == descriptor["digest"][7:]
    manifest = json.loads(manifest_bytes)
    for blob in [manifest["config"], *manifest["layers"]]:
        data = files[f"blobs/sha256/{blob['digest'][7:]}"]
        assert (sha(data), len(data)) == (blob["digest"][7:], blob["size"])
    digests = ctr("images", "--digests", "oci").ok().out
    assert f"sha256:{descriptor['digest'][7:]}" in digests, digests


def test_commit_packs_exactly_the_changes_and_round_trips(
        ctr: Ctr, cleanup: list[str], tmp_path: Path, worker: Worker) -> None:
    layers = rich_layers(uuid.uuid4().hex)
    load(ctr, docker_archive(tmp_path / "in.tar", layers, ["base:c"]), cleanup, "base:c")
    name = f"commit-{uuid.uuid4().hex[:8]}"
    cleanup += [name, "after:c"]
    ctr("run", "--name", name, "base:c", "sh", "-c",
        "rm /old/new /etc/marker && rm -rf /srv/sticky && mkdir /srv/sticky && "
        "echo fresh > /srv/sticky/f && echo more >> /top && mkdir -p /made/here && "
        "echo x > /made/here/y && ln /made/here/y /made/here/z && ln -s y /made/here/s && "
        "chmod 4711 /made/here/y").ok()
    diff = ctr("diff", name).ok().out.splitlines()
    assert diff == [
        "C /etc", "D /etc/marker",
        "A /made", "A /made/here", "A /made/here/s", "A /made/here/y", "A /made/here/z",
        "C /old", "D /old/new", "C /srv", "C /srv/sticky",
        "A /srv/sticky/f", "C /top"], diff
    result = ctr("commit", "-m", "the message", "-a", "me <me@example.org>",
                 "-c", "EXPOSE 8080", "-c", "STOPSIGNAL SIGINT", name, "after:c").ok()
    new_id = result.out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", new_id), str(result)
    inspect = json.loads(ctr("image", "inspect", "after:c").ok().out)[0]
    assert inspect["Comment"] == "the message" and inspect["Author"] == "me <me@example.org>"
    assert inspect["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert inspect["Config"]["StopSignal"] == "SIGINT"
    assert inspect["RootFS"]["Layers"][:3] == [f"sha256:{sha(d)}" for d in layers]
    history = ctr("history", "--no-trunc", "after:c").ok().out.splitlines()
    assert len(history) == 5 and "the message" in history[1], history

    out = tmp_path / "after.tar"
    ctr("save", "-o", str(out), "after:c").ok()
    saved = saved_members(out)
    top = saved[f"{inspect['RootFS']['Layers'][3][7:]}.tar"]
    with tarfile.open(fileobj=io.BytesIO(top)) as archive:
        kinds = {m.name: (m.type, m.linkname) for m in archive.getmembers()}
    assert kinds["etc/.wh.marker"] == (tarfile.REGTYPE, "")
    assert kinds["old/.wh.new"] == (tarfile.REGTYPE, "")
    assert kinds["srv/sticky/.wh..wh..opq"] == (tarfile.REGTYPE, "")
    assert kinds["made/here/z"] == (tarfile.LNKTYPE, "made/here/y")
    assert kinds["made/here/s"] == (tarfile.SYMTYPE, "y")
    assert not any(n.startswith(("proc", "sys", "dev")) for n in kinds), kinds

    top_layer = inspect["RootFS"]["Layers"][3][7:]
    assert (worker.root / "blobs" / "sha256" / top_layer).read_bytes() == top
    assert not (worker.root / "layers" / top_layer).exists(), "extracted before its first use"
    run(ctr, "after:c", "true")  # the first container extracts the layer's files
    trees = layer_trees(worker, new_id, ctr)
    ctr("rm", name).ok()
    ctr("rmi", "after:c", "base:c").ok()
    assert load(ctr, out, cleanup, "after:c") == new_id
    same_trees(layer_trees(worker, new_id, ctr), trees)
    seen = run(ctr, "after:c", "ls /old; test -e /etc/marker || echo no-marker; ls -A /srv/sticky; "
               "stat -c '%a %h' /made/here/y; cat /top")
    assert seen.splitlines() == ["no-marker", "f", "4711 2", "top", "more"], seen
    again = tmp_path / "again.tar"
    ctr("save", "-o", str(again), "after:c").ok()
    assert saved_members(again) == saved  # identical bytes: the same image


def test_commit_of_a_running_container_pauses_it_and_takes_its_command(
        ctr: Ctr, cleanup: list[str]) -> None:
    name = f"live-{uuid.uuid4().hex[:8]}"
    cleanup += [name, "live:1"]
    ctr("run", "-d", "--name", name, "-e", "K=V", "-w", "/tmp", "busybox", "sh", "-c",
        "echo made > /tmp/file; exec sleep 1000").ok()
    ctr("exec", name, "test", "-e", "/tmp/file").ok()
    result = ctr("commit", name, "live:1").ok()
    assert "freezer.state" in result.err or "cgroup.freeze" in result.err, str(result)
    config = json.loads(ctr("image", "inspect", "live:1").ok().out)[0]["Config"]
    assert "K=V" in config["Env"] and not any(e.startswith("HOSTNAME=") for e in config["Env"])
    assert config["WorkingDir"] == "/tmp"
    assert config["Cmd"] == ["sh", "-c", "echo made > /tmp/file; exec sleep 1000"]
    assert ctr("inspect", "-f", "{{.State.Status}}", name).ok().out.strip() == "running"
    assert run(ctr, "live:1", "cat /tmp/file") == "made\n"
    ctr("rm", "-f", name).ok()


# -- a commit keeps its layer as a tar; the first container extracts its files ------------
def fresh_commit(ctr: Ctr, cleanup: list[str]) -> tuple[str, str]:
    """A busybox image plus one committed layer (a file, a whiteout); (tag, layer)."""
    name, tag = f"src-{uuid.uuid4().hex[:8]}", f"lazy-{uuid.uuid4().hex[:8]}:1"
    cleanup += [name, tag]
    ctr("run", "--name", name, "busybox", "sh", "-c",
        "mkdir /data && echo hello > /data/f && rm /bin/ls").ok()
    ctr("commit", name, tag).ok()
    ctr("rm", name).ok()
    layers = json.loads(ctr("image", "inspect", tag).ok().out)[0]["RootFS"]["Layers"]
    return tag, layers[-1].removeprefix("sha256:")


def test_the_first_container_of_a_fresh_commit_extracts_its_layer_once(
        ctr: Ctr, cleanup: list[str], worker: Worker) -> None:
    tag, layer = fresh_commit(ctr, cleanup)
    assert (worker.root / "blobs" / "sha256" / layer).is_file()
    assert not (worker.root / "layers" / layer).exists()
    script = "cat /data/f; test -e /bin/ls || echo no-ls"
    first = ctr("run", "--rm", tag, "sh", "-c", script).ok()
    assert first.out == "hello\nno-ls\n", str(first)
    assert f"--file={worker.root}/blobs/sha256/{layer}" in first.err, first.err
    second = ctr("run", "--rm", tag, "sh", "-c", script).ok()
    assert second.out == first.out and "tar --extract" not in second.err, str(second)
    whiteout = os.lstat(worker.root / "layers" / layer / "bin" / "ls")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0  # overlay's own
    assert not [e for e in os.listdir(worker.root / "layers") if e.startswith(".")]


def test_two_containers_created_at_once_from_a_fresh_commit_share_one_layer_dir(
        ctr: Ctr, cleanup: list[str], worker: Worker) -> None:
    tag, layer = fresh_commit(ctr, cleanup)
    layers_before = set(os.listdir(worker.root / "layers"))
    names = [f"twin-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    creating = [ctr.popen("create", "--name", name, tag, "cat", "/data/f") for name in names]
    results = [process.wait() for process in creating]
    for result in results:
        result.ok()
    # each may extract it (outside the lock); one moves it into place, the other drops its own
    assert sum("tar --extract" in result.err for result in results) >= 1, results
    assert set(os.listdir(worker.root / "layers")) == layers_before | {layer}
    for name in names:
        assert ctr("start", "--attach", name).ok().out == "hello\n"
    ctr("rm", *names).ok()


def test_rmi_of_a_commit_never_run_removes_its_layer_tar(
        ctr: Ctr, cleanup: list[str], worker: Worker) -> None:
    before = store_state(worker)
    tag, layer = fresh_commit(ctr, cleanup)
    assert layer in store_state(worker)["blobs"]
    ctr("rmi", tag).ok()
    assert store_state(worker) == before


def test_image_config_is_honoured_by_run_and_stop(ctr: Ctr, cleanup: list[str],
                                                 tmp_path: Path) -> None:
    base = layer(busybox_layer(uuid.uuid4().hex))
    config = config_for([base], Env=["FROM_IMAGE=1"], WorkingDir="/tmp",
                        Entrypoint=["/bin/sh", "-c"], Cmd=["echo $FROM_IMAGE; pwd; id -u"],
                        User="65534", Labels={"from": "image", "both": "image"},
                        ExposedPorts={"80/tcp": {}}, Volumes={"/data": {}},
                        StopSignal="SIGUSR1")
    load(ctr, docker_archive(tmp_path / "cfg.tar", [base], ["cfg:1"], config), cleanup, "cfg:1")
    assert ctr("run", "--rm", "cfg:1").ok().out.splitlines() == ["1", "/tmp", "65534"]
    name = f"cfg-{uuid.uuid4().hex[:8]}"
    cleanup.append(name)
    ctr("run", "-d", "--name", name, "-l", "both=run", "cfg:1",
        "trap 'echo got-usr1; exit 7' USR1; while :; do sleep 0.1; done").ok()
    data = json.loads(ctr("inspect", name).ok().out)[0]
    assert data["Config"]["Labels"] == {"from": "image", "both": "run"}
    assert data["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert data["Config"]["StopSignal"] == "SIGUSR1"
    image = json.loads(ctr("image", "inspect", "cfg:1").ok().out)[0]
    assert image["Config"]["Volumes"] == {"/data": {}}
    result = ctr("stop", name).ok()
    assert "kill -s USR1" in result.err, str(result)
    assert ctr("inspect", "-f", "{{.State.ExitCode}}", name).ok().out.strip() == "7"
    assert "got-usr1" in ctr("logs", name).ok().out
    ctr("rm", "-v", name).ok()  # and the anonymous volume of the image's VOLUME /data


# -- other verbs -----------------------------------------------------------------------
def test_tag_images_filters_and_prune(ctr: Ctr, cleanup: list[str], tmp_path: Path,
                                      worker: Worker) -> None:
    base = layer(busybox_layer(uuid.uuid4().hex))
    first = load(ctr, docker_archive(tmp_path / "p.tar", [base], ["prune:1"]), cleanup,
                 "prune:1")
    cleanup += ["prune:2", "prune:3"]
    ctr("tag", "prune:1", "prune:2").ok()
    ctr("tag", "prune:1", "prune:3").ok()
    listing = ctr("images", "prune").ok().out
    assert len([line for line in listing.splitlines() if line.startswith("prune ")]) == 3
    assert ctr("images", "-q", "--no-trunc", "prune").ok().out.split() == [first]
    ctr("rmi", "prune:2", "prune:3").ok()
    # a second load of other tags moves prune:1 away: the old image is dangling
    other = load(ctr, docker_archive(tmp_path / "q.tar", [layer(busybox_layer("x" * 32))],
                                     ["prune:1"]), cleanup, "prune:1")
    assert other != first
    dangling = ctr("images", "-q", "--no-trunc", "-f", "dangling=true").ok().out.split()
    assert dangling == [first]
    result = ctr("image", "prune", "-f").ok()
    assert f"deleted: {first}" in result.out and "Total reclaimed space:" in result.out
    assert not (worker.root / "layers" / sha(base)).exists()
    assert not (worker.root / "blobs" / "sha256" / sha(base)).exists()
    assert ctr("image", "ls", "-q").ok().out.split() == ctr("images", "-q").ok().out.split()


def test_dry_run_load_prints_a_script_that_does_the_job(
        ctr: Ctr, cleanup: list[str], tmp_path: Path, worker: Worker) -> None:
    layers = rich_layers(uuid.uuid4().hex)
    source = docker_archive(tmp_path / "dry.tar", layers, ["dry:1"])
    before = store_state(worker)
    script = ctr("--dry-run", "load", "-i", str(source)).ok().out
    assert store_state(worker) == before
    assert script.startswith("#!/usr/bin/env bash\n") and "mknod" in script
    cleanup.append("dry:1")
    subprocess.run(["bash", "-c", script], check=True, timeout=60)
    assert ctr("images", "-q", "--no-trunc", "dry").ok().out.split() == [
        f"sha256:{sha(config_for(layers))}"]
    assert run(ctr, "dry:1", "ls /old") == "new\n"


# -- hostile and broken archives --------------------------------------------------------
def refused(ctr: Ctr, worker: Worker, path: Path, needle: str) -> None:
    before = store_state(worker)
    line = one_line_error(ctr("load", "-i", str(path)))
    assert needle in line, line
    assert store_state(worker) == before


@pytest.mark.parametrize(("members", "needle"), [
    ([member("../evil", data=b"x")], "climbs out"),
    ([member("ok", tarfile.DIRTYPE), member("ok/../../evil", data=b"x")], "climbs out"),
    ([member("/etc/evil", data=b"x")], "absolute path"),
    ([member("esc", tarfile.SYMTYPE, link="/tmp"), member("esc/evil", data=b"x")],
     "through the symlink"),
    ([member("passwd", tarfile.LNKTYPE, link="/etc/passwd")], "absolute path"),
    ([member("passwd", tarfile.LNKTYPE, link="etc/passwd")], "points outside"),
    ([member("passwd", tarfile.LNKTYPE, link="../../../../etc/passwd")], "climbs out"),
    ([member("null", tarfile.CHRTYPE)], "device node"),
    ([member(".wh.x", tarfile.DIRTYPE)], "not a plain file"),
])
def test_hostile_layers_are_refused_and_nothing_is_written(
        ctr: Ctr, worker: Worker, tmp_path: Path, members: list[Member], needle: str) -> None:
    hostile = layer([member("marker", data=uuid.uuid4().bytes), *members])
    refused(ctr, worker, docker_archive(tmp_path / "bad.tar", [hostile], ["bad:1"]), needle)
    assert not Path("/evil").exists() and not Path("/etc/evil").exists()


def test_members_behind_a_broken_header_are_refused(ctr: Ctr, worker: Worker,
                                                    tmp_path: Path) -> None:
    first = layer([member("a", data=b"a")])[:1024]  # GNU tar would skip the garbage
    hidden = layer([member("hidden", tarfile.SYMTYPE, link="/etc")])
    crafted = first + b"\xff" * 512 + hidden
    refused(ctr, worker, docker_archive(tmp_path / "c.tar", [crafted], ["c:1"]),
            "data after the end of the archive")


def test_a_symlink_in_one_layer_and_a_file_under_it_in_the_next_stay_inside(
        ctr: Ctr, cleanup: list[str], worker: Worker, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    lower = layer([*busybox_layer(uuid.uuid4().hex),
                   member("escape", tarfile.SYMTYPE, link=str(outside)),
                   member("rel", tarfile.SYMTYPE, link="../../../../../../" + str(outside))])
    upper = layer([member("escape/pwned", data=b"x"), member("rel/pwned", data=b"y")])
    load(ctr, docker_archive(tmp_path / "two.tar", [lower, upper], ["two-layers:1"]), cleanup,
         "two-layers:1")
    assert list(outside.iterdir()) == []
    assert run(ctr, "two-layers:1", "cat /escape/pwned /rel/pwned") == "xy"
    assert list(outside.iterdir()) == []


def test_digest_mismatch_and_corrupt_archives_leave_nothing(
        ctr: Ctr, worker: Worker, tmp_path: Path) -> None:
    good = layer(busybox_layer(uuid.uuid4().hex))
    lying = config_for([layer([member("other", data=b"x")])])
    refused(ctr, worker, docker_archive(tmp_path / "lie.tar", [good], ["lie:1"], lying),
            "digest mismatch")
    renamed = tmp_path / "renamed.tar"
    archive_file(renamed, {f"{'0' * 64}.json": config_for([good]), "l.tar": good,
                           "manifest.json": json.dumps([{"Config": f"{'0' * 64}.json",
                                                         "Layers": ["l.tar"]}]).encode()})
    refused(ctr, worker, renamed, "config digest mismatch")
    truncated = tmp_path / "truncated.tar"
    data = docker_archive(tmp_path / "whole.tar", [good], ["cut:1"]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    refused(ctr, worker, truncated, "invalid archive")
    refused(ctr, worker, archive_file(tmp_path / "empty.tar", {"x": b"y"}), "neither")


# -- Podman's archives -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["podman-docker-archive.tar", "podman-oci-archive.tar"])
def test_images_saved_by_podman_load_and_run(ctr: Ctr, cleanup: list[str], name: str,
                                             tmp_path: Path) -> None:
    ref = "localhost/fixture:podman"
    assert load(ctr, FIXTURES / name, cleanup, ref) == (
        "sha256:af46cab74bf7749deff729d9a5742ee8a7c797b63c658579ec6d3a05e8bc14ce")
    assert ctr("run", "--rm", ref).ok().out == "kept\n"  # Cmd, in WorkingDir /data
    gone = ctr("run", "--rm", ref, "/bin/hello", "cat", "/data/gone")
    assert (gone.code, gone.out) == (1, "no such file\n"), str(gone)  # the RUN's whiteout
    assert ctr("run", "--rm", ref, "/bin/hello", "cat", "/data/link").ok().out == "kept\n"
    labels = ctr("image", "inspect", "-f", "{{.Config.Labels}}", ref).ok().out
    assert "org.example.fixture:podman" in labels
    # and back out: the very layers Podman wrote
    out = tmp_path / "again.tar"
    ctr("save", "-o", str(out), ref).ok()
    with tarfile.open(FIXTURES / "podman-docker-archive.tar") as original:
        podman_layers = {m.name: original.extractfile(m).read()  # type: ignore[union-attr]
                         for m in original.getmembers() if m.isfile() and
                         re.fullmatch(r"[0-9a-f]{64}\.tar", m.name)}
    saved = saved_members(out)
    assert all(saved.get(n) == data for n, data in podman_layers.items())


def test_an_image_saved_by_docker_loads_and_runs(ctr: Ctr, cleanup: list[str]) -> None:
    ref = "fixture:docker"
    archive = FIXTURES.parent / "docker" / "docker-archive.tar"
    assert load(ctr, archive, cleanup, ref) == (
        "sha256:475d31a0039a845f56acce8da8ade0084a8bb2f4fce435e45650cc3e07b70cc1")
    assert ctr("run", "--rm", ref).ok().out == "kept\n"  # Cmd, in WorkingDir /data
    gone = ctr("run", "--rm", ref, "/bin/hello", "cat", "/data/gone")
    assert (gone.code, gone.out) == (1, "no such file\n"), str(gone)  # the RUN's whiteout
    labels = ctr("image", "inspect", "-f", "{{.Config.Labels}}", ref).ok().out
    assert "org.example.fixture:docker" in labels


def test_save_to_stdout_and_load_from_stdin(ctr: Ctr, cleanup: list[str],
                                            tmp_path: Path) -> None:
    layers = rich_layers(uuid.uuid4().hex)
    first = load(ctr, docker_archive(tmp_path / "s.tar", layers, ["pipe:1"]), cleanup,
                 "pipe:1")
    saved = ctr("save", "pipe:1", binary=True).ok().raw
    ctr("rmi", "pipe:1").ok()
    result = ctr("load", input=saved).ok()
    assert result.out == "Loaded image: pipe:1\n", str(result)
    assert image_id(ctr, "pipe:1") == first
    import gzip
    ctr("rmi", "pipe:1").ok()
    assert ctr("load", "-q", input=gzip.compress(saved)).ok().out == ""
    assert image_id(ctr, "pipe:1") == first


def test_dry_run_save_and_commit_print_scripts_that_do_the_job(
        ctr: Ctr, cleanup: list[str], tmp_path: Path, worker: Worker) -> None:
    layers = rich_layers(uuid.uuid4().hex)
    load(ctr, docker_archive(tmp_path / "d.tar", layers, ["dry:2"]), cleanup, "dry:2")
    out = tmp_path / "out.tar"
    script = ctr("--dry-run", "save", "-o", str(out), "dry:2").ok().out
    assert not out.exists() and "ln --no-dereference" in script
    subprocess.run(["bash", "-c", script], check=True, timeout=60)
    assert set(saved_members(out).values()) >= set(layers)

    name = f"dry-{uuid.uuid4().hex[:8]}"
    cleanup += [name, "dry:3"]
    ctr("run", "--name", name, "dry:2", "sh", "-c",
        "rm /old/new; rm -rf /srv/sticky; mkdir /srv/sticky; echo z > /z").ok()
    before = store_state(worker)
    script = ctr("--dry-run", "commit", name, "dry:3").ok().out
    assert store_state(worker) == before
    assert "-m shellctr.engine.pack pack" in script
    subprocess.run(["bash", "-c", script], check=True, timeout=60)
    assert run(ctr, "dry:3", "cat /z; ls /old; ls -A /srv/sticky") == "z\n"
    real = ctr("commit", name, "dry:4").ok()
    cleanup.append("dry:4")
    layers_of = [json.loads(ctr("image", "inspect", ref).ok().out)[0]["RootFS"]["Layers"]
                 for ref in ("dry:3", "dry:4")]
    assert layers_of[0] == layers_of[1], str(real)  # the script made the very same layer
    ctr("rm", name).ok()
