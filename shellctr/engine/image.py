"""Images: records and OCI configs, import from a rootfs tar, lookup, tags, rmi.

An image is its OCI image config, kept byte for byte in `blobs/sha256/<id>` (the image
id is the sha256 of those bytes, as Docker's), plus a record `images/<id>.json` with
its tags, layers and the config fields `run` reads. Layers live in the layer store
(layers.py): checked, kept as tars and extracted once each into their own directory.
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shellctr.core.errors import Conflict, ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.state import Image, ImageConfig, evolve, images, save
from shellctr.core.store import Store, now_iso
from shellctr.engine import image_record
from shellctr.engine.image_record import (
    CONFIG_TYPE,
    MANIFEST_TYPE,
    oci_manifest,
    parse_config,
    sha256_hex,
    untag_elsewhere,
)
from shellctr.engine.layers import (
    LayerScan,
    file_source,
    prepare_layer,
    publish_layer,
    scan_layer,
    sweep_partials,
)
from shellctr.parts.reference import find_image_record, is_id, normalize_ref

__all__ = ["CONFIG_TYPE", "MANIFEST_TYPE", "LayerScan", "oci_manifest", "parse_config",
           "scan_layer", "sha256_hex"]  # callers import them from here


def find_image(store: Store, ref: str) -> Image:
    """An image by name[:tag], full or short id, or `sha256:` id."""
    return Image.model_validate(find_image_record(store.image_records(), ref))


# -- the layer store (shellctr/layers.py) and image records ----------------------------
def remove_unused_layers(host: Host, store: Store, gone: str | set[str] = "") -> None:
    """Remove layer dirs and blobs that no image and no container refers to.

    `gone`: the id(s) of images just removed, which --dry-run still finds on disk.
    """
    gone = {gone} if isinstance(gone, str) else gone
    used = {layer for image in images(store) if image.id not in gone for layer in image.layers}
    used |= {layer for config in store.container_configs().values()
             for layer in config["layers"]}
    layers_dir = store.layout.layers_dir
    if layers_dir.is_dir():
        for entry in sorted(os.listdir(layers_dir)):
            if not entry.startswith(".") and entry not in used:
                host.remove_tree(layers_dir / entry)
    blobs_dir = store.layout.blobs_dir
    kept = [image for image in images(store) if image.id not in gone]
    used |= {image.id for image in kept}  # config blobs
    # pulled images: their layers as the registry served them, and their manifests
    used |= {blob.digest for image in kept for blob in image.layer_blobs}
    used |= {image.manifest for image in kept if image.manifest}
    if blobs_dir.is_dir():
        for entry in sorted(os.listdir(blobs_dir)):
            if not entry.startswith(".") and entry not in used:
                host.remove_file(blobs_dir / entry)


# -- import ----------------------------------------------------------------------------
CHANGES = "CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR"


def parse_changes(changes: Iterable[str], base: ImageConfig) -> ImageConfig:
    """Apply Dockerfile-style `-c` instructions (those `docker import/commit -c` take)."""
    config = base.model_dump()
    for change in changes:
        instruction, _, rest = change.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if not rest:
            raise ShellctrError(f"invalid change {change!r}: {instruction} needs an argument")
        if instruction in ("CMD", "ENTRYPOINT"):
            config["Cmd" if instruction == "CMD" else "Entrypoint"] = _command_form(change, rest)
        elif instruction == "ENV":
            env = dict(item.split("=", 1) for item in config["Env"])
            env.update(_env_pairs(change, rest))
            config["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif instruction == "WORKDIR":
            config["WorkingDir"] = posixpath.normpath(
                posixpath.join(config["WorkingDir"] or "/", rest))
        elif instruction == "USER":
            config["User"] = rest
        elif instruction == "EXPOSE":
            for port in rest.split():
                number, _, proto = port.partition("/")
                if not number.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                    raise ShellctrError(f"invalid change {change!r}: bad port {port!r}")
                config["ExposedPorts"][f"{int(number)}/{proto or 'tcp'}"] = {}
        elif instruction == "VOLUME":
            paths = _json_list(change, rest) if rest.startswith("[") else rest.split()
            for path in paths:
                config["Volumes"][path] = {}
        elif instruction == "LABEL":
            config["Labels"].update(_env_pairs(change, rest))
        elif instruction == "STOPSIGNAL":
            config["StopSignal"] = rest
        else:
            raise ShellctrError(
                f"invalid change {change!r}: {instruction or '(empty)'} is not supported",
                f"use {CHANGES}",
            )
    return ImageConfig.model_validate(config)


def _json_list(change: str, rest: str) -> list[str]:
    try:
        value = json.loads(rest)
    except json.JSONDecodeError as err:
        raise ShellctrError(f"invalid change {change!r}: bad JSON array ({err.msg})") from err
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ShellctrError(f"invalid change {change!r}: expected a JSON array of strings")
    return value


def _command_form(change: str, rest: str) -> list[str]:
    """JSON (exec) form as given; shell form wrapped in /bin/sh -c, as Docker does."""
    if rest.startswith("["):
        return _json_list(change, rest)
    return ["/bin/sh", "-c", rest]


def _env_pairs(change: str, rest: str) -> dict[str, str]:
    if "=" not in rest.split(" ", 1)[0]:  # legacy form: ENV KEY value with spaces
        key, _, value = rest.partition(" ")
        return {key: value.strip()}
    try:
        words = shlex.split(rest)
    except ValueError as err:
        raise ShellctrError(f"invalid change {change!r}: {err}") from err
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ShellctrError(f"invalid change {change!r}: {word!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


# -- OCI image configs and manifests -----------------------------------------------------
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
                 "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
def oci_config(config: ImageConfig, diff_ids: list[str], created: str,
               history: list[dict[str, Any]], author: str = "", comment: str = "",
               base: dict[str, Any] | None = None) -> bytes:
    """An OCI image config (JSON bytes; the image id is their sha256). `base`: the
    parent's config, whose other fields (architecture, os, ...) are kept."""
    runtime = {key: value for key, value in config.model_dump().items()
               if value not in ("", [], {}, None)}
    document: dict[str, Any] = {
        "architecture": ARCHITECTURES.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        **{k: v for k, v in (base or {}).items() if k not in ("config", "container_config")},
        "created": created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": history,
    }
    for key, value in (("author", author), ("comment", comment)):
        document.pop(key, None)
        if value:
            document[key] = value
    return json.dumps(document, separators=(",", ":")).encode()


