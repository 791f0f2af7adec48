"""The network flags of `run` / `create`, checked, and the /etc files they shape.

Stdlib only, and light: `create` reads these even for `--network none`.
"""

from __future__ import annotations

from shellctr.core.errors import ShellctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from shellctr.core.records import Record
    from shellctr.parts.request import RunRequest

DEFAULT_NETWORK = "shellctr0"  # the default network's name, and its bridge's
DEFAULT_MODE = DEFAULT_NETWORK  # without --network (unit tests set "none")
SPECIAL_MODES = ("none", "host")
LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def network_mode(value: str | None) -> str:
    """--network: none, host, container:CTR, or a network's name (bridge: the default)."""
    if value in (None, ""):
        return DEFAULT_MODE
    if value in ("default", "bridge"):
        return DEFAULT_NETWORK
    assert value is not None
    if value.startswith("container:") and not value.partition(":")[2]:
        raise ShellctrError("--network container: needs a container", "container:NAME")
    return value


def is_bridged(mode: str) -> bool:
    """The container gets its own named netns with veths on bridges."""
    return mode not in SPECIAL_MODES and not mode.startswith("container:")


PORT_HINT = "a port is a number from 1 to 65535, a range FIRST-LAST with FIRST <= LAST"


def port_range(text: str) -> tuple[int, int] | None:
    """`N` or `N-M` as (first, last): ports 1 to 65535, first <= last; else None."""
    first, sep, last = text.partition("-")
    last = last if sep else first
    if not all(part.isascii() and part.isdigit() for part in (first, last)):
        return None
    start, end = int(first), int(last)
    return (start, end) if 0 < start <= end < 65536 else None


