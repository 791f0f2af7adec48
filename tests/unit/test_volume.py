"""Volumes: parsing -v / --mount / --tmpfs (Docker's errors), records, create's exact
steps and their undo, rm -v, and the init spec's mounts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.errors import Conflict, HostCommandError, ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.layout import Layout
from shellctr.core.state import ContainerConfig, MountPoint, Volume
from shellctr.core.store import Store
from shellctr.engine import volume
from shellctr.engine.containers import remove
from shellctr.engine.create import create
from shellctr.engine.start import init_spec
from shellctr.engine.volume import MountError, parse_mount, parse_tmpfs, parse_volume, tmpfs_flags

from .helpers import (
    CID,
    T0,
    Mounted,
    RecordingHost,
    image_model,
    install_image,
    record_of,
    removal_lines,
    run_request,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("fixed")


def mount(kind: str, target: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "source": "", "target": target, "readonly": False, "options": "",
            "propagation": "", "nocopy": False, "anonymous": False, **fields}


# -- parsing ----------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "record"), [
    ("/srv/data:/data", mount("bind", "/data", source="/srv/data")),
    ("/srv/data/:/data/:ro", mount("bind", "/data", source="/srv/data", readonly=True)),
    ("/srv:/srv:rw,z,rshared", mount("bind", "/srv", source="/srv", propagation="rshared")),
    ("cache:/var/cache", mount("volume", "/var/cache", source="cache")),
    ("cache:/var/cache:ro,nocopy", mount("volume", "/var/cache", source="cache",
                                         readonly=True, nocopy=True)),
    ("/scratch", mount("volume", "/scratch", anonymous=True)),
])
def test_parse_volume(spec: str, record: dict[str, Any]) -> None:
    assert parse_volume(spec) == record
    MountPoint.model_validate(record)


@pytest.mark.parametrize(("spec", "message"), [
    ("relative/path:/x", 'create relative/path: "relative/path" includes invalid characters '
     'for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
     "to pass a host directory, use absolute path"),
    ("./here:/x", 'create ./here: "./here" includes invalid characters'),
    ("a:/x", 'create a: "a" includes invalid characters'),  # names have 2+ characters
    ("/x:relative", "invalid mount config for type \"bind\": invalid mount path: 'relative' "
     "mount path must be absolute"),
    ("name:relative", "invalid mount config for type \"volume\": invalid mount path: "
     "'relative' mount path must be absolute"),
    ("/x:rw", "invalid volume specification: '/x:rw'"),
    ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
    ("/a:/b:rx", "invalid mode: rx"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/", "invalid specification: destination can't be '/'"),
])
def test_parse_volume_errors(spec: str, message: str) -> None:
    with pytest.raises(MountError) as info:
        parse_volume(spec)
    assert str(info.value).startswith(message)
    assert info.value.exit_code == 125


def test_parse_mount(tmp_path: Path) -> None:
    assert parse_mount(f"type=bind,src={tmp_path},dst=/d,readonly") == mount(
        "bind", "/d", source=str(tmp_path), readonly=True)
    assert parse_mount(f"type=bind,source={tmp_path},target=/d,bind-propagation=rslave,"
                       "ro=false") == mount("bind", "/d", source=str(tmp_path),
                                            propagation="rslave")
    assert parse_mount("type=volume,source=v1,destination=/v,volume-nocopy") == mount(
        "volume", "/v", source="v1", nocopy=True)
    assert parse_mount("type=volume,target=/v") == mount("volume", "/v", anonymous=True)
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770") == mount(
        "tmpfs", "/t", options="noexec,nosuid,nodev,size=67108864,mode=1770")


@pytest.mark.parametrize(("spec", "message"), [
    ("type=bogus,target=/x", 'invalid mount config for type "bogus": mount type unknown'),
    ("target=/x", "type is required"),
    ("type=bind,target=/x", 'invalid mount config for type "bind": field Source must not be '
     "empty"),
    ("type=bind,source=rel,target=/x", "invalid mount config for type \"bind\": invalid "
     "mount path: 'rel' mount path must be absolute"),
    ("type=bind,source=/nonexistent-shellctr,target=/x", 'invalid mount config for type '
     '"bind": bind source path does not exist: /nonexistent-shellctr'),
    ("type=volume,source=v", 'invalid mount config for type "volume": field Target must not '
     "be empty"),
    ("type=tmpfs,source=x,target=/t", 'invalid mount config for type "tmpfs": field Source '
     "must not be specified"),
    ("type=volume,target=/x,color=red", "unexpected key 'color' in 'color=red'"),
    ("type=volume,target=/x,tmpfs-size=1m", 'invalid mount config for type "volume": cannot '
     "mix 'tmpfs-*' options with mount type volume"),
    ("type=tmpfs,target=/x,tmpfs-mode=999", 'invalid mount config for type "tmpfs": invalid '
     "tmpfs-mode: 999"),
])
def test_parse_mount_errors(spec: str, message: str) -> None:
    with pytest.raises(MountError, match="^" + message.replace("(", r"\(").replace(
            "[", r"\[").replace("*", r"\*")):
        parse_mount(spec)


def test_parse_tmpfs() -> None:
    record = parse_tmpfs("/run:size=64m,mode=1777,exec")
    assert record == mount("tmpfs", "/run",
                           options="noexec,nosuid,nodev,size=64m,mode=1777,exec")
    # the user's words come last and win: exec clears Docker's default noexec
    assert tmpfs_flags(record["options"]) == (volume.MS_NOSUID | volume.MS_NODEV,
                                              "size=64m,mode=1777")
    assert parse_tmpfs("/ro:ro")["readonly"] is True
    with pytest.raises(MountError, match="invalid tmpfs option 'bogus'"):
        parse_tmpfs("/t:bogus")
    with pytest.raises(MountError, match="invalid tmpfs option 'size=lots'"):
        parse_tmpfs("/t:size=lots")
    with pytest.raises(MountError, match="'tmp' mount path must be absolute"):
        parse_tmpfs("tmp")


# -- create -------------------------------------------------------------------------------
def test_create_makes_a_named_volume_then_the_container(layout: Layout,
                                                        tmp_path: Path) -> None:
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    bound = tmp_path / "new" / "dir"
    config = create(host, store, run_request("busybox", volume=[
        "data:/data", f"{bound}:/b:ro"], tmpfs=["/tmp:size=1m"], read_only=True))
    vdir = layout.volume_dir("data")
    assert [(cmd.argv, cmd.redirect) for cmd in host.cmds[:7]] == [
        (["mkdir", "--parents", "--mode=700", str(layout.volumes_dir)], None),
        (["mkdir", "--mode=700", str(vdir)], None),
        (["mkdir", "--mode=755", str(vdir / "_data")], None),
        (["cat"], str(vdir / "volume.json")),
        (["mkdir", "--mode=755", str(tmp_path / "new")], None),  # -v: made as Docker does
        (["mkdir", "--mode=755", str(bound)], None),
        (["mkdir", "--mode=700", str(layout.containers_dir / f".{CID}.creating")], None),
    ]
    record = record_of(host.cmds[3])
    assert record == {"schema_version": 1, "name": "data", "driver": "local", "created": T0,
                      "labels": {}, "options": {}, "anonymous": False}
    assert list(record) == list(Volume.model_fields)
    Volume.model_validate(record)
    assert config["mounts"] == [mount("volume", "/data", source="data"),
                                mount("bind", "/b", source=str(bound), readonly=True),
                                mount("tmpfs", "/tmp",
                                      options="noexec,nosuid,nodev,size=1m")]
    assert config["read_only"] is True
    ContainerConfig.model_validate(Store(layout, host).container_config(CID))


def test_create_names_anonymous_and_image_volumes(layout: Layout,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    image = image_model()
    install_image(layout, image)
    # an image config as the images work stores it: VOLUME /var/lib/db
    path = layout.image_file(image.id)
    import json
    record = json.loads(path.read_text())
    record["config"]["Volumes"] = {"/var/lib/db": {}, "/scratch": {}}
    path.write_text(json.dumps(record))
    names = iter(["1" * 64, "2" * 64])
    monkeypatch.setattr(volume, "new_id", lambda: next(names))
    host = RecordingHost()
    config = create(host, Store(layout, host), run_request("busybox", volume=["/scratch"]))
    assert config["mounts"] == [mount("volume", "/scratch", source="1" * 64, anonymous=True),
                                mount("volume", "/var/lib/db", source="2" * 64,
                                      anonymous=True)]
    assert sorted(os.listdir(layout.volumes_dir)) == ["1" * 64, "2" * 64]


@pytest.mark.parametrize("k", range(1, 8))
def test_create_failure_undoes_volumes_and_dirs(layout: Layout, tmp_path: Path,
                                                k: int) -> None:
    install_image(layout)
    layout.volumes_dir.mkdir(mode=0o700)
    before, host_before = snapshot(layout.root), snapshot(tmp_path / "host")
    host = RecordingHost(fail_at=k)
    with pytest.raises(HostCommandError, match="injected failure"):
        create(host, Store(layout, host), run_request(
            "busybox", volume=["data:/data", f"{tmp_path}/host/dir:/b"]))
    assert snapshot(layout.root) == before
    assert snapshot(tmp_path / "host") == host_before
    assert not (tmp_path / "host").exists()


def test_bad_flags_create_nothing(layout: Layout) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    host = RecordingHost()
    with pytest.raises(ShellctrError, match="includes invalid characters"):
        create(host, Store(layout, host), run_request("busybox", volume=["rel/x:/x"]))
    assert host.cmds == [] and snapshot(layout.root) == before


# -- rm -v ---------------------------------------------------------------------------------
def test_rm_v_removes_anonymous_volumes_no_other_container_uses(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    from shellctr.engine import create as create_module

    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    ids = iter(["a" * 64, "b" * 64, "c" * 64])
    monkeypatch.setattr(create_module, "new_id", lambda: next(ids))
    monkeypatch.setattr(volume, "new_id", lambda: "9" * 64)
    create(host, store, run_request("busybox", name="first", volume=["/anon", "named:/n"]))
    create(host, store, run_request("busybox", name="second", volumes_from=["first"]))
    remove(host, store, "first", force=False, volumes=True)
    assert sorted(os.listdir(layout.volumes_dir)) == ["9" * 64, "named"]  # second uses it
    host.reset()
    remove(host, store, "second", force=False, volumes=True)
    assert host.lines[-3:] == [*removal_lines(layout, "b" * 64, run_dir=False),
                               f"rm --recursive {layout.volume_dir('9' * 64)}"]
    assert os.listdir(layout.volumes_dir) == ["named"]  # named volumes always stay
    create(host, store, run_request("busybox", name="third", volume=["named:/n"]))
    with store.lock(), pytest.raises(Conflict, match=(
            r"^remove named: volume is in use - \[third\]")):  # the container's name
        volume.remove_volume(host, store, "named")


# -- the init spec -------------------------------------------------------------------------
def test_init_spec_mounts(layout: Layout, tmp_path: Path) -> None:
    config: Any = {"id": CID, "layers": ["l" * 64], "hostname": "h", "path": "sh",
              "args": [], "env": [], "working_dir": "/", "user": "", "tty": False,
              "read_only": True, "cgroup_parent": "",
              "mounts": [mount("bind", "/etc/hosts", source=str(tmp_path)),
                         mount("volume", "/v", source="data", nocopy=True, readonly=True),
                         mount("tmpfs", "/t", options="noexec,nosuid,nodev,size=1m,exec")]}
    spec = init_spec(Facts(), layout, config, None, False)
    assert [target for _, target in spec["etc_files"]] == ["/etc/hostname",
                                                           "/etc/resolv.conf"]  # -v wins
    assert spec["mounts"] == [
        {"target": "/etc/hosts", "readonly": False, "type": "bind", "source": str(tmp_path)},
        {"target": "/v", "readonly": True, "type": "bind",
         "source": str(layout.volume_data("data")), "seed": False},
        {"target": "/t", "readonly": False, "type": "tmpfs",
         "flags": volume.MS_NOSUID | volume.MS_NODEV, "data": "size=1m"},
    ]
    assert spec["readonly_rootfs"] is True
    assert "mounts" not in init_spec(Facts(), layout, {**config, "mounts": [], "read_only": False},
                                     None, False)


def test_init_mount_steps_as_shell_lines(tmp_path: Path) -> None:
    from shellctr.inside.rootfs import Rootfs

    rootfs = "/r"
    spec = {"rootfs": rootfs, "mounts": [
        {"target": "/data", "readonly": True, "type": "bind", "source": str(tmp_path),
         "seed": True},
        {"target": "/t", "readonly": False, "type": "tmpfs", "flags": 6, "data": "size=1m"},
    ]}
    lines = [step.shell() for step in Rootfs(spec).mount_steps()]
    assert lines == [
        "mkdir --parents /r/data",
        f'[ -n "$(ls -A {tmp_path})" ] || cp --archive --no-dereference /r/data/. {tmp_path}',
        f"mount --rbind {tmp_path} /r/data",
        "mount --options remount,bind,ro /r/data",
        "mkdir --parents /r/t",
        "mount --types tmpfs tmpfs /r/t --options nosuid,nodev,size=1m",
    ]


# -- propagation ---------------------------------------------------------------------------
# /proc/self/mountinfo of a host where / is shared, /srv a private mount, /srv/a b (a name
# with a space) a slave, and /mnt/x stacked twice (the later, private one on top)
MOUNTINFO = """\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:40 / /srv rw,relatime - tmpfs tmpfs rw
41 40 0:41 / /srv/a\\040b rw,relatime master:7 - tmpfs tmpfs rw
42 27 0:42 / /mnt/x rw,relatime shared:9 - tmpfs tmpfs rw
43 42 0:43 / /mnt/x rw,relatime - tmpfs tmpfs rw
44 27 0:44 / /srvx rw,relatime - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(("path", "found"), [
    ("/srv/data", ("/srv", [])),
    ("/srv", ("/srv", [])),
    ("/srv/a b/c", ("/srv/a b", ["master:7"])),
    ("/srv/a bc", ("/srv", [])),  # a prefix of the name is not a parent
    ("/srvx/d", ("/srvx", [])),
    ("/mnt/x/y", ("/mnt/x", [])),  # stacked: the one on top
    ("/home/u/missing/dir", ("/", ["shared:1"])),
])
def test_source_mount_is_the_topmost_mount_holding_the_path(
        path: str, found: tuple[str, list[str]]) -> None:
    assert volume.source_mount(path, MOUNTINFO) == found


