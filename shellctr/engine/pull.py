"""pull: images from a registry (the OCI distribution API), and `run/create --pull`.

The manifest (an index picks the platform), the config, then each layer blob not in the
store yet, 3 at a time: each streams into `blobs/sha256/.DIGEST.PID.partial`, hashed as
it comes (a cut connection is resumed with a Range request, with back-off) and never
used before its digest matches. Under the lock the blobs move into place as the
registry served them (compressed: a push sends the same bytes), the manifest is kept,
and the image is recorded with its tag and `NAME@sha256:` repo digest. A layer's files
are extracted when a container or a build first uses it (layers.prepare_layer_dirs:
decompressed, its diff id checked, scanned and extracted as `load` does). A pull killed
half-way leaves only `.partial` names, which the next one sweeps.

Each request is shown as its `curl` line (`--trace`); `--dry-run` makes the read-only
requests (token, manifests) and prints the `curl` downloads, `sha256sum --check` and
the store writes as a script.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from shellctr.core.cmd import Cmd, path_arg
from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.layout import Layout
from shellctr.core.store import Record, Store
from shellctr.engine.image_record import parse_config, record_image, sha256_hex
from shellctr.engine.layers import CHUNK, pid_partial, sweep_partials
from shellctr.engine.parallel import in_parallel
from shellctr.engine.registry_auth import credentials_for
from shellctr.engine.registry_http import SOCKET_ERRORS, Registry, Unreachable
from shellctr.engine.registry_progress import PARALLEL, Progress
from shellctr.parts.reference import Reference, parse_reference
from shellctr.parts.registry import (
    ACCEPT,
    INDEXES,
    check_descriptor,
    curl_argv,
    host_platform,
    layer_compression,
    parse_manifest,
    parse_platform,
    select_platform,
)

RETRIES = 5  # attempts per blob when the connection drops mid-way


def fetch_manifest(registry: Registry, ref: Reference, wanted: str) -> tuple[bytes, str]:
    """A manifest's bytes and media type, its digest checked when asked by digest."""
    scope = f"repository:{ref.repository}:pull"
    response = registry.request("GET", f"/v2/{ref.repository}/manifests/{wanted}", scope,
                                {"Accept": ACCEPT}, what=f"{ref.name}:{wanted}"
                                if not wanted.startswith("sha256:") else
                                f"{ref.name}@{wanted}")
    body = response.read(4 << 20)
    media = response.header("Content-Type").split(";")[0].strip()
    if wanted.startswith("sha256:") and f"sha256:{sha256_hex(body)}" != wanted:
        raise ShellctrError(f"manifest digest mismatch: asked for {wanted}, {registry.name} "
                            f"served sha256:{sha256_hex(body)}", "the registry is corrupt")
    return body, media


def fetch_small_blob(registry: Registry, repository: str, digest: str) -> bytes:
    response = registry.stream_blob(repository, digest)
    data = response.read(16 << 20)
    if f"sha256:{sha256_hex(data)}" != digest:
        raise ShellctrError(f"blob digest mismatch: {digest} holds "
                            f"sha256:{sha256_hex(data)}", "the registry's copy is corrupt")
    return data


