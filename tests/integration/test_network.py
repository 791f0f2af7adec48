"""Networking through the real CLI: bridges, names, isolation, NAT, published ports, IPAM.

Every test runs in its worker's own network namespace (conftest), which plays the host:
traffic goes only to loopback, to containers, and to the fake "outside" host below, a
namespace linked to the worker's by a veth (198.51.100.0/24, TEST-NET-2). The leak
check after each test finds any link, netns, rule, resolver or endpoint left behind.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shellctr.engine import dns

from .support import (
    DEFAULT_TIMEOUT,
    NET_TAG,
    TIME_SCALE,
    Ctr,
    Worker,
    inspect,
    links,
    one_line_error,
    pids_naming,
    remove_all,
    run_detached,
    shellctr_rules,
    wait_for,
)

HOST_IP, OUTSIDE_IP = "198.51.100.1", "198.51.100.2"
# a server answering each connection with a line, for as long as the container runs
SERVE = "while true; do echo hello-from-$(hostname) | nc -l -p {port}; done"


def host_run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check,
                          timeout=DEFAULT_TIMEOUT)


@pytest.fixture
def cleanup(ctr: Ctr) -> Iterator[None]:
    """Remove the test's containers, then its networks (even when it failed)."""
    yield
    remove_all(ctr)
    ctr("network", "prune", "--force").ok()


@pytest.fixture
def outside(worker: Worker) -> Iterator[str]:
    """A fake outside host: a netns of its own at OUTSIDE_IP, linked to the worker's
    netns (the host, HOST_IP) by a veth. Returns its netns path."""
    name, link = f"sht-{NET_TAG}-out", f"sht{NET_TAG}o"
    host_run("ip", "netns", "add", name)
    host_run("ip", "link", "add", "name", link, "type", "veth", "peer", "name", "eth0",
             "netns", name)
    host_run("ip", "address", "add", f"{HOST_IP}/24", "dev", link)
    host_run("ip", "link", "set", "dev", link, "up")
    for command in (["address", "add", f"{OUTSIDE_IP}/24", "dev", "eth0"],
                    ["link", "set", "dev", "eth0", "up"], ["link", "set", "dev", "lo", "up"]):
        host_run("ip", "-netns", name, *command)
    yield f"/run/netns/{name}"
    host_run("ip", "link", "delete", "dev", link)
    host_run("ip", "netns", "delete", name)