@pytest.mark.parametrize(("spec", "message"), [
    ("/srv/data:/d:rslave", "^path /srv/data is mounted on /srv but it is not a shared or "
                            "slave mount \\(make it one on the host \\(mount --make-rshared "
                            "/srv\\), or drop the rslave mode\\)$"),
    ("/srvx:/d:slave", "^path /srvx is mounted on /srvx but it is not a shared or slave"),
    ("/srv/data:/d:rshared", "^bind propagation rshared is not supported: the container's "
                             "mounts never propagate to the host"),
    ("/home/u:/d:shared", "^bind propagation shared is not supported"),
])
def test_propagation_that_cannot_be_applied_is_refused_before_create(
        layout: Layout, spec: str, message: str) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    host = RecordingHost(facts=Mounted(MOUNTINFO))
    with pytest.raises(MountError, match=message):
        create(host, Store(layout, host), run_request("busybox", volume=[spec]))
    assert host.cmds == [] and snapshot(layout.root) == before


def test_slave_from_a_shared_or_slave_mount_and_private_modes_are_accepted(
        layout: Layout) -> None:
    records = [parse_volume("/home/u:/a:rslave"), parse_volume("/srv/a b/c:/b:slave"),
               parse_volume("/srv/data:/c:private"), parse_volume("/srvx:/e:rprivate")]
    volume.check_propagation(Mounted(MOUNTINFO), layout, records)
    assert volume.slave_namespace(records)
    assert not volume.slave_namespace(records[2:])