def parse_publish(spec: str) -> list[dict[str, object]]:
    """`-p [IP:][HOSTPORT[-LAST]:]CTRPORT[-LAST][/tcp|udp]`, one binding per container
    port, as Docker's nat.ParsePortSpec: ranges of one size map one to one; host port 0:
    a random free one at start; one container port and a host range: `host_port_end`,
    the first free port of the range at start."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise ShellctrError(f"invalid protocol {proto!r} in -p {spec}", "use tcp or udp")
    parts = body.split(":")
    if len(parts) > 3:
        raise ShellctrError(f"invalid -p {spec!r}", "use [IP:]HOSTPORT:CTRPORT[/PROTO]")
    host_ip = parts[0] if len(parts) == 3 else ""
    host_port = parts[-2] if len(parts) >= 2 else ""
    if host_ip:
        from shellctr.parts.ipam import parse_address
        parse_address(host_ip, "host address in -p")
    ports = port_range(parts[-1])
    if ports is None:
        raise ShellctrError(f"invalid containerPort: {parts[-1]}", PORT_HINT)
    hosts = port_range(host_port) if host_port else (0, 0)
    if hosts is None:
        raise ShellctrError(f"invalid hostPort: {host_port}", PORT_HINT)
    (first, last), (host_first, host_last) = ports, hosts
    if host_port and last != first and last - first != host_last - host_first:
        raise ShellctrError(
            f"invalid ranges specified for container and host Ports: {parts[-1]} and "
            f"{host_port}", "give as many host ports as container ports, or one container port")
    return [{"proto": proto, "host_ip": host_ip,
             "host_port": host_first + offset if host_port else 0,
             "host_port_end": host_last if first == last and host_first != host_last else 0,
             "port": first + offset} for offset in range(last - first + 1)]


def parse_expose(spec: str, where: str = "--expose") -> list[str]:
    """`--expose PORT[-LAST][/PROTO]` (or an image's ExposedPorts key) as `80/tcp`, ..."""
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise ShellctrError(f"invalid protocol in {where} {spec}", "use tcp or udp")
    ports = port_range(port)
    if ports is None:
        raise ShellctrError(f"invalid range format for {where}: {spec}", PORT_HINT)
    return [f"{number}/{proto}" for number in range(ports[0], ports[1] + 1)]


def parse_add_host(spec: str) -> str:
    """`--add-host NAME:IP` as a hosts line."""
    name, sep, ip = spec.partition(":")
    if not sep or not name or not ip:
        raise ShellctrError(f"invalid --add-host {spec!r}", "use NAME:IP")
    return f"{ip}\t{name}"


def hosts_text(config: Mapping[str, Any], own: list[str] | None = None) -> str:
    """/etc/hosts: localhost, --add-host entries, then the container's own address(es)."""
    text = LOCALHOST + "".join(line + "\n" for line in config.get("extra_hosts", []))
    return text + "".join(own_hosts_line(config, ip) for ip in own or [])


def own_hosts_line(config: Mapping[str, Any], ip: str) -> str:
    """The container's own line in its /etc/hosts, for one of its addresses."""
    names = " ".join(dict.fromkeys([config["hostname"], config["id"][:12], config["name"]]))
    return f"{ip}\t{names}\n"


def without_loopback_resolvers(text: str) -> str:
    """The host's resolv.conf without loopback resolvers (unreachable from a container)."""
    kept = [line for line in text.splitlines() if not (
        line.split()[:1] == ["nameserver"] and line.split()[1:2]
        and line.split()[1].startswith(("127.", "::1")))]
    return "\n".join(kept) + "\n" if kept else ""


def resolv_text(config: Mapping[str, Any], host_text: str, nameserver: str | None = None) -> str:
    """/etc/resolv.conf: --dns servers, else the network's resolver, else the host's."""
    servers = config.get("dns", [])
    search, options = config.get("dns_search", []), config.get("dns_options", [])
    if not servers and not search and not options and nameserver is None:
        return host_text
    host_lines = host_text.splitlines()
    if not servers:
        servers = [nameserver] if nameserver else [
            line.split()[1] for line in host_lines if line.split()[:1] == ["nameserver"]
            and len(line.split()) > 1]
    if not search:
        search = [word for line in host_lines if line.split()[:1] == ["search"]
                  for word in line.split()[1:]]
    if not options:
        options = [word for line in host_lines if line.split()[:1] == ["options"]
                   for word in line.split()[1:]]
    text = "".join(f"nameserver {server}\n" for server in servers)
    if search:
        text += "search " + " ".join(search) + "\n"
    if options:
        text += "options " + " ".join(options) + "\n"
    return text


def network_config(request: RunRequest, image_config: Record) -> Record:
    """The network part of a container's config, from run/create's flags, checked."""
    def words(key: str) -> list[str]:
        return [str(item) for item in getattr(request, key)]

    mode = network_mode(request.network or None)
    ip, aliases = request.ip or "", words("aliases")
    if (ip or aliases) and not is_bridged(mode):
        raise ShellctrError(f"--ip and --network-alias need a bridge network, not {mode}")
    if aliases and mode == DEFAULT_NETWORK:
        raise ShellctrError("network-scoped aliases are only supported for user-defined "
                            "networks", "create one with `shellctr network create`")
    ports = [binding for spec in words("publish") for binding in parse_publish(spec)]
    if mode == "host":  # as Docker: discarded, with a warning (create.py prints it)
        ports = []
    if (ports or (request.publish_all and mode != "host")) and not is_bridged(mode):
        raise ShellctrError(f"published ports need a bridge network, not --network {mode}")
    exposed = list(dict.fromkeys(
        [spec for key in (image_config.get("ExposedPorts") or {})
         for spec in parse_expose(key, "the image's ExposedPorts")]
        + [spec for text in words("expose") for spec in parse_expose(text)]
        + [f"{p['port']}/{p['proto']}" for p in ports]))
    mac = request.mac_address or ""
    if mac:
        from shellctr.parts.ipam import check_mac
        mac = check_mac(mac)
    return {
        "network_mode": mode,
        "networks": {mode: {"ip": ip, "aliases": aliases}} if is_bridged(mode)
        else {},
        "ports": ports, "publish_all": request.publish_all and mode != "host",
        "exposed": exposed,
        "mac_address": mac, "dns": words("dns"), "dns_search": words("dns_search"),
        "dns_options": words("dns_options"),
        "extra_hosts": [parse_add_host(spec) for spec in words("add_host")],
    }
