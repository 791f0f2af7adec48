"""Endpoints, made: a container's place on its networks, at its start and by `network
connect`/`disconnect`.

At start (`attach`, the network step of the start recipe), a container on bridge
networks gets a named netns `shc-<id>` (/run/netns), and for each network an address
(parts/ipam.py) and a veth pair `shv<id><n>` whose other end is `eth<n>` in the netns,
with its address, MAC and (first network) default route; its /etc/hosts and
resolv.conf; and on its first network its published ports (`publish`: a free host
port, DNAT rules of iptables.py). `precheck` refuses at `run` what start would refuse.
The records, the names of the host objects and the teardown (`release`) are
network.py's.

Stdlib only: `run` goes through here on every start.
"""

from __future__ import annotations

from shellctr.core.cmd import path_arg
from shellctr.core.errors import Conflict, NotFound
from shellctr.core.facts import Facts
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import find, short_id
from shellctr.core.store import Record, Store
from shellctr.engine import dns, iptables
from shellctr.engine.network import (
    bring_up,
    delete_link,
    find_network,
    links_made,
    netns_name,
    netns_path,
    network_event,
    network_for,
    records,
    refresh_names,
    release,
    save,
    veth_name,
    wanted_networks,
)
from shellctr.parts import ipam
from shellctr.parts.netopts import DEFAULT_NETWORK, is_bridged

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from shellctr.core.records import ContainerRecord


def new_endpoint(host: Host, store: Store, config: ContainerRecord, record: Record, index: int,
                 options: dict[str, object]) -> Record:
    """Allocate the container's address on `record` and write it (under the lock)."""
    cid = config["id"]
    used = [ep["ip"] for ep in record["endpoints"].values()]
    ip = ipam.allocate(record["subnet"], record["gateway"], record["ip_range"], used,
                       str(options.get("ip") or "") or None)
    mac = (config.get("mac_address") if index == 0 else "") or ipam.mac_for(ip)
    aliases = [str(a) for a in options.get("aliases", [])]  # type: ignore[attr-defined]
    endpoint: Record = {"name": config["name"], "ip": ip, "mac": mac, "aliases": aliases,
                        "veth": veth_name(cid, index), "ifname": f"eth{index}", "ports": []}
    record["endpoints"][cid] = endpoint
    save(store, record)
    return endpoint


def plumb(host: Host, record: Record, endpoint: Record, netns: str, *, new_netns: bool,
          default_route: bool) -> None:
    """The veth pair (host end on the bridge, the other end eth<n> in the netns), the
    address, MAC and route: two `ip -batch` runs, one outside and one inside."""
    veth, ifname = endpoint["veth"], endpoint["ifname"]
    outside = (f"netns add {netns}\n" if new_netns else "") + (
        f"link add name {veth} type veth peer name {ifname} netns {netns}\n"
        f"link set dev {veth} master {record['bridge']} up\n")
    host.run(["ip", "-batch", "-"], input=outside,
             effect=links_made(veth, netns=netns if new_netns else None))
    prefix = record["subnet"].split("/")[1]
    inside = (f"link set dev {ifname} address {endpoint['mac']}\n"
              f"address add {endpoint['ip']}/{prefix} dev {ifname}\n"
              f"link set dev {ifname} up\n")
    if new_netns:
        inside += "link set dev lo up\n"
    if default_route:
        inside += f"route add default via {record['gateway']} dev {ifname}\n"
    host.run(["ip", "-netns", netns, "-batch", "-"], input=inside)


