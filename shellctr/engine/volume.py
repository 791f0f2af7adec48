"""Volumes and bind mounts: `-v`, `--mount`, `--tmpfs`, `--volumes-from`, named volumes.

A container's mounts are frozen in its config as records shaped like
state.MountPoint; init.py makes them inside the container's mount namespace (see
rootfs.Rootfs.mount_steps), with each target resolved inside the rootfs (inroot.py).
Named and anonymous volumes are directories `ROOT/volumes/<name>/_data` with a record
`volume.json` (state.Volume) next to them, created under the store lock on first use.

This module is on `run`'s path: stdlib only, records as plain dicts (the unit tests
hold them to the pydantic models).
"""

from __future__ import annotations

import os

from shellctr.core.cmd import path_arg
from shellctr.core.errors import Conflict, CorruptRecord, NotFound, ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import new_id
from shellctr.core.layout import Layout
from shellctr.core.store import SCHEMA_VERSION, VOLUME_SHAPE, Record, Store, now_iso
from shellctr.engine import volume_driver

# who uses a volume is the driver's use count too (re-exported: volume.users, as before)
from shellctr.engine.volume_driver import unescape
from shellctr.engine.volume_driver import users as users
from shellctr.engine.volume_driver import volume_users as volume_users

# re and pathlib are imported by the functions that parse mounts and make volumes:
# `volume ls` and `inspect` only read records
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

