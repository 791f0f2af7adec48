"""pull: images from a registry (the OCI distribution API), and `run/create --pull`.

The manifest (an index picks the platform), the config, then each layer not in the store
yet, 3 at a time: each blob streams into `blobs/sha256/.DIGEST.PID.partial`, hashed as it
comes (a cut connection is resumed with a Range request, with back-off) and never used
before its digest matches; then it is decompressed, checked and extracted as `load` does
(layers.prepare_layer), outside the store lock. Under the lock the layers move into place,
the compressed blobs and the manifest are kept (a push sends the same bytes), and the
image is recorded with its tag and `NAME@sha256:` repo digest. A pull killed half-way
leaves only `.partial` names, which the next one sweeps.

Each request is shown as its `curl` line (`--trace`); `--dry-run` makes the read-only
requests (token, manifests, and reads the layers to plan their extraction) and prints
the `curl` downloads, `sha256sum --check` and the store writes as a script.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

from shellctr.core.cmd import Cmd, path_arg
from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import SHORT
from shellctr.core.state import Image, LayerBlob, evolve, save
from shellctr.core.store import Store
from shellctr.engine.image import parse_config, record_image, sha256_hex
from shellctr.engine.layers import (
    CHUNK,
    LayerSource,
    PreparedLayer,
    copy_stream,
    layer_present,
    pid_partial,
    prepare_layer,
    publish_layer,
    sweep_partials,
)
from shellctr.engine.registry_auth import credentials_for
from shellctr.engine.registry_http import SOCKET_ERRORS, Registry, Response, Unreachable
from shellctr.engine.registry_progress import PARALLEL, Progress
from shellctr.parts.reference import Reference, parse_reference
from shellctr.parts.registry import (
    ACCEPT,
    INDEXES,
    LAYER_TYPES,
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


class Gunzip:
    """gzip decompressed as the bytes come, into `out` (a layer may hold several gzip
    members; zero padding after the last is ignored, anything else refused)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.inflate = zlib.decompressobj(wbits=31)
        self.ended = False
        # kept, not raised: the blob's digest is checked first (a corrupt blob says so)
        self.error = ""

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.inflate, self.ended, self.error = zlib.decompressobj(wbits=31), False, ""

    def feed(self, data: bytes) -> None:
        while data and not self.error:
            if self.ended:  # after a member: another one, or padding
                if data.count(0) == len(data):
                    return
                if not data.startswith(b"\x1f\x8b"):
                    self.error = "data after its end"
                    return
                self.inflate, self.ended = zlib.decompressobj(wbits=31), False
            try:
                self.out.write(self.inflate.decompress(data))
            except zlib.error as err:
                self.error = str(err)
                return
            data = b""
            if self.inflate.eof:
                data, self.ended = self.inflate.unused_data, True