def download(host: Host, registry: Registry, repository: str, digest: str, size: int,
             path: Path, progress: Progress) -> None:
    """Stream the blob into the new file `path`, hashing it; a dropped connection is
    resumed where it stopped (Range), up to RETRIES times with back-off. The file is
    removed (by the caller's undo) unless it ends with the right digest."""
    sha = hashlib.sha256()
    done = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with host.new_file(path) as out:
        for attempt in range(RETRIES):
            try:
                response = registry.stream_blob(repository, digest, done, output="")
                if done and response.status != 206:  # no Range support: from the start
                    sha, done = hashlib.sha256(), 0
                    out.seek(0)
                    out.truncate()
                # into one buffer, no bytes object per chunk; hashlib and the write
                # release the GIL, so the other downloads go on meanwhile
                while count := response.raw.readinto(buffer):
                    sha.update(view[:count])
                    out.write(view[:count])
                    done += count
                    progress.bytes(digest, done, size)
                    if done > size:
                        break
                if done >= size:
                    break
                raise Unreachable(f"the connection was cut after {done} of {size} bytes")
            except (Unreachable, *SOCKET_ERRORS) as err:
                registry.connections.drop(registry.scheme, registry.address)
                if attempt == RETRIES - 1:
                    raise Unreachable(f"downloading {digest} from {registry.name} failed: "
                                      f"{err}", "check the network and pull again") from err
                progress.layer(digest, f"Retrying in {min(0.25 * 2 ** attempt, 4.0):g} "
                                       "seconds")
                time.sleep(min(0.25 * 2 ** attempt, 4.0))
    progress.layer(digest, "Verifying Checksum")
    got = f"sha256:{sha.hexdigest()}"
    if got != digest or done != size:
        raise ShellctrError(f"blob digest mismatch: {digest} from {registry.name} holds "
                            f"{got} ({done} bytes, {size} expected)",
                            "the registry's copy is corrupt: nothing was stored")


class LayerBlob:
    """A layer as the registry serves it (state.LayerBlob's fields): its compressed
    blob's digest (hex), size and media type, checked from the manifest."""

    def __init__(self, digest: str, size: int, media_type: str) -> None:
        self.digest, self.size, self.media_type = digest, size, media_type

    def record(self) -> Record:
        return {"digest": self.digest, "size": self.size, "media_type": self.media_type}


class Pulled:
    """What a pull found and brought in, before it is recorded under the lock."""

    def __init__(self, ref: Reference, top_digest: str, manifest: bytes, config: bytes,
                 blobs: list[LayerBlob], diff_ids: list[str]) -> None:
        self.ref, self.top_digest, self.manifest, self.config = (ref, top_digest, manifest,
                                                                 config)
        self.blobs, self.diff_ids = blobs, diff_ids
        self.downloads: dict[str, Path] = {}  # blob digest hex -> its checked .partial


def resolve(registry: Registry, ref: Reference, platform: str | None,
            progress: Progress) -> tuple[str, bytes, dict[str, Any]]:
    """(the digest of what `ref` names, the platform's manifest bytes, that manifest)."""
    body, media = fetch_manifest(registry, ref, ref.wanted)
    top = f"sha256:{sha256_hex(body)}"
    document = parse_manifest(body, media, str(ref))
    if document["mediaType"] in INDEXES:
        wanted = parse_platform(platform) if platform else host_platform()
        chosen = select_platform(document, wanted, str(ref))
        digest, _ = check_descriptor(chosen, "a manifest of the index")
        body, media = fetch_manifest(registry, ref, digest)
        document = parse_manifest(body, media or chosen.get("mediaType", ""), str(ref))
        if document["mediaType"] in INDEXES:
            raise ShellctrError(f"invalid manifest list of {ref}: it nests another list")
    return top, body, document


