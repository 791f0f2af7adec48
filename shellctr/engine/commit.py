"""`commit` and `diff`: a container's changes, read from its overlay upper dir.

The upper dir holds exactly what the container changed: new and modified files
(copied up whole), deletions as overlayfs whiteouts (0/0 character devices) and
directories made anew as opaque ones (`trusted.overlay.opaque=y`). `commit` packs it
once into the layer store as one new layer tar on top of the image's layers (whiteouts
as `.wh.NAME`, opaque dirs with `.wh..wh..opq`); its files are extracted from that tar
when a container first needs them. `diff` lists it as Docker does (A added, C changed,
D deleted).
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path
from typing import Any, BinaryIO

from shellctr.core.errors import ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.layout import Layout
from shellctr.core.state import ContainerConfig, Image, ImageConfig
from shellctr.core.store import Store, now_iso
from shellctr.engine import cgroup
from shellctr.engine.containers import find_container
from shellctr.engine.image import (
    history_entry,
    oci_config,
    parse_changes,
    parse_config,
    record_image,
)
from shellctr.engine.layers import LayerScan, sweep_partials
from shellctr.engine.lifecycle import container_group, reconcile
from shellctr.engine.pack import digest_dir, pack, pack_argv
from shellctr.parts.reference import normalize_ref

# made by init.py in the upper dir when the image lacks them: mount points, not changes
RUNTIME_PATHS = ("dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/resolv.conf")


def runtime_skips(layout: Layout, config: ContainerConfig) -> list[str]:
    return [path for path in RUNTIME_PATHS
            if not any(os.path.lexists(layout.layer_dir(d) / path) for d in config.layers)]


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def in_lower(layout: Layout, layers: list[str], name: str) -> bool:
    """Whether the image's layers show `name` (the topmost layer that has it decides)."""
    for diff_id in reversed(layers):
        path = layout.layer_dir(diff_id) / name
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        return not is_whiteout(st)
    return False


# -- diff ------------------------------------------------------------------------------
def changes(store: Store, ref: str) -> list[tuple[str, str]]:
    """(kind, /path) of everything the container changed, in path order."""
    cid = find_container(store, ref)
    config = ContainerConfig.model_validate(store.container_config(cid))
    layout = store.layout
    skips = set(runtime_skips(layout, config))
    upper = layout.container_upper(cid)
    found: list[tuple[str, str]] = []

    def walk(prefix: str) -> bool:
        """List the changes under `prefix`; whether it held a mount point init made."""
        held = False
        with os.scandir(upper / prefix if prefix else upper) as entries:
            names = sorted(entry.name for entry in entries)
        for base in names:
            name = f"{prefix}/{base}" if prefix else base
            if name in skips:
                held = True
                continue
            st = os.lstat(upper / name)
            if is_whiteout(st):
                found.append(("D", "/" + name))
                continue
            kind = "C" if in_lower(layout, config.layers, name) else "A"
            found.append((kind, "/" + name))
            if stat.S_ISDIR(st.st_mode):
                mark = len(found)
                if walk(name) and kind == "C" and len(found) == mark:
                    found.pop()  # copied up only for init's mount points: not a change
        return held

    if upper.is_dir():
        walk("")
    return found


# -- commit ----------------------------------------------------------------------------
def runtime_config(config: ContainerConfig, base: ImageConfig) -> ImageConfig:
    """The new image's config: the container's command, env, user, workdir, labels."""
    working_dir = config.working_dir
    if working_dir == "/" and not base.WorkingDir:
        working_dir = ""  # "/" was shellctr's default, not a choice
    return ImageConfig.model_validate({
        **base.model_dump(),
        "Env": [item for item in config.env if not item.startswith("HOSTNAME=")],
        "Cmd": config.cmd or None,
        "Entrypoint": config.entrypoint or None,
        "WorkingDir": working_dir,
        "User": config.user,
        "Labels": config.labels,
        "StopSignal": config.stop_signal or base.StopSignal,
    })


