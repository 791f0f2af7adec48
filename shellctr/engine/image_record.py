"""Image records as plain dicts, without pydantic: built from an image config (checked
field by field, an untrusted registry's as strictly as state.Image checks them),
tagged, sized and written; and a pulled image's first use (its layers extracted, their
sizes recorded). pull, push and that first `create` go through here and so never import
pydantic (~100 ms on these machines: as much as a whole pull of 100 MB);
engine/image.py wraps the same functions for the verbs that want the model.
state.Image is the records' shape: tests/unit/test_image_record.py holds what this
writes to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from shellctr.core.errors import ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.store import Record, Store
from shellctr.engine.layers import (
    Kept,
    PreparedLayer,
    kept_blobs,
    prepare_layer_dirs,
    publish_layer,
)
from shellctr.parts.reference import find_image_record

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
EPOCH = "1970-01-01T00:00:00Z"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_config(blob: bytes) -> dict[str, Any]:
    """An image config blob as JSON, checked for what shellctr needs of it."""
    try:
        document = json.loads(blob)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ShellctrError(f"invalid image config: {err}") from err
    if not isinstance(document, dict):
        raise ShellctrError("invalid image config: not a JSON object")
    rootfs = document.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") or [] if isinstance(rootfs, dict) else []
    if not diff_ids or not isinstance(diff_ids, list) or not all(
            isinstance(d, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", d) for d in diff_ids):
        raise ShellctrError("invalid image config: rootfs.diff_ids must list sha256 digests")
    return document


def oci_manifest(config_blob: bytes, layers: list[tuple[str, int]]) -> bytes:
    """The OCI manifest of an image: its config and its (uncompressed) layer tars."""
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": f"sha256:{sha256_hex(config_blob)}",
                   "size": len(config_blob)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": f"sha256:{diff_id}", "size": size}
                   for diff_id, size in layers],
    }, separators=(",", ":")).encode()


# -- checking a config's fields -----------------------------------------------------------
def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _objects(value: object) -> bool:  # {"80/tcp": {}}
    return isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())


def _labels(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


# the runtime fields `run` honours (state.ImageConfig), each with its check and default
RUNTIME: dict[str, tuple[Callable[[object], bool], str, object]] = {
    "Env": (_strings, "a list of strings", []),
    "Cmd": (_strings, "a list of strings", None),
    "Entrypoint": (_strings, "a list of strings", None),
    "WorkingDir": (lambda v: isinstance(v, str), "a string", ""),
    "User": (lambda v: isinstance(v, str), "a string", ""),
    "ExposedPorts": (_objects, "an object of objects", {}),
    "Volumes": (_objects, "an object of objects", {}),
    "Labels": (_labels, "an object of strings", {}),
    "StopSignal": (lambda v: isinstance(v, str), "a string", ""),
    "Healthcheck": (lambda v: isinstance(v, dict), "an object", None),
}
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?)?"
                   r"(Z|z|[+-]\d\d:?\d\d)?")


def parse_time(value: object, what: str) -> str:
    """An RFC 3339 time as the records keep it (UTC as `Z`, microseconds at most)."""
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ShellctrError(f"invalid image config: {what} is not a time: {value!r:.60}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz = None
    if zone in ("Z", "z"):
        tz = UTC
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                          int(second or 0), int((fraction or "0")[:6].ljust(6, "0")), tz)
    except ValueError as err:
        raise ShellctrError(f"invalid image config: {what} is not a time: {value!r:.60}"
                            ) from err
    return moment.isoformat().replace("+00:00", "Z")


def runtime_config(document: dict[str, Any]) -> Record:
    """The config's runtime fields `run` honours, checked, with their defaults."""
    runtime = document.get("config") or {}
    if not isinstance(runtime, dict):
        raise ShellctrError("invalid image config: config is not an object")
    fields: Record = {}
    for key, (check, kind, default) in RUNTIME.items():
        value = runtime.get(key)
        if value is not None and not check(value):
            raise ShellctrError(f"invalid image config: config.{key} must be {kind}")
        fields[key] = value if value is not None else json.loads(json.dumps(default))
    return fields