def in_outside(netns: str, *argv: str, timeout: float = DEFAULT_TIMEOUT,
               ) -> subprocess.Popen[str]:
    return subprocess.Popen(["nsenter", f"--net={netns}", "--", *argv], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# one connection: print the peer's address, answer a line
PEER_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(1)
print("listening", flush=True)
server.settimeout(30)
conn, peer = server.accept()
conn.sendall(b"hi-from-outside\\n")
print(peer[0], flush=True)
"""


def network_of(ctr: Ctr, name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(ctr("network", "inspect", name, trace=False).ok().out)[0]
    return record


def ip_of(ctr: Ctr, network: str, container: str) -> str:
    for endpoint in network_of(ctr, network)["Containers"].values():
        if endpoint["Name"] == container:
            return str(endpoint["IPv4Address"].split("/")[0])
    raise AssertionError(f"{container} has no address on {network}")


def is_hook(pid: int) -> bool:
    """The `shellctr _exited` hook a monitor execs when its container ends (not the
    monitor itself, whose argv names the hook too)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            argv = stream.read().split(b"\0")
    except OSError:
        return False
    return b"_exited" in argv and not argv[0].endswith(b"shellctr-monitor")


def retry(command: str) -> str:
    """A shell loop that runs the client `command` until it gets a server's greeting
    (the server may not listen yet, or be between two connections)."""
    return (f"for i in $(seq 50); do {command} | grep hello-from- && exit 0; sleep 0.1; "
            "done; exit 1")


def host_connect(port: int, host: str = "127.0.0.1") -> str:
    """Connect from the host (the worker's netns), return the first line answered."""
    def attempt() -> str:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                return sock.makefile().readline()
        except OSError:
            return ""
    return str(wait_for(attempt, f"an answer on {host}:{port}", timeout=20))


@pytest.mark.usefixtures("cleanup")
def test_containers_on_a_user_network_reach_each_other_by_ip_name_and_alias(ctr: Ctr) -> None:
    ctr("network", "create", "--subnet", "10.210.0.0/24", "appnet").ok()
    run_detached(ctr, "--name", "srv", "--network", "appnet", "--network-alias", "db",
                 "busybox", "sh", "-c", SERVE.format(port=7000))
    ip = ip_of(ctr, "appnet", "srv")
    assert ip == "10.210.0.2"
    client = ctr("run", "--rm", "--network", "appnet", "busybox", "sh", "-c",
                 "ping -c 1 -W 2 srv && ping -c 1 -W 2 db && ping -c 1 10.210.0.2 && "
                 + " && ".join(f"({retry(f'nc {target} 7000 </dev/null')})"
                               for target in ("srv", "db", ip)))
    assert client.ok().out.count("hello-from-") == 3, str(client)
    assert ctr("exec", "srv", "cat", "/etc/resolv.conf").ok().out == "nameserver 10.210.0.1\n"
    aaaa = ctr("exec", "srv", "nslookup", "-type=AAAA", "db").ok()  # musl asks that too
    assert "REFUSED" not in aaaa.out and "can't find" not in aaaa.out, str(aaaa)


@pytest.mark.usefixtures("cleanup")
def test_networks_are_isolated_from_each_other(ctr: Ctr) -> None:
    ctr("network", "create", "--subnet", "10.212.0.0/24", "red").ok()
    ctr("network", "create", "--subnet", "10.213.0.0/24", "blue").ok()
    run_detached(ctr, "--name", "target", "--network", "red", "busybox", "sh", "-c",
                 SERVE.format(port=7000))
    ip = ip_of(ctr, "red", "target")
    same = ctr("run", "--rm", "--network", "red", "busybox", "sh", "-c",
               retry(f"nc {ip} 7000 </dev/null"))
    assert "hello-from-" in same.ok().out
    for network in ("blue", "bridge"):
        other = ctr("run", "--rm", "--network", network, "busybox", "sh", "-c",
                    f"ping -c 1 -W 1 {ip}; nc -w 2 {ip} 7000 </dev/null; nslookup target")
        assert other.code != 0 and "hello-from-" not in other.out, str(other)
        assert "1 packets received" not in other.out, str(other)


@pytest.mark.usefixtures("cleanup")
def test_outbound_nat_shows_the_hosts_address_and_internal_networks_have_no_way_out(
        ctr: Ctr, outside: str) -> None:
    server = in_outside(outside, "python3", "-c", PEER_SERVER, "9000")
    try:
        assert server.stdout is not None and server.stdout.readline() == "listening\n"
        result = ctr("run", "--rm", "busybox", "sh", "-c", f"nc {OUTSIDE_IP} 9000 </dev/null")
        assert result.ok().out == "hi-from-outside\n"
        out, err = server.communicate(timeout=30)
        assert out.strip() == HOST_IP, f"the outside host saw {out!r} {err}"
    finally:
        server.kill()
        server.wait()
    ctr("network", "create", "--internal", "--subnet", "10.214.0.0/24", "sealed").ok()
    sealed = ctr("run", "--rm", "--network", "sealed", "busybox", "sh", "-c",
                 f"ip route; ping -c 1 -W 1 {OUTSIDE_IP}")
    assert sealed.code != 0 and "default" not in sealed.out, str(sealed)


@pytest.mark.usefixtures("cleanup")
def test_published_ports_from_another_host_and_from_the_hosts_localhost(
        ctr: Ctr, outside: str) -> None:
    run_detached(ctr, "--name", "web", "-p", "18080:80", "-p", "8000", "busybox", "sh", "-c",
                 SERVE.format(port=80) + " & " + SERVE.format(port=8000))
    assert host_connect(18080).startswith("hello-from-")
    client = in_outside(outside, "/bin/busybox", "sh", "-c",
                        retry(f"busybox nc {HOST_IP} 18080 </dev/null"))
    out, err = client.communicate(timeout=60)
    assert client.returncode == 0 and out.startswith("hello-from-"), err
    port = ctr("port", "web", "8000").ok().out.strip()
    assert port.startswith("0.0.0.0:") and int(port.split(":")[1]) > 1024
    assert host_connect(int(port.split(":")[1])).startswith("hello-from-")
    listing = ctr("port", "web").ok().out.splitlines()
    assert listing == ["80/tcp -> 0.0.0.0:18080", f"8000/tcp -> {port}"]
    ps = ctr("ps", "--format", "{{.Ports}}", trace=False).ok().out.strip()
    assert ps == f"0.0.0.0:18080->80/tcp, {port}->8000/tcp"
    settings = inspect(ctr, "web")["NetworkSettings"]
    assert settings["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "18080"}]
    address = ctr("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").ok().out.strip()
    assert address == settings["Networks"]["shellctr0"]["IPAddress"] != ""


@contextlib.contextmanager
def listening(port: int) -> Iterator[None]:
    """Another program holds `port` on every address of the worker's netns meanwhile."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", port))
        holder.listen(1)
        yield


@pytest.mark.usefixtures("cleanup")
def test_a_host_port_in_use_is_refused_at_start(ctr: Ctr) -> None:
    with listening(18090):
        line = one_line_error(ctr("run", "-d", "--name", "late", "-p", "18090:80",
                                  "busybox", "sleep", "1000", trace=False))
    assert "18090" in line and "address already in use" in line.lower(), line
    run_detached(ctr, "--name", "first", "-p", "18091:80", "busybox", "sleep", "1000")
    line = one_line_error(ctr("run", "-d", "--name", "second", "-p", "18091:80",
                              "busybox", "sleep", "1000", trace=False))
    assert "port is already allocated" in line, line
    assert ctr("inspect", "second").code == 1  # refused before create: nothing was made


# a server per port answering with its port, for the ranges below
SERVE_PORT = "while true; do echo hello-from-{port} | nc -l -p {port}; done"


@pytest.mark.usefixtures("cleanup")
def test_a_published_range_answers_on_each_port_from_another_host_and_localhost(
        ctr: Ctr, outside: str) -> None:
    with listening(18300):  # the first port of the host range 18300-18310
        run_detached(ctr, "--name", "web", "-p", "18100-18102:80-82", "-p", "18300-18310:81",
                     "-p", "127.0.0.1::90-91", "-p", "18200-18201:18200-18201",
                     "--expose", "7000-7001", "busybox", "sh", "-c",
                     " & ".join(SERVE_PORT.format(port=port) for port in (80, 81, 82)))
    for port in (80, 81, 82):
        assert host_connect(18020 + port) == f"hello-from-{port}\n"
        client = in_outside(outside, "/bin/busybox", "sh", "-c",
                            retry(f"busybox nc {HOST_IP} {18020 + port} </dev/null"))
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0 and out == f"hello-from-{port}\n", err
    assert host_connect(18301) == "hello-from-81\n"  # 18300 was taken: the next one
    listing = ctr("port", "web").ok().out.splitlines()
    assert listing[:4] == ["80/tcp -> 0.0.0.0:18100", "81/tcp -> 0.0.0.0:18101",
                           "82/tcp -> 0.0.0.0:18102", "81/tcp -> 0.0.0.0:18301"]
    assert listing[6:] == ["18200/tcp -> 0.0.0.0:18200", "18201/tcp -> 0.0.0.0:18201"]
    random = [line.split(" -> ")[1] for line in listing[4:6]]
    assert [line.split(" -> ")[0] for line in listing[4:6]] == ["90/tcp", "91/tcp"]
    assert all(port.startswith("127.0.0.1:") for port in random)
    assert random[0] != random[1], "a range's random host ports collided"
    assert ctr("port", "web", "81").ok().out.splitlines() == ["0.0.0.0:18101", "0.0.0.0:18301"]
    ps = ctr("ps", "--format", "{{.Ports}}", trace=False).ok().out.strip()
    assert ps == ("7000-7001/tcp, 0.0.0.0:18200-18201->18200-18201/tcp, "
                  "0.0.0.0:18100->80/tcp, 0.0.0.0:18101->81/tcp, 0.0.0.0:18301->81/tcp, "
                  f"0.0.0.0:18102->82/tcp, {random[0]}->90/tcp, {random[1]}->91/tcp")
    data = inspect(ctr, "web")
    assert data["NetworkSettings"]["Ports"]["81/tcp"] == [
        {"HostIp": "0.0.0.0", "HostPort": "18101"}, {"HostIp": "0.0.0.0", "HostPort": "18301"}]
    assert data["NetworkSettings"]["Ports"]["7001/tcp"] is None
    assert data["HostConfig"]["PortBindings"]["81/tcp"] == [
        {"HostIp": "", "HostPort": "18101"}, {"HostIp": "", "HostPort": "18300-18310"}]
    cid = data["Id"]
    # 3 per port, and a raw DROP for each of the two published on 127.0.0.1 (issue 13)
    assert len([rule for rule in shellctr_rules() if f"shellctr:ctr={cid[:12]}" in rule]) == 26
    ctr("rm", "-f", "web").ok()
    assert not [rule for rule in shellctr_rules() if f"shellctr:ctr={cid[:12]}" in rule]


@pytest.mark.usefixtures("cleanup")
def test_a_range_with_a_host_port_in_use_is_refused_and_leaves_nothing(ctr: Ctr) -> None:
    line = one_line_error(ctr("run", "-d", "-p", "18400-18401:80-82", "busybox", "true",
                              trace=False))
    assert line == ("shellctr: invalid ranges specified for container and host Ports: 80-82 "
                    "and 18400-18401 (give as many host ports as container ports, or one "
                    "container port)"), line
    assert "invalid hostPort: 18402-18400" in one_line_error(ctr(
        "run", "-d", "-p", "18402-18400:80-82", "busybox", "true", trace=False))
    assert "invalid range format for --expose: 7-5" in one_line_error(ctr(
        "run", "-d", "--expose", "7-5", "busybox", "true", trace=False))
    assert ctr("ps", "-aq").ok().out == ""  # nothing was created
    with listening(18411):
        line = one_line_error(ctr("run", "-d", "--name", "late", "-p", "18410-18412:80-82",
                                  "busybox", "sleep", "1000", trace=False))
    assert "0.0.0.0:18411/tcp" in line and "address already in use" in line.lower(), line
    run_detached(ctr, "--name", "first", "-p", "18421:81", "busybox", "sleep", "1000")
    line = one_line_error(ctr("run", "-d", "--name", "second", "-p", "18420-18422:80-82",
                              "busybox", "sleep", "1000", trace=False))
    assert "bind for 0.0.0.0:18421/tcp failed: port is already allocated" in line, line
    for name in ("late", "second"):  # refused before create: no container, no rule
        assert ctr("inspect", name).code == 1
    first = inspect(ctr, "first")["Id"][:12]
    assert all(f"shellctr:ctr={first}" in rule for rule in shellctr_rules()
               if "shellctr:ctr=" in rule)
    assert len(network_of(ctr, "bridge")["Containers"]) == 1  # only "first"


@pytest.mark.usefixtures("cleanup")
def test_connect_and_disconnect_a_running_container(ctr: Ctr) -> None:
    ctr("network", "create", "--subnet", "10.215.0.0/24", "front").ok()
    ctr("network", "create", "--subnet", "10.216.0.0/24", "back").ok()
    run_detached(ctr, "--name", "api", "--network", "back", "busybox", "sh", "-c",
                 SERVE.format(port=7000))
    run_detached(ctr, "--name", "proxy", "--network", "front", "busybox", "sleep", "1000")
    before = ctr("exec", "proxy", "sh", "-c", "ping -c 1 -W 1 api")
    assert before.code != 0, str(before)
    ctr("network", "connect", "--ip", "10.216.0.50", "--alias", "gateway", "back",
        "proxy").ok()
    assert ip_of(ctr, "back", "proxy") == "10.216.0.50"
    joined = ctr("exec", "proxy", "sh", "-c", retry("nc api 7000 </dev/null"))
    assert "hello-from-" in joined.ok().out
    links = ctr("exec", "proxy", "ls", "/sys/class/net").ok().out.split()
    assert links == ["eth0", "eth1", "lo"]
    own = [line.split()[0] for line in ctr("exec", "proxy", "cat", "/etc/hosts").ok().out
           .splitlines() if line.split()[-1:] == ["proxy"]]
    assert own == [ip_of(ctr, "front", "proxy"), "10.216.0.50"]  # /etc/hosts, live
    line = one_line_error(ctr("network", "rm", "back", trace=False))
    assert "active endpoints" in line
    ctr("network", "disconnect", "back", "proxy").ok()
    after = ctr("exec", "proxy", "sh", "-c", "ls /sys/class/net; ping -c 1 -W 1 10.216.0.2")
    assert after.code != 0 and "eth1" not in after.out, str(after)
    assert "10.216.0.50" not in ctr("exec", "proxy", "cat", "/etc/hosts").ok().out
    ctr("stop", "-t", "0", "api").ok()
    ctr("network", "rm", "back").ok()  # at once: an ended container holds no endpoint


@pytest.mark.usefixtures("cleanup")
def test_a_container_disconnected_from_every_network_can_connect_again(ctr: Ctr) -> None:
    ctr("network", "create", "--subnet", "10.218.0.0/24", "again").ok()
    run_detached(ctr, "--name", "lone", "--network", "again", "busybox", "sleep", "1000")
    ctr("network", "disconnect", "again", "lone").ok()
    assert ctr("exec", "lone", "ls", "/sys/class/net").ok().out.split() == ["lo"]
    assert inspect(ctr, "lone")["HostConfig"]["NetworkMode"] == "again"  # as Docker's
    ctr("network", "connect", "again", "lone").ok()  # live, into the same netns
    assert ctr("exec", "lone", "ls", "/sys/class/net").ok().out.split() == ["eth0", "lo"]
    assert ip_of(ctr, "again", "lone").startswith("10.218.0.")
    # stopped with no network, started with none (loopback only), then connected live:
    # the netns unshare made is given the container's name for the endpoint
    ctr("network", "disconnect", "again", "lone").ok()
    ctr("restart", "-t", "0", "lone").ok()
    assert ctr("exec", "lone", "ls", "/sys/class/net").ok().out.split() == ["lo"]
    assert "10.218.0." not in ctr("exec", "lone", "cat", "/etc/hosts").ok().out
    ctr("network", "connect", "again", "lone").ok()
    assert ctr("exec", "lone", "ls", "/sys/class/net").ok().out.split() == ["eth0", "lo"]
    assert ip_of(ctr, "again", "lone") in ctr("exec", "lone", "cat", "/etc/hosts").ok().out
    ctr("rm", "-f", "lone").ok()  # its named netns goes with it (the leak check)


@pytest.mark.usefixtures("cleanup")
def test_default_bridge_names_do_not_resolve_on_a_user_network(ctr: Ctr) -> None:
    ctr("network", "create", "--subnet", "10.217.0.0/24", "scoped").ok()
    run_detached(ctr, "--name", "plain", "busybox", "sleep", "1000")
    run_detached(ctr, "--name", "joined", "busybox", "sleep", "1000")
    ctr("network", "connect", "scoped", "joined").ok()  # on the bridge and on scoped
    run_detached(ctr, "--name", "asker", "--network", "scoped", "busybox", "sleep", "1000")
    assert "10.217.0.2" in ctr("exec", "asker", "nslookup", "joined").ok().out
    plain = ctr("exec", "asker", "nslookup", "plain")
    # forwarded as any unknown name: what the host's resolvers say (NXDOMAIN, REFUSED...)
    assert plain.code != 0 and "can't find plain" in plain.out, str(plain)
    assert ip_of(ctr, "bridge", "plain") not in plain.out, str(plain)


def resolvers(ctr: Ctr, container: str) -> list[str]:
    text = ctr("exec", container, "cat", "/etc/resolv.conf").ok().out
    return [line.split()[1] for line in text.splitlines() if line.split()[:1] == ["nameserver"]]


@pytest.mark.usefixtures("cleanup")
def test_live_connect_and_disconnect_rewrite_resolv_conf_for_the_new_network(ctr: Ctr) -> None:
    """A container started on the default bridge (host resolvers) resolves the names of a
    user network once connected to it (its resolv.conf now names that network's
    resolver, as its next start would), and after the disconnect names no dead
    resolver; a restart writes the same; one given --dns keeps its own, as Docker."""
    ctr("network", "create", "--subnet", "10.221.0.0/24", "named").ok()
    run_detached(ctr, "--name", "db", "--network", "named", "busybox", "sleep", "1000")
    run_detached(ctr, "--name", "web", "busybox", "sleep", "1000")
    run_detached(ctr, "--name", "pinned", "--dns", "192.0.2.53", "busybox", "sleep", "1000")
    host_resolvers = resolvers(ctr, "web")
    assert "10.221.0.1" not in host_resolvers
    ctr("network", "connect", "named", "web").ok()
    ctr("network", "connect", "named", "pinned").ok()
    assert resolvers(ctr, "web") == ["10.221.0.1"]
    found = ctr("exec", "web", "nslookup", "db").ok()
    assert ip_of(ctr, "named", "db") in found.out, str(found)
    ping = ctr("exec", "web", "ping", "-c", "1", "-W", "2", "db")
    assert ping.code == 0, str(ping)
    assert resolvers(ctr, "pinned") == ["192.0.2.53"]
    ctr("restart", "--time", "0", "web").ok()
    assert resolvers(ctr, "web") == ["10.221.0.1"]  # a start writes the same
    ctr("network", "disconnect", "named", "web").ok()
    assert resolvers(ctr, "web") == host_resolvers  # not the gone network's resolver
    ctr("restart", "--time", "0", "web").ok()
    assert resolvers(ctr, "web") == host_resolvers


def lookup(ctr: Ctr, container: str, name: str) -> str:
    """What `nslookup NAME` in the container finds: an address, or "" (no such name)."""
    found = ctr("exec", container, "nslookup", name)
    addresses = [line.split()[-1] for line in found.out.splitlines()
                 if line.startswith("Address:") and not line.rstrip().endswith(":53")]
    assert found.code == 0 or not addresses, str(found)
    return addresses[0] if addresses else ""


@pytest.mark.usefixtures("cleanup")
def test_names_are_scoped_to_the_asking_containers_networks(ctr: Ctr) -> None:
    """A container on networks A and B resolves the names of both (its own resolver in
    its netns has them: 127.0.0.11, as Docker's); one only on A resolves none of B's,
    and the other way round. At start and after a live connect alike; port 53 in its
    netns stays free for a server of its own."""
    ctr("network", "create", "--subnet", "10.223.0.0/24", "north").ok()
    ctr("network", "create", "--subnet", "10.224.0.0/24", "south").ok()
    run_detached(ctr, "--name", "alpha", "--network", "north", "busybox", "sleep", "1000")
    run_detached(ctr, "--name", "beta", "--network", "south", "busybox", "sleep", "1000")
    run_detached(ctr, "--name", "both", "--network", "north", "busybox", "sleep", "1000")
    ctr("network", "connect", "south", "both").ok()  # live
    ctr("create", "--name", "later", "--network", "south", "busybox", "sleep", "1000").ok()
    ctr("network", "connect", "north", "later").ok()  # at its start
    ctr("start", "later").ok()
    assert lookup(ctr, "alpha", "both") == ip_of(ctr, "north", "both")
    assert lookup(ctr, "alpha", "beta") == ""  # only on south: not alpha's to resolve
    assert lookup(ctr, "beta", "alpha") == ""
    assert lookup(ctr, "beta", "later") == ip_of(ctr, "south", "later")
    for multi in ("both", "later"):
        assert lookup(ctr, multi, "alpha") == ip_of(ctr, "north", "alpha")
        assert lookup(ctr, multi, "beta") == ip_of(ctr, "south", "beta")
        ping = ctr("exec", multi, "ping", "-c", "1", "-W", "2", "beta")
        assert ping.code == 0, str(ping)
        assert resolvers(ctr, multi) == ["127.0.0.11"]
    # its queries to 127.0.0.11:53 are DNATed to its resolver's port: 53 stays its own
    served = ctr("exec", "both", "sh", "-c", "(echo served | nc -l -p 53) & "
                 + retry("nc 127.0.0.1 53 </dev/null").replace("hello-from-", "served"))
    assert "served" in served.ok().out
    assert lookup(ctr, "both", "beta") == ip_of(ctr, "south", "beta")
    ctr("network", "disconnect", "north", "both").ok()  # one network left: its resolver
    assert resolvers(ctr, "both") == ["10.224.0.1"]
    assert lookup(ctr, "both", "beta") == ip_of(ctr, "south", "beta")
    assert lookup(ctr, "both", "alpha") == ""


@pytest.mark.usefixtures("cleanup")
def test_ipam_gives_30_parallel_starts_unique_addresses_then_a_clear_error(ctr: Ctr) -> None:
    ctr("network", "create", "--subnet", "10.217.0.0/27", "small").ok()  # 29 addresses

    def start(n: int) -> Any:
        return ctr("run", "-d", "--name", f"c{n}", "--network", "small", "busybox",
                   "sleep", "1000", timeout=120, trace=False)

    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(start, range(30)))
    started = [r for r in results if r.code == 0]
    failed = [r for r in results if r.code != 0]
    assert len(started) == 29 and len(failed) == 1, "\n".join(map(str, failed))
    assert "no free address left in 10.217.0.0/27" in one_line_error(failed[0])
    addresses = [ep["IPv4Address"] for ep in network_of(ctr, "small")["Containers"].values()]
    assert len(set(addresses)) == 29
    assert "10.217.0.1/27" not in addresses and "10.217.0.31/27" not in addresses


@pytest.mark.usefixtures("cleanup")
def test_etc_files_hostname_mac_and_dns_flags(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "--name", "named", "-h", "myhost", "--add-host",
                 "gw.test:192.0.2.9", "--dns", "192.0.2.53", "--dns-search", "example.test",
                 "--dns-option", "ndots:3", "--mac-address", "02:42:0a:d2:00:99", "busybox",
                 "sh", "-c", "cat /etc/hosts; echo --; cat /etc/resolv.conf; echo --; "
                 "cat /sys/class/net/eth0/address; hostname; ip route").ok()
    hosts, resolv, rest = result.out.split("--\n")
    assert "192.0.2.9\tgw.test\n" in hosts
    own = hosts.splitlines()[-1].split()
    assert own[0].startswith("172.") and own[1:][0] == "myhost" and "named" in own, hosts
    assert resolv == ("nameserver 192.0.2.53\nsearch example.test\noptions ndots:3\n")
    lines = rest.splitlines()
    assert lines[:2] == ["02:42:0a:d2:00:99", "myhost"]
    assert any(line.startswith("default via ") for line in lines), rest


@pytest.mark.usefixtures("cleanup")
def test_network_modes_none_host_and_container(ctr: Ctr) -> None:
    assert ctr("run", "--rm", "--network", "none", "busybox", "ls",
               "/sys/class/net").ok().out.split() == ["lo"]
    shown = ctr("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev").ok()
    names = {line.split(":")[0].strip() for line in shown.out.splitlines()[2:]}
    assert names == set(links()), str(shown)
    run_detached(ctr, "--name", "owner", "busybox", "sleep", "1000")
    own = ctr("exec", "owner", "cat", "/sys/class/net/eth0/address").ok().out
    shared = ctr("run", "--rm", "--network", "container:owner", "busybox", "cat",
                 "/sys/class/net/eth0/address").ok().out
    assert shared == own
    # the owner ends while another container still uses its netns: its veth goes anyway
    run_detached(ctr, "--name", "side", "--network", "container:owner", "busybox", "sleep",
                 "1000")
    veth = f"shv{inspect(ctr, 'owner')['Id'][:10]}0"
    assert veth in links()
    ctr("stop", "-t", "0", "owner").ok()
    wait_for(lambda: veth not in links(), f"{veth} to go")


@pytest.mark.usefixtures("cleanup")
def test_network_ls_filter_inspect_rm_and_prune(ctr: Ctr) -> None:
    nid = ctr("network", "create", "--label", "team=a", "--subnet", "10.218.0.0/24",
              "--gateway", "10.218.0.254", "--ip-range", "10.218.0.128/25", "labelled").ok()
    nid_text = nid.out.strip()
    ctr("network", "create", "plain").ok()  # a free subnet is chosen
    listing = ctr("network", "ls", trace=False).ok().out.splitlines()
    assert listing[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert ctr("network", "ls", "-q", "--filter", "label=team=a").ok().out.split() == [
        nid_text[:12]]
    record = network_of(ctr, "labelled")
    assert record["IPAM"]["Config"] == [{"Subnet": "10.218.0.0/24", "Gateway": "10.218.0.254",
                                         "IPRange": "10.218.0.128/25"}]
    run_detached(ctr, "--name", "ranged", "--network", "labelled", "busybox", "sleep", "100")
    assert ip_of(ctr, "labelled", "ranged") == "10.218.0.128"
    line = one_line_error(ctr("network", "create", "--subnet", "10.218.0.0/25", "overlap",
                              trace=False))
    assert "overlaps" in line
    line = one_line_error(ctr("network", "rm", "shellctr0", trace=False))
    assert "pre-defined" in line
    line = one_line_error(ctr("run", "--rm", "--network", "nowhere", "busybox", "true",
                              trace=False))
    assert line == ("shellctr: network nowhere not found (create it with `shellctr network "
                    "create`)")
    remove_all(ctr)
    assert ctr("network", "prune", "--force").ok().out.split()[2:] == ["labelled", "plain"]


@pytest.mark.usefixtures("cleanup")
def test_rm_cleans_up_after_a_crashed_container(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--name", "crashy", "-p", "18095:80", "busybox", "sleep", "1000")
    state = inspect(ctr, cid)["State"]
    for pid in [*pids_naming(cid), state["Pid"]]:  # its monitor, reaper and PID 1
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: ctr("ps", "-q").ok().out == "", "the crashed container to show ended")
    ctr("rm", "-f", cid).ok()  # the leak check: no veth, netns or rule of it is left


@pytest.mark.usefixtures("cleanup")
def test_restart_gives_the_container_its_network_again(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--name", "again", "-p", "18097:80", "busybox", "sh", "-c",
                       SERVE.format(port=80))
    assert host_connect(18097).startswith("hello-from-")
    ctr("restart", "-t", "0", "again").ok()
    # the first run's `_exited` hook runs after the restart began: it must not take the
    # new run's endpoint away
    wait_for(lambda: not [pid for pid in pids_naming(cid) if is_hook(pid)],
             "the first run's hook to end")
    assert host_connect(18097).startswith("hello-from-")
    assert len(network_of(ctr, "bridge")["Containers"]) == 1


def dns_query(server: str, name: str, qtype: int) -> tuple[int, int]:
    """One UDP query (class IN) to server:53: the answer's rcode and its answer count."""
    question = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    packet = bytes.fromhex("123401000001000000000000") + question + b"\0" + \
        qtype.to_bytes(2, "big") + b"\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5 * TIME_SCALE)
        sock.sendto(packet, (server, 53))
        answer = sock.recv(512)
    return answer[3] & 0x0F, int.from_bytes(answer[6:8], "big")


def test_resolver_answers_other_types_of_a_container_name_with_noerror_and_no_record(
        tmp_path: Path) -> None:
    # the network's real dnsmasq, on a loopback address of its own and with no upstream
    # resolver (--no-resolv): what it answers for a container name must not depend on one
    server = f"127.53.{os.getpid() >> 8 & 0xFF}.{os.getpid() & 0xFF or 1}"
    record = {"id": "x", "gateway": server,
              "endpoints": {"c" * 64: {"name": "web", "ip": "10.9.0.2", "aliases": ["db"]}}}
    hosts = dns.hosts_text(record)
    (tmp_path / "hosts").write_text(hosts)
    (tmp_path / "servers").write_text(dns.servers_text(hosts))
    subprocess.run([*dns.argv(record, tmp_path), "--no-resolv"], check=True)
    try:
        noerror, nxdomain, refused = 0, 3, 5
        for name in ("web", "db", "c" * 12):
            assert dns_query(server, name, 1) == (noerror, 1), name  # A: its address
            for qtype in (28, 15, 16):  # AAAA, MX, TXT: Docker's NOERROR, no record
                assert dns_query(server, name, qtype) == (noerror, 0), (name, qtype)
        assert dns_query(server, "x.web", 1) == (nxdomain, 0)  # under a name: local too
        assert dns_query(server, "elsewhere", 28) == (refused, 0)  # forwarded: no upstream
    finally:
        os.kill(int((tmp_path / "dnsmasq.pid").read_text()), signal.SIGTERM)
