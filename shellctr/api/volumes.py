"""Volume endpoints: list (with Docker's filters), inspect, create, delete, prune (with
the space it reclaimed); each the matching CLI verb's engine call, in Docker's shapes."""

from __future__ import annotations

import os
from typing import Any

from shellctr.api.routes import (
    ROUTES,
    ApiError,
    Call,
    Json,
    bad_request,
    expect_dict,
    familiar,
    label_filter,
    labels_of,
)
from shellctr.core.errors import Conflict, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shellctr.core.store import Store



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
    check_volume_name(name)
    options = driver_options(call, body.get("DriverOpts"))
    labels = labels_of(body.get("Labels"))
    store = call.store
    store.prepare()
    with store.lock(), Rollback(call.host) as rollback:
        if not store.layout.volume_record(name).exists():  # Docker: an existing one is fine
            create_volume(call.host, store, name, labels, rollback, options=options)
    return Json(volume_summary(store, name), 201)


def driver_options(call: Call, given: object) -> dict[str, str]:
    """`DriverOpts` (`docker volume create -o`, compose's `driver_opts`): the local
    driver's type/device/o, checked as the CLI's `-o` are."""
    from shellctr.core.errors import ShellctrError
    from shellctr.engine.volume import parse_driver_options

    if not given:
        return {}
    if not isinstance(given, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in given.items()):
        raise bad_request("DriverOpts must be an object of strings")
    try:
        return parse_driver_options(call.host.facts, [f"{k}={v}" for k, v in given.items()])
    except ShellctrError as err:
        raise bad_request(str(err)) from None


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
