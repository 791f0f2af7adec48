"""Images, networks and volumes: list, inspect, create, tag, delete, prune, save/load,
each the matching CLI verb's engine call, answered in Docker's shapes."""

from __future__ import annotations

import fnmatch
import io
import os
from typing import Any

from shellctr.api.server import ROUTES, ApiError, Call, Json, Raw, Streamed, bad_request, familiar
from shellctr.core.errors import Conflict, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from shellctr.core.state import Image
    from shellctr.core.store import Record, Store


def expect_dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object")
    return value


def labels_of(value: Any, what: str = "Labels") -> dict[str, str]:
    labels = expect_dict(value, what)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise bad_request(f"{what} must map strings to strings")
    return labels


def label_filter(labels: dict[str, str], wanted: list[str]) -> bool:
    from shellctr.parts.filters import label_matches

    return all(label_matches(labels, item) for item in wanted)


# -- images ------------------------------------------------------------------------------
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


@ROUTES.add("POST", "/images/create")
def image_create(call: Call) -> Streamed:
    """`docker pull`: fromImage[:tag], or @digest. Credentials are the service's (the
    engine reads its docker config); X-Registry-Auth is not passed on yet."""
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
    return progress_of(call, lambda out: pull(call.host, call.store, text, platform=platform,
                                              out=out))


@ROUTES.add("POST", "/images/{name*}/push")
def image_push(call: Call) -> Streamed:
    from shellctr.engine.image import find_image
    from shellctr.engine.push import push

    name = call.params["name"]
    tag = call.arg("tag")
    text = f"{name}:{tag}" if tag else name
    find_image(call.store, familiar(text))  # 404 before the stream begins
    return progress_of(call, lambda out: push(call.host, call.store, text, out=out))


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


# -- networks ----------------------------------------------------------------------------
def network_filters(call: Call, record: Record) -> bool:
    from shellctr.parts.netopts import DEFAULT_NETWORK

    labels = record.get("labels", {})
    kind = "builtin" if record["name"] == DEFAULT_NETWORK else "custom"
    tests: dict[str, Callable[[str], bool]] = {
        "name": lambda v: v in record["name"], "id": lambda v: record["id"].startswith(v),
        "driver": lambda v: record["driver"] == v,
        "label": lambda v: label_filter(labels, [v]), "type": lambda v: v == kind,
    }
    for key, values in call.filters().items():
        test = tests.get(key)
        if test is None:
            raise bad_request(f"invalid filter {key!r}")
        # one key's values: any of them, except labels (all of them), as Docker
        matched = all if key == "label" else any
        if values and not matched(test(value) for value in values):
            return False
    return True


@ROUTES.add("GET", "/networks")
def networks_list(call: Call) -> list[dict[str, Any]]:
    from shellctr.engine.inspect import network_json
    from shellctr.engine.network import records

    found = [record for record in records(call.store) if network_filters(call, record)]
    return [network_json(call.store, record) for record in sorted(found,
                                                                   key=lambda r: r["name"])]


@ROUTES.add("GET", "/networks/{id}")
def network_inspect(call: Call) -> dict[str, Any]:
    from shellctr.engine.inspect import network_json
    from shellctr.engine.network import find_network

    return network_json(call.store, find_network(call.store, call.params["id"]))