def history(document: dict[str, Any]) -> list[Record]:
    """The config's history entries (state.HistoryEntry), checked."""
    entries = document.get("history") or []
    if not isinstance(entries, list):
        raise ShellctrError("invalid image config: history is not a list")
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        record: Record = {"created": None, "created_by": "", "comment": "", "author": "",
                          "empty_layer": False}
        if entry.get("created") is not None:
            record["created"] = parse_time(entry["created"], "a history entry's created")
        for key in ("created_by", "comment", "author"):
            if key in entry:
                if not isinstance(entry[key], str):
                    raise ShellctrError(f"invalid image config: history {key} must be a "
                                        "string")
                record[key] = entry[key]
        if "empty_layer" in entry:
            if entry["empty_layer"] not in (True, False):  # also 0 and 1, as pydantic
                raise ShellctrError("invalid image config: history empty_layer must be "
                                    "true or false")
            record["empty_layer"] = bool(entry["empty_layer"])
        found.append(record)
    return found


def image_record(blob: bytes, tags: list[str], layer_sizes: list[int], digest: str = "",
                 tar_sizes: list[int] | None = None) -> Record:
    """The record (shaped as state.Image) of the image whose config is `blob`."""
    document = parse_config(blob)
    for key in ("comment", "author"):
        if not isinstance(document.get(key) or "", str):
            raise ShellctrError(f"invalid image config: {key} must be a string")
    return {
        "schema_version": 1,
        "id": sha256_hex(blob),
        "repo_tags": list(tags),
        "created": parse_time(document.get("created") or EPOCH, "created"),
        "layers": [d.removeprefix("sha256:") for d in document["rootfs"]["diff_ids"]],
        "size": sum(max(size, 0) for size in layer_sizes),
        "config": runtime_config(document),
        "comment": document.get("comment") or "",
        "author": document.get("author") or "",
        "history": history(document),
        "layer_sizes": list(layer_sizes),
        "tar_sizes": list(tar_sizes or []),
        "digest": digest,
        "repo_digests": [],
        "layer_blobs": [],
        "manifest": "",
    }


# -- sizes ------------------------------------------------------------------------------
def layer_size(store: Store, diff_id: str) -> int:
    """Bytes of file content of a layer already in the store (from any image using it)."""
    for image in store.image_records():
        layers, sizes = image["layers"], image.get("layer_sizes") or []
        if diff_id in layers and len(sizes) == len(layers):
            return int(sizes[layers.index(diff_id)])
    blob = store.layout.blob(diff_id)
    return blob.stat().st_size if blob.exists() else 0


def tar_size(store: Store, diff_id: str, hints: dict[str, int]) -> int:
    """Bytes of a layer's tar: known from this command, another image, its blob, or
    (a layer committed by an older shellctr, kept as files only) by packing it again."""
    if diff_id in hints:
        return hints[diff_id]
    for image in store.image_records():
        layers, tars = image["layers"], image.get("tar_sizes") or []
        # -1: a pulled layer not extracted yet, its tar size not known
        if diff_id in layers and len(tars) == len(layers) and tars[layers.index(diff_id)] >= 0:
            return int(tars[layers.index(diff_id)])
    from shellctr.engine.pack import layer_tar_size
    return layer_tar_size(store.layout, diff_id)


def fill_layer_sizes(host: Host, store: Store, sizes: dict[str, tuple[int, int]]) -> None:
    """Under the lock: the layers `sizes` names (diff id -> (bytes of files, bytes of
    tar)) were just extracted for the first time; the records of images that did not
    know them yet (pulled, kept compressed: tar size -1) get them."""
    if host.dry_run:
        return
    for image in store.image_records():
        layers, tars = image["layers"], list(image.get("tar_sizes") or [])
        if len(tars) != len(layers) or not any(
                d in sizes and t < 0 for d, t in zip(layers, tars, strict=True)):
            continue
        files = list(image.get("layer_sizes") or [-1] * len(layers))
        for index, diff_id in enumerate(layers):
            if diff_id in sizes and tars[index] < 0:
                files[index], tars[index] = sizes[diff_id]
        store.write(store.layout.image_file(image["id"]),
                    {**image, "layer_sizes": files, "tar_sizes": tars,
                     "size": sum(max(size, 0) for size in files)})