VOLUME_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]+"
FS_TYPE = r"[a-z0-9][a-z0-9_.-]*"  # ext4, nfs4, fuse.sshfs
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # Docker >= 23 marks anonymous volumes so
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
SLAVE_MODES = ("slave", "rslave")  # host mounts under SRC reach the container
SHARED_MODES = ("shared", "rshared")  # ... and the container's under DST the host: refused
# mount(2) flags of the tmpfs words (set, clear)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
TMPFS_FLAGS = {"ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0),
               "suid": (0, MS_NOSUID), "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
               "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC)}
TMPFS_DATA = {"size": r"\d+[kKmMgG%]?", "mode": r"[0-7]{1,4}", "uid": r"\d+", "gid": r"\d+",
              "nr_inodes": r"\d+[kKmMgG%]?", "nr_blocks": r"\d+[kKmMgG%]?"}
TMPFS_DEFAULT = ["noexec", "nosuid", "nodev"]  # Docker's, before the user's options


class MountError(ShellctrError):
    """A malformed -v / --mount / --tmpfs: Docker's wording, nothing created."""


def mount_record(kind: str, target: str, source: str = "", readonly: bool = False,
                 options: str = "", propagation: str = "", nocopy: bool = False,
                 anonymous: bool = False) -> Record:
    """A mount as the container's config keeps it (shaped like state.MountPoint)."""
    return {"type": kind, "source": source, "target": target, "readonly": readonly,
            "options": options, "propagation": propagation, "nocopy": nocopy,
            "anonymous": anonymous}


def config_error(kind: str, reason: str) -> MountError:
    return MountError(f'invalid mount config for type "{kind}": {reason}')


def check_target(kind: str, target: str) -> str:
    if not target:
        raise config_error(kind, "field Target must not be empty")
    if not target.startswith("/"):
        raise config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    clean = os.path.normpath(target).replace("//", "/")
    if clean == "/":
        raise MountError("invalid specification: destination can't be '/'")
    if kernel_target(clean):
        raise MountError(f"invalid mount destination {clean}: /proc and /sys are the "
                         "kernel's, and shellctr mounts them itself",
                         "mount the volume elsewhere")
    return clean


def kernel_target(path: str) -> bool:
    """A destination on or inside /proc or /sys, which the confinement reads its kernel
    facts from and masks (runc refuses them too; issue 13, defect 2)."""
    from shellctr.inside.mounts import kernel_path

    return kernel_path(path)


def check_volume_name(name: str) -> str:
    import re


    if not re.fullmatch(VOLUME_NAME, name):
        raise MountError(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")
    return name


# -- -v -------------------------------------------------------------------------------
def parse_volume(spec: str) -> Record:
    """`-v [SOURCE:]TARGET[:MODE]`: SOURCE absolute is a bind, else a volume name."""
    parts = spec.split(":")
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if parts[1] and valid_mode(parts[1]):  # `/foo:rw`: a mode but no source
            raise MountError(f"invalid volume specification: '{spec}'")
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise MountError(f"invalid volume specification: '{spec}'")
    if not target or (len(parts) > 1 and not source):  # `-v :/x`
        raise MountError(f"invalid volume specification: '{spec}'")
    if not valid_mode(mode):
        raise MountError(f"invalid mode: {mode}")
    words = mode.split(",") if mode else []
    propagation = next((word for word in words if word in PROPAGATIONS), "")
    kind = "bind" if source.startswith("/") else "volume"
    target = check_target(kind, target)
    if kind == "bind":
        source = os.path.normpath(source)
    elif source:
        check_volume_name(source)
    return mount_record(kind, target, source, readonly="ro" in words, propagation=propagation,
                        nocopy="nocopy" in words, anonymous=not source)


def valid_mode(mode: str) -> bool:
    """Docker's modes: at most one of rw/ro, one propagation, z/Z, nocopy; comma-joined."""
    if not mode:
        return True
    words = mode.split(",")
    known = ("rw", "ro", "z", "Z", "nocopy", *PROPAGATIONS)
    return (all(word in known for word in words) and len(set(words)) == len(words)
            and sum(word in ("rw", "ro") for word in words) <= 1
            and sum(word in PROPAGATIONS for word in words) <= 1)


# -- --mount --------------------------------------------------------------------------
def parse_mount(spec: str) -> Record:
    """`--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,...]`."""
    import re


    fields: dict[str, str] = {}
    flags: set[str] = set()
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro", "volume-nocopy") and (not sep or value.lower() in (
                "1", "true")):
            flags.add("readonly" if key == "ro" else key)
            continue
        if key in ("readonly", "ro", "volume-nocopy") and value.lower() in ("0", "false"):
            continue
        if not sep or key not in ("type", "source", "src", "target", "destination", "dst",
                                  "bind-propagation", "tmpfs-size", "tmpfs-mode",
                                  "volume-driver", "consistency", "readonly", "ro",
                                  "volume-nocopy"):
            raise MountError(f"unexpected key '{key}' in '{field}'")
        if key in ("readonly", "ro", "volume-nocopy"):
            raise MountError(f"invalid value for {key}: {value}")
        fields[{"src": "source", "destination": "target", "dst": "target"}.get(key, key)] = value
    kind = fields.get("type", "").lower()
    if not kind:
        raise MountError("type is required")
    if kind not in ("bind", "volume", "tmpfs"):
        raise config_error(kind, "mount type unknown")
    target = check_target(kind, fields.get("target", ""))
    source = fields.get("source", "")
    readonly = "readonly" in flags
    if fields.get("volume-driver", "local") != "local":
        raise MountError(f"volume driver {fields['volume-driver']} is not supported",
                         "only the local driver is")
    propagation = fields.get("bind-propagation", "")
    if propagation and (kind != "bind" or propagation not in PROPAGATIONS):
        raise config_error(kind, f"invalid propagation mode: {propagation}")
    if kind != "tmpfs" and ({"tmpfs-size", "tmpfs-mode"} & fields.keys()):
        raise config_error(kind, "cannot mix 'tmpfs-*' options with mount type " + kind)
    if kind == "bind":
        if not source:
            raise config_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise config_error(kind, f"invalid mount path: '{source}' mount path must be "
                               "absolute")
        if not os.path.exists(source):
            raise config_error(kind, f"bind source path does not exist: {source}")
        return mount_record(kind, target, os.path.normpath(source), readonly,
                            propagation=propagation)
    if kind == "volume":
        if source:
            check_volume_name(source)
        return mount_record(kind, target, source, readonly, nocopy="volume-nocopy" in flags,
                            anonymous=not source)
    if source:
        raise config_error(kind, "field Source must not be specified")
    words = []
    if "tmpfs-size" in fields:
        from shellctr.parts.cgroups import parse_size

        words.append(f"size={parse_size(fields['tmpfs-size'])}")
    if "tmpfs-mode" in fields:
        mode = fields["tmpfs-mode"].removeprefix("0o")
        if not re.fullmatch(r"[0-7]{1,4}", mode):
            raise config_error(kind, f"invalid tmpfs-mode: {fields['tmpfs-mode']}")
        words.append(f"mode={mode}")
    return mount_record(kind, target, "", readonly, tmpfs_options(words, readonly))