def commit(host: Host, store: Store, ref: str, reference: str | None, change: list[str],
           message: str = "", author: str = "", pause: bool = True) -> Image:
    """A new image: the container's image's layers plus one layer of its changes."""
    cid = find_container(store, ref)
    config = ContainerConfig.model_validate(store.container_config(cid))
    tag = normalize_ref(reference) if reference else None
    layout = store.layout
    base_path = layout.blob(config.image_id)
    base: dict[str, Any] = parse_config(base_path.read_bytes()) if base_path.is_file() else {}
    base_config = ImageConfig.model_validate(
        {k: v for k, v in (base.get("config") or {}).items()
         if k in ImageConfig.model_fields and v is not None})
    new_config = parse_changes(change, runtime_config(config, base_config))
    base_sizes = [-1] * len(config.layers)
    if layout.image_file(config.image_id).is_file():
        base_image = Image.model_validate_json(layout.image_file(config.image_id).read_text())
        if len(base_image.layer_sizes) == len(config.layers):
            base_sizes = list(base_image.layer_sizes)
    upper = layout.container_upper(cid)
    skips = runtime_skips(layout, config)
    group = container_group(store.container(cid))
    freeze = (pause and reconcile(store, cid)["status"] == "running"
              and not cgroup.is_frozen(host.facts, group))
    store.prepare()
    with Rollback(host) as rollback:  # the long work, outside the lock
        host.step(f"write the changes of container {cid[:SHORT]} as a new layer tar")
        if freeze:
            cgroup.freeze(host, group, True)
        try:
            scan, partial = write_layer(host, layout, upper, skips, rollback)
        finally:
            if freeze:
                cgroup.freeze(host, group, False)
        created = now_iso()
        history = [*(base.get("history") or []),
                   history_entry(created, shlex.join([config.path, *config.args]), message,
                                 author)]
        blob_bytes = oci_config(new_config, [*config.layers, scan.diff_id], created, history,
                                author, message, base=base)
        with store.lock(), Rollback(host) as publishing:  # unwound under the lock
            sweep_partials(host, layout)
            gone = [d for d in config.layers
                    if not host.exists(layout.layer_dir(d)) and not host.exists(layout.blob(d))]
            if gone:  # the container and its image were removed while we packed
                raise ShellctrError(f"layer sha256:{gone[0][:SHORT]} of the image was removed "
                                    "during the commit", "the container was removed: commit "
                                    "another one")
            host.step("move the layer into place and record the image")
            blob = layout.blob(scan.diff_id)
            if host.exists(blob):  # the same changes committed (or loaded) before
                host.remove_file(partial)
            else:
                host.rename(partial, blob, rollback=publishing)
            image = record_image(host, store, blob_bytes, [tag] if tag else [],
                                 [*base_sizes, scan.size], publishing,
                                 tar_hints={scan.diff_id: scan.tar_size})
            from shellctr.engine import events

            events.container_event(store, cid, "commit", comment=message)
            return image


def write_layer(host: Host, layout: Layout, upper: Path, skips: list[str],
                rollback: Rollback) -> tuple[LayerScan, Path]:
    """The upper dir written once, as the new layer's tar, into `blobs/` under a
    temporary name (returned with what it holds; `commit` moves it into place): one
    pass (`pack.pack`) that converts overlay whiteouts and opaque dirs to OCI ones,
    leaves out init's mount points and overlayfs' own xattrs, and hashes what it writes.
    The layer's files (`layers/<diff id>/`) are extracted from it when a container first
    uses the image (`layers.prepare_layer_dirs`). Like `load`, no fsync of the tar: the
    image record that names it is written durably."""
    partial = layout.blobs_dir / f".commit-{os.getpid()}.partial"
    host.remove_file(partial)  # left by a crash

    def write(out: BinaryIO) -> LayerScan:
        return pack(upper, out, lambda name: name in skips)

    scan = host.produce(pack_argv(upper, skips), partial, write, rollback)
    if scan is None:  # --dry-run: nothing written; the same pass, kept nowhere
        scan = digest_dir(upper, lambda name: name in skips)
    return scan, partial
