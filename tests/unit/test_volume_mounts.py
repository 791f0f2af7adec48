"""Volumes with driver options (`volume create -o type=tmpfs|none ...`): the options
checked at create, the exact mount/umount argv, mounted once at `_data` by the first
user and unmounted by teardown after the last, users read from the records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shellctr.core.errors import Conflict, HostCommandError, ShellctrError
from shellctr.core.facts import Facts, process_start
from shellctr.core.host import Rollback
from shellctr.core.layout import Layout
from shellctr.core.store import Store
from shellctr.engine import lifecycle, system, volume, volume_driver
from shellctr.engine.create import create

from .helpers import Mounted, RecordingHost, install_image, run_request

pytestmark = pytest.mark.usefixtures("fixed")

TMPFS = {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000"}


class Filesystems(Facts):
    """The host's facts with these filesystem types known to mount(8)."""

    def __init__(self, *kinds: str) -> None:
        super().__init__()
        self.kinds = set(kinds)

    def filesystem_known(self, kind: str) -> bool:
        return kind in self.kinds


def mounted_at(layout: Layout, name: str) -> str:
    return (f"27 1 254:0 / / rw shared:1 - ext4 /dev/vda rw\n"
            f"90 27 0:90 / {os.path.realpath(layout.volume_data(name))} rw,relatime shared:40 "
            "- tmpfs tmpfs rw,size=65536k\n")