# -- --tmpfs --------------------------------------------------------------------------
def parse_tmpfs(spec: str) -> Record:
    """`--tmpfs /path[:opt,opt...]` (mount(8)'s tmpfs options: size=64m,mode=1777,...)."""
    target, _, opts = spec.partition(":")
    target = check_target("tmpfs", target)
    words = [word for word in opts.split(",") if word]
    options = tmpfs_options(words)
    return mount_record("tmpfs", target, "", readonly=tmpfs_flags(options)[0] & MS_RDONLY != 0,
                        options=options)


def tmpfs_options(words: list[str], readonly: bool = False) -> str:
    """Docker's defaults then the user's words, checked: the options as mount(8) takes."""
    import re


    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            if key not in TMPFS_DATA or not re.fullmatch(TMPFS_DATA[key], value):
                raise MountError(f"invalid tmpfs option {word!r}",
                                 "use size=, mode=, uid=, gid=, nr_inodes= or a flag such "
                                 "as ro, exec")
        elif word not in TMPFS_FLAGS:
            raise MountError(f"invalid tmpfs option {word!r}",
                             "use size=, mode=, uid=, gid=, nr_inodes= or a flag such as ro, "
                             "exec")
    return ",".join([*(["ro"] if readonly else []), *TMPFS_DEFAULT, *words])


def tmpfs_flags(options: str) -> tuple[int, str]:
    """(mount(2) flags, data) of tmpfs options: the last word of a pair wins."""
    flags, data = 0, []
    for word in options.split(","):
        if word in TMPFS_FLAGS:
            add, remove = TMPFS_FLAGS[word]
            flags = (flags | add) & ~remove
        elif word:
            data.append(word)
    return flags, ",".join(data)


# -- a container's mounts -------------------------------------------------------------
def collect(store: Store, volumes: list[str], mounts: list[str], tmpfs: list[str],
            volumes_from: list[str], image_config: Record) -> list[Record]:
    """Every mount of a new container, checked (nothing is created here), sorted so a
    parent directory is mounted before what is mounted inside it."""
    found: list[Record] = []
    for parse, items in ((parse_volume, volumes), (parse_mount, mounts), (parse_tmpfs, tmpfs)):
        for item in items:
            record = parse(item)
            if any(other["target"] == record["target"] for other in found):
                raise MountError(f"Duplicate mount point: {record['target']}")
            found.append(record)
    taken = {record["target"] for record in found}
    for item in volumes_from:
        for record in mounts_from(store, item):
            if record["target"] not in taken:  # the container's own flags win
                taken.add(record["target"])
                found.append(record)
    for target in image_volumes(image_config):
        if target not in taken:
            taken.add(target)
            found.append(mount_record("volume", target, anonymous=True))
    return sorted(found, key=lambda record: record["target"].count("/"))


def mounts_from(store: Store, item: str) -> list[Record]:
    """`--volumes-from CTR[:ro|rw]`: that container's volumes and binds (not tmpfs)."""
    from shellctr.core.ids import find

    ref, _, mode = item.partition(":")
    if mode not in ("", "ro", "rw"):
        raise MountError(f"invalid mode: {mode}")
    cid = find(ref, store.container_names(), "container")
    copied = []
    for record in store.container_config(cid)["mounts"]:
        if record["type"] != "tmpfs":
            copied.append({**record, "readonly": record["readonly"] if not mode
                           else mode == "ro"})
    return copied


def image_volumes(image_config: Record) -> list[str]:
    """The image's declared VOLUMEs (OCI config `Volumes`: {path: {}}), read as stored."""
    declared = image_config.get("Volumes") or image_config.get("volumes") or {}
    return sorted(os.path.normpath(path) for path in declared if str(path).startswith("/"))


def prepare(host: Host, store: Store, mounts: list[Record], rollback: Rollback) -> None:
    """Under the store lock, at create: name anonymous volumes, create the volumes that
    do not exist yet and the missing host directories of `-v` binds (as Docker does)."""
    for record in mounts:
        if record["type"] == "volume":
            if not record["source"]:
                record["source"] = new_id()
            if not store.layout.volume_record(record["source"]).exists():
                create_volume(host, store, record["source"], {}, rollback,
                              anonymous=record["anonymous"])
        elif record["type"] == "bind" and not os.path.exists(record["source"]):
            make_host_dirs(host, record["source"], rollback)