def test_a_slave_volume_is_checked_at_its_data_dir(layout: Layout,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    facts = Mounted(f"27 1 254:0 / / rw - ext4 /dev/vda rw\n"
                    f"40 27 0:40 / {layout.root} rw master:3 - tmpfs tmpfs rw\n")
    volume.check_propagation(facts, layout, [parse_volume("data:/d:rslave")])
    facts.text = "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
    with pytest.raises(MountError, match=f"^path {layout.volume_data('data')} is mounted on / "):
        volume.check_propagation(facts, layout, [parse_volume("data:/d:rslave")])


def test_init_spec_of_a_slave_bind_asks_for_a_slave_namespace(
        layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = Mounted("1 0 0:1 / / rw shared:1 - x x rw\n")
    config: Any = {"id": CID, "layers": ["l" * 64], "hostname": "h", "path": "sh", "args": [],
              "env": [], "working_dir": "/", "user": "", "tty": False, "cgroup_parent": "",
              "read_only": False,
              "mounts": [mount("bind", "/a", source=str(tmp_path), propagation="rslave"),
                         mount("volume", "/v", source="data", propagation="private"),
                         mount("bind", "/b", source=str(tmp_path))]}
    spec = init_spec(facts, layout, config, None, False)
    assert spec["slave_namespace"] is True
    assert [entry.get("propagation") for entry in spec["mounts"]] == ["rslave", "private",
                                                                      None]
    config["mounts"] = config["mounts"][1:]
    assert "slave_namespace" not in init_spec(facts, layout, config, None, False)
    config["mounts"] = [mount("bind", "/a", source=str(tmp_path), propagation="rshared")]
    with pytest.raises(MountError, match=r"^bind propagation rshared is not supported"):
        init_spec(facts, layout, config, None, False)  # a config from before it was refused


def test_init_mount_steps_in_a_slave_namespace_give_each_bind_its_mode(
        tmp_path: Path) -> None:
    from shellctr.inside.rootfs import Rootfs

    entries = [
        {"target": "/a", "readonly": True, "type": "bind", "source": str(tmp_path),
         "propagation": "rslave"},
        {"target": "/b", "readonly": False, "type": "bind", "source": str(tmp_path),
         "propagation": "slave"},
        {"target": "/c", "readonly": False, "type": "bind", "source": str(tmp_path),
         "propagation": "private"},
        {"target": "/d", "readonly": False, "type": "bind", "source": str(tmp_path)},
        {"target": "/t", "readonly": False, "type": "tmpfs", "flags": 0, "data": ""},
    ]
    spec = {"rootfs": "/r", "mounts": entries, "slave_namespace": True}
    assert [step.shell() for step in Rootfs(spec).mount_steps()] == [
        "mkdir --parents /r/a", f"mount --rbind {tmp_path} /r/a", "mount --make-rslave /r/a",
        "mount --options remount,bind,ro /r/a",
        "mkdir --parents /r/b", f"mount --rbind {tmp_path} /r/b", "mount --make-slave /r/b",
        "mkdir --parents /r/c", f"mount --rbind {tmp_path} /r/c",
        "mount --make-private /r/c",
        "mkdir --parents /r/d", f"mount --rbind {tmp_path} /r/d",
        "mount --make-rprivate /r/d",  # the default: as in a private namespace
        "mkdir --parents /r/t", "mount --types tmpfs tmpfs /r/t",
    ]
    # in a private namespace every mount is private already: no step
    assert not any("--make-" in step.shell() for step in
                   Rootfs({**spec, "slave_namespace": False}).mount_steps())