@ROUTES.add("POST", "/networks/create")
def network_create(call: Call) -> Json:
    from shellctr.engine.network import create

    body = expect_dict(call.json_body(), "the body")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise bad_request("Name is required")
    ipam = expect_dict(body.get("IPAM"), "IPAM")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or len(configs) > 1:
        raise bad_request("IPAM.Config takes at most one subnet here")
    config = expect_dict(configs[0] if configs else {}, "IPAM.Config[0]")
    for key in ("Subnet", "Gateway", "IPRange"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise bad_request(f"IPAM.Config[0].{key} must be a string")
    driver = body.get("Driver") or "bridge"
    if not isinstance(driver, str):
        raise bad_request("Driver must be a string")
    record = create(call.host, call.store, name, subnet=config.get("Subnet") or None,
                    gateway=config.get("Gateway") or None,
                    ip_range=config.get("IPRange") or None,
                    internal=bool(body.get("Internal")), labels=labels_of(body.get("Labels")),
                    driver=driver)
    return Json({"Id": record["id"], "Warning": ""}, 201)


@ROUTES.add("DELETE", "/networks/{id}")
def network_delete(call: Call) -> None:
    from shellctr.engine.network import find_network, remove
    from shellctr.parts.netopts import DEFAULT_NETWORK

    ref = call.params["id"]
    if ref in (DEFAULT_NETWORK, "bridge") or \
            find_network(call.store, ref)["name"] == DEFAULT_NETWORK:
        raise ApiError(403, f"{ref} is a pre-defined network and cannot be removed")
    remove(call.host, call.store, ref)


@ROUTES.add("POST", "/networks/{id}/connect")
def network_connect(call: Call) -> None:
    from shellctr.engine.network import connect

    body = expect_dict(call.json_body(), "the body")
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise bad_request("Container is required")
    endpoint = expect_dict(body.get("EndpointConfig"), "EndpointConfig")
    ipam = expect_dict(endpoint.get("IPAMConfig"), "EndpointConfig.IPAMConfig")
    aliases = endpoint.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise bad_request("EndpointConfig.Aliases must be a list of strings")
    ip = ipam.get("IPv4Address") or None
    if ip is not None and not isinstance(ip, str):
        raise bad_request("IPv4Address must be a string")
    connect(call.host, call.store, call.params["id"], container, ip, aliases)


@ROUTES.add("POST", "/networks/{id}/disconnect")
def network_disconnect(call: Call) -> None:
    from shellctr.engine.network import disconnect

    body = expect_dict(call.json_body(), "the body")
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise bad_request("Container is required")
    disconnect(call.host, call.store, call.params["id"], container, bool(body.get("Force")))


@ROUTES.add("POST", "/networks/prune")
def network_prune(call: Call) -> dict[str, Any]:
    from shellctr.engine.network import prune

    return {"NetworksDeleted": prune(call.host, call.store) or None}


# -- volumes -----------------------------------------------------------------------------
def volume_summary(store: Store, name: str) -> dict[str, Any]:
    from shellctr.engine.inspect import volume_json

    return volume_json(store, name)


def volumes_matching(call: Call) -> list[dict[str, Any]]:
    from shellctr.engine.volume import ANONYMOUS_LABEL, users

    store = call.store
    found = []
    for name in store.volume_names():
        try:
            item = volume_summary(store, name)
        except NotFound:  # removed as we looked
            continue
        labels = item["Labels"] or {}
        keep = True
        for key, values in call.filters().items():
            if key == "name":
                keep = keep and any(value in name for value in values)
            elif key == "label":
                keep = keep and label_filter(labels, values)
            elif key == "dangling":
                keep = keep and any((not users(store, name)) == (v.lower() in ("true", "1"))
                                    for v in values)
            elif key == "driver":
                keep = keep and "local" in values
            elif key == "all":
                continue
            else:
                raise bad_request(f"invalid filter {key!r}")
        item["anonymous"] = ANONYMOUS_LABEL in labels
        if keep:
            found.append(item)
    return found


@ROUTES.add("GET", "/volumes")
def volumes_list(call: Call) -> dict[str, Any]:
    found = volumes_matching(call)
    for item in found:
        item.pop("anonymous")
    return {"Volumes": found, "Warnings": None}


@ROUTES.add("GET", "/volumes/{name}")
def volume_inspect(call: Call) -> dict[str, Any]:
    return volume_summary(call.store, familiar(call.params["name"]))


@ROUTES.add("POST", "/volumes/create")
def volume_create(call: Call) -> Json:
    from shellctr.core.host import Rollback
    from shellctr.core.ids import new_id
    from shellctr.engine.volume import check_volume_name, create_volume

    body = expect_dict(call.json_body(required=False), "the body")
    name = body.get("Name") or new_id()
    if not isinstance(name, str):
        raise bad_request("Name must be a string")
    if (body.get("Driver") or "local") != "local":
        raise bad_request(f"volume driver {body['Driver']} is not supported: use local")
    if body.get("DriverOpts"):
        raise bad_request("volume options are not supported by the local driver here")
    check_volume_name(name)
    labels = labels_of(body.get("Labels"))
    store = call.store
    store.prepare()
    with store.lock(), Rollback(call.host) as rollback:
        if not store.layout.volume_record(name).exists():  # Docker: an existing one is fine
            create_volume(call.host, store, name, labels, rollback)
    return Json(volume_summary(store, name), 201)


@ROUTES.add("DELETE", "/volumes/{name}")
def volume_delete(call: Call) -> None:
    from shellctr.engine.volume import remove_volume

    with call.store.lock():
        try:
            remove_volume(call.host, call.store, familiar(call.params["name"]))
        except NotFound:
            if not call.flag("force"):
                raise
        except Conflict as err:
            raise ApiError(409, str(err)) from err


@ROUTES.add("POST", "/volumes/prune")
def volume_prune(call: Call) -> dict[str, Any]:
    from shellctr.engine.volume import remove_volume, users

    everything = any(v.lower() in ("true", "1") for v in call.filters().get("all", []))
    removed, space = [], 0
    store = call.store
    with store.lock():
        for item in volumes_matching(call):
            name = str(item["Name"])
            if users(store, name) or not (everything or item["anonymous"]):
                continue
            space += tree_size(str(store.layout.volume_data(name)))
            remove_volume(call.host, store, name)
            removed.append(name)
    return {"VolumesDeleted": removed or None, "SpaceReclaimed": space}


def tree_size(path: str) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total
