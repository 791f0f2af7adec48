"""Networks: their records, their host objects, the `network` verbs create/rm/ls/prune,
and the teardown of the endpoints on them (the making is endpoint.py's).

A network is a record, ROOT/networks/<id>.json: its bridge, subnet, gateway and the
endpoints of its running containers (address, MAC, veth, published ports), kept apart in
RUNROOT/networks. Every read-modify-write of those records happens under the store's
lock, which is also held while the host objects are made, so two starts never take the
same address or port.

On the host, a network is a bridge (`shellctr0` for the default network, `shbr-<id>`
for the others) holding the gateway address, its iptables rules (iptables.py) and, for
user networks, a resolver (dns.py). This module names every host object of a network
and of its endpoints (bridge, netns `shc-<id>`, veths `shv<id><n>`, at most 15
characters). An endpoint is released (`release`) when its container ends (or at `rm`,
or at its next start, after a crash), as Docker does; each removal probes what exists
and removes only that. `network rm` and `prune` first release the endpoints of
containers that have ended (`forget_gone`): that is why the teardown is here, below
endpoint.py, which makes endpoints on the networks made here (no import cycle).
`ports_of` reads the published ports for `ps` and `port`.

Stdlib only: `run` goes through here on every start.
"""

from __future__ import annotations

import os
from posixpath import join

from shellctr.core.errors import Conflict, CorruptRecord, NotFound, ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import find, new_id, short_id
from shellctr.core.store import NETWORK_SHAPE, SCHEMA_VERSION, Record, Store, now_iso
from shellctr.parts.netopts import DEFAULT_NETWORK

# dns, iptables and ipam (ipaddress) are imported by the functions that make and remove
# networks: `ps`, `port` and `network ls` only read records
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from shellctr.core.records import ContainerRecord


# -- names of host objects (at most 15 characters) ---------------------------------------
def netns_name(cid: str) -> str:
    return "shc-" + cid[:11]


def netns_path_at(facts: Facts, cid: str) -> str:
    return join(facts.netns_dir_at, netns_name(cid))


def netns_path(facts: Facts, cid: str) -> Path:
    from pathlib import Path

    return Path(netns_path_at(facts, cid))


def refresh_names(host: Host, store: Store, found: list[Record] | None = None) -> None:
    """The resolvers' names after endpoints came or went (dns.refresh)."""
    from shellctr.engine import dns

    dns.refresh(host, records(store) if found is None else found, store.layout,
                lambda cid: netns_path(host.facts, cid))


def veth_name(cid: str, index: int) -> str:
    return f"shv{cid[:10]}{index:x}"


def bridge_name(nid: str) -> str:
    return "shbr-" + nid[:10]


def links_made(link: str, netns: str | None = None) -> Callable[[Facts], None]:
    """What an `ip` batch that adds `link` (and the named `netns`) changes, for the plan."""
    def planned(facts: Facts) -> None:
        facts.plan_link(link, True)
        if netns is not None:
            facts.plan_write(facts.netns_dir / netns, b"")

    return planned


def links_gone(*links: str, netns: Path | None = None) -> Callable[[Facts], None]:
    """What deleting `links` (or the `netns` they are in) changes, for the plan."""
    def planned(facts: Facts) -> None:
        for link in links:
            facts.plan_link(link, False)
        if netns is not None:
            facts.plan_remove(netns)

    return planned


# -- records ------------------------------------------------------------------------------
def records(store: Store, corrupt: list[CorruptRecord] | None = None) -> list[Record]:
    """Every network: its record (ROOT/networks) with its endpoints (RUNROOT/networks).
    The corrupt ones are left out (and added to `corrupt`): `network rm ID` removes
    them, `network ls` shows them."""
    directory = store.layout.networks_dir_at
    found = []
    for entry in store.entries(directory):
        if entry.endswith(".json"):
            try:
                record = store.read(join(directory, entry), NETWORK_SHAPE)
                if f"{record['id']}.json" != entry:
                    raise CorruptRecord(join(directory, entry), "its id is not its name")
            except FileNotFoundError:  # removed just now
                continue
            except CorruptRecord as err:
                if corrupt is not None:
                    corrupt.append(err)
                continue
            record["endpoints"] = endpoints_of(store, record["id"])
            found.append(record)
    return found