def pull(host: Host, store: Store, text: str, *, platform: str | None = None,
         tls_verify: bool | None = None, quiet: bool = False,
         out: TextIO | None = None,
         credentials: tuple[str, str] | None = None) -> Record:
    """Pull `text` (NAME[:TAG|@DIGEST]) into the store; Docker's lines on `out`.
    `credentials`: (user, password) the caller gives (the API's X-Registry-Auth); None:
    the credentials files'."""
    ref = parse_reference(text)
    out = out if out is not None else sys.stdout
    progress = Progress(out if not host.dry_run else None, quiet)
    if credentials is None:
        credentials = credentials_for(host, ref.registry)
    registry = Registry(host, ref.registry, credentials, tls_verify)
    top, manifest, document = resolve(registry, ref, platform, progress)
    progress.line(f"{ref.tag or ref.digest or 'latest'}: Pulling from {ref.repository}")
    config_digest, _ = check_descriptor(document.get("config"), "the config")
    config = fetch_small_blob(registry, ref.repository, config_digest)
    diff_ids = [d.removeprefix("sha256:") for d in parse_config(config)["rootfs"]["diff_ids"]]
    layers = document.get("layers") or []
    if len(layers) != len(diff_ids):
        raise ShellctrError(f"invalid image {ref}: {len(layers)} layers for "
                            f"{len(diff_ids)} diff ids in its config")
    blobs = []
    for index, layer in enumerate(layers):
        digest, size = check_descriptor(layer, f"layer {index + 1}")
        media = str(layer.get("mediaType") or "")
        layer_compression(media)  # refuses an unknown layer type before any download
        blobs.append(LayerBlob(digest=digest.removeprefix("sha256:"), size=size,
                               media_type=media))
    pulled = Pulled(ref, top, manifest, config, blobs, diff_ids)
    store.prepare()
    with Rollback(host) as rollback:
        fetch_layers(host, store, registry, pulled, progress, rollback)
        with store.lock(), Rollback(host) as publishing:
            image = record_pull(host, store, pulled, publishing)
    progress.line(f"Digest: {top}")
    progress.line(f"Status: Downloaded newer image for {ref}" if pulled.downloads else
                  f"Status: Image is up to date for {ref}")
    return image


def fetch_layers(host: Host, store: Store, registry: Registry, pulled: Pulled,
                 progress: Progress, rollback: Rollback) -> None:
    """Download and check each layer blob not in the store yet (outside the lock). It is
    kept compressed, as served: its files are extracted when a container or a build
    first uses the image (layers.prepare_layer_dirs), as `skopeo copy` to an OCI layout
    and containerd keep a pulled image's content."""
    layout = store.layout
    wanted: dict[str, LayerBlob] = {}
    for blob, diff_id in zip(pulled.blobs, pulled.diff_ids, strict=True):
        if layer_stored(layout, diff_id, blob.digest) and not host.dry_run:
            progress.layer(blob.digest, "Already exists")
        elif blob.digest not in wanted:
            wanted[blob.digest] = blob
    for blob in wanted.values():
        progress.layer(blob.digest, "Pulling fs layer")
    repository = pulled.ref.repository

    def bring(blob: LayerBlob) -> None:
        digest = f"sha256:{blob.digest}"
        partial = pid_partial(layout.blobs_dir, f"{blob.digest}-download")
        url = f"{registry.base}/v2/{repository}/blobs/{digest}"
        headers = {"Authorization": registry.authorization(f"repository:{repository}:pull")}
        shown = Cmd(curl_argv("GET", url, {k: v for k, v in headers.items() if v},
                              output=path_arg(partial)), secrets=registry.secrets())
        host.step(f"layer {digest[:19]}")
        host.remove_file(partial)  # left by a crashed process that had our pid
        progress.layer(digest, "Downloading")
        rollback.push(f"write {partial}", lambda: host.remove_file(partial))
        host.apply(shown, lambda: download(host, registry, repository, digest, blob.size,
                                           partial, progress),
                   lambda facts: facts.plan_write(partial, b""))
        host.apply(Cmd(["sha256sum", "--check", "--quiet", "--strict"],
                       stdin=f"{blob.digest}  {path_arg(partial)}\n"), lambda: None)
        pulled.downloads[blob.digest] = partial
        progress.layer(digest, "Download complete")
        progress.layer(digest, "Pull complete")

    if host.dry_run or len(wanted) < 2:  # a script in order
        for blob in wanted.values():
            bring(blob)
        return
    in_parallel(bring, wanted.values(), PARALLEL)


def layer_stored(layout: Layout, diff_id: str, blob_digest: str) -> bool:
    """Whether a layer is in the store already: its files or its tar (loaded, committed,
    used), or the compressed blob an earlier pull kept."""
    return (layout.layer_dir(diff_id).is_dir() or layout.blob(diff_id).is_file()
            or layout.blob(blob_digest).is_file())


