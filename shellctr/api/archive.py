"""A container's files: export (its whole filesystem as a tar) and archive (`docker cp`:
the stat of a path, a tar of it, a tar extracted into it), through the engine functions
`shellctr export` and `shellctr cp` use."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from shellctr.api.containers import find
from shellctr.api.routes import ROUTES, ApiError, Call, Raw, Streamed, bad_request
from shellctr.core.errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


# -- export ------------------------------------------------------------------------------

@ROUTES.add("GET", "/containers/{id}/export")
def container_export(call: Call) -> Streamed:
    from shellctr.engine.containers import export

    cid = find(call)
    call.store.prepare()
    path = call.store.layout.tmp_dir / f"api-export-{os.getpid()}-{os.urandom(6).hex()}.tar"
    try:
        export(call.host, call.store, cid, path)
    except BaseException:
        call.host.remove_file(path)
        raise
    return Streamed(file_chunks(call, path), "application/x-tar")


def file_chunks(call: Call, path: Any) -> Iterator[bytes]:
    """A scratch file's bytes, then the file goes."""
    try:
        with open(path, "rb") as stream:
            while data := stream.read(1 << 20):
                yield data
    finally:
        call.host.remove_file(path)


# -- archive (docker cp) -----------------------------------------------------------------
def path_stat(call: Call) -> tuple[str, dict[str, Any]]:
    """The container path's stat as Docker's X-Docker-Container-Path-Stat header."""
    import base64
    import stat as stat_module

    from shellctr.engine.copy import container_root, resolved_or_missing, stat_in_root

    path = call.arg("path")
    if not path:
        raise bad_request("path is required")
    if not path.startswith("/"):
        path = "/" + path
    with container_root(call.host, call.store, call.params["id"]) as (root, _):
        target = resolved_or_missing(root, path)
        if target is None:
            raise NotFound(f"Could not find the file {path} in container {call.params['id']}")
        st = stat_in_root(root, target)
    mode = stat_module.S_IMODE(st.st_mode)
    go_mode = mode
    if stat_module.S_ISDIR(st.st_mode):
        go_mode |= 1 << 31
    elif stat_module.S_ISLNK(st.st_mode):
        go_mode |= 1 << 27
    info = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size,
            "mode": go_mode, "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                    time.gmtime(st.st_mtime)),
            "linkTarget": ""}
    return base64.b64encode(json.dumps(info).encode()).decode(), info


@ROUTES.add("HEAD", "/containers/{id}/archive")
def archive_head(call: Call) -> Raw:
    header, _ = path_stat(call)
    return Raw(b"", "application/json", headers={"X-Docker-Container-Path-Stat": header})


@ROUTES.add("GET", "/containers/{id}/archive")
def archive_get(call: Call) -> Streamed:
    """A tar of the path (`cp CTR:PATH -`), walked under the container's root fd as
    `shellctr cp` walks it, written straight into the response."""
    import tarfile

    from shellctr.engine.copy import container_root, open_source, top_name, walk

    header, _ = path_stat(call)  # a missing path is a 404 before the stream begins
    path = call.arg("path") or "/"
    if not path.startswith("/"):
        path = "/" + path

    def write(out: Any) -> None:
        with container_root(call.host, call.store, call.params["id"]) as (root, _), \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            parent, name, contents = open_source(root, path, False, in_container=True)
            try:
                for info, data in walk(parent, name, "" if contents else top_name(name, path)):
                    archive.addfile(info, data)
                    if data is not None:
                        data.close()
            finally:
                os.close(parent)

    return Streamed(content_type="application/x-tar", writer=write,
                    headers={"X-Docker-Container-Path-Stat": header})


@ROUTES.add("PUT", "/containers/{id}/archive")
def archive_put(call: Call) -> Raw:
    """A tar extracted into a directory of the container (cp - CTR:DIR), member by
    member under its root fd, as `shellctr cp` does."""
    import stat as stat_module
    import tarfile

    from shellctr.engine.copy import container_root, extract, resolved_or_missing, stat_in_root

    path = call.arg("path")
    if not path:
        raise bad_request("path is required")
    if not path.startswith("/"):
        path = "/" + path
    owner = None if call.flag("copyUIDGID") else (0, 0)
    body = call.body()
    with container_root(call.host, call.store, call.params["id"]) as (root, _):
        target = resolved_or_missing(root, path)
        if target is None or not stat_module.S_ISDIR(stat_in_root(root, target).st_mode):
            raise NotFound(f"Could not find the file {path} in container "
                           f"{call.params['id']}: it must be a directory")
        try:
            with tarfile.open(fileobj=body, mode="r|*") as stream:
                extract(((member, stream.extractfile(member) if member.isreg() else None)
                         for member in stream), root, target, owner, to_host=False)
        except tarfile.TarError as err:
            raise bad_request(f"invalid tar archive: {err}") from err
        except OSError as err:
            raise ApiError(500 if err.errno is None else 400, f"cp failed: {err.strerror}") \
                from err
    return Raw(b"", "text/plain", 200)
