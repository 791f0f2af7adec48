"""`load` and `save`: images as docker-archive or OCI image layout tars.

docker-archive (what `docker save` and `podman save` write by default):
    manifest.json   [{"Config": "<id>.json", "RepoTags": [...], "Layers": ["<diff>.tar"...]}]
    <id>.json       the image config (its sha256 is the image id)
    <diff>.tar      each layer, uncompressed (its sha256 is its diff id)
OCI image layout (`--format oci-archive`):
    oci-layout, index.json (manifests, tagged by annotations), blobs/sha256/<digest>

Loading checks every digest (config, manifest, each layer's diff id and blob digest)
and every layer member before the layer is kept: a corrupt or hostile archive leaves
nothing behind. Saving writes the stored bytes (config blob, layer tars) unchanged, so
an image keeps its id and digests through save and load, here and in Docker/Podman.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from shellctr.core.cmd import path_arg
from shellctr.core.errors import ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.state import Image
from shellctr.core.store import Store
from shellctr.engine.image import (
    CONFIG_TYPE,
    MANIFEST_TYPE,
    find_image,
    oci_manifest,
    parse_config,
    record_image,
    sha256_hex,
)
from shellctr.engine.layers import (
    Kept,
    PreparedLayer,
    kept_blobs,
    kept_source,
    member_source,
    prepare_layer,
    publish_layer,
    sweep_partials,
)
from shellctr.engine.pack import layer_tar_size, pack, pack_argv
from shellctr.parts.reference import is_id, normalize_ref

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
MAX_JSON = 16 << 20  # manifests and configs are small: refuse to read a huge one


class Loadable:
    """One image found in an archive, checked except for its layers' contents."""

    def __init__(self, config: bytes, tags: list[str],
                 layers: list[tuple[tarfile.TarInfo, str, str | None, bool]],
                 digest: str = "") -> None:
        self.config = config
        self.tags = tags
        self.layers = layers  # (member, diff id, blob digest or None, gzip-compressed)
        self.digest = digest  # its OCI manifest's, if it came with one


def short_name(ref: str) -> str:
    """`docker.io/library/busybox:1` -> `busybox:1`, as Docker shows names."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


# -- reading archives ------------------------------------------------------------------
class Archive:
    """An uncompressed tar, its members indexed by name (read in place, never unpacked)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with tarfile.open(path, "r:") as archive:
                self.members = {m.name.removeprefix("./"): m for m in archive.getmembers()}
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ShellctrError(f"invalid archive: {err}",
                                "give a tar written by save, docker save or podman save"
                                ) from err

    def member(self, name: str) -> tarfile.TarInfo:
        name = name.removeprefix("./")
        member = self.members.get(name)
        while member is not None and member.issym():  # docker-archive may link layers
            name = os.path.normpath(os.path.join(os.path.dirname(name), member.linkname))
            member = self.members.get(name)
        if member is None or not member.isfile():
            raise ShellctrError(f"invalid archive: {name} is missing")
        return member

    def read(self, name: str) -> bytes:
        member = self.member(name)
        if member.size > MAX_JSON:
            raise ShellctrError(f"invalid archive: {name} is too large")
        with open(self.path, "rb") as stream:
            stream.seek(member.offset_data)
            return stream.read(member.size)

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ShellctrError(f"invalid archive: {name} is not JSON ({err})") from err

    def is_gzip(self, member: tarfile.TarInfo) -> bool:
        with open(self.path, "rb") as stream:
            stream.seek(member.offset_data)
            return stream.read(2) == b"\x1f\x8b"


def read_archive(path: Path) -> list[Loadable]:
    """The images in a docker-archive or OCI layout tar, their digests checked."""
    archive = Archive(path)
    if "manifest.json" in archive.members:
        return read_docker_archive(archive)
    if "index.json" in archive.members:
        return read_oci_archive(archive)
    raise ShellctrError("invalid archive: neither manifest.json (docker-archive) nor "
                        "index.json (OCI layout) in it")