def history_entry(created: str, created_by: str, comment: str = "", author: str = "",
                  empty_layer: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    for key, value in (("comment", comment), ("author", author), ("empty_layer", empty_layer)):
        if value:
            entry[key] = value
    return entry


def record_image(host: Host, store: Store, blob: bytes, tags: list[str],
                 layer_sizes: list[int], rollback: Rollback, digest: str = "",
                 tar_hints: dict[str, int] | None = None) -> Image:
    """`image_record.record_image`, its record as the model."""
    return Image.model_validate(image_record.record_image(
        host, store, blob, tags, layer_sizes, rollback, digest, tar_hints))


def import_image(
    host: Host, store: Store, tar_path: Path, changes: list[str], ref: str | None,
    comment: str = "",
    source: str | None = None,
    created: str | None = None,
) -> Image:
    """A one-layer image from a rootfs tar; `ref` is tagged on it (moved if taken).
    `source` names the tar in the history (`-` for stdin, as Docker's), `created` fixes
    the image's time (the same input, the same image id)."""
    config = parse_changes(changes, ImageConfig())
    tag = normalize_ref(ref) if ref else None
    readable = host.facts.readable(tar_path)  # (a --dry-run scratch file's stand-in)
    scan = scan_layer(readable)  # refused before anything is written
    created = created or now_iso()
    blob = oci_config(config, [scan.diff_id], created,
                      [history_entry(created, "shellctr import",
                                     comment or f"Imported from {source or tar_path.name}")],
                      comment=comment)
    store.prepare()
    with Rollback(host) as rollback:  # the long work, outside the lock (as load's)
        host.step(f"import layer sha256:{scan.diff_id[:SHORT]}")
        layer = prepare_layer(host, store.layout, file_source(readable, tar_path), rollback,
                              expect=scan.diff_id)
        with store.lock(), Rollback(host) as publishing:  # unwound under the lock
            sweep_partials(host, store.layout)
            publish_layer(host, store.layout, layer, publishing)
            host.step("record the image")
            image = record_image(host, store, blob, [tag] if tag else [], [scan.size],
                                 publishing, tar_hints={scan.diff_id: scan.tar_size})
    image_event(store, image.id, "import", tag or "")
    return image


def image_event(store: Store, image_id: str, action: str, name: str = "") -> None:
    """An event of the journal (engine/events.py) about an image."""
    from shellctr.engine import events

    events.emit(store, "image", action, f"sha256:{image_id}", {"name": name} if name else {})


def tag_image(host: Host, store: Store, source: str, target: str) -> None:
    """`tag SOURCE TARGET`: TARGET names the image SOURCE names (moved if taken)."""
    tag = normalize_ref(target)
    with store.lock(), Rollback(host) as rollback:
        image = find_image(store, source)
        if tag in image.repo_tags:
            return
        host.step(f"tag {image.id[:SHORT]} as {tag}")
        untag_elsewhere(host, store, tag, rollback)
        image = find_image(store, image.id)
        save(store, store.layout.image_file(image.id),
             evolve(image, repo_tags=[*image.repo_tags, tag]))
        image_event(store, image.id, "tag", tag)


def prune_images(host: Host, store: Store, everything: bool) -> tuple[list[str], int]:
    """`image prune [-a]`: remove dangling images (with -a: every image no container
    uses). Docker's report lines and the bytes of layers freed."""
    report: list[str] = []
    with store.lock():  # a create after this look must see the image gone (it checks)
        configs = store.container_configs()
        used = {config["image_id"] for config in configs.values()}
        layers_before = {d for image in images(store) for d in image.layers}
        sizes = {d: size for image in images(store)
                 for d, size in zip(image.layers, image.layer_sizes, strict=False)}
        for image in images(store):
            if image.id in used or (image.repo_tags and not everything):
                continue
            host.step(f"remove image {image.id[:SHORT]}")
            report += [f"untagged: {tag}" for tag in image.repo_tags]
            host.remove_file(store.layout.image_file(image.id))
            host.remove_file(store.layout.blob(image.id))
            report.append(f"deleted: sha256:{image.id}")
        gone = {line.removeprefix("deleted: sha256:") for line in report
                if line.startswith("deleted: ")}
        remaining = {d for image in images(store) if image.id not in gone for d in image.layers}
        for config in configs.values():
            remaining |= set(config["layers"])
        freed = layers_before - remaining
        if gone:
            remove_unused_layers(host, store, gone=gone)
        for diff_id in sorted(freed):
            report.append(f"deleted: sha256:{diff_id}")
    return report, sum(max(sizes.get(d, 0), 0) for d in freed)


# -- rmi -------------------------------------------------------------------------------
def remove_image(host: Host, store: Store, ref: str, force: bool,
                 users: dict[str, tuple[str, bool]]) -> list[str]:
    """Untag or delete an image; `users` maps container id -> (image id, running).

    Returns Docker's report lines (`Untagged: ...`, `Deleted: sha256:...`).
    """
    image = find_image(store, ref)
    by_tag = not is_id(ref)
    tag = normalize_ref(ref) if by_tag else None
    report = []
    if tag and len(image.repo_tags) > 1:
        host.step(f"untag {tag}")
        save(store, store.layout.image_file(image.id),
             evolve(image, repo_tags=[t for t in image.repo_tags if t != tag]))
        image_event(store, image.id, "untag", tag)
        return [f"Untagged: {tag}"]
    using = [(cid, running) for cid, (iid, running) in users.items() if iid == image.id]
    running = [cid for cid, is_running in using if is_running]
    if running:
        raise Conflict(
            f"unable to remove image {ref}: it is used by running container {running[0][:SHORT]}",
            "stop and remove the container first",
        )
    if using and not force:
        raise Conflict(
            f"unable to remove image {ref}: container {using[0][0][:SHORT]} is using it",
            "remove the container first, or use rmi -f",
        )
    if not by_tag and len(image.repo_tags) > 1 and not force:
        raise Conflict(
            f"unable to delete {ref}: the image is referenced in multiple repositories",
            "remove it by name, or use rmi -f",
        )
    host.step(f"remove image {image.id[:SHORT]}")
    report += [f"Untagged: {t}" for t in image.repo_tags]
    host.remove_file(store.layout.image_file(image.id))
    host.remove_file(store.layout.blob(image.id))
    remove_unused_layers(host, store, gone=image.id)
    report.append(f"Deleted: sha256:{image.id}")
    for name in image.repo_tags:
        image_event(store, image.id, "untag", name)
    image_event(store, image.id, "delete")
    return report


def remove_corrupt_image(host: Host, store: Store, ref: str, force: bool) -> list[str] | None:
    """`rmi -f ID` of an image whose record is corrupt (found by its file's name): the
    record, its config blob and the layers nothing else uses go. None if there is none."""
    from shellctr.core.errors import CorruptRecord

    corrupt: list[CorruptRecord] = []
    store.image_records(corrupt)
    bare = ref.removeprefix("sha256:")
    found = [Path(str(err.path)).stem for err in corrupt] if is_id(ref) else []
    matches = [image_id for image_id in found if image_id.startswith(bare)]
    if len(matches) != 1:
        return None
    image_id = matches[0]
    if not force:
        raise CorruptRecord(store.layout.image_file(image_id), "rmi -f removes it")
    host.step(f"remove image {image_id[:SHORT]} (its record is corrupt)")
    host.remove_file(store.layout.image_file(image_id))
    host.remove_file(store.layout.blob(image_id))
    remove_unused_layers(host, store, gone=image_id)
    return [f"Deleted: sha256:{image_id}"]