# -- a pulled image's first use ------------------------------------------------------
def publish_layers(host: Host, store: Store, prepared: list[PreparedLayer],
                   rollback: Rollback) -> None:
    """Under the lock: prepared layers into place (`publish_layer`); the records of the
    images whose sizes for them were unknown until this first extraction get them."""
    for layer in prepared:
        publish_layer(host, store.layout, layer, rollback)
    fill_layer_sizes(host, store, {layer.scan.diff_id: (layer.scan.size, layer.scan.tar_size)
                                   for layer in prepared if layer.scan.tar_size})


def extract_layers(host: Host, store: Store, diff_ids: list[str], kept: Kept) -> None:
    """Extract the layers of `diff_ids` not extracted yet (their first use: see
    `prepare_layer_dirs`) outside the lock, then publish them under it."""
    store.prepare()
    with Rollback(host) as scratch:
        extracted = prepare_layer_dirs(host, store.layout, diff_ids, scratch, kept)
        if extracted:
            with store.lock(), Rollback(host) as rollback:
                publish_layers(host, store, extracted, rollback)


def all_kept_blobs(store: Store) -> Kept:
    """The compressed blobs every pulled image keeps, by diff id."""
    kept: Kept = {}
    for record in store.image_records():
        kept.update(kept_blobs(list(record.get("layers") or []),
                               list(record.get("layer_blobs") or [])))
    return kept


# -- recording ---------------------------------------------------------------------------
def restore(store: Store, path: Path, record: Record) -> Callable[[], None]:
    """An undo that writes `record` back as it was."""
    return lambda: store.write(path, record)


def untag_elsewhere(host: Host, store: Store, tag: str, rollback: Rollback | None) -> None:
    """Move `tag` off any image holding it (that image may become <none>)."""
    for other in store.image_records():
        if tag in other["repo_tags"]:
            path = store.layout.image_file(other["id"])
            store.write(path, {**other, "repo_tags": [t for t in other["repo_tags"]
                                                      if t != tag]})
            if rollback is not None:
                rollback.push(f"untag {tag}", restore(store, path, other))


def record_image(host: Host, store: Store, blob: bytes, tags: list[str],
                 layer_sizes: list[int], rollback: Rollback, digest: str = "",
                 tar_hints: dict[str, int] | None = None) -> Record:
    """Keep the config `blob` and write the image's record; move `tags` onto it.
    Under the lock; the layers are in the store already. `tar_hints`: the tar sizes
    of layers this command made (diff id -> bytes)."""
    layout = store.layout
    diff_ids = [x.removeprefix("sha256:") for x in parse_config(blob)["rootfs"]["diff_ids"]]
    sizes = [size if size >= 0 else layer_size(store, d)
             for size, d in zip(layer_sizes, diff_ids, strict=True)]
    tars: list[int] = []
    if not host.dry_run:  # under --dry-run the layers are not there to measure
        tars = [tar_size(store, d, tar_hints or {}) for d in diff_ids]
        digest = digest or sha256_hex(oci_manifest(blob, list(zip(diff_ids, tars,
                                                                  strict=True))))
    record = image_record(blob, [], sizes, digest, tars)
    path = layout.image_file(record["id"])
    previous = find_image_record(store.image_records(), record["id"]) if path.exists() \
        else None
    if previous is not None:
        if all(tag in previous["repo_tags"] for tag in tags):
            return previous  # loaded again: nothing changes
        tags = [*previous["repo_tags"], *(t for t in tags if t not in previous["repo_tags"])]
    for tag in tags:
        if previous is None or tag not in previous["repo_tags"]:
            untag_elsewhere(host, store, tag, rollback)
    if not host.exists(layout.blob(record["id"])):
        host.write_file(layout.blob(record["id"]), blob.decode(), mode=0o644,
                        rollback=rollback)
    record = {**record, "repo_tags": tags}
    store.write(path, record)
    if previous is None:
        rollback.push("record the image", lambda: host.remove_file(path))
    else:
        rollback.push("record the image", restore(store, path, previous))
    return record
