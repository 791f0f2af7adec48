"""Volumes with driver options (`volume create -o type=tmpfs -o device=tmpfs ...`, `-o
type=none -o o=bind -o device=DIR`): mounted once at the volume's `_data` by its first
user, shared by every container that uses it, unmounted after the last one ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Ctr, Worker, assert_script, remove_all, replay, run_detached, wait_for


@pytest.fixture
def ram(ctr: Ctr) -> Iterator[str]:
    """A tmpfs volume `ram` of 2 MiB owned by uid 1000; removed with the test's containers."""
    ctr("volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs",
        "-o", "o=size=2m,uid=1000", "ram").ok()
    yield "ram"
    remove_all(ctr)
    ctr("volume", "rm", "--force", "ram").ok()


def mounts_at(path: Path) -> list[str]:
    """The host's mounts at `path` (its mount table), as `fstype source options`."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as stream:
        for line in stream:
            fields = line.split()
            if fields[4] == os.path.realpath(path):
                after = fields[fields.index("-", 6) + 1:]
                found.append(" ".join(after))
    return found


def data_of(worker: Worker, name: str) -> Path:
    return worker.root / "volumes" / name / "_data"


def test_two_running_containers_share_a_tmpfs_volume_mounted_once(
        ctr: Ctr, worker: Worker, ram: str) -> None:
    first = run_detached(ctr, "--name", "first", "--network", "none", "-v", "ram:/ram",
                         "busybox", "sleep", "1000")
    started = ctr("run", "-d", "--name", "second", "--network", "none", "-v", "ram:/ram",
                  "busybox", "sleep", "1000").ok()
    assert mounts_at(data_of(worker, ram)) == ["tmpfs tmpfs rw,size=2048k,uid=1000"]
    assert not [line for line in started.err_lines if line.startswith(
        "+ mount --types tmpfs --options size=2m")], started.err  # the second found it mounted
    ctr("exec", "first", "sh", "-c", "echo shared > /ram/note").ok()
    assert ctr("exec", "second", "cat", "/ram/note").ok().out == "shared\n"
    assert (data_of(worker, ram) / "note").read_text() == "shared\n"  # the host sees it too
    refused = ctr("volume", "rm", ram)
    assert refused.code == 1 and len(refused.err_lines) == 1, str(refused)
    assert refused.err_lines[0] in [
        f"shellctr: remove ram: volume is in use - [{names}] (remove those containers first)"
        for names in ("first, second", "second, first")], str(refused)  # in their ids' order
    ctr("stop", "--time", "1", first).ok()
    assert len(mounts_at(data_of(worker, ram))) == 1  # second still uses it
    assert ctr("exec", "second", "cat", "/ram/note").ok().out == "shared\n"
    ctr("stop", "--time", "1", "second").ok()
    wait_for(lambda: not mounts_at(data_of(worker, ram)), "the volume unmounted")
    assert not os.listdir(data_of(worker, ram))  # its data went with the tmpfs (as Docker)
    third = ctr("run", "--rm", "--network", "none", "-v", "ram:/ram", "busybox", "sh", "-c",
                "ls -A /ram; ls -nd /ram").ok()
    lines = third.out.splitlines()
    assert len(lines) == 1 and lines[0].split()[2] == "1000", third.out  # empty, uid=
    assert f"+ mount --types tmpfs --options size=2m,uid=1000 tmpfs {data_of(worker, ram)}" \
        in third.err.splitlines() and \
        f"+ umount --recursive {data_of(worker, ram)}" in third.err.splitlines(), third.err
    assert not mounts_at(data_of(worker, ram))
    ctr("start", "first").ok()  # started again: mounted again
    assert len(mounts_at(data_of(worker, ram))) == 1
    ctr("rm", "-f", "first").ok()
    assert not mounts_at(data_of(worker, ram))


def test_the_size_of_a_tmpfs_volume_is_enforced(ctr: Ctr, ram: str) -> None:
    result = ctr("run", "--rm", "--network", "none", "-v", "ram:/ram", "busybox", "sh", "-c",
                 "df -k /ram | tail -n 1; dd if=/dev/zero of=/ram/big bs=1024 count=4096; "
                 "echo dd=$?", trace=False)
    assert result.code == 0, str(result)
    df, *rest = result.out.splitlines()
    assert df.split()[1] == "2048", df  # 1K-blocks
    assert "No space left on device" in result.err, str(result)
    assert rest[-1] != "dd=0", str(result)


def test_a_killed_monitor_and_container_leave_a_mount_prune_collects(
        ctr: Ctr, worker: Worker, ram: str) -> None:
    cid = run_detached(ctr, "--name", "victim", "--network", "none", "-v", "ram:/ram",
                       "busybox", "sleep", "1000")
    state = json.loads((worker.root / "containers" / cid / "state.json").read_text())
    os.kill(state["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{state['monitor_pid']}").exists(), "the monitor gone")
    assert len(mounts_at(data_of(worker, ram))) == 1  # its container still runs: in use
    os.kill(state["pid"], signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{state['pid']}").exists(), "PID 1 gone")
    assert len(mounts_at(data_of(worker, ram))) == 1  # nobody watched it end
    check = ctr("system", "check", trace=False)
    assert f"volume mount of no running container: {data_of(worker, ram)}" in check.out, \
        str(check)
    pruned = ctr("system", "prune", "--force").ok()
    assert f"+ umount --recursive {data_of(worker, ram)}" in pruned.err.splitlines(), pruned.err
    assert not mounts_at(data_of(worker, ram))


def test_a_start_killed_after_the_mount_leaves_one_system_check_repairs(
        ctr: Ctr, worker: Worker, ram: str) -> None:
    """SIGKILLed right after its mount command (the door's test hook): the container was
    never started, so nothing uses the mount: a leftover of the kill."""
    ctr("create", "--name", "never", "--network", "none", "-v", "ram:/ram", "busybox",
        "true").ok()
    for _ in range(2):  # the second as the killed one: the first also compiles its filter
        plain = ctr("start", "never").ok()
        wait_for(lambda: not mounts_at(data_of(worker, ram)), "the end of the plain run")
    commands = [line for line in plain.err.splitlines() if line.startswith("+ ")]
    step = next(i for i, line in enumerate(commands, 1)
                if line.startswith("+ mount --types tmpfs"))
    killed = ctr("start", "never", env={"SHELLCTR_TEST_KILL_AFTER": str(step)})
    assert killed.code == -signal.SIGKILL, str(killed)
    assert killed.err.splitlines()[-1].startswith("+ mount --types tmpfs"), killed.err
    assert len(mounts_at(data_of(worker, ram))) == 1
    check = ctr("system", "check", trace=False)
    assert f"volume mount of no running container: {data_of(worker, ram)}" in check.out, \
        str(check)
    repaired = ctr("system", "check", "--repair")
    assert f"+ umount --recursive {data_of(worker, ram)}" in repaired.err.splitlines(), repaired.err
    assert not mounts_at(data_of(worker, ram))
    ctr("rm", "never").ok()  # never recorded running: no -f needed


def test_a_bind_volume_is_its_device_mounted_once(ctr: Ctr, worker: Worker,
                                                   tmp_path: Path) -> None:
    (tmp_path / "f").write_text("from the host\n")
    ctr("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}",
        "dir").ok()
    try:
        run_detached(ctr, "--name", "holder", "--network", "none", "-v", "dir:/dir",
                     "busybox", "sleep", "1000")
        assert (data_of(worker, "dir") / "f").read_text() == "from the host\n"
        assert ctr("exec", "holder", "cat", "/dir/f").ok().out == "from the host\n"
        ctr("rm", "-f", "holder").ok()
        assert not mounts_at(data_of(worker, "dir"))
        ctr("volume", "rm", "dir").ok()
        assert (tmp_path / "f").read_text() == "from the host\n"  # rm never went through it
    finally:
        remove_all(ctr)
        ctr("volume", "rm", "--force", "dir")


def test_volume_inspect_shows_the_options_and_the_mountpoint(
        ctr: Ctr, worker: Worker, ram: str) -> None:
    shown = json.loads(ctr("volume", "inspect", ram, trace=False).ok().out)[0]
    assert shown["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=2m,uid=1000"}
    assert shown["Mountpoint"] == str(data_of(worker, ram))
    assert shown["Driver"] == "local"


@pytest.mark.parametrize(("opts", "message"), [
    (["-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=huge"],
     "shellctr: invalid tmpfs option 'size=huge'"),
    (["-o", "type=tmpfs"], 'shellctr: missing required option: "device"'),
    (["-o", "type=nosuchfs", "-o", "device=/dev/null"],
     "shellctr: unknown filesystem type 'nosuchfs' (give a type this host mounts "),
])
def test_bad_driver_options_make_nothing(ctr: Ctr, worker: Worker, opts: list[str],
                                         message: str) -> None:
    result = ctr("volume", "create", *opts, "bad", trace=False)
    assert result.code == 1 and len(result.err_lines) == 1, str(result)
    assert result.err_lines[0].startswith(message), str(result)
    assert not (worker.root / "volumes" / "bad").exists()


def test_dry_run_prints_the_mount_and_its_script_replayed_unmounts_at_the_end(
        ctr: Ctr, worker: Worker, ram: str) -> None:
    script = assert_script(ctr("--dry-run", "run", "--rm", "--network", "none", "-v",
                               "ram:/ram", "busybox", "sh", "-c", "echo x > /ram/f",
                               trace=False))
    assert (f"mount --types tmpfs --options size=2m,uid=1000 tmpfs {data_of(worker, ram)}"
            in script.splitlines()), script
    assert not mounts_at(data_of(worker, ram))  # printed, not done
    replay(script)  # its end (the hook) unmounts: nothing of it stays
    assert not mounts_at(data_of(worker, ram))
    assert ctr.container_ids() == []


def test_an_ext4_image_volume_is_mounted_once_and_keeps_its_files(
        ctr: Ctr, worker: Worker, tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as stream:
        stream.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", os.fspath(image)], check=True)
    ctr("volume", "create", "-o", "type=ext4", "-o", f"device={image}", "-o", "o=loop",
        "disk").ok()
    try:
        run_detached(ctr, "--name", "holder", "--network", "none", "-v", "disk:/disk",
                     "busybox", "sleep", "1000")
        assert [m.split()[0] for m in mounts_at(data_of(worker, "disk"))] == ["ext4"]
        written = ctr("run", "--rm", "--network", "none", "-v", "disk:/disk", "busybox",
                      "sh", "-c", "echo kept > /disk/f; cat /disk/f").ok()
        assert written.out == "kept\n"
        assert not [line for line in written.err_lines if line.startswith("+ mount --types")]
        ctr("rm", "-f", "holder").ok()
        wait_for(lambda: not mounts_at(data_of(worker, "disk")), "the volume unmounted")
        # the files live on the image, not in _data: a later user finds them again
        again = ctr("run", "--rm", "--network", "none", "-v", "disk:/disk", "busybox",
                    "cat", "/disk/f").ok()
        assert again.out == "kept\n"
        assert not mounts_at(data_of(worker, "disk"))
    finally:
        remove_all(ctr)
        ctr("volume", "rm", "--force", "disk").ok()
