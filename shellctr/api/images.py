"""Image endpoints: list, inspect, history, tag, delete, prune, pull (create) and push with
Docker's progress lines, search, save (get) and load; each the matching CLI verb's engine
call, answered in Docker's shapes."""

from __future__ import annotations

import fnmatch
import io
import os
from typing import Any

from shellctr.api.routes import (
    ROUTES,
    ApiError,
    Call,
    Json,
    Raw,
    Streamed,
    bad_request,
    familiar,
    label_filter,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from shellctr.core.state import Image
    from shellctr.core.store import Store



def image_summary(store: Store, image: Image) -> dict[str, Any]:
    repo = [tag.rpartition(":")[0] for tag in image.repo_tags]
    return {
        "Id": f"sha256:{image.id}", "ParentId": "",
        "RepoTags": image.repo_tags,
        "RepoDigests": [f"{name}@sha256:{image.digest}" for name in dict.fromkeys(repo)]
        if image.digest else [],
        "Created": int(image.created.timestamp()), "Size": image.size,
        "SharedSize": -1, "VirtualSize": image.size,
        "Labels": image.config.Labels or {}, "Containers": -1,
    }


@ROUTES.add("GET", "/images/json")
def images_list(call: Call) -> list[dict[str, Any]]:
    from shellctr.core.state import images

    filters = call.filters()
    found = sorted(images(call.store), key=lambda image: image.created, reverse=True)
    for key, values in filters.items():
        if key == "dangling":
            found = [i for i in found if any((not i.repo_tags) == (v.lower() == "true")
                                             for v in values)]
        elif key == "label":
            found = [i for i in found if label_filter(i.config.Labels, values)]
        elif key == "reference":
            found = [i for i in found if any(
                fnmatch.fnmatchcase(tag, value) or fnmatch.fnmatchcase(tag.rpartition(":")[0],
                                                                       value)
                for tag in i.repo_tags for value in values)]
        else:
            raise bad_request(f"invalid filter {key!r}")
    if not call.flag("all") and "dangling" not in filters:
        found = [image for image in found if image.repo_tags]
    return [image_summary(call.store, image) for image in found]


@ROUTES.add("GET", "/images/{name*}/json")
def image_inspect(call: Call) -> dict[str, Any]:
    from shellctr.engine.inspect import image_json
    from shellctr.parts.reference import find_image_record

    found = find_image_record(call.store.image_records(), familiar(call.params["name"]))
    return image_json(found, call.store)


@ROUTES.add("GET", "/images/{name*}/history")
def image_history(call: Call) -> list[dict[str, Any]]:
    from shellctr.engine.image import find_image

    image = find_image(call.store, familiar(call.params["name"]))
    sizes = list(image.layer_sizes) or [image.size]
    rows, layer = [], 0
    for entry in image.history or [None]:  # type: ignore[list-item]
        empty = entry is not None and entry.empty_layer
        size = 0 if empty or layer >= len(sizes) else sizes[layer]
        layer += 0 if empty else 1
        created = entry.created if entry is not None and entry.created else image.created
        rows.append({"Id": "<missing>", "Created": int(created.timestamp()),
                     "CreatedBy": entry.created_by if entry is not None else "",
                     "Tags": None, "Size": max(size, 0),
                     "Comment": entry.comment if entry is not None else image.comment})
    rows.reverse()
    rows[0]["Id"], rows[0]["Tags"] = f"sha256:{image.id}", image.repo_tags
    return rows


@ROUTES.add("POST", "/images/{name*}/tag")
def image_tag(call: Call) -> Json:
    from shellctr.engine.image import tag_image

    repo = call.arg("repo")
    if not repo:
        raise bad_request("repo is required")
    tag = call.arg("tag") or "latest"
    tag_image(call.host, call.store, familiar(call.params["name"]), familiar(f"{repo}:{tag}"))
    return Json("", 201)


@ROUTES.add("DELETE", "/images/{name*}")
def image_delete(call: Call) -> list[dict[str, str]]:
    from shellctr.engine.image import remove_image
    from shellctr.engine.lifecycle import reconcile

    store = call.store
    with store.lock():  # as rmi: a create after this look must see the image gone
        users = {cid: (store.container_config(cid)["image_id"],
                       reconcile(store, cid)["status"] == "running")
                 for cid in store.container_ids()}
        lines = remove_image(call.host, store, familiar(call.params["name"]),
                             call.flag("force"), users)
    out = []
    for line in lines:
        kind, _, what = line.partition(": ")
        out.append({kind: what})
    return out


@ROUTES.add("POST", "/images/prune")
def image_prune(call: Call) -> dict[str, Any]:
    from shellctr.engine.image import prune_images

    filters = call.filters()
    dangling = filters.get("dangling", ["true"])
    everything = any(value.lower() in ("false", "0") for value in dangling)
    lines, reclaimed = prune_images(call.host, call.store, everything)
    deleted = []
    for line in lines:
        kind, _, what = line.partition(": ")
        deleted.append({"Untagged" if kind == "untagged" else "Deleted": what})
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


class ProgressLines(io.TextIOBase):
    """The engine's pull/push lines (`out=`) as Docker's JSON-lines progress, each
    written into the chunked response as it comes."""

    def __init__(self, out: Any) -> None:
        super().__init__()
        self.target, self.pending = out, ""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        import json

        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            layer, colon, status = line.partition(": ")
            item = ({"status": status, "id": layer} if colon and len(layer) == 12
                    and all(c in "0123456789abcdef" for c in layer) else {"status": line})
            self.target.write(json.dumps(item).encode() + b"\r\n")
        return len(text)


def progress_of(call: Call, work: Callable[[Any], object]) -> Streamed:
    """A pull or push as Docker streams it: progress lines, or an `error` line (the
    status is 200 already once the stream begins)."""
    import json

    from shellctr.core.errors import ShellctrError

    def write(out: Any) -> None:
        try:
            work(ProgressLines(out))
        except ShellctrError as err:
            message = str(err)
            out.write(json.dumps({"errorDetail": {"message": message},
                                  "error": message}).encode() + b"\r\n")

    return Streamed(content_type="application/json", writer=write)


def auth_config(value: Any, what: str) -> dict[str, str]:
    """Docker's AuthConfig (`username`, `password` or `auth`: base64 of USER:PASS,
    `serveraddress`), its values as text; `auth` read into `username` and `password`."""
    import base64
    import binascii

    if not isinstance(value, dict):
        raise bad_request(f"invalid {what}: it must be a JSON object")
    config = {key: item for key, item in value.items() if isinstance(item, str)}
    if config.get("auth") and not config.get("username"):
        try:
            user, colon, password = base64.b64decode(config["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, colon, password = "", "", ""
        if not colon:
            raise bad_request(f"invalid {what}: auth must be base64 of USER:PASSWORD")
        config.update(username=user, password=password)
    return config


def registry_credentials(call: Call) -> tuple[str, str] | None:
    """The client's credentials for a pull or push (X-Registry-Auth: base64url of the
    AuthConfig JSON, as `docker` and docker-py send it); None without a user and a
    password in it: then the service's own, from its credentials files, as the CLI's."""
    import base64
    import binascii
    import json

    header = (call.handler.headers.get("X-Registry-Auth") or "").strip()
    if not header:
        return None
    try:  # base64url, padded (docker) or not (some clients)
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        raise bad_request("invalid X-Registry-Auth header: it must be base64url of a "
                          "JSON AuthConfig") from None
    config = auth_config(decoded, "X-Registry-Auth header")
    if config.get("username") and config.get("password"):
        return config["username"], config["password"]
    return None


@ROUTES.add("POST", "/images/create")
def image_create(call: Call) -> Streamed:
    """`docker pull`: fromImage[:tag], or @digest. Credentials: the client's
    X-Registry-Auth, else the service's (the engine reads its credentials files)."""
    from shellctr.engine.pull import pull
    from shellctr.parts.reference import parse_reference

    if call.arg("fromSrc"):
        raise ApiError(501, "import through images/create (fromSrc) is not implemented")
    name = call.arg("fromImage")
    if not name:
        raise bad_request("fromImage is required")
    tag = call.arg("tag") or ""
    text = name if not tag or "@" in name else (
        f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}")
    parse_reference(text)  # a malformed reference is a 400 before the stream begins
    platform = call.arg("platform") or None
    credentials = registry_credentials(call)
    return progress_of(call, lambda out: pull(call.host, call.store, text, platform=platform,
                                              out=out, credentials=credentials))


@ROUTES.add("POST", "/images/{name*}/push")
def image_push(call: Call) -> Streamed:
    from shellctr.engine.image import find_image
    from shellctr.engine.push import push

    name = call.params["name"]
    tag = call.arg("tag")
    text = f"{name}:{tag}" if tag else name
    find_image(call.store, familiar(text))  # 404 before the stream begins
    credentials = registry_credentials(call)
    return progress_of(call, lambda out: push(call.host, call.store, text, out=out,
                                              credentials=credentials))


@ROUTES.add("GET", "/images/search")
def image_search(call: Call) -> list[Any]:
    return []  # no registry index to search


@ROUTES.add("GET", "/images/get")
def images_get(call: Call) -> Streamed:
    return save_images(call, [familiar(name) for name in call.query.get("names", [])])


@ROUTES.add("GET", "/images/{name*}/get")
def image_get(call: Call) -> Streamed:
    return save_images(call, [familiar(call.params["name"])])


def save_images(call: Call, refs: list[str]) -> Streamed:
    """`docker save`: the archive written to a scratch file, then streamed and removed."""
    from shellctr.engine.archive import save

    if not refs:
        raise bad_request("names is required")
    call.store.prepare()
    path = call.store.layout.tmp_dir / f"api-save-{os.getpid()}-{os.urandom(6).hex()}.tar"
    try:
        save(call.host, call.store, refs, path, "docker-archive")
    except BaseException:
        call.host.remove_file(path)
        raise

    def chunks() -> Iterator[bytes]:
        try:
            with open(path, "rb") as stream:
                while data := stream.read(1 << 20):
                    yield data
        finally:
            call.host.remove_file(path)

    return Streamed(chunks(), "application/x-tar")


@ROUTES.add("POST", "/images/load")
def images_load(call: Call) -> Raw:
    import json
    from typing import IO, cast

    from shellctr.engine.archive import load
    from shellctr.engine.spool import spooled

    with spooled(call.host, cast(IO[bytes], call.body()), decompress=True) as path:
        lines = load(call.host, call.store, path)
    # `quiet` (the CLI asks for it when its stdout is no terminal) drops progress bars,
    # which there are none of: the "Loaded image" lines are always sent, as Docker's
    call.flag("quiet")
    body = "".join(json.dumps({"stream": line + "\n"}) + "\n" for line in lines)
    return Raw(body.encode(), "application/json")
