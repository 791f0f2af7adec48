"""Addresses for networks and containers: subnets, gateways, allocations, MACs.

Pure functions over the network records (stdlib only: `run` allocates an address on
every start). The caller holds the store's lock around a read, `allocate` and the
write of the record, so two starts never get the same address.
"""

from __future__ import annotations

import ipaddress

from shellctr.core.errors import Conflict, ShellctrError

# where `network create` without --subnet looks for a free subnet (as Docker's pools)
POOLS = ([f"172.{n}.0.0/16" for n in range(17, 32)]
         + [f"192.168.{n}.0/20" for n in range(0, 256, 16)])


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        raise ShellctrError(f"invalid subnet {text!r}: {err}",
                            "use an IPv4 network in CIDR form, e.g. 10.20.0.0/24") from err


def parse_address(text: str, what: str = "address") -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError as err:
        raise ShellctrError(f"invalid IPv4 {what} {text!r}") from err


def host_routes() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks routed in this network namespace (/proc/thread-self/net/route),
    except the default route: a new subnet must not shadow one of them."""
    routes = []
    try:
        with open("/proc/thread-self/net/route", encoding="ascii") as stream:
            lines = stream.read().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        # little-endian hex, as the kernel prints them
        dest = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(fields[1]), "little"))
        mask = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(fields[7]), "little"))
        if int(mask):
            routes.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return routes


def choose_subnet(taken: list[str], routes: list[ipaddress.IPv4Network]) -> str:
    """The first pool subnet that overlaps no network's and no route of the host."""
    used = [ipaddress.IPv4Network(subnet) for subnet in taken] + routes
    for candidate in POOLS:
        network = ipaddress.IPv4Network(candidate)
        if not any(network.overlaps(other) for other in used):
            return candidate
    raise Conflict("no free subnet left in shellctr's address pools",
                   "give one with --subnet, or remove unused networks")


# no bridge may claim these: everything, this host, multicast, the reserved block
RESERVED = [ipaddress.IPv4Network(net) for net in
            ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")]


def plan_network(subnet: str, gateway: str | None, ip_range: str | None,
                 taken: list[str], routes: list[ipaddress.IPv4Network] | None = None,
                 ) -> tuple[str, str, str]:
    """(subnet, gateway, ip_range) for a new network, checked; errors say what is wrong.
    `routes`: the host's, which the new subnet must not shadow."""
    network = parse_subnet(subnet)
    if network.num_addresses < 4:
        raise ShellctrError(f"subnet {subnet} is too small", "use a /30 or larger")
    for reserved in RESERVED:
        if network.overlaps(reserved):
            raise ShellctrError(f"subnet {subnet} overlaps the reserved block {reserved}",
                                "choose a private subnet, e.g. 10.20.0.0/24")
    for other in taken:
        if network.overlaps(ipaddress.IPv4Network(other)):
            raise Conflict(f"subnet {subnet} overlaps the subnet {other} of another network",
                           "choose another --subnet")
    for route in routes or []:
        if network.overlaps(route):
            raise Conflict(f"subnet {subnet} overlaps {route}, routed on this host already",
                           "choose another --subnet")
    if gateway:
        gw = parse_address(gateway, "gateway")
        if gw not in network or gw in (network.network_address, network.broadcast_address):
            raise ShellctrError(f"gateway {gateway} is not a host address of {subnet}")
    else:
        gw = network.network_address + 1
    if ip_range:
        pool = parse_subnet(ip_range)
        if not pool.subnet_of(network):
            raise ShellctrError(f"--ip-range {ip_range} is not inside the subnet {subnet}")
    return str(network), str(gw), ip_range or ""


def allocate(subnet: str, gateway: str, ip_range: str, used: list[str],
             wanted: str | None = None) -> str:
    """A free address of the network (the lowest in its range), or `wanted` if free."""
    network = ipaddress.IPv4Network(subnet)
    reserved = {network.network_address, network.broadcast_address,
                ipaddress.IPv4Address(gateway)}
    taken = {ipaddress.IPv4Address(ip) for ip in used} | reserved
    if wanted:
        address = parse_address(wanted)
        if address not in network:
            raise ShellctrError(f"address {wanted} is not in the network's subnet {subnet}")
        if address in taken:
            raise Conflict(f"address {wanted} is already in use on this network",
                           "choose another --ip, or leave it out")
        return str(address)
    pool = ipaddress.IPv4Network(ip_range) if ip_range else network
    first, last = int(pool.network_address), int(pool.broadcast_address)
    for number in range(first, last + 1):
        address = ipaddress.IPv4Address(number)
        if address not in taken:
            return str(address)
    raise Conflict(f"no free address left in {ip_range or subnet}: every one is in use",
                   "stop or disconnect containers, or use a network with a larger subnet")


def mac_for(ip: str) -> str:
    """A locally administered MAC derived from the address, as Docker's 02:42:..."""
    return "02:42:" + ":".join(f"{byte:02x}" for byte in ipaddress.IPv4Address(ip).packed)


def check_mac(text: str) -> str:
    parts = text.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p)
                                  for p in parts):
        raise ShellctrError(f"invalid MAC address {text!r}", "use the form 02:42:ac:11:00:02")
    if int(parts[0], 16) & 1:
        raise ShellctrError(f"{text} is a multicast MAC address", "use a unicast one")
    return ":".join(parts)