def record_pull(host: Host, store: Store, pulled: Pulled, rollback: Rollback) -> Record:
    """Under the lock: the blobs into place, the image recorded and tagged. A layer not
    extracted yet counts its compressed size until it is (its tar size: unknown, -1)."""
    layout = store.layout
    sweep_partials(host, layout)
    if pulled.downloads:
        host.step("move the layer blobs into place")
    for digest, partial in pulled.downloads.items():  # the compressed blobs, kept
        if host.exists(layout.blob(digest)):
            host.remove_file(partial)
        else:
            host.rename(partial, layout.blob(digest), rollback=rollback)
    manifest_hex = sha256_hex(pulled.manifest)
    if not host.exists(layout.blob(manifest_hex)):
        host.write_file(layout.blob(manifest_hex), pulled.manifest.decode(),
                        rollback=rollback)
    ref = pulled.ref
    tags = [ref.tagged] if ref.tag or not ref.digest else []
    host.step(f"record image {sha256_hex(pulled.config)[:SHORT]}")
    known = {d for d in pulled.diff_ids
             if layout.layer_dir(d).is_dir() or layout.blob(d).is_file()}
    sizes = [-1 if d in known else blob.size
             for d, blob in zip(pulled.diff_ids, pulled.blobs, strict=True)]
    hints = {d: -1 for d in pulled.diff_ids if d not in known}
    image = record_image(host, store, pulled.config, tags, sizes, rollback,
                         pulled.top_digest.removeprefix("sha256:"), hints)
    repo_digest = f"{ref.name}@{pulled.top_digest}"
    digests = [d for d in image["repo_digests"] if d.partition("@")[0] != ref.name]
    image = {**image, "repo_digests": [*digests, repo_digest],
             "digest": pulled.top_digest.removeprefix("sha256:"),
             "layer_blobs": [b.record() for b in pulled.blobs], "manifest": manifest_hex}
    store.write(layout.image_file(image["id"]), image)
    return image


def pull_all_tags(host: Host, store: Store, text: str, **options: Any) -> list[str]:
    """`pull --all-tags`: each tag the repository lists (tags/list); their names."""
    ref = parse_reference(text)
    if ref.tag or ref.digest:
        raise ShellctrError("tag can't be used with --all-tags/-a", f"pull -a {ref.name}")
    registry = Registry(host, ref.registry, credentials_for(host, ref.registry),
                        options.get("tls_verify"))
    response = registry.request("GET", f"/v2/{ref.repository}/tags/list",
                                f"repository:{ref.repository}:pull", what=ref.name)
    try:
        tags = [str(tag) for tag in json.loads(response.read(4 << 20)).get("tags") or []]
    except (ValueError, AttributeError) as err:
        raise ShellctrError(f"{registry.name} gave an invalid tag list for {ref.name}") from err
    names = []
    for tag in sorted(tags):
        name = f"{ref.name}:{tag}"
        parse_reference(name)  # a registry's tag is checked before it becomes a name
        pull(host, store, name, **options)
        names.append(name)
    return names



# -- run/create --pull -----------------------------------------------------------------
def ensure_image(host: Host, store: Store, ref: str, policy: str,
                 platform: str | None = None) -> None:
    """`--pull missing|always|never` before run/create: pull when the policy says so
    (Docker's `Unable to find image` line and the pull's lines go to stderr)."""
    from shellctr.parts.reference import find_image_record, is_id

    if policy not in ("missing", "always", "never"):
        raise ShellctrError(f"invalid --pull policy {policy!r}",
                            "use missing, always or never")
    if policy != "always":
        try:
            find_image_record(store.image_records(), ref)
            return
        except NotFound:
            if policy == "never" or is_id(ref):
                raise
        sys.stderr.write(f"Unable to find image '{parse_reference(ref)}' locally\n")
    pull(host, store, ref, platform=platform, out=sys.stderr)