def read_docker_archive(archive: Archive) -> list[Loadable]:
    manifest = archive.json("manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise ShellctrError("invalid archive: manifest.json lists no images")
    found = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ShellctrError("invalid archive: an entry of manifest.json has no Config")
        config = archive.read(entry["Config"])
        name = os.path.basename(entry["Config"]).removesuffix(".json")
        if len(name) == 64 and name != sha256_hex(config):  # named by its digest: check it
            raise ShellctrError(f"config digest mismatch: {entry['Config']} has sha256:"
                                f"{sha256_hex(config)}", "the archive is corrupt")
        diff_ids = diff_ids_of(config)
        layers = entry.get("Layers") or []
        if len(layers) != len(diff_ids):
            raise ShellctrError(f"invalid archive: {len(layers)} layers for "
                                f"{len(diff_ids)} diff ids in the config")
        members = [archive.member(layer) for layer in layers]
        found.append(Loadable(
            config, [tag_of(t) for t in entry.get("RepoTags") or []],
            [(m, d, None, archive.is_gzip(m)) for m, d in zip(members, diff_ids, strict=True)]))
    return found


def read_oci_archive(archive: Archive) -> list[Loadable]:
    index = archive.json("index.json")
    found: list[Loadable] = []
    for descriptor in (index.get("manifests") if isinstance(index, dict) else None) or []:
        found += oci_manifests(archive, descriptor, descriptor.get("annotations") or {})
    if not found:
        raise ShellctrError("invalid archive: index.json lists no linux image manifests")
    return found


def blob(archive: Archive, descriptor: dict[str, Any]) -> tuple[tarfile.TarInfo, str]:
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise ShellctrError(f"invalid archive: unsupported digest {digest!r}")
    return archive.member(f"blobs/sha256/{digest[7:]}"), digest[7:]


def checked_blob(archive: Archive, descriptor: dict[str, Any]) -> bytes:
    member, digest = blob(archive, descriptor)
    data = archive.read(member.name)
    if sha256_hex(data) != digest:
        raise ShellctrError(f"blob digest mismatch: sha256:{digest} holds sha256:"
                            f"{sha256_hex(data)}", "the archive is corrupt")
    return data


# what `load` accepts, as containerd's importer: a manifest of any other type, a config
# that is not an image's, or a layer in another format is refused, never guessed at
# (issue 13, defect 8)
MANIFEST_TYPES = (MANIFEST_TYPE, DOCKER_MANIFEST_TYPE)
CONFIG_TYPES = (CONFIG_TYPE, "application/vnd.docker.container.image.v1+json")
LAYER_TYPES = (
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)


def check_media_type(kind: str, media: object, known: tuple[str, ...]) -> None:
    if media not in known:
        raise ShellctrError(f"invalid archive: unsupported {kind} media type {media!r}",
                            "shellctr loads image layers as tar or tar+gzip only")


def oci_manifests(archive: Archive, descriptor: dict[str, Any],
                  annotations: dict[str, str]) -> list[Loadable]:
    media = descriptor.get("mediaType", MANIFEST_TYPE)
    platform = descriptor.get("platform") or {}
    if platform and platform.get("os", "linux") != "linux":
        return []
    data = checked_blob(archive, descriptor)
    document = json.loads(data)
    if media in (INDEX_TYPE, DOCKER_LIST_TYPE) or "manifests" in document:
        nested = []
        for child in document.get("manifests") or []:
            nested += oci_manifests(archive, child, {**(child.get("annotations") or {}),
                                                     **annotations})
        return nested[:1]  # one platform: the first linux one
    check_media_type("manifest", document.get("mediaType", media), MANIFEST_TYPES)
    check_media_type("config", (document.get("config") or {}).get("mediaType"), CONFIG_TYPES)
    for layer in document.get("layers") or []:
        check_media_type("layer", layer.get("mediaType"), LAYER_TYPES)
    config = checked_blob(archive, document.get("config") or {})
    diff_ids = diff_ids_of(config)
    layers = document.get("layers") or []
    if len(layers) != len(diff_ids):
        raise ShellctrError(f"invalid archive: {len(layers)} layers for "
                            f"{len(diff_ids)} diff ids in the config")
    entries = []
    for layer, diff_id in zip(layers, diff_ids, strict=True):
        member, digest = blob(archive, layer)
        compressed = archive.is_gzip(member)
        entries.append((member, diff_id, digest if compressed else None, compressed))
        if not compressed and digest != diff_id:
            raise ShellctrError(f"layer digest mismatch: sha256:{digest} is listed as "
                                f"sha256:{diff_id}", "the archive is corrupt")
    name = annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME) or ""
    tags = [tag_of(name)] if ("/" in name or ":" in name) and not is_id(name) else []
    return [Loadable(config, tags, entries, sha256_hex(data))]


def diff_ids_of(config: bytes) -> list[str]:
    return [d.removeprefix("sha256:") for d in parse_config(config)["rootfs"]["diff_ids"]]


