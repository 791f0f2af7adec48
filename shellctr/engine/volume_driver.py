"""The local driver's mount options (`volume create -o type=tmpfs -o device=tmpfs
-o o=size=64m`, `-o type=none -o o=bind -o device=DIR`, any other type mount(8) knows:
`-o type=ext4 -o device=/dev/sdb1`, `-o type=nfs -o o=addr=HOST -o device=:/export`), as
Docker's: checked at create
(volume.parse_driver_options); such a volume is a mount of its own, made once at its
`_data` by the first container that starts with it (`acquire`), bound from there into
each container that uses it, and unmounted in the one teardown after the last one ends
(`release`). Who uses it is read from the containers' records under the store lock,
never counted, so a killed CLI or monitor leaves at worst a mount no live container
uses: a leftover (`stale_mounts`) that system prune, system check --repair and volume rm
unmount. Also who uses which volume at all (`users`: volume rm refuses while any does).

On `run`'s path (acquire, release): stdlib only, records as plain dicts.
"""

from __future__ import annotations

import os

from shellctr.core.cmd import path_arg
from shellctr.core.errors import CorruptRecord
from shellctr.core.facts import Facts
from shellctr.core.host import Host, Rollback
from shellctr.core.layout import Layout
from shellctr.core.store import Record, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shellctr.core.records import StateRecord


# -- mounted once, at _data, while a container uses them -----------------------------
def mounts_once(options: dict[str, str]) -> bool:
    """Whether a volume with these driver options is a mount of its own (a tmpfs, a bind
    of its device) made at its `_data` on first use, as Docker's local driver does."""
    return bool(options.get("type") and options.get("device"))


def mount_argv(layout: Layout, name: str, options: dict[str, str]) -> list[str]:
    """The host command that mounts the volume `name` at its `_data`."""
    data = path_arg(layout.volume_data(name))
    if options["type"] == "none":  # o=bind or o=rbind (checked at create)
        recursive = "rbind" in options.get("o", "").split(",")
        return ["mount", "--rbind" if recursive else "--bind", options["device"], data]
    words = [w for w in options.get("o", "").split(",") if w]
    return ["mount", "--types", options["type"],
            *(["--options", ",".join(words)] if words else []), options["device"], data]


def umount_argv(layout: Layout, name: str) -> list[str]:
    # --recursive: an rbind volume brings the mounts below its device along
    return ["umount", "--recursive", path_arg(layout.volume_data(name))]


def is_mounted(facts: Facts, layout: Layout, name: str) -> bool:
    """Whether something is mounted at the volume's `_data` (the host's mount table)."""
    return os.path.realpath(layout.volume_data(name)) in mount_points(facts.mountinfo())


def mount_points(mountinfo: str) -> set[str]:
    """The mount points of a mount table (/proc/self/mountinfo), unescaped."""
    return {unescape(fields[4]) for fields in (line.split() for line in mountinfo.splitlines())
            if len(fields) > 4}


def volume_options_of(store: Store, name: str) -> dict[str, str]:
    """A volume's driver options from its record ({} if it has none or is gone)."""
    try:
        options: dict[str, str] = store.read(store.layout.volume_record(name)).get(
            "options") or {}
    except (FileNotFoundError, NotADirectoryError, CorruptRecord):
        return {}
    return options


def once_mounted(store: Store, mounts: list[Record]) -> dict[str, dict[str, str]]:
    """The volumes among `mounts` that are mounts of their own: name -> options."""
    found: dict[str, dict[str, str]] = {}
    for record in mounts:
        if record["type"] == "volume" and record["source"] not in found:
            options = volume_options_of(store, record["source"])
            if mounts_once(options):
                found[record["source"]] = options
    return found


