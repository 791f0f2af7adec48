"""Network endpoints: list (with Docker's filters), inspect, create, delete, connect,
disconnect, prune; each the matching CLI verb's engine call, answered in Docker's shapes."""

from __future__ import annotations

from typing import Any

from shellctr.api.routes import (
    ROUTES,
    ApiError,
    Call,
    Json,
    bad_request,
    expect_dict,
    labels_of,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shellctr.core.store import Record



def network_filters(call: Call, record: Record) -> bool:
    from shellctr.parts.filters import NETWORK_KEYS, network_matches

    wanted = call.filters()
    for key in wanted:
        if key not in NETWORK_KEYS:
            raise bad_request(f"invalid filter {key!r}")
    return network_matches(record, wanted)


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
    from shellctr.engine.endpoint import connect

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
    from shellctr.engine.endpoint import disconnect

    body = expect_dict(call.json_body(), "the body")
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise bad_request("Container is required")
    disconnect(call.host, call.store, call.params["id"], container, bool(body.get("Force")))


@ROUTES.add("POST", "/networks/prune")
def network_prune(call: Call) -> dict[str, Any]:
    from shellctr.engine.network import prune

    return {"NetworksDeleted": prune(call.host, call.store) or None}