def attach(host: Host, store: Store, config: ContainerRecord, rollback: Rollback) -> list[str]:
    """The network step of the start recipe: the argv prefix that joins the container's
    network namespace (empty: `unshare --net` makes a fresh one with only loopback)."""
    mode = config.get("network_mode", DEFAULT_NETWORK)
    if mode == "none":
        return []
    if mode == "host":
        return ["host"]
    if mode.startswith("container:"):
        return ["nsenter", f"--net={share_netns(store, mode.partition(':')[2])}", "--"]
    cid = config["id"]
    netns = netns_name(cid)
    with store.lock():
        release(host, store, cid)  # what a crashed earlier run left
        if not wanted_networks(config):  # disconnected from its last one: loopback only
            write_etc_files(host, store, config, [], None)
            return []  # unshare's fresh netns, named if a `network connect` comes
        host.step(f"network for container {short_id(cid)}")
        found = records(store)
        own = []
        for index, (name, options) in enumerate(wanted_networks(config).items()):
            record = network_for(host, store, name, found)
            endpoint = new_endpoint(host, store, config, record, index, options)
            wait_link_gone(host, endpoint["veth"])
            if index == 0:
                rollback.push(f"network of {short_id(cid)}",
                              lambda: release(host, store, cid))
            plumb(host, record, endpoint, netns, new_netns=index == 0,
                  default_route=index == 0 and not record["internal"])
            if index == 0:
                publish(host, store, config, record, endpoint)
            own.append(endpoint["ip"])
            network_event(store, record, "connect", cid)
        now = records(store)
        refresh_names(host, store, now)
        write_etc_files(host, store, config, own,
                        resolver(store, cid, wanted_networks(config), now))
    return ["nsenter", f"--net={path_arg(netns_path(host.facts, cid))}", "--"]


def share_netns(store: Store, ref: str) -> str:
    """`--network container:CTR`: the network namespace of that running container. Its
    endpoints are marked `shared`: when it ends, its veths must be deleted explicitly, as
    its netns lives on with this container."""
    with store.lock():
        cid = find(ref, store.container_names(), "container")
        state = store.container_state(cid)
        if state["status"] != "running" or not store.host.facts.alive(state["pid"],
                                                                      state["pid_start"]):
            raise Conflict(f"cannot join the network of container {ref}: it is not running",
                           "start it first")
        for record in records(store):
            endpoint = record["endpoints"].get(cid)
            if endpoint is not None and not endpoint.get("shared"):
                endpoint["shared"] = True
                save(store, record)
    return f"/proc/{state['pid']}/ns/net"


def write_etc_files(host: Host, store: Store, config: ContainerRecord, own: list[str],
                    nameserver: str | None) -> None:
    from shellctr.parts.netopts import hosts_text, resolv_text, without_loopback_resolvers

    layout, cid = store.layout, config["id"]
    # rewritten at each start: no fsync (see Host.write_file)
    host.write_file(layout.container_etc_file(cid, "hosts"), hosts_text(config, own),
                    durable=False)
    host.write_file(layout.container_etc_file(cid, "resolv.conf"),
                    resolv_text(config, without_loopback_resolvers(host.facts.resolv_conf()),
                                nameserver), durable=False)


def resolver(store: Store, cid: str, networks: Iterable[str], found: list[Record]) -> str | None:
    """The resolver a container's /etc/resolv.conf names: the gateway of the first of
    its `networks` (in the order it joined them) that has one and an endpoint of it, as
    Docker's embedded DNS serves a container once it is on a user network; on several,
    its own (dns.sync_own); None: the host's resolvers."""
    if dns.needs_own(cid, found):
        return dns.OWN_ADDRESS
    for name in networks:
        try:
            record = find_network(store, name, found)
        except NotFound:
            continue
        if record.get("dns") and cid in record["endpoints"]:
            return str(record["gateway"])
    return None


def update_resolv(host: Host, store: Store, config: ContainerRecord,
                  networks: Iterable[str]) -> None:
    """A running container's /etc/resolv.conf after a live `network connect` or
    `disconnect`, as its next start will write it (its networks' resolver, else the
    host's); left alone with --dns or a /etc/resolv.conf the user mounted, as Docker.
    In place (rewrite_file): the file is bind-mounted into the container."""
    from shellctr.parts.netopts import resolv_text, without_loopback_resolvers

    if config.get("dns") or any(m["target"] == "/etc/resolv.conf" for m in config["mounts"]):
        return
    path = store.layout.container_etc_file(config["id"], "resolv.conf")
    text = resolv_text(config, without_loopback_resolvers(host.facts.resolv_conf()),
                       resolver(store, config["id"], networks, records(store)))
    if host.facts.read_text(path, "") != text:
        host.rewrite_file(path, text)