# -- volume create -o -----------------------------------------------------------------------
@pytest.mark.parametrize(("items", "options"), [
    ([], {}),
    (["type=tmpfs", "device=tmpfs"], {"type": "tmpfs", "device": "tmpfs"}),
    (["type=tmpfs", "device=tmpfs", "o=size=64m,uid=1000,mode=0770,noexec"],
     {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000,mode=0770,noexec"}),
    (["type=none", "o=bind", "device=/"], {"type": "none", "o": "bind", "device": "/"}),
    (["type=ext4", "device=/srv/disk.img", "o=loop,noatime"],
     {"type": "ext4", "device": "/srv/disk.img", "o": "loop,noatime"}),
    (["type=nfs", "o=addr=10.0.0.1,rw", "device=:/export"],
     {"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"}),
])
def test_driver_options_accepted(items: list[str], options: dict[str, str]) -> None:
    assert volume.parse_driver_options(Filesystems("ext4", "nfs"), items) == options


@pytest.mark.parametrize(("items", "message"), [
    (["nope"], "invalid option 'nope' for the local driver (use type=, device= and o=)"),
    (["size=1g"], "invalid option 'size=1g' for the local driver"),
    (["type=tmpfs"], 'missing required option: "device" (give -o type= and -o device= '
     "together)"),
    (["device=tmpfs"], 'missing required option: "type"'),
    (["o=size=1m"], 'missing required option: "type"'),
    (["type=tmpfs", "device=tmpfs", "o=size=lots"], "invalid tmpfs option 'size=lots'"),
    (["type=tmpfs", "device=tmpfs", "o=uid=root"], "invalid tmpfs option 'uid=root'"),
    (["type=tmpfs", "device=tmpfs", "o=mode=999"], "invalid tmpfs option 'mode=999'"),
    (["type=tmpfs", "device=tmpfs", "o=bogus"], "invalid tmpfs option 'bogus'"),
    (["type=nfs", "device=:/export", "o=addr=10.0.0.1"], "unknown filesystem type 'nfs' "
     "(give a type this host mounts (/proc/filesystems, or one with a mount.TYPE helper))"),
    (["type=Ext4", "device=/dev/sda1"], "unknown filesystem type 'Ext4'"),
    (["type=ext4;id", "device=/dev/sda1"], "unknown filesystem type 'ext4;id'"),
    (["type=ext4", "device=--bind"], "invalid device '--bind'"),
    (["type=none", "device=/"], "volume type 'none' needs o=bind"),  # no o=bind
    (["type=none", "o=bind", "device=/no/such/dir"], "invalid bind device '/no/such/dir'"),
    (["type=none", "o=bind", "device=relative"], "invalid bind device 'relative'"),
    (["type=none", "o=bind,ro", "device=/"], "invalid bind options 'bind,ro' (use o=bind)"),
])
def test_bad_driver_options_are_one_line(items: list[str], message: str) -> None:
    with pytest.raises(ShellctrError) as info:
        volume.parse_driver_options(Filesystems("ext4", "Ext4", "ext4;id"), items)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


# -- the argv -----------------------------------------------------------------------------
def test_mount_and_umount_argv(layout: Layout) -> None:
    data = str(layout.volume_data("v"))
    argv = volume_driver.mount_argv
    assert argv(layout, "v", TMPFS) == [
        "mount", "--types", "tmpfs", "--options", "size=64m,uid=1000", "tmpfs", data]
    assert argv(layout, "v", {"type": "tmpfs", "device": "ram"}) == [
        "mount", "--types", "tmpfs", "ram", data]
    assert argv(layout, "v", {"type": "none", "o": "bind", "device": "/srv"}) == [
        "mount", "--bind", "/srv", data]
    assert argv(layout, "v", {"type": "none", "o": "rbind", "device": "/srv"}) == [
        "mount", "--rbind", "/srv", data]
    assert argv(layout, "v", {"type": "ext4", "device": "/srv/d.img", "o": "loop"}) == [
        "mount", "--types", "ext4", "--options", "loop", "/srv/d.img", data]
    assert volume_driver.umount_argv(layout, "v") == ["umount", "--recursive", data]


def test_is_mounted_reads_the_mount_table(layout: Layout) -> None:
    assert volume_driver.is_mounted(Mounted(mounted_at(layout, "v")), layout, "v")
    assert not volume_driver.is_mounted(Mounted(mounted_at(layout, "v")), layout, "w")
    assert not volume_driver.is_mounted(Mounted(""), layout, "v")


# -- one mount for every user ---------------------------------------------------------------
def setup_volume(layout: Layout, facts: Facts, options: dict[str, str] | None = None,
                 ) -> tuple[RecordingHost, Store]:
    install_image(layout)
    host = RecordingHost(facts=facts)
    store = Store(layout, host)
    with store.lock(), Rollback(host) as rollback:
        volume.create_volume(host, store, "ram", {}, rollback, options=options or TMPFS)
    return host, store


def container(host: RecordingHost, store: Store, name: str, cid: str,
              monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    from shellctr.engine import create as create_module

    monkeypatch.setattr(create_module, "new_id", lambda: cid)
    config = create(host, store, run_request("busybox", name=name, volume=["ram:/ram"],
                                             network={"network": "none"}))
    with store.lock():
        store.write_state(cid, starter_pid=0, starter_start=0)  # not being started
    return dict(config)


def running(store: Store, cid: str) -> None:
    """Recorded running, with this test's process as its PID 1."""
    with store.lock():
        store.write_state(cid, status="running", pid=os.getpid(),
                          pid_start=process_start(os.getpid()) or 0)


def test_the_first_user_mounts_and_the_next_one_does_not(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = Mounted("")
    host, store = setup_volume(layout, facts)
    first = container(host, store, "first", "a" * 64, monkeypatch)
    host.reset()
    with Rollback(host) as rollback:
        volume_driver.acquire(host, store, "a" * 64, first["mounts"], rollback)  # type: ignore[arg-type]
    assert host.lines == [f"mount --types tmpfs --options size=64m,uid=1000 tmpfs "
                          f"{layout.volume_data('ram')}"]
    facts.text = mounted_at(layout, "ram")
    running(store, "a" * 64)
    second = container(host, store, "second", "b" * 64, monkeypatch)
    host.reset()
    with Rollback(host) as rollback:
        volume_driver.acquire(host, store, "b" * 64, second["mounts"], rollback)  # type: ignore[arg-type]
    assert host.lines == []


def test_a_failed_start_releases_the_mount_it_made(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = Mounted("")
    host, store = setup_volume(layout, facts)
    config = container(host, store, "first", "a" * 64, monkeypatch)
    host.reset()
    with pytest.raises(OSError), Rollback(host) as rollback:
        volume_driver.acquire(host, store, "a" * 64, config["mounts"], rollback)  # type: ignore[arg-type]
        facts.text = mounted_at(layout, "ram")
        raise OSError("the start failed")
    assert host.lines[1:] == [f"umount --recursive {layout.volume_data('ram')}"]


def test_a_failed_second_mount_undoes_the_first(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = Mounted("")
    host, store = setup_volume(layout, facts)
    with store.lock(), Rollback(host) as rollback:
        volume.create_volume(host, store, "ram2", {}, rollback, options=TMPFS)
    config = dict(create(host, store, run_request("busybox", volume=["ram:/a", "ram2:/b"],
                                                  network={"network": "none"})))
    host.reset()
    host.fail_at = 2  # the second mount fails
    host.substitute["mount"] = lambda cmd: setattr(facts, "text", mounted_at(layout, "ram"))
    with pytest.raises(HostCommandError), Rollback(host) as rollback:
        volume_driver.acquire(host, store, config["id"], config["mounts"], rollback)  # type: ignore[arg-type]
    assert host.lines == [
        f"mount --types tmpfs --options size=64m,uid=1000 tmpfs {layout.volume_data('ram')}",
        f"mount --types tmpfs --options size=64m,uid=1000 tmpfs {layout.volume_data('ram2')}",
        f"umount --recursive {layout.volume_data('ram')}"]


def test_teardown_unmounts_after_the_last_user_only(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    host, store = setup_volume(layout, Mounted(mounted_at(layout, "ram")))
    first = container(host, store, "first", "a" * 64, monkeypatch)
    container(host, store, "second", "b" * 64, monkeypatch)
    running(store, "b" * 64)
    host.reset()
    with store.lock():
        lifecycle.teardown(host, store, first, remove=False)  # type: ignore[arg-type]
    assert not any(line.startswith("umount") for line in host.lines)  # second still uses it
    assert volume_driver.live_users(store, "ram") == ["b" * 64]
    with store.lock():
        store.write_state("b" * 64, status="exited", pid=0, pid_start=0)
        lifecycle.teardown(host, store, store.container("b" * 64), remove=False)
    assert [line for line in host.lines if line.startswith(("mount", "umount"))] == [
        f"umount --recursive {layout.volume_data('ram')}"]


def test_a_recorded_user_whose_processes_are_gone_holds_nothing(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed monitor and PID 1 (or a killed `start`): the records say running (or
    created), the processes are gone: the mount is a leftover system prune collects."""
    host, store = setup_volume(layout, Mounted(mounted_at(layout, "ram")))
    container(host, store, "first", "a" * 64, monkeypatch)
    with store.lock():
        store.write_state("a" * 64, status="running", pid=2 ** 22 + 1, pid_start=1,
                          monitor_pid=2 ** 22 + 2, monitor_start=1)
        assert volume_driver.live_users(store, "ram") == []
        assert volume_driver.stale_mounts(store) == ["ram"]
        assert ("volume mount of no running container",
                layout.volume_data("ram")) in system.leftovers(store)
    host.reset()
    assert system.collect(host, store) == [layout.volume_dir("ram")]
    assert host.lines[-1] == f"umount --recursive {layout.volume_data('ram')}"
    with store.lock():  # a start killed before it recorded the run: its starter is dead
        store.write_state("a" * 64, status="created", pid=0, starter_pid=2 ** 22 + 1,
                          starter_start=1)
        assert volume_driver.stale_mounts(store) == ["ram"]
        store.write_state("a" * 64, starter_pid=os.getpid(),
                          starter_start=process_start(os.getpid()) or 0)
        assert volume_driver.stale_mounts(store) == []  # being started: in use


def test_a_container_spawned_by_a_killed_start_holds_its_volumes(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its `start` was killed after spawning it: nobody has adopted it yet, but its
    monitor runs (found on the host): the mount is in use, not a leftover."""
    host, store = setup_volume(layout, Mounted(mounted_at(layout, "ram")))
    container(host, store, "first", "a" * 64, monkeypatch)
    with store.lock():
        store.write_state("a" * 64, starter_pid=2 ** 22 + 1, starter_start=1)
        run_dir = f"{layout.container_run_dir('a' * 64)}/"
        monkeypatch.setattr(host.facts, "processes_mentioning", lambda text: (
            [(4242, 1), (4243, 4242)] if text == run_dir else []))
        assert volume_driver.live_users(store, "ram") == ["a" * 64]
        monkeypatch.setattr(host.facts, "processes_mentioning", lambda text: [])
        assert volume_driver.live_users(store, "ram") == []


def test_volume_rm_unmounts_a_left_mount_before_removing_its_tree(
        layout: Layout, tmp_path: Path) -> None:
    host, store = setup_volume(layout, Mounted(mounted_at(layout, "ram")))
    host.reset()
    with store.lock():
        volume.remove_volume(host, store, "ram")
    assert host.lines == [f"umount --recursive {layout.volume_data('ram')}",
                          f"rm --recursive {layout.volume_dir('ram')}"]


def test_volume_rm_of_a_mounted_volume_in_use_refuses(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    host, store = setup_volume(layout, Mounted(mounted_at(layout, "ram")))
    container(host, store, "first", "a" * 64, monkeypatch)
    running(store, "a" * 64)
    host.reset()
    with store.lock(), pytest.raises(Conflict, match=r"^remove ram: volume is in use - "
                                                     r"\[first\]"):
        volume.remove_volume(host, store, "ram")
    assert host.lines == []


def test_a_volume_of_its_own_is_a_bind_of_its_data_not_seeded(layout: Layout) -> None:
    records = [volume.parse_volume("ram:/ram"), volume.parse_volume("plain:/p")]
    options = {"ram": TMPFS, "plain": {}}
    assert volume.spec_mounts(layout, records, options.__getitem__) == [
        {"target": "/ram", "readonly": False, "type": "bind",
         "source": str(layout.volume_data("ram")), "seed": False},
        {"target": "/p", "readonly": False, "type": "bind",
         "source": str(layout.volume_data("plain")), "seed": True},
    ]