def download(host: Host, registry: Registry, repository: str, digest: str, size: int,
             path: Path, progress: Progress, unpacked: Path | None = None) -> None:
    """Stream the blob into the new file `path`, hashing it; a dropped connection is
    resumed where it stopped (Range), up to RETRIES times with back-off. The file is
    removed (by the caller's undo) unless it ends with the right digest. `unpacked`: a
    gzip blob is also decompressed into this file in the same pass."""
    sha = hashlib.sha256()
    done = 0
    with host.new_file(path) as out, (
            host.new_file(unpacked) if unpacked else nullcontext()) as tar:
        gunzip = Gunzip(tar) if tar is not None else None
        for attempt in range(RETRIES):
            try:
                response = registry.stream_blob(repository, digest, done, output="")
                if done and response.status != 206:  # no Range support: from the start
                    sha, done = hashlib.sha256(), 0
                    out.seek(0)
                    out.truncate()
                    if gunzip is not None:
                        gunzip.restart()
                while chunk := response.raw.read(CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                    if gunzip is not None:
                        gunzip.feed(chunk)
                    done += len(chunk)
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
    if gunzip is not None and (gunzip.error or not gunzip.ended):
        raise ShellctrError(f"invalid gzip layer {digest}: "
                            f"{gunzip.error or 'it ends half-way'}")


def pulled_source(host: Host, path: Path, compression: str | None,
                  open_raw: Callable[[], IO[bytes]], unpacked: Path | None = None
                  ) -> LayerSource:
    """A downloaded layer blob (checked already) as a layer source for prepare_layer;
    `unpacked`: its tar, decompressed while it downloaded (then only renamed)."""
    argv = {None: ["cat"], "gzip": ["gzip", "--decompress", "--stdout"],
            "zstd": ["zstd", "--decompress", "--stdout", "--quiet"]}[compression] + [
        path_arg(path)]

    def copy(out: BinaryIO) -> str | None:
        if compression == "zstd":  # no zstd in the standard library: the zstd tool
            host.pipe_into(argv, out)
            return None
        with open(path, "rb") as src:
            copy_stream(src, out, compression is not None)
        return None

    return LayerSource(argv, copy, open_raw, ready=unpacked)


class Pulled:
    """What a pull found and brought in, before it is recorded under the lock."""

    def __init__(self, ref: Reference, top_digest: str, manifest: bytes, config: bytes,
                 blobs: list[LayerBlob], diff_ids: list[str]) -> None:
        self.ref, self.top_digest, self.manifest, self.config = (ref, top_digest, manifest,
                                                                 config)
        self.blobs, self.diff_ids = blobs, diff_ids
        self.downloads: dict[str, Path] = {}  # blob digest hex -> its checked .partial
        self.prepared: dict[str, PreparedLayer] = {}


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
         credentials: tuple[str, str] | None = None) -> Image:
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
    """Download, check and extract each layer not in the store yet (outside the lock)."""
    layout = store.layout
    wanted: dict[str, tuple[LayerBlob, str]] = {}
    for blob, diff_id in zip(pulled.blobs, pulled.diff_ids, strict=True):
        if layer_present(layout, diff_id) and not host.dry_run:
            progress.layer(blob.digest, "Already exists")
        elif diff_id not in {d for _, d in wanted.values()}:
            wanted[blob.digest] = (blob, diff_id)
    for blob, _ in wanted.values():
        progress.layer(blob.digest, "Pulling fs layer")
    repository = pulled.ref.repository

    def bring(blob: LayerBlob, diff_id: str) -> None:
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
        compression = LAYER_TYPES[blob.media_type]
        unpacked = None
        if compression == "gzip" and not host.dry_run:  # decompressed in the same pass
            unpacked = pid_partial(layout.blobs_dir, f"{blob.digest}-tar")
            host.remove_file(unpacked)
            rollback.push(f"write {unpacked}", lambda: host.remove_file(unpacked))
        host.apply(shown, lambda: download(host, registry, repository, digest, blob.size, partial,
                                           progress, unpacked),
                   lambda facts: facts.plan_write(partial, b""))
        host.apply(Cmd(["sha256sum", "--check", "--quiet", "--strict"],
                       stdin=f"{blob.digest}  {path_arg(partial)}\n"), lambda: None)
        progress.layer(digest, "Download complete")

        def open_raw() -> IO[bytes]:
            if not host.dry_run:
                return open(partial, "rb")
            response: Response = registry.stream_blob(repository, digest, output="")
            raw: IO[bytes] = response.raw
            return (host.probe_stream(["zstd", "--decompress", "--stdout", "--quiet"], raw)
                    if compression == "zstd" else raw)

        progress.layer(digest, "Extracting")
        pulled.prepared[diff_id] = prepare_layer(
            host, layout, pulled_source(host, partial, compression, open_raw, unpacked), rollback,
            expect=diff_id)
        pulled.downloads[blob.digest] = partial
        progress.layer(digest, "Pull complete")

    if host.dry_run or len(wanted) < 2:  # a script in order
        for blob, diff_id in wanted.values():
            bring(blob, diff_id)
        return
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = [pool.submit(bring, blob, diff_id) for blob, diff_id in wanted.values()]
        errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


def record_pull(host: Host, store: Store, pulled: Pulled, rollback: Rollback) -> Image:
    """Under the lock: layers and blobs into place, the image recorded and tagged."""
    layout = store.layout
    sweep_partials(host, layout)
    if pulled.prepared:
        host.step("move the layers into place")
    for layer in pulled.prepared.values():
        publish_layer(host, layout, layer, rollback)
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
    sizes_by_diff = {d: layer.scan.size for d, layer in pulled.prepared.items()}
    hints = {d: layer.scan.tar_size for d, layer in pulled.prepared.items()
             if layer.scan.tar_size}
    sizes = [sizes_by_diff.get(d, -1) for d in pulled.diff_ids]
    image = record_image(host, store, pulled.config, tags, sizes, rollback,
                         pulled.top_digest.removeprefix("sha256:"), hints)
    repo_digest = f"{ref.name}@{pulled.top_digest}"
    digests = [d for d in image.repo_digests if d.partition("@")[0] != ref.name]
    image = evolve(image, repo_digests=[*digests, repo_digest],
                   digest=pulled.top_digest.removeprefix("sha256:"),
                   layer_blobs=[b.model_dump() for b in pulled.blobs], manifest=manifest_hex)
    save(store, layout.image_file(image.id), image)
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