def endpoints_of(store: Store, nid: str) -> Record:
    try:
        return store.read(store.layout.network_endpoints_at(nid))
    except FileNotFoundError:  # none started since the network (or the boot)
        return {}
    except CorruptRecord:  # runtime state: its containers' endpoints are found by them
        return {}


def remove_corrupt(host: Host, store: Store, ref: str) -> str | None:
    """`network rm ID` of a network whose record is corrupt: its resolver, rules and
    bridge (named by its id) go, then its files. None if there is no such network."""
    corrupt: list[CorruptRecord] = []
    records(store, corrupt)
    nids = [os.path.basename(str(err.path)).removesuffix(".json") for err in corrupt]
    matches = [nid for nid in nids if nid.startswith(ref)] if ref else []
    if len(matches) != 1:
        return None
    nid = matches[0]
    record = {"id": nid, "bridge": bridge_name(nid), "endpoints": endpoints_of(store, nid)}
    host.step(f"remove network {short_id(nid)} (its record is corrupt)")
    bring_down(host, store, record)
    host.remove_file(store.layout.network_endpoints(nid))
    host.remove_file(store.layout.network_file(nid))
    return nid


def find_network(store: Store, ref: str, found: list[Record] | None = None) -> Record:
    """A network by full id, name or unique id prefix (`bridge`: the default network)."""
    found = records(store) if found is None else found
    if ref == "bridge":
        ref = DEFAULT_NETWORK
    nid = find(ref, {record["id"]: record["name"] for record in found}, "network")
    return next(record for record in found if record["id"] == nid)


def require_network(store: Store, name: str) -> None:
    """`run --network NAME`: the network must exist before the container is made."""
    try:
        find_network(store, name)
    except NotFound:
        raise NotFound(f"network {name} not found",
                       "create it with `shellctr network create`") from None


def save(store: Store, record: Record) -> None:
    """Write the network's endpoints (runtime state: no fsync, the run root)."""
    path = store.layout.network_endpoints(record["id"])
    store.host.ensure_dir(path.parent, mode=0o700)
    store.write(path, record["endpoints"], durable=False)


def rename_endpoints(host: Host, store: Store, cid: str, name: str) -> None:
    """`rename` of a running container: its endpoints take the new name, and the
    resolvers of its user networks answer it (the old name no more). Caller holds the
    lock."""
    found = records(store)
    changed = False
    for record in found:
        endpoint = record["endpoints"].get(cid)
        if endpoint is not None and endpoint["name"] != name:
            endpoint["name"] = name
            save(store, record)
            changed = True
    if changed:
        refresh_names(host, store, found)


