"""The whole store: what crashes and kills leave behind, found and collected
(`system prune`, `system check [--repair]`), and `system reset`.

A shellctr process killed at any point leaves at most: a container being made
(containers/.ID.creating) or removed (its tombstone, containers/.ID.removing), a record's
temporary file (.NAME.PID.tmp), a partial layer or blob (.DIGEST.PID.partial), a scratch
dir of `save` (tmp/save-PID); and, from versions before the tombstones, a container
directory without its config.json. None of them is listed anywhere; each is found here by
its name, and those of a live process are its work in progress, left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from shellctr.core.errors import ShellctrError
from shellctr.core.facts import process_start
from shellctr.core.host import Host
from shellctr.core.store import Store

WORK_PID = re.compile(r"[.-](\d+)(?:\.tmp|\.partial)?$")  # .NAME.PID.tmp, save-PID, ...


def in_progress(name: str) -> bool:
    """Whether `name` is the temporary file of a process that still runs."""
    match = WORK_PID.search(name)
    return match is not None and process_start(int(match[1])) is not None


def leftovers(store: Store) -> list[tuple[str, Path]]:
    """(what, path) of everything a killed shellctr left under the root and run root.
    The caller holds the lock (a create or rm under way holds it too)."""
    layout, facts = store.layout, store.host.facts
    found: list[tuple[str, Path]] = []
    for name in facts.listdir(layout.containers_dir):
        path = layout.containers_dir / name
        if name.endswith(".creating"):
            found.append(("half-made container", path))
        elif name.endswith(".removing"):
            found.append(("half-removed container (tombstone)", path))
        elif name.endswith(".tmp"):
            if not in_progress(name):
                found.append(("temporary file", path))
        elif facts.is_dir(path) and not facts.exists(layout.container_config(name)):
            found.append(("container directory without config.json", path))
    for name in facts.listdir(layout.networks_dir):
        if name.startswith(".") and name.endswith(".removing"):
            found.append(("half-removed network", layout.networks_dir / name))
    from shellctr.engine.volume_driver import stale_mounts

    for name in stale_mounts(store):  # first: the tree of a half-made one is removed after
        found.append(("volume mount of no running container", layout.volume_data(name)))
    for name in facts.listdir(layout.volumes_dir):
        if not name.startswith(".") and not facts.exists(layout.volume_record(name)):
            found.append(("half-made volume", layout.volume_dir(name)))
    for name in facts.listdir(layout.runroot / "containers"):
        if not facts.is_dir(layout.container_dir(name)):
            found.append(("run directory of no container", layout.container_run_dir(name)))
    record_dirs = [layout.images_dir, layout.networks_dir, layout.runroot / "networks",
                   layout.volumes_dir, *(layout.volume_dir(name) for name in facts.listdir(
                       layout.volumes_dir)), *(layout.container_dir(cid)
                                               for cid in store.container_ids())]
    for directory in record_dirs:
        for name in facts.listdir(directory):
            if name.startswith(".") and name.endswith(".tmp") and not in_progress(name):
                found.append(("temporary file", directory / name))
    for directory in (layout.blobs_dir, layout.layers_dir):
        for name in facts.listdir(directory):
            if name.startswith(".") and name.endswith(".partial") and not in_progress(name):
                found.append(("partial layer", directory / name))
    for name in facts.listdir(layout.tmp_dir):
        if not in_progress(name):
            found.append(("scratch file", layout.tmp_dir / name))
    return found


def collect(host: Host, store: Store) -> list[Path]:
    """Remove every leftover (system prune, system check --repair); what went."""
    removed = []
    with store.lock():
        for what, path in leftovers(store):
            if what.startswith("volume mount"):
                from shellctr.engine.volume_driver import umount_argv

                host.step(f"unmount volume {path.parent.name} (no running container uses it)")
                host.run(umount_argv(store.layout, path.parent.name))
                removed.append(path.parent)  # named by the volume
                continue
            host.step(f"remove {what} {path.name}")
            if what == "half-removed network":
                from shellctr.engine.network import finish_retired

                finish_retired(host, store, path)
            elif what.startswith("half-removed"):
                store.remove_tombstone(path.name[1:-len(".removing")])
            elif what.startswith("container directory"):
                host.remove_tree(store.layout.container_run_dir(path.name))
                host.remove_tree(path)
            elif host.facts.is_dir(path):
                host.remove_tree(path)
            else:
                host.remove_file(path)
            removed.append(path)
    return removed


# -- system check [--repair] ----------------------------------------------------------------
def check(host: Host, store: Store, repair: bool) -> list[str]:
    """`system check`: every inconsistency of the store and of the host objects its
    records name, one line each; with `repair`, what is safe is repaired (leftovers
    collected, ended containers recorded and torn down, missing bridges brought up).
    Corrupt records are reported: `rm -f` / `rmi -f` / `network rm` remove them."""
    from shellctr.core.errors import CorruptRecord
    from shellctr.core.state import images
    from shellctr.engine import network
    from shellctr.engine.lifecycle import reconcile
    from shellctr.engine.volume import read_volume

    found: list[str] = []
    with store.lock():
        for what, path in leftovers(store):
            found.append(f"{what}: {path}")
        if repair:
            collect(host, store)
        for cid in store.container_ids():
            try:
                state = store.container_state(cid)
                store.container_config(cid)
            except CorruptRecord as err:
                found.append(f"container {cid[:12]}: {err.message} (rm -f {cid[:12]})")
                continue
            except FileNotFoundError:
                continue
            if state["status"] == "running" and not host.facts.alive(
                    state["pid"], state["pid_start"]):
                found.append(f"container {cid[:12]}: recorded running, its PID 1 is gone")
                if repair:
                    reconcile(store, cid)
        corrupt: list[CorruptRecord] = []
        images(store, corrupt)
        found += [f"image: {err.message} (rmi -f)" for err in corrupt]
        corrupt = []
        records = network.records(store, corrupt)
        found += [f"network: {err.message} (network rm)" for err in corrupt]
        present = host.facts.links()
        for record in records:
            if record["bridge"] not in present:
                found.append(f"network {record['name']}: its bridge {record['bridge']} "
                             "is missing")
                if repair:
                    network.bring_up(host, store, record)
        for name in host.facts.listdir(store.layout.volumes_dir):
            try:
                read_volume(store, name)
            except CorruptRecord as err:
                found.append(f"volume {name}: {err.message} (volume rm {name})")
            except ShellctrError:  # a half-made one: a leftover, listed above
                continue
    return found


# -- system reset ---------------------------------------------------------------------------
def reset(host: Host, store: Store) -> None:
    """`system reset`: everything shellctr owns for this root goes (containers and their
    processes, cgroups, endpoints; networks with their bridges, rules and resolvers;
    volumes; images and layers), then the root and run root themselves."""
    from shellctr.core.errors import CorruptRecord
    from shellctr.engine import network
    from shellctr.engine.containers import remove, remove_broken
    from shellctr.engine.image import remove_corrupt_image, remove_image
    from shellctr.engine.volume_driver import unmount_unused

    for cid in store.container_ids():
        try:
            remove(host, store, cid, force=True, volumes=True)
        except CorruptRecord:
            remove_broken(host, store, cid)
        except FileNotFoundError:  # removed meanwhile
            continue
    collect(host, store)
    network.prune(host, store, include_default=True)
    with store.lock():
        for name in host.facts.listdir(store.layout.volumes_dir):
            unmount_unused(host, store, name)  # never rm through a tmpfs or a bind device
            host.step(f"remove volume {name}")
            host.remove_tree(store.layout.volume_dir(name))
        corrupt: list[CorruptRecord] = []
        for record in store.image_records(corrupt):
            remove_image(host, store, record["id"], True, {})
        for err in corrupt:
            remove_corrupt_image(host, store, Path(str(err.path)).stem, True)
    host.step("remove the store")
    host.remove_tree(store.layout.root)
    host.remove_tree(store.layout.runroot)