def tag_of(ref: str) -> str:
    try:
        return normalize_ref(short_name(ref))
    except ShellctrError as err:
        raise ShellctrError(f"invalid archive: {err.message}") from err


# -- load ------------------------------------------------------------------------------
def load(host: Host, store: Store, path: Path) -> list[str]:
    """Load every image of the archive at `path`; Docker's report lines.

    The long work (copying each layer's tar into the store, checking it, extracting
    it) is done outside the store lock, under temporary names; the lock is held only
    to move the layers into place and write the image records and tags. Each layer is
    prepared once, even if several images of the archive share it."""
    readable = host.facts.readable(path)  # (a --dry-run scratch file's stand-in)
    found = read_archive(readable)
    store.prepare()
    report = []
    with Rollback(host) as rollback:  # removes the temporary names if anything fails
        prepared: dict[str, PreparedLayer] = {}
        for item in found:
            for member, diff_id, digest, compressed in item.layers:
                if diff_id not in prepared:
                    host.step(f"load layer sha256:{diff_id[:SHORT]}")
                    prepared[diff_id] = prepare_layer(
                        host, store.layout, member_source(readable, member, compressed, path),
                        rollback, expect=diff_id, digest=digest)
        with store.lock(), Rollback(host) as publishing:  # unwound under the lock
            sweep_partials(host, store.layout)
            if prepared:
                host.step("move the layers into place")
            for layer in prepared.values():
                publish_layer(host, store.layout, layer, publishing)
            for item in found:
                image_id = sha256_hex(item.config)
                scans = [prepared[diff_id].scan for _, diff_id, _, _ in item.layers]
                host.step(f"record image {image_id[:SHORT]}")
                record_image(host, store, item.config, item.tags, [s.size for s in scans],
                             publishing, item.digest,
                             {s.diff_id: s.tar_size for s in scans if s.tar_size})
                report += ([f"Loaded image: {tag}" for tag in item.tags] or
                           [f"Loaded image ID: sha256:{image_id}"])
                from shellctr.engine.image import image_event

                image_event(store, image_id, "load", ",".join(item.tags))
    return report


# -- save ------------------------------------------------------------------------------
def save(host: Host, store: Store, refs: list[str], output: Path | None, fmt: str) -> None:
    """Write the images named by `refs` as one archive (to `output`, or stdout)."""
    if fmt not in ("docker-archive", "oci-archive"):
        raise ShellctrError(f"unknown format {fmt!r}", "use docker-archive or oci-archive")
    chosen: list[tuple[Image, list[str]]] = []
    for ref in refs:
        image = find_image(store, ref)
        tags = [] if is_id(ref) else [normalize_ref(ref)]
        for kept, kept_tags in chosen:
            if kept.id == image.id:
                kept_tags += [t for t in tags if t not in kept_tags]
                break
        else:
            chosen.append((image, tags))
    layout = store.layout
    pulled: Kept = {}  # pulled layers not used yet: decompressed from their kept blobs
    for image, _ in chosen:
        pulled.update(kept_blobs(image.layers, image.layer_blobs))
    for image, _ in chosen:
        missing = [path for path in [layout.blob(image.id), *(
            layout.layer_dir(d) for d in image.layers if not layout.blob(d).is_file()
            and not (d in pulled and layout.blob(pulled[d][0]).is_file()))]
            if not path.exists()]
        if missing:
            raise ShellctrError(f"image {image.id[:SHORT]} lacks {missing[0]}",
                                "it was made by an older shellctr: import it again")
    store.prepare()
    stage = layout.tmp_dir / f"save-{os.getpid()}"
    with Rollback(host) as rollback:
        host.step(f"stage the {fmt} in {stage}")
        host.remove_tree(stage)
        host.mkdir(stage, mode=0o700, rollback=rollback)
        if fmt == "docker-archive":
            names = stage_docker_archive(host, layout, stage, chosen, pulled)
        else:
            names = stage_oci_layout(host, layout, stage, chosen, pulled)
        host.step("write the archive")
        # to a temporary file beside it, renamed when whole: a failed save leaves no half
        partial = output.parent / f".{output.name}.{os.getpid()}.partial" if output else None
        if partial is not None:
            rollback.push(f"write {partial}", lambda: host.remove_file(partial))
        host.run(["tar", "--create", f"--file={path_arg(partial) if partial else '-'}",
                  f"--directory={path_arg(stage)}", "--hard-dereference", "--numeric-owner",
                  "--owner=0", "--group=0", "--sort=name", "--format=posix",
                  "--pax-option=delete=atime,delete=ctime", *sorted(names)],
                 stdout=None if output else _stdout())
        if output is not None and partial is not None:
            host.rename(partial, output)
        host.step("clean up")
        host.remove_tree(stage)