# -- networks -----------------------------------------------------------------------------
def create(host: Host, store: Store, name: str, *, subnet: str | None = None,
           gateway: str | None = None, ip_range: str | None = None, internal: bool = False,
           labels: dict[str, str] | None = None, driver: str = "bridge") -> Record:
    """`network create`: the record, then the bridge, its rules and its resolver."""
    from shellctr.core.ids import check_name
    from shellctr.parts import ipam

    if driver != "bridge":
        raise ShellctrError(f"network driver {driver!r} is not supported", "use -d bridge")
    check_name(name)
    if name in ("none", "host", "bridge", "default"):
        raise Conflict(f"{name} is a pre-defined network mode", "choose another name")
    store.prepare()
    host.ensure_dir(store.layout.networks_dir, mode=0o700)
    with store.lock(), Rollback(host) as rollback:
        existing = records(store)
        if any(record["name"] == name for record in existing):
            raise Conflict(f"network with name {name} already exists", "choose another name")
        taken = [record["subnet"] for record in existing]
        if subnet is None:
            if gateway or ip_range:
                raise ShellctrError("--gateway and --ip-range need --subnet")
            subnet = ipam.choose_subnet(taken, host.facts.routes())
        subnet, gw, pool = ipam.plan_network(subnet, gateway, ip_range, taken,
                                             host.facts.routes())
        nid = new_id()
        record: Record = {  # shaped like state.Network
            "schema_version": SCHEMA_VERSION, "id": nid, "name": name, "driver": driver,
            "created": now_iso(), "bridge": DEFAULT_NETWORK if name == DEFAULT_NETWORK
            else bridge_name(nid), "subnet": subnet, "gateway": gw, "ip_range": pool,
            "internal": internal, "dns": name != DEFAULT_NETWORK, "labels": labels or {},
            "endpoints": {},
        }
        host.step(f"create network {name}")
        path = store.layout.network_file(nid)
        store.write(path, {key: value for key, value in record.items() if key != "endpoints"})
        rollback.push(f"write {path}", lambda: host.remove_file(path))
        bring_up(host, store, record, rollback)
    network_event(store, record, "create")
    return record


def network_event(store: Store, record: Record, action: str, cid: str = "") -> None:
    """An event of the journal (engine/events.py) about a network."""
    from shellctr.engine import events

    attributes = {"name": str(record["name"]), "type": "bridge"}
    if cid:
        attributes["container"] = cid
    events.emit(store, "network", action, str(record["id"]), attributes)


def bring_up(host: Host, store: Store, record: Record, rollback: Rollback | None = None) -> None:
    """The network's bridge, rules and resolver: whatever of them is missing (after a
    reboot, all). The caller holds the lock."""
    from shellctr.engine import dns, iptables

    bridge, subnet = record["bridge"], record["subnet"]
    if bridge not in host.facts.links():
        prefix = subnet.split("/")[1]
        host.run(["ip", "-batch", "-"], input=(
            f"link add name {bridge} type bridge\n"
            f"address add {record['gateway']}/{prefix} dev {bridge}\n"
            f"link set dev {bridge} up\n"), effect=links_made(bridge))
        if rollback is not None:
            rollback.push(f"bridge {bridge}", lambda: bring_down(host, store, record))
        # 127.0.0.1 -> published port: DNAT'ed packets keep their loopback source on
        # their way out of this bridge (MASQUERADE then rewrites it); per bridge, so
        # it goes with the bridge
        host.write_value(host.facts.proc / f"sys/net/ipv4/conf/{bridge}/route_localnet", "1")
        # no router advertisement from a container configures the host's side (Docker 28)
        accept_ra = host.facts.proc / f"sys/net/ipv6/conf/{bridge}/accept_ra"
        if host.facts.exists(accept_ra) or host.dry_run:
            host.write_value(accept_ra, "0")
        if not record["internal"]:
            enable_forwarding(host)
        iptables.ensure_base(host)
        iptables.remove_owned(host, (f"net={bridge}",))  # a half-made earlier setup
        iptables.add(host, iptables.network_rules(bridge, subnet, record["internal"]))
    if record.get("dns"):
        dns.start(host, record, store.layout.network_run_dir(record["id"]))


def enable_forwarding(host: Host) -> None:
    """Routing between the bridges and the uplink (net.ipv4.ip_forward), as Docker; it
    is left on (other software may rely on it by then), in this network namespace."""
    if host.facts.sysctl("net.ipv4.ip_forward") != "1":
        host.write_value(host.facts.proc / "sys/net/ipv4/ip_forward", "1")