def live_users(store: Store, name: str, leaving: str = "") -> list[str]:
    """The containers that use the volume `name` now, read from their records (so a
    killed CLI or monitor cannot leave a count wrong): running, with PID 1 or the monitor
    alive, or being started by a live process. `leaving`: one that counts no more (the
    container torn down). The caller holds the lock."""
    found = []
    for cid in users(store, name):
        if cid == leaving:
            continue
        try:
            state = store.container_state(cid)
        except (FileNotFoundError, CorruptRecord):
            continue
        if using(store, cid, state):
            found.append(cid)
    return found


def using(store: Store, cid: str, state: StateRecord) -> bool:
    """Whether a container in this state holds its volumes: running with PID 1 or its
    monitor alive, or created with the process starting it alive, or (that process
    killed after it spawned the container, which nobody has adopted yet) with its
    monitor found on the host."""
    facts = store.host.facts
    if state["status"] == "running":
        return (facts.alive(state["pid"], state["pid_start"])
                or facts.alive(state["monitor_pid"], state["monitor_start"]))
    if state["status"] != "created" or not state.get("starter_pid"):
        return False
    if facts.alive(state["starter_pid"], state.get("starter_start", 0)):
        return True
    # its processes name its run dir (as lifecycle.unrecorded finds them to adopt it)
    return bool(facts.processes_mentioning(os.fspath(store.layout.container_run_dir(cid))
                                           + "/"))


def acquire(host: Host, store: Store, cid: str, mounts: list[Record],
            rollback: Rollback) -> None:
    """At start, before the container's namespaces exist: mount each volume of its own
    that is not mounted yet (the first user mounts it). Its undo releases it again
    unless another container uses it meanwhile."""
    wanted = once_mounted(store, mounts)  # a volume's options never change: read unlocked
    if not wanted:
        return
    with store.lock():
        # first: a failed mount of the second undoes the first (release probes each)
        rollback.push("mount volumes", lambda: release(host, store, mounts, leaving=cid))
        for name, options in wanted.items():
            if not is_mounted(host.facts, store.layout, name):
                host.step(f"mount volume {name}")
                host.run(mount_argv(store.layout, name, options))


def release(host: Host, store: Store, mounts: list[Record], leaving: str = "") -> None:
    """The one teardown of volumes of their own: each one among `mounts` that no live
    container uses (but `leaving`) is unmounted; its data is gone then, as Docker's.
    Probes first: safe to call again. Takes the lock (re-entrant)."""
    with store.lock():
        for name in once_mounted(store, mounts):
            unmount_unused(host, store, name, leaving)


def unmount_unused(host: Host, store: Store, name: str, leaving: str = "") -> bool:
    """Unmount the volume `name` if it is mounted and no live container uses it; whether
    it is still mounted after. The caller holds the lock."""
    if not is_mounted(host.facts, store.layout, name):
        return False
    if live_users(store, name, leaving):
        return True
    host.step(f"unmount volume {name}")
    host.run(umount_argv(store.layout, name))
    return False


def stale_mounts(store: Store) -> list[str]:
    """Volumes mounted at their `_data` that no live container uses (left by a killed
    CLI or monitor; system prune, system check collect them). The caller holds the lock."""
    facts, layout = store.host.facts, store.layout
    points = mount_points(facts.mountinfo())
    return [name for name in facts.listdir(layout.volumes_dir)
            if not name.startswith(".") and os.path.realpath(layout.volume_data(name)) in points
            and not live_users(store, name)]


def users(store: Store, name: str) -> list[str]:
    """Ids of the containers whose mounts use the volume `name`."""
    return volume_users(store).get(name, [])


def volume_users(store: Store) -> dict[str, list[str]]:
    """Each volume in use: the ids of the containers whose mounts use it, sorted."""
    found: dict[str, list[str]] = {}
    for cid in store.container_ids():
        try:
            mounts = store.container_config(cid)["mounts"]
        except (FileNotFoundError, CorruptRecord):  # removed meanwhile; mounts unknown
            continue
        for name in dict.fromkeys(m["source"] for m in mounts if m["type"] == "volume"):
            found.setdefault(name, []).append(cid)
    return {name: sorted(cids) for name, cids in found.items()}


def unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are octal escapes."""
    import re

    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)
