"""Volumes: parsing -v / --mount / --tmpfs (Docker's errors), records, create's exact
steps and their undo, rm -v, and the init spec's mounts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shellctr import volume
from shellctr.container import RunOptions, create, init_spec
from shellctr.errors import Conflict, HostCommandError, ShellctrError
from shellctr.layout import Layout
from shellctr.lifecycle import remove
from shellctr.state import ContainerConfig, MountPoint, Volume
from shellctr.store import Store
from shellctr.volume import MountError, parse_mount, parse_tmpfs, parse_volume, tmpfs_flags

from .helpers import CID, T0, RecordingHost, image_model, install_image, record_of, snapshot

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
    config = create(host, store, RunOptions("busybox", volumes=[
        "data:/data", f"{bound}:/b:ro"], tmpfs=["/tmp:size=1m"], read_only=True))
    vdir = layout.volume_dir("data")
    assert [(cmd.argv, cmd.redirect) for cmd in host.cmds[:7]] == [
        (["mkdir", "--parents", "--mode=700", str(layout.volumes_dir)], None),
        (["mkdir", "--mode=700", str(vdir)], None),
        (["mkdir", "--mode=755", str(vdir / "_data")], None),
        (["cat"], str(vdir / "volume.json")),
        (["mkdir", "--mode=755", str(tmp_path / "new")], None),  # -v: made as Docker does
        (["mkdir", "--mode=755", str(bound)], None),
        (["mkdir", "--mode=700", str(layout.container_dir(CID))], None),
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
    ContainerConfig.model_validate(config)


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
    config = create(host, Store(layout, host), RunOptions("busybox", volumes=["/scratch"]))
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
        create(host, Store(layout, host), RunOptions(
            "busybox", volumes=["data:/data", f"{tmp_path}/host/dir:/b"]))
    assert snapshot(layout.root) == before
    assert snapshot(tmp_path / "host") == host_before
    assert not (tmp_path / "host").exists()


def test_bad_flags_create_nothing(layout: Layout) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    host = RecordingHost()
    with pytest.raises(ShellctrError, match="includes invalid characters"):
        create(host, Store(layout, host), RunOptions("busybox", volumes=["rel/x:/x"]))
    assert host.cmds == [] and snapshot(layout.root) == before


# -- rm -v ---------------------------------------------------------------------------------
def test_rm_v_removes_anonymous_volumes_no_other_container_uses(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    from shellctr import container

    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    ids = iter(["a" * 64, "b" * 64, "c" * 64])
    monkeypatch.setattr(container, "new_id", lambda: next(ids))
    monkeypatch.setattr(volume, "new_id", lambda: "9" * 64)
    create(host, store, RunOptions("busybox", name="first", volumes=["/anon", "named:/n"]))
    create(host, store, RunOptions("busybox", name="second", volumes_from=["first"]))
    remove(host, store, "first", force=False, volumes=True)
    assert sorted(os.listdir(layout.volumes_dir)) == ["9" * 64, "named"]  # second uses it
    host.reset()
    remove(host, store, "second", force=False, volumes=True)
    assert host.lines[-2:] == [f"rm --recursive {layout.container_dir('b' * 64)}",
                               f"rm --recursive {layout.volume_dir('9' * 64)}"]
    assert os.listdir(layout.volumes_dir) == ["named"]  # named volumes always stay
    create(host, store, RunOptions("busybox", name="third", volumes=["named:/n"]))
    with store.lock(), pytest.raises(Conflict, match=(
            f"^remove named: volume is in use - \\[{'c' * 64}\\]")):
        volume.remove_volume(host, store, "named")


# -- the init spec -------------------------------------------------------------------------
def test_init_spec_mounts(layout: Layout, tmp_path: Path) -> None:
    config = {"id": CID, "layers": ["l" * 64], "hostname": "h", "path": "sh", "args": [],
              "env": [], "working_dir": "/", "user": "", "tty": False, "read_only": True,
              "mounts": [mount("bind", "/etc/hosts", source=str(tmp_path)),
                         mount("volume", "/v", source="data", nocopy=True, readonly=True),
                         mount("tmpfs", "/t", options="noexec,nosuid,nodev,size=1m,exec")]}
    spec = init_spec(layout, config, None, False)
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
    assert "mounts" not in init_spec(layout, {**config, "mounts": [], "read_only": False},
                                     None, False)


def test_init_mount_steps_as_shell_lines(tmp_path: Path) -> None:
    from shellctr.init import Init

    rootfs = "/r"
    spec = {"rootfs": rootfs, "mounts": [
        {"target": "/data", "readonly": True, "type": "bind", "source": str(tmp_path),
         "seed": True},
        {"target": "/t", "readonly": False, "type": "tmpfs", "flags": 6, "data": "size=1m"},
    ]}
    lines = [step.shell() for step in Init(spec).mount_steps()]
    assert lines == [
        "mkdir --parents /r/data",
        f'[ -n "$(ls -A {tmp_path})" ] || cp --archive --no-dereference /r/data/. {tmp_path}',
        f"mount --rbind {tmp_path} /r/data",
        "mount --options remount,bind,ro /r/data",
        "mkdir --parents /r/t",
        "mount --types tmpfs tmpfs /r/t --options nosuid,nodev,size=1m",
    ]