def bring_down(host: Host, store: Store, record: Record) -> None:
    """Remove the network's resolver, rules and bridge if present; the chains with the
    last network. The caller holds the lock."""
    from shellctr.engine import dns, iptables

    bridge = record["bridge"]
    dns.stop(host, store.layout.network_run_dir(record["id"]))
    owners = (f"net={bridge}", *(f"ctr={cid[:12]}" for cid in record.get("endpoints", {})))
    iptables.remove_owned(host, owners)
    present = host.facts.links()
    if bridge in present:
        host.run(["ip", "link", "delete", "dev", bridge], effect=links_gone(bridge))
    others = [r for r in records(store) if r["id"] != record["id"] and r["bridge"] in present]
    if not others:
        iptables.remove_base(host)


def remove(host: Host, store: Store, ref: str) -> str:
    """`network rm`: refused while containers are attached. Returns its name."""
    with store.lock():
        forget_gone(host, store)
        try:
            record = find_network(store, ref)
        except NotFound:
            removed = remove_corrupt(host, store, ref)
            if removed is None:
                raise
            return removed
        if record["endpoints"]:
            names = ", ".join(ep["name"] for ep in record["endpoints"].values())
            raise Conflict(f"network {record['name']} has active endpoints ({names})",
                           "stop the containers or disconnect them first")
        host.step(f"remove network {record['name']}")
        retire(host, store, record)
        network_event(store, record, "destroy")
    return str(record["name"])


def tombstone(store: Store, nid: str) -> Path:
    return store.layout.networks_dir / f".{nid}.removing"


def retire(host: Host, store: Store, record: Record) -> None:
    """Remove a network so that its record matches the host at every point: renamed to
    its tombstone first (gone from every listing, its name free), then its resolver,
    rules and bridge, then the tombstone. A kill half-way leaves the tombstone, which
    `system prune` finishes (finish_retired). The caller holds the lock."""
    host.rename(store.layout.network_file(record["id"]), tombstone(store, record["id"]))
    bring_down(host, store, record)
    host.remove_file(store.layout.network_endpoints(record["id"]))
    host.remove_file(tombstone(store, record["id"]))


def finish_retired(host: Host, store: Store, path: Path) -> None:
    """Finish the removal a kill interrupted (a tombstone .ID.removing)."""
    nid = path.name[1:-len(".removing")]
    try:
        record = store.read(path, NETWORK_SHAPE)
    except CorruptRecord:
        record = {"id": nid, "bridge": bridge_name(nid)}
    record["endpoints"] = endpoints_of(store, nid)
    bring_down(host, store, record)
    host.remove_file(store.layout.network_endpoints(nid))
    host.remove_file(path)


def in_use(store: Store) -> set[str]:
    """Names of the networks some container (running or not) is configured for."""
    used: set[str] = set()
    for cid in store.container_ids():
        try:
            state = store.container_state(cid)
        except (FileNotFoundError, CorruptRecord):  # removed meanwhile; rm -f removes it
            continue
        used.update(state["networks"])
    return used


def prune(host: Host, store: Store, include_default: bool = False) -> list[str]:
    """Remove the networks no container uses (the default one only if asked)."""
    removed = []
    with store.lock():
        forget_gone(host, store)
        used = in_use(store)
        corrupt: list[CorruptRecord] = []
        found = records(store, corrupt)
        for err in corrupt:  # nothing can use it: it goes, with what its id names
            nid = remove_corrupt(host, store, os.path.basename(str(err.path)).removesuffix(".json"))
            if nid is not None:
                removed.append(nid)
        for record in sorted(found, key=lambda r: str(r["name"])):
            if record["endpoints"] or record["name"] in used or (
                    record["name"] == DEFAULT_NETWORK and not include_default):
                continue
            host.step(f"remove network {record['name']}")
            retire(host, store, record)
            network_event(store, record, "destroy")
            removed.append(str(record["name"]))
    return removed


def network_for(host: Host, store: Store, name: str, found: list[Record]) -> Record:
    """The network a container wants, up; the default one is made on first use."""
    try:
        record = find_network(store, name, found)
    except NotFound:
        if name != DEFAULT_NETWORK:
            raise NotFound(f"network {name} not found",
                           "create it with `shellctr network create`") from None
        return create(host, store, DEFAULT_NETWORK)
    bring_up(host, store, record)
    return record