def make_host_dirs(host: Host, path: str, rollback: Rollback) -> None:
    """`mkdir -p` one component at a time, each undone on failure."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    from pathlib import Path

    for directory in reversed(missing):
        host.mkdir(Path(directory), mode=0o755, rollback=rollback)


def spec_mounts(layout: Layout, mounts: list[Record],
                volume_options: Callable[[str], dict[str, str]] | None = None,
                ) -> list[dict[str, object]]:
    """The mounts as init.py makes them (see rootfs.Rootfs.mount_steps). A volume is a
    bind of its `_data`, also one with driver options (`volume_options`: a volume's
    `volume create -o`), a tmpfs or a bind of its device that volume_driver.acquire
    has mounted there once for all the containers that use it; that one is not seeded
    with the image's files (the seed would take the target's owner and mode over the
    o= uid=, mode=, and write into the bind's device)."""
    entries: list[dict[str, object]] = []
    for record in mounts:
        entry: dict[str, object] = {"target": record["target"], "readonly": record["readonly"]}
        if record["type"] == "tmpfs":
            flags, data = tmpfs_flags(record["options"])
            entry.update(type="tmpfs", flags=flags, data=data)
        elif record["type"] == "volume":
            own = volume_options is not None and volume_driver.mounts_once(
                volume_options(record["source"]))
            entry.update(type="bind", source=path_arg(layout.volume_data(record["source"])),
                         seed=not record["nocopy"] and not own)
        else:
            entry.update(type="bind", source=record["source"])
        if record["type"] != "tmpfs" and record.get("propagation"):
            entry["propagation"] = record["propagation"]
        entries.append(entry)
    return entries


# -- propagation ------------------------------------------------------------------------
def slave_namespace(mounts: list[Record]) -> bool:
    """Whether the container's mount namespace must be a slave of the host's (a bind
    asks for [r]slave): else it is private, and no host mount event reaches it."""
    return any(record.get("propagation") in SLAVE_MODES for record in mounts)


def check_propagation(facts: Facts, layout: Layout, mounts: list[Record]) -> None:
    """Refuse what cannot be applied, before anything is created: (r)shared at all, and
    (r)slave from a source whose host mount is neither shared nor slave (Docker's check
    and wording: such a mount sends no events to anyone)."""
    for record in mounts:
        mode = record.get("propagation", "")
        if mode in SHARED_MODES:
            raise MountError(
                f"bind propagation {mode} is not supported: the container's mounts "
                "never propagate to the host", "use rslave to see the host's mounts under "
                "the source, or drop the mode")
        if mode in SLAVE_MODES:
            source = record["source"]
            if record["type"] == "volume":  # named: an anonymous one takes no mode
                source = path_arg(layout.volume_data(source))
            mountpoint, optional = source_mount(source, facts.mountinfo())
            if not any(field.startswith(("shared:", "master:")) for field in optional):
                raise MountError(
                    f"path {source} is mounted on {mountpoint} but it is not a shared or "
                    "slave mount", f"make it one on the host (mount --make-rshared "
                    f"{mountpoint}), or drop the {mode} mode")


def source_mount(path: str, mountinfo: str) -> tuple[str, list[str]]:
    """The mount point holding `path` on the host (symlinks resolved, the topmost of
    stacked mounts) and its optional fields (`shared:N`, `master:N`, ...)."""
    real = os.path.realpath(path)
    best: tuple[str, list[str]] = ("/", [])
    found = False
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        mountpoint = unescape(fields[4])
        optional = fields[6:fields.index("-", 6)]
        inside = (real == mountpoint or mountpoint == "/"
                  or real.startswith(mountpoint.rstrip("/") + "/"))
        # later lines are mounted later: on the same point, the one on top
        if inside and (not found or len(mountpoint) >= len(best[0])):
            best, found = (mountpoint, optional), True
    return best


# -- volume records -------------------------------------------------------------------
def volume_record(name: str, labels: dict[str, str], anonymous: bool,
                  options: dict[str, str] | None = None) -> Record:
    """A volume's record (shaped like state.Volume)."""
    return {"schema_version": SCHEMA_VERSION, "name": name, "driver": "local",
            "created": now_iso(), "labels": labels, "options": options or {},
            "anonymous": anonymous}