def update_hosts(host: Host, store: Store, config: ContainerRecord, ip: str, present: bool) -> None:
    """A running container's /etc/hosts after `network connect` or `disconnect`, as
    Docker: its own line for `ip` added or removed, the rest (edits made inside too) kept.
    In place: the file is bind-mounted into the container."""
    from shellctr.parts.netopts import own_hosts_line

    path = store.layout.container_etc_file(config["id"], "hosts")
    line = own_hosts_line(config, ip)
    kept = [text for text in host.facts.read_text(path).splitlines(keepends=True)
            if text != line]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    host.rewrite_file(path, "".join([*kept, line] if present else kept))


def wait_link_gone(host: Host, name: str, timeout: float = 2.0) -> None:
    """A veth of this container's last run may still be on its way out with its old
    netns (the kernel cleans netns up asynchronously): wait, then delete it."""
    import time

    deadline = time.monotonic() + timeout
    while name in host.facts.links() and time.monotonic() < deadline:
        time.sleep(0.005)
    if name in host.facts.links():
        delete_link(host, name)




# -- published ports -----------------------------------------------------------------------
def publish(host: Host, store: Store, config: ContainerRecord, record: Record,
            endpoint: Record) -> None:
    """Bind the container's published ports (a random host port for 0), refusing ports
    in use by shellctr or any other program; DNAT them to `endpoint`."""
    bindings: list[Record] = [dict(binding) for binding in config["ports"]]
    if config["publish_all"]:
        bound = {f"{b['port']}/{b['proto']}" for b in bindings}
        for spec in config["exposed"]:
            if spec not in bound:
                number, _, proto = spec.partition("/")
                bindings.append({"proto": proto, "host_ip": "", "host_port": 0,
                                 "host_port_end": 0, "port": int(number)})
    if not bindings:
        return
    taken = {(p["proto"], p["host_port"]) for r in records(store)
             for ep in r["endpoints"].values() for p in ep.get("ports", [])}
    for binding in bindings:  # every port checked before anything is recorded or made
        proto, host_ip = str(binding["proto"]), str(binding["host_ip"])
        first = int(str(binding["host_port"])) or free_port(host.facts, proto, host_ip, taken)
        last = int(str(binding.get("host_port_end") or 0)) or first
        port = pick_port(host, proto, host_ip, first, last, taken)
        binding.update(host_port=port, host_port_end=0)
        taken.add((proto, port))
    endpoint["ports"] = bindings
    save(store, record)  # recorded before the rules: a crash leaves them findable
    rules = []
    for b in bindings:
        rules += iptables.port_rules(f"ctr={config['id'][:12]}", record["bridge"],
                                     endpoint["ip"], str(b["proto"]), str(b["host_ip"]),
                                     int(str(b["host_port"])), int(str(b["port"])))
    iptables.add(host, rules)


def precheck(host: Host, store: Store, networks: dict[str, Record],
             ports: list[Record]) -> None:
    """What `run` can refuse before it creates anything: an --ip outside its network's
    subnet or in use, a network without a free address, a host port already published
    or held by another program. (Checked again at start, under the lock.)"""
    found = records(store)
    for name, options in networks.items():
        try:
            record = find_network(store, name, found)
        except NotFound:
            continue  # the default network, made on first use
        used = [ep["ip"] for ep in record["endpoints"].values()]
        ipam.allocate(record["subnet"], record["gateway"], record["ip_range"], used,
                      str(options.get("ip") or "") or None)
    taken = {(p["proto"], p["host_port"]) for r in found
             for ep in r["endpoints"].values() for p in ep.get("ports", [])}
    for binding in ports:
        first = int(binding["host_port"])
        if first:
            pick_port(host, str(binding["proto"]), str(binding["host_ip"]), first,
                      int(binding.get("host_port_end") or 0) or first, taken)


def pick_port(host: Host, proto: str, host_ip: str, first: int, last: int,
              taken: set[tuple[str, int]]) -> int:
    """The first host port from `first` to `last` that no shellctr container publishes
    and no other program holds (-p 8000-8010:80: the first free one, as Docker)."""
    where = f"{host_ip or '0.0.0.0'}:{first}{f'-{last}' if last != first else ''}/{proto}"
    refused: Conflict | None = None
    for port in range(first, last + 1):
        if (proto, port) in taken:
            refused = Conflict(f"bind for {where} failed: port is already allocated",
                               "publish another host port, or stop the container using it")
            continue
        failure = host.facts.port_taken(proto, host_ip, port)
        if failure is not None:
            refused = Conflict(f"bind for {where} failed: {failure.strerror}",
                               "publish another host port, or stop the program using it")
            continue
        return port
    assert refused is not None  # first <= last: at least one port was refused
    raise refused