# -- endpoints: what a container wants, what its end releases ---------------------------
def wanted_networks(config: ContainerRecord) -> dict[str, dict[str, object]]:
    """name -> {ip, aliases} of the networks the container joins, in order: create writes
    them (the default bridge too); none left after `network disconnect` of the last one
    (loopback only, as Docker, until a `network connect`)."""
    return dict(config["networks"])  # type: ignore[arg-type]


def release(host: Host, store: Store, cid: str, only: str | None = None) -> None:
    """Remove the container's endpoints (of network `only`, else all and its netns):
    port rules, veths, names, addresses. Probes first; takes the lock."""
    from shellctr.engine import iptables

    facts = host.facts
    netns = netns_path(facts, cid)
    with store.lock():
        present = facts.links()
        mine = [(record, record["endpoints"][cid]) for record in records(store)
                if cid in record["endpoints"] and only in (None, record["id"])]
        # the host's objects first, then the records that name them: whatever fails or is
        # killed in between, the records still name what is left, for the next release
        for record, endpoint in mine:
            host.step(f"release {short_id(cid)} from network {record['name']}")
            if endpoint.get("ports"):
                # the raw table holds rules only for ports published on 127.x
                local = any(str(port.get("host_ip", "")).startswith("127.")
                            for port in endpoint["ports"])
                iptables.remove_owned(host, (f"ctr={cid[:12]}",),
                                      tables=iptables.TABLES if local else ("filter", "nat"))
            # deleting the netns takes its veths along, without waiting for the kernel
            # (an explicit `ip link delete` waits for RCU: ~20-50 ms on each stop)
            # (unless another container shares the netns: it outlives this one)
            whole = only is None and facts.exists(netns) and not endpoint.get("shared")
            if not whole and endpoint["veth"] in present:
                delete_link(host, endpoint["veth"])
        if only is None and facts.exists(netns):
            host.run(["ip", "netns", "delete", netns_name(cid)],
                     effect=links_gone(*(endpoint["veth"] for _, endpoint in mine),
                                       netns=netns))
        for record, _ in mine:
            record["endpoints"].pop(cid, None)
            save(store, record)
            refresh_names(host, store)
            network_event(store, record, "disconnect", cid)


def delete_link(host: Host, name: str) -> None:
    """`ip link delete`, unless the kernel removes it meanwhile (its netns just went)."""
    try:
        host.run(["ip", "link", "delete", "dev", name], effect=links_gone(name))
    except ShellctrError:
        if name in host.facts.links():
            raise


def forget_gone(host: Host, store: Store) -> None:
    """Release the endpoints of containers that have ended (a `stop` returns once the
    exit is recorded; the monitor's hook may not have released them yet) or no longer
    exist (removed by hand, or by a replayed --dry-run script): they must not keep a
    network in use. The caller holds the lock."""
    existing = set(store.container_ids())
    for record in records(store):
        for cid in list(record["endpoints"]):
            if cid in existing:
                try:
                    state = store.container_state(cid)
                except (FileNotFoundError, CorruptRecord):
                    continue
                # "created" with an endpoint: it is starting right now (attach is done)
                if state["status"] == "created" or (
                        state["status"] == "running"
                        and host.facts.alive(state["pid"], state["pid_start"])):
                    continue
            release(host, store, cid)


# -- published ports, read (ps, port) -----------------------------------------------------
def ports_of(store: Store) -> dict[str, list[Record]]:
    """container id -> its published ports, as bound (for ps and port)."""
    found: dict[str, list[Record]] = {}
    for record in records(store):
        for cid, endpoint in record["endpoints"].items():
            found.setdefault(cid, []).extend(endpoint.get("ports", []))
    return found


def port_text(binding: Record) -> str:
    return f"{binding['host_ip'] or '0.0.0.0'}:{binding['host_port']}"