def parse_driver_options(facts: Facts, items: list[str]) -> dict[str, str]:
    """`volume create -o KEY=VALUE`: the local driver's mount options, as Docker's:
    `type=tmpfs device=tmpfs [o=size=64m,...]`, or `type=none o=bind device=/path`.
    Checked here, so that a bad one is refused before anything is made (Docker finds it
    only at the first mount)."""
    import re

    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in ("type", "device", "o"):
            raise ShellctrError(f"invalid option {item!r} for the local driver",
                                "use type=, device= and o=")
        options[key] = value
    if not options:
        return options
    for key in ("type", "device"):  # Docker's mandatory pairs: each of the three needs both
        if not options.get(key):
            raise ShellctrError(f'missing required option: "{key}"',
                                "give -o type= and -o device= together")
    kind, words = options["type"], [w for w in options.get("o", "").split(",") if w]
    if options["device"].startswith("-"):  # never read as one of mount(8)'s options
        raise ShellctrError(f"invalid device {options['device']!r}",
                            "give a device path, a host:/export or a name such as tmpfs")
    if kind == "tmpfs":
        tmpfs_options(words)  # checked now
    elif kind == "none" and ("bind" in words or "rbind" in words):
        device = options["device"]
        if not device.startswith("/") or not facts.is_dir(device):
            raise ShellctrError(f"invalid bind device {device!r}",
                                "give device=/an/existing/directory")
        if set(words) - {"bind", "rbind"}:
            raise ShellctrError(f"invalid bind options {options['o']!r}", "use o=bind")
    elif kind == "none":
        raise ShellctrError("volume type 'none' needs o=bind",
                            "use type=none o=bind device=/path")
    elif not re.fullmatch(FS_TYPE, kind) or not facts.filesystem_known(kind):
        # any other type is mount(8)'s, as Docker's driver passes it to mount(2): ext4 of
        # a device or an image (o=loop), nfs with o=addr=..., ...
        raise ShellctrError(f"unknown filesystem type {kind!r}", "give a type this host "
                            "mounts (/proc/filesystems, or one with a mount.TYPE helper)")
    return options


def create_volume(host: Host, store: Store, name: str, labels: dict[str, str],
                  rollback: Rollback, anonymous: bool = False,
                  options: dict[str, str] | None = None) -> Record:
    """The volume's directory, its empty `_data` and its record (caller holds the lock)."""
    layout = store.layout
    host.ensure_dir(layout.volumes_dir, mode=0o700)
    host.step(f"create volume {name}")
    host.mkdir(layout.volume_dir(name), mode=0o700, rollback=rollback)
    host.mkdir(layout.volume_data(name), mode=0o755)
    record = volume_record(name, labels, anonymous, options)
    store.write(layout.volume_record(name), record)
    volume_event(store, name, "create")
    return record


def volume_event(store: Store, name: str, action: str) -> None:
    """An event of the journal (engine/events.py) about a volume."""
    from shellctr.engine import events

    events.emit(store, "volume", action, name, {"driver": "local"})


def read_volume(store: Store, name: str) -> Record:
    try:
        return store.read(store.layout.volume_record_at(name), VOLUME_SHAPE)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise NotFound(f"get {name}: no such volume") from err


def remove_volume(host: Host, store: Store, name: str) -> None:
    """`volume rm`: refused while a container uses it (caller holds the lock); one whose
    record is corrupt goes too."""
    try:
        read_volume(store, name)
    except CorruptRecord:
        pass
    holders = users(store, name)
    if holders:
        names = store.container_names()
        shown = ", ".join(names.get(cid, cid[:12]) for cid in holders)  # people's names
        raise Conflict(f"remove {name}: volume is in use - [{shown}]",
                       "remove those containers first")
    # one a killed run left mounted: never rm through it
    volume_driver.unmount_unused(host, store, name)
    host.step(f"remove volume {name}")
    host.remove_tree(store.layout.volume_dir(name))
    volume_event(store, name, "destroy")


def remove_anonymous(host: Host, store: Store, mounts: list[Record]) -> None:
    """`rm -v` / `--rm`, after the container is gone: its anonymous volumes that no
    other container uses (named volumes always stay)."""
    with store.lock():
        for record in mounts:
            name = record["source"]
            if record["type"] != "volume" or not record["anonymous"]:
                continue
            try:  # the volume's own record decides: a named volume always stays
                if not store.read(store.layout.volume_record(name)).get("anonymous"):
                    continue
            except (FileNotFoundError, CorruptRecord):  # removed already; kept to be seen
                continue
            if users(store, name):
                continue
            host.step(f"remove volume {name}")
            host.remove_tree(store.layout.volume_dir(name))
            volume_event(store, name, "destroy")
