"""push: images to a registry (the OCI distribution API).

Each blob is looked up with HEAD first (the registry may have it), mounted from another
repository of the same registry when an image came from there, else uploaded in one PUT
(or in PATCHed chunks, SHELLCTR_PUSH_CHUNK_SIZE); then the manifest is PUT and its digest
printed. Each request is shown as its `curl` line (`--trace`); `--dry-run` prints them as
a script.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from shellctr.core.cmd import Cmd, path_arg
from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host
from shellctr.core.ids import SHORT
from shellctr.core.store import Record, Store
from shellctr.engine.image_record import oci_manifest, sha256_hex
from shellctr.engine.parallel import in_parallel
from shellctr.engine.registry_auth import credentials_for
from shellctr.engine.registry_http import Registry
from shellctr.engine.registry_progress import PARALLEL, Progress
from shellctr.parts.reference import Reference, find_image_record, parse_reference
from shellctr.parts.registry import curl_argv


class Blob:
    """A blob to push: its digest (sha256:...), size, and where its bytes are."""

    def __init__(self, digest: str, size: int, path: Path) -> None:
        self.digest, self.size, self.path = digest, size, path


def push_plan(store: Store, image: Record) -> tuple[bytes, str, list[Blob]]:
    """(manifest, its media type, the blobs it names): the pulled manifest and
    compressed layers as they came, else an OCI manifest of the layer tars."""
    layout = store.layout
    config = Blob(f"sha256:{image['id']}", layout.blob(image["id"]).stat().st_size,
                  layout.blob(image["id"]))
    pulled = image.get("layer_blobs") or []
    if image.get("manifest") and layout.blob(image["manifest"]).is_file() and all(
            layout.blob(b["digest"]).is_file() for b in pulled):
        manifest = layout.blob(image["manifest"]).read_bytes()
        media = str(json.loads(manifest).get("mediaType") or
                    "application/vnd.oci.image.manifest.v1+json")
        return manifest, media, [config, *(Blob(f"sha256:{b['digest']}", b["size"],
                                                layout.blob(b["digest"]))
                                           for b in pulled)]
    blobs = [config]
    for diff_id in image["layers"]:
        path = layout.blob(diff_id)
        if not path.is_file():
            raise ShellctrError(f"image {image['id'][:SHORT]} lacks its layer tar {path}",
                                "it was made by an older shellctr: save and load it again")
        blobs.append(Blob(f"sha256:{diff_id}", path.stat().st_size, path))
    manifest = oci_manifest(layout.blob(image["id"]).read_bytes(),
                            [(b.digest.removeprefix("sha256:"), b.size) for b in blobs[1:]])
    return manifest, "application/vnd.oci.image.manifest.v1+json", blobs


def push(host: Host, store: Store, text: str, *, tls_verify: bool | None = None,
         quiet: bool = False, out: TextIO | None = None,
         credentials: tuple[str, str] | None = None) -> str:
    """Push the image `text` names to its registry; the manifest digest pushed.
    `credentials`: (user, password) the caller gives (the API's X-Registry-Auth); None:
    the credentials files'."""
    ref = parse_reference(text)
    if ref.digest:
        raise ShellctrError(f"cannot push a digest reference: {text}", "push NAME[:TAG]")
    try:
        image = find_image_record(store.image_records(), ref.tagged)
    except NotFound as err:  # Docker's words: pulling it would be the wrong advice
        raise NotFound(f"an image does not exist locally with the tag: {ref.tagged}",
                       f"tag one with that name first: shellctr tag IMAGE {ref.tagged}"
                       ) from err
    out = out if out is not None else sys.stdout
    progress = Progress(out if not host.dry_run else None, quiet)
    if credentials is None:
        credentials = credentials_for(host, ref.registry)
    registry = Registry(host, ref.registry, credentials, tls_verify)
    manifest, media, blobs = push_plan(store, image)
    scope = f"repository:{ref.repository}:pull,push"
    progress.line(f"The push refers to repository [{ref.full_name}]")
    mounts = [d.partition("@")[0] for d in image.get("repo_digests") or []]
    sources = [parse_reference(m) for m in mounts]
    source = next((s.repository for s in sources if s.registry == ref.registry and
                   s.repository != ref.repository), None)
    unique = list({blob.digest: blob for blob in blobs}.values())

    def send(blob: Blob) -> None:
        host.step(f"blob {blob.digest[:19]}")
        head = registry.request("HEAD", f"/v2/{ref.repository}/blobs/{blob.digest}", scope,
                                expect=(200, 404), what=blob.digest)
        head.read()
        if head.status == 200:
            progress.layer(blob.digest, "Layer already exists")
            return
        progress.layer(blob.digest, "Preparing")
        mounted = upload_blob(host, registry, ref, blob, scope, source)
        progress.layer(blob.digest, f"Mounted from {source}" if mounted else "Pushed")

    send(unique[0])  # the config, alone: it also gets the token the others then share
    if host.dry_run or len(unique) < 3:  # a script in order
        for blob in unique[1:]:
            send(blob)
    else:
        in_parallel(send, unique[1:], PARALLEL)
    digest = f"sha256:{sha256_hex(manifest)}"
    host.step("the manifest")
    url = f"{registry.base}/v2/{ref.repository}/manifests/{ref.tag or 'latest'}"

    def put() -> None:
        response = registry.request("PUT", f"/v2/{ref.repository}/manifests/"
                                    f"{ref.tag or 'latest'}", scope, {"Content-Type": media},
                                    manifest, expect=(201, 200), what=f"{ref}", show=False)
        response.read()

    # the manifest's exact bytes on curl's stdin (printf %s: no newline added)
    host.apply(Cmd(curl_argv("PUT", url, {"Content-Type": media}, upload="-"),
                   stdin=manifest.decode(), secrets=registry.secrets()), put)
    progress.line(f"{ref.tag or 'latest'}: digest: {digest} size: {len(manifest)}")
    if not host.dry_run:
        with store.lock():
            current = find_image_record(store.image_records(), image["id"])
            kept = [d for d in current.get("repo_digests") or []
                    if d.partition("@")[0] != ref.name]
            store.write(store.layout.image_file(image["id"]),
                        {**current, "repo_digests": [*kept, f"{ref.name}@{digest}"]})
    return digest


def push_all_tags(host: Host, store: Store, text: str, **options: Any) -> list[str]:
    """`push --all-tags`: each local tag of the repository; the digests pushed."""
    ref = parse_reference(text)
    if ref.tag or ref.digest:
        raise ShellctrError("tag can't be used with --all-tags/-a", f"push -a {ref.name}")
    tags = sorted(tag for image in store.image_records() for tag in image["repo_tags"]
                  if tag.rpartition(":")[0] == ref.name)
    if not tags:
        raise NotFound(f"no tags of {ref.name} here", "tag an image first")
    return [push(host, store, tag, **options) for tag in tags]


def upload_blob(host: Host, registry: Registry, ref: Reference, blob: Blob, scope: str,
                source: str | None) -> bool:
    """POST an upload (a cross-repository mount first, when the image came from
    another repository of this registry), then PUT the blob's bytes in one request (or,
    with SHELLCTR_PUSH_CHUNK_SIZE, PATCH them piece by piece, then PUT the digest).
    Each request is traced as it is made; a --dry-run script gets both as one `sh -c`
    line (the PUT goes to the Location the POST answers)."""
    import urllib.parse

    query = f"?mount={blob.digest}&from={source}" if source else ""
    post = f"/v2/{ref.repository}/blobs/uploads/{query}"
    if host.dry_run:
        host.apply(Cmd(["sh", "-c", UPLOAD_SCRIPT, "sh", registry.base + post, registry.base,
                        path_arg(blob.path), blob.digest]), lambda: None)
        return False
    response = registry.request("POST", post, scope, {"Content-Length": "0"}, b"",
                                expect=(201, 202), what=blob.digest)
    response.read()
    if response.status == 201:
        return True  # mounted from the other repository: nothing to send
    location = response.header("Location")
    if not location:
        raise ShellctrError(f"{registry.name} started an upload with no Location")
    target = urllib.parse.urljoin(registry.base + "/", location)
    chunk = chunk_size()
    offset = 0
    with open(blob.path, "rb") as body:
        while chunk and offset < blob.size:  # chunked: PATCH each piece to the Location
            piece = body.read(chunk)
            response = registry.request(
                "PATCH", target, scope, {"Content-Type": "application/octet-stream",
                                         "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                                         "Content-Length": str(len(piece))}, piece,
                expect=(202,), what=blob.digest, upload=f"<(tail --bytes=+{offset + 1} "
                f"{path_arg(blob.path)} | head --bytes={len(piece)})")
            response.read()
            offset += len(piece)
            target = urllib.parse.urljoin(target, response.header("Location") or target)
        target += ("&" if "?" in target else "?") + f"digest={blob.digest}"
        response = registry.request(
            "PUT", target, scope, {"Content-Type": "application/octet-stream",
                                   "Content-Length": str(blob.size - offset)},
            body if offset < blob.size else b"", expect=(201, 204), what=blob.digest,
            upload=path_arg(blob.path) if not offset else None)
    response.read()
    return False


def chunk_size() -> int:
    """Bytes per PATCH of a chunked upload (SHELLCTR_PUSH_CHUNK_SIZE); 0, the default:
    each blob in one PUT (a monolithic upload, the fastest on a good link)."""
    text = os.environ.get("SHELLCTR_PUSH_CHUNK_SIZE", "0")
    if not text.isdigit():
        raise ShellctrError(f"invalid SHELLCTR_PUSH_CHUNK_SIZE {text!r}", "give bytes")
    return int(text)


# An upload as a script: POST for a Location, then PUT the file there ($1 the POST's
# URL, $2 the registry's base URL, $3 the file, $4 its digest)
UPLOAD_SCRIPT = (
    'location=$(curl --fail --silent --show-error --request POST --dump-header - '
    '--output /dev/null "$1" | tr -d "\\r" | sed -n "s/^[Ll]ocation: //p") && '
    'case $location in /*) location=$2$location;; esac && '
    'case $location in *"?"*) sep="&";; *) sep="?";; esac && '
    'curl --fail --silent --show-error --request PUT '
    '--header "Content-Type: application/octet-stream" --upload-file "$3" '
    '"$location${sep}digest=$4"')