def _stdout() -> Any:
    import sys
    return sys.stdout.buffer


def stage_layer(host: Host, layout: Any, digest: str, target: Path, kept: Kept) -> None:
    """A blob (config, layer tar) into the stage: linked from the store; for a pulled
    layer not used yet, decompressed from its kept blob; for a layer committed by an
    older shellctr (kept as files only), packed again. Its digest is checked."""
    if layout.blob(digest).is_file():
        host.link(layout.blob(digest), target)
        return
    if digest in kept and layout.blob(kept[digest][0]).is_file():
        source = kept_source(host, layout.blob(kept[digest][0]), kept[digest][1])
        host.produce(source.argv, target, source.copy)
        if not host.dry_run:
            with open(target, "rb") as written:
                got = hashlib.file_digest(written, "sha256").hexdigest()
            if got != digest:
                raise ShellctrError(f"layer sha256:{digest[:12]} is corrupt in the store "
                                    f"(its blob {layout.blob(kept[digest][0])} gives "
                                    f"sha256:{got})", "remove the image and pull it again")
        return
    directory = layout.layer_dir(digest)

    def write(out: BinaryIO) -> None:
        scan = pack(directory, out)
        if scan.diff_id != digest:
            raise ShellctrError(f"layer {directory} has changed: it packs as sha256:"
                                f"{scan.diff_id}", "remove the image and commit it again")

    host.produce(pack_argv(directory, []), target, write)


def stage_docker_archive(host: Host, layout: Any, stage: Path,
                         chosen: list[tuple[Image, list[str]]], kept: Kept) -> list[str]:
    """Link and write a docker-archive's files into `stage`; their names."""
    manifest = []
    linked: set[str] = set()
    for image, tags in chosen:
        if f"{image.id}.json" not in linked:
            host.link(layout.blob(image.id), stage / f"{image.id}.json")
            linked.add(f"{image.id}.json")
        for diff_id in image.layers:
            if f"{diff_id}.tar" not in linked:
                stage_layer(host, layout, diff_id, stage / f"{diff_id}.tar", kept)
                linked.add(f"{diff_id}.tar")
        manifest.append({"Config": f"{image.id}.json", "RepoTags": tags or None,
                         "Layers": [f"{d}.tar" for d in image.layers]})
    host.write_file(stage / "manifest.json", json.dumps(manifest) + "\n")
    return [*linked, "manifest.json"]


def stage_oci_layout(host: Host, layout: Any, stage: Path,
                     chosen: list[tuple[Image, list[str]]], kept: Kept) -> list[str]:
    """Link and write an OCI image layout into `stage`; its top-level names."""
    blobs = stage / "blobs" / "sha256"
    host.mkdir(stage / "blobs")
    host.mkdir(blobs)
    host.write_file(stage / "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n")
    linked: set[str] = set()
    descriptors = []
    for image, tags in chosen:
        for digest in [image.id, *image.layers]:
            if digest not in linked:
                stage_layer(host, layout, digest, blobs / digest, kept)
                linked.add(digest)
        config = layout.blob(image.id).read_bytes()
        tars = image.tar_sizes if len(image.tar_sizes) == len(image.layers) else [
            layer_tar_size(layout, d) for d in image.layers]
        # -1: a pulled layer not used yet, its tar decompressed into the stage just now
        tars = [size if size >= 0 or host.dry_run else (blobs / d).stat().st_size
                for size, d in zip(tars, image.layers, strict=True)]
        manifest = oci_manifest(config, list(zip(image.layers, tars, strict=True)))
        digest = sha256_hex(manifest)
        if digest not in linked:
            host.write_file(blobs / digest, manifest.decode())
            linked.add(digest)
        for tag in tags or [""]:
            descriptor: dict[str, Any] = {"mediaType": MANIFEST_TYPE,
                                          "digest": f"sha256:{digest}", "size": len(manifest)}
            if tag:
                full = tag if "/" in tag.rsplit(":", 1)[0] else f"docker.io/library/{tag}"
                descriptor["annotations"] = {CONTAINERD_NAME: full, REF_NAME: tag}
            descriptors.append(descriptor)
    host.write_file(stage / "index.json", json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": descriptors}) + "\n")
    return ["blobs", "index.json", "oci-layout"]


__all__ = ["CONFIG_TYPE", "load", "save"]