def free_port(facts: Facts, proto: str, host_ip: str, taken: set[tuple[str, int]]) -> int:
    """A host port the kernel would hand out now that shellctr has not published."""
    port = facts.free_port(proto, host_ip, taken)
    if port is None:
        raise Conflict("no free host port found", "publish an explicit host port")
    return port




# -- connect / disconnect -------------------------------------------------------------------
def connect(host: Host, store: Store, net_ref: str, ctr_ref: str, ip: str | None,
            aliases: list[str]) -> None:
    """`network connect`: now, if the container runs; at its next start in any case."""
    with store.lock():
        cid = find(ctr_ref, store.container_names(), "container")
        config = store.container(cid)
        record = find_network(store, net_ref)
        if not is_bridged(config["network_mode"]):
            raise Conflict(f"container {ctr_ref} uses --network {config['network_mode']}",
                           "only containers on bridge networks can join others")
        networks = wanted_networks(config)
        if record["name"] in networks:
            raise Conflict(f"container {ctr_ref} is already connected to {record['name']}")
        networks[record["name"]] = {"ip": ip or "", "aliases": aliases}
        host.step(f"connect {short_id(cid)} to network {record['name']}")
        state = store.container_state(cid)
        if state["status"] == "running" and host.facts.alive(state["pid"], state["pid_start"]):
            bring_up(host, store, record)
            used = {ep["ifname"] for r in records(store)
                    for c, ep in r["endpoints"].items() if c == cid}
            index = next(n for n in range(16) if f"eth{n}" not in used)
            with Rollback(host) as rollback:
                if not host.facts.exists(netns_path(host.facts, cid)):
                    name_netns(host, cid, state["pid"], rollback)
                endpoint = new_endpoint(host, store, config, record, index, networks[
                    record["name"]])
                rollback.push("endpoint", lambda: release(host, store, cid, record["id"]))
                plumb(host, record, endpoint, netns_name(cid), new_netns=False,
                      default_route=False)
                refresh_names(host, store)
                update_hosts(host, store, config, endpoint["ip"], present=True)
                network_event(store, record, "connect", cid)
                update_resolv(host, store, config, networks)
        store.write_state(cid, networks=networks)


def disconnect(host: Host, store: Store, net_ref: str, ctr_ref: str, force: bool) -> None:
    """`network disconnect [-f]`: the endpoint goes now, the network from its config."""
    with store.lock():
        cid = find(ctr_ref, store.container_names(), "container")
        config = store.container(cid)
        record = find_network(store, net_ref)
        networks = wanted_networks(config)
        if record["name"] not in networks and cid not in record["endpoints"] and not force:
            raise Conflict(f"container {ctr_ref} is not connected to network {record['name']}")
        host.step(f"disconnect {short_id(cid)} from network {record['name']}")
        endpoint = record["endpoints"].get(cid)  # the container runs on it
        release(host, store, cid, only=record["id"])
        networks.pop(record["name"], None)
        if endpoint is not None:
            update_hosts(host, store, config, endpoint["ip"], present=False)
            update_resolv(host, store, config, networks)
        # no networks left: loopback only, still a bridged container (Docker's
        # NetworkMode stays), so a later `network connect` joins it again
        store.write_state(cid, networks=networks)


def name_netns(host: Host, cid: str, pid: int, rollback: Rollback) -> None:
    """A running container started with no network (all disconnected before its start)
    lives in the netns `unshare --net` made, which has no name: it is given the container's
    (`ip netns attach`), so the endpoint goes in as at a start, and its end deletes it."""
    netns = netns_path(host.facts, cid)
    host.run(["ip", "netns", "attach", netns_name(cid), str(pid)],
             effect=lambda facts: facts.plan_write(netns, b""))

    def unname() -> None:
        host.run(["ip", "netns", "delete", netns_name(cid)],
                 effect=lambda facts: facts.plan_remove(netns))

    rollback.push(f"netns of {short_id(cid)}", unname)
