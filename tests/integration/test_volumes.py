"""Volumes, bind mounts, tmpfs, --read-only, --volumes-from and the `volume` verbs."""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    APPLETS,
    GROUP,
    HOST_BUSYBOX,
    PASSWD,
    Ctr,
    Worker,
    inspect,
    one_line_error,
    remove_all,
    run_detached,
    tar_member,
    tree_listing,
    wait_settled,
    write_tar,
)

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def volumes(worker: Worker) -> list[str]:
    directory = worker.root / "volumes"
    return sorted(os.listdir(directory)) if directory.is_dir() else []


@pytest.fixture
def cleanup(ctr: Ctr) -> Iterator[None]:
    """Remove the test's containers, then every volume (the leak check wants none)."""
    yield
    remove_all(ctr)
    names = ctr("volume", "ls", "-q").out.split()
    if names:
        ctr("volume", "rm", *names).ok()


# -- bind mounts ------------------------------------------------------------------------
def test_bind_mount_writes_are_visible_on_the_host(ctr: Ctr, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from the host\n")
    result = ctr("run", "--rm", "-v", f"{tmp_path}:/data", "busybox", "sh", "-c",
                 "cat /data/in; echo from the container > /data/out").ok()
    assert "from the host" in result.out
    assert (tmp_path / "out").read_text() == "from the container\n"


def test_ro_bind_refuses_writes(ctr: Ctr, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("keep\n")
    before = tree_listing(tmp_path)
    result = ctr("run", "--rm", "-v", f"{tmp_path}:/data:ro", "busybox", "sh", "-c",
                 "cat /data/file; echo x > /data/file; touch /data/new")
    assert result.code != 0, str(result)
    assert "keep" in result.out
    assert result.err.count("Read-only file system") == 2, str(result)
    assert tree_listing(tmp_path) == before
    assert (tmp_path / "file").read_text() == "keep\n"


def test_bind_of_a_single_file(ctr: Ctr, tmp_path: Path) -> None:
    (tmp_path / "conf").write_text("setting=1\n")
    result = ctr("run", "--rm", "-v", f"{tmp_path / 'conf'}:/etc/app/conf:ro", "busybox",
                 "cat", "/etc/app/conf").ok()
    assert result.out == "setting=1\n"


def test_missing_host_path_is_created_for_v_but_not_for_mount(
        ctr: Ctr, worker: Worker, tmp_path: Path) -> None:
    made = tmp_path / "a" / "b"
    ctr("run", "--rm", "-v", f"{made}:/data", "busybox", "touch", "/data/x").ok()
    assert (made / "x").is_file()
    missing = tmp_path / "missing"
    result = ctr("run", "--rm", "--mount", f"type=bind,source={missing},target=/data",
                 "busybox", "true")
    assert one_line_error(result) == (
        f'shellctr: invalid mount config for type "bind": bind source path does not exist: '
        f"{missing}")
    assert not missing.exists()
    assert ctr.container_ids() == []


@pytest.mark.parametrize(("flags", "message"), [
    (["-v", "relative/path:/x"],
     'create relative/path: "relative/path" includes invalid characters for a local volume '
     'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
     "directory, use absolute path"),
    (["-v", "/tmp:relative"],
     "invalid mount config for type \"bind\": invalid mount path: 'relative' mount path "
     "must be absolute"),
    (["--mount", "type=bogus,target=/x"], 'invalid mount config for type "bogus": mount '
     "type unknown"),
    (["--tmpfs", "tmp"], "invalid mount config for type \"tmpfs\": invalid mount path: 'tmp' "
     "mount path must be absolute"),
    (["-v", "/tmp:/x:rx"], "invalid mode: rx"),
    (["-v", "data:/x", "-v", "other:/x"], "Duplicate mount point: /x"),
])
def test_bad_mount_flags_are_one_line_and_create_nothing(
        ctr: Ctr, worker: Worker, flags: list[str], message: str) -> None:
    result = ctr("run", "--rm", *flags, "busybox", "true")
    assert one_line_error(result) == f"shellctr: {message}"
    assert ctr.container_ids() == []
    assert volumes(worker) == []


# -- named and anonymous volumes -----------------------------------------------------
def test_named_volume_is_seeded_from_the_image_and_survives_rm(
        ctr: Ctr, worker: Worker, cleanup: None) -> None:
    ctr("run", "--name", "writer", "-v", "config:/etc", "busybox", "sh", "-c",
        "echo kept > /etc/mine").ok()
    data = worker.root / "volumes" / "config" / "_data"
    assert (data / "mine").read_text() == "kept\n"
    # seeded on first use with the image's /etc, owners and modes kept
    assert (data / "passwd").read_text().startswith("root:x:0:0:")
    assert oct((data / "passwd").stat().st_mode & 0o7777) == "0o644"
    ctr("rm", "-v", "writer").ok()  # -v: anonymous volumes only; a named one stays
    assert volumes(worker) == ["config"]
    (data / "passwd").unlink()  # not empty any more: never seeded again
    result = ctr("run", "--rm", "-v", "config:/etc", "busybox", "ls", "/etc").ok()
    assert "mine" in result.out.split() and "passwd" not in result.out.split()


def test_anonymous_volume_goes_with_rm_v(ctr: Ctr, worker: Worker) -> None:
    ctr("run", "--name", "anon", "-v", "/scratch", "busybox", "sh", "-c",
        "echo x > /scratch/f").ok()
    [name] = volumes(worker)
    assert HEX64.match(name)
    assert (worker.root / "volumes" / name / "_data" / "f").read_text() == "x\n"
    mounts = inspect(ctr, "anon")["Mounts"]
    assert mounts == [{"Type": "volume", "Name": name,
                       "Source": str(worker.root / "volumes" / name / "_data"),
                       "Destination": "/scratch", "Driver": "local", "Mode": "", "RW": True,
                       "Propagation": ""}]
    ctr("rm", "-v", "anon").ok()
    assert volumes(worker) == []


def test_anonymous_volume_goes_with_run_rm(ctr: Ctr, worker: Worker) -> None:
    ctr("run", "--rm", "-v", "/scratch", "--mount", "type=volume,target=/more", "busybox",
        "touch", "/scratch/f", "/more/g").ok()
    assert volumes(worker) == []


def test_anonymous_volume_kept_by_rm_is_pruned(ctr: Ctr, worker: Worker,
                                               cleanup: None) -> None:
    ctr("run", "--name", "keep", "-v", "/scratch", "busybox", "true").ok()
    [name] = volumes(worker)
    ctr("volume", "create", "named").ok()
    # the anonymous one is in use, the named one is not anonymous: nothing to prune yet
    assert ctr("volume", "prune", "-f").ok().out == "Total reclaimed space: 0B\n"
    assert volumes(worker) == sorted([name, "named"])
    ctr("rm", "keep").ok()
    result = ctr("volume", "prune", "-f").ok()
    assert result.out.startswith(f"Deleted Volumes:\n{name}\n"), str(result)
    assert volumes(worker) == ["named"]  # without -a, named volumes stay
    assert ctr("volume", "prune", "-f", "-a").ok().out.startswith("Deleted Volumes:\nnamed\n")
    assert volumes(worker) == []


# -- tmpfs and --read-only ------------------------------------------------------------
def test_tmpfs_with_options(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "--tmpfs", "/cache:size=1m,mode=1770", "busybox", "sh", "-c",
                 "grep ' /cache ' /proc/mounts; stat -c %a /cache").ok()
    line, mode = result.out.splitlines()
    _, point, kind, options = line.split()[:4]
    assert (point, kind) == ("/cache", "tmpfs")
    assert {"rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=1770"} <= set(
        options.split(",")), line
    assert mode == "1770"


def test_mount_type_tmpfs(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=2m", "busybox",
                 "grep", " /t ", "/proc/mounts").ok()
    assert "size=2048k" in result.out


def test_read_only_root_with_a_writable_tmp(ctr: Ctr, tmp_path: Path) -> None:
    result = ctr("run", "--rm", "--read-only", "--tmpfs", "/tmp", "-v", f"{tmp_path}:/data",
                 "busybox", "sh", "-c",
                 "touch /root-file || echo root is ro; touch /tmp/f && echo tmp ok; "
                 "touch /data/f && echo volume ok; echo x > /dev/null && echo dev ok").ok()
    assert result.out.split("\n")[:4] == ["root is ro", "tmp ok", "volume ok", "dev ok"]
    assert "Read-only file system" in result.err
    assert (tmp_path / "f").exists()


def test_read_only_root_still_gets_its_working_directory(ctr: Ctr) -> None:
    assert ctr("run", "--rm", "--read-only", "-w", "/new/dir", "busybox", "pwd").ok().out \
        == "/new/dir\n"


# -- --volumes-from ---------------------------------------------------------------------
def test_volumes_from(ctr: Ctr, worker: Worker, tmp_path: Path, cleanup: None) -> None:
    ctr("create", "--name", "source", "-v", "shared:/shared", "-v", f"{tmp_path}:/bound",
        "busybox", "true").ok()
    ctr("run", "--rm", "--volumes-from", "source", "busybox", "sh", "-c",
        "echo 1 > /shared/f && echo 2 > /bound/g").ok()
    assert (worker.root / "volumes" / "shared" / "_data" / "f").read_text() == "1\n"
    assert (tmp_path / "g").read_text() == "2\n"
    result = ctr("run", "--rm", "--volumes-from", "source:ro", "busybox", "sh", "-c",
                 "cat /shared/f; touch /shared/h")
    assert result.code != 0 and result.out == "1\n", str(result)
    assert "Read-only file system" in result.err


# -- symlinks in the image --------------------------------------------------------------
@pytest.fixture
def linky_image(ctr: Ctr, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An image whose mount targets are links out of its root: /abs -> VICTIM (a host
    path), /rel -> ../../../../../../../../VICTIM, /etclink -> /etc. VICTIM holds a
    secret file on the host."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret").write_text("host secret\n")
    busybox = HOST_BUSYBOX.read_bytes()
    members = [tar_member(d, tarfile.DIRTYPE, mode=0o755) for d in ("bin", "etc", "tmp")]
    members.append(tar_member("bin/busybox", data=busybox, mode=0o755))
    members += [tar_member(f"bin/{applet}", tarfile.SYMTYPE, mode=0o777, link="busybox")
                for applet in (*APPLETS, "grep", "stat", "mount")]
    members += [tar_member("etc/passwd", data=PASSWD.encode()),
                tar_member("etc/group", data=GROUP.encode()),
                tar_member("abs", tarfile.SYMTYPE, link=str(victim)),
                tar_member("rel", tarfile.SYMTYPE, link="../" * 8 + str(victim).lstrip("/")),
                tar_member("etclink", tarfile.SYMTYPE, link="/etc")]
    tar = write_tar(tmp_path / "linky.tar", members)
    ctr("import", str(tar), "linky:latest").ok()
    yield "linky", victim
    ctr("rmi", "-f", "linky")


def test_symlinked_targets_stay_inside_the_root(
        ctr: Ctr, worker: Worker, tmp_path: Path, linky_image: tuple[str, Path],
        cleanup: None) -> None:
    image, victim = linky_image
    before = tree_listing(victim)
    bound = tmp_path / "bound"
    bound.mkdir()
    (bound / "mark").write_text("bound\n")
    result = ctr("run", "--rm", "-v", f"{bound}:/abs/sub", "-v", "seeded:/rel",
                 "--tmpfs", "/etclink/tmpfs", image, "sh", "-c",
                 f"cat {victim}/sub/mark; ls -A {victim}; grep ' /etc/tmpfs ' /proc/mounts"
                 ).ok()
    # inside, the links led to paths inside the container's own root ...
    lines = result.out.splitlines()
    assert lines[0] == "bound"
    assert lines[1:-1] == ["sub"]  # the volume at /rel, with the mount point of /abs/sub
    assert lines[-1].split()[:3] == ["tmpfs", "/etc/tmpfs", "tmpfs"]
    # ... and on the host nothing was made, mounted, or read (the volume was seeded from
    # the container's own empty directory, not from the host's VICTIM)
    assert tree_listing(victim) == before
    assert (victim / "secret").read_text() == "host secret\n"
    assert os.listdir(worker.root / "volumes" / "seeded" / "_data") == ["sub"]


# -- the volume verbs -------------------------------------------------------------------
def test_volume_verbs(ctr: Ctr, worker: Worker, cleanup: None) -> None:
    assert ctr("volume", "create", "--label", "tier=db", "dbdata").ok().out == "dbdata\n"
    assert ctr("volume", "create", "dbdata").ok().out == "dbdata\n"  # exists: fine
    random = ctr("volume", "create").ok().out.strip()
    assert HEX64.match(random)
    [record] = json.loads(ctr("volume", "inspect", "dbdata", trace=False).ok().out)
    assert record["Name"] == "dbdata" and record["Driver"] == "local"
    assert record["Mountpoint"] == str(worker.root / "volumes" / "dbdata" / "_data")
    assert record["Labels"] == {"tier": "db"} and record["Scope"] == "local"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["CreatedAt"])
    lines = ctr("volume", "ls", trace=False).ok().out.splitlines()
    assert lines[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert sorted(line.split()[1] for line in lines[1:]) == sorted(["dbdata", random])
    assert ctr("volume", "ls", "-q", "-f", "label=tier=db").ok().out == "dbdata\n"
    run_detached(ctr, "--name", "user", "-v", "dbdata:/var/lib/db", "busybox", "sleep", "1000")
    assert ctr("volume", "ls", "-q", "-f", "dangling=true").ok().out == f"{random}\n"
    result = ctr("volume", "rm", "dbdata")
    assert one_line_error(result) == ("shellctr: remove dbdata: volume is in use - [user] "
                                      "(remove those containers first)")
    ctr("rm", "-f", "user").ok()
    assert ctr("volume", "rm", "dbdata", random).ok().out == f"dbdata\n{random}\n"
    assert one_line_error(ctr("volume", "rm", "dbdata")) == \
        "shellctr: get dbdata: no such volume"
    assert volumes(worker) == []


def test_detached_rm_removes_anonymous_volumes(ctr: Ctr, worker: Worker) -> None:
    cid = run_detached(ctr, "--rm", "-v", "/anon", "busybox", "touch", "/anon/f")
    wait_settled(cid)
    assert volumes(worker) == []


def test_a_restarted_container_finds_its_volume_as_it_left_it(
        ctr: Ctr, worker: Worker, cleanup: None) -> None:
    ctr("run", "--name", "again", "-v", "log:/log", "busybox", "sh", "-c",
        "echo run >> /log/lines").ok()
    ctr("start", "-a", "again").ok()
    assert (worker.root / "volumes" / "log" / "_data" / "lines").read_text() == "run\nrun\n"


def test_local_driver_tmpfs_and_bind_volumes(ctr: Ctr, tmp_path: Path) -> None:
    """`volume create -o type=tmpfs -o device=tmpfs -o o=size=64m` (a tmpfs, mounted once
    for the containers that use it: test_volume_mounts.py) and `-o type=none -o o=bind -o
    device=DIR` (DIR itself)."""
    (tmp_path / "f").write_text("from the host\n")
    try:
        ctr("volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs",
            "-o", "o=size=64m", "ram").ok()
        ctr("volume", "create", "-o", "type=none", "-o", "o=bind", "-o",
            f"device={tmp_path}", "dir").ok()
        options = json.loads(ctr("volume", "inspect", "ram", trace=False).ok().out)[0]["Options"]
        assert options == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}
        result = ctr("run", "--rm", "--network", "none", "-v", "ram:/ram", "-v", "dir:/dir",
                     "busybox", "sh", "-c", "grep ' /ram ' /proc/mounts; cat /dir/f; "
                     "echo back > /dir/new", trace=False).ok()
        mount, text = result.out.splitlines()
        assert mount.startswith("tmpfs /ram tmpfs ") and "size=65536k" in mount, mount
        assert text == "from the host"
        assert (tmp_path / "new").read_text() == "back\n"
        for bad in (["-o", "type=nfs", "-o", "o=addr=1.2.3.4"], ["-o", "type=tmpfs",
                    "-o", "o=bogus=1"], ["-o", "type=none", "-o", "o=bind", "-o",
                    "device=/no/such/dir"], ["-o", "nope"]):
            result = ctr("volume", "create", *bad, "refused", trace=False)
            assert result.code != 0 and len(result.err_lines) == 1, str(result)
        assert "refused" not in ctr("volume", "ls", "-q", trace=False).ok().out.split()
    finally:
        ctr("volume", "rm", "ram", "dir")
