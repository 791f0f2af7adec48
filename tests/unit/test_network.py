"""Networking without root: exact commands, what each removal leaves, IPAM, parsers.

`FakeNet` stands in for the host's network: it keeps the links, named netns and
iptables rules that the recorded `ip`, `iptables` and `iptables-restore` commands would
make (their here-docs parsed), so a test can assert both the exact commands and that
teardown leaves exactly nothing of shellctr's.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.cmd import Cmd
from shellctr.core.errors import Conflict, ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.host import Rollback
from shellctr.core.layout import Layout
from shellctr.core.state import ContainerConfig, ContainerState, Network
from shellctr.core.store import Store
from shellctr.engine import create as create_module
from shellctr.engine import dns, endpoint, iptables, network
from shellctr.engine.create import create
from shellctr.parts import ipam, netopts

from .helpers import CID, RecordingHost, install_image, run_request

CID2 = "fedcba9876543210" * 4


class FakeNet(Facts):
    """The host's facts, with its links, netns and iptables as the recorded commands
    would leave them (and no port held by another program)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.names: set[str] = set()  # the links
        self.netns_dir = tmp / "netns"
        self.netns_dir.mkdir()
        self.proc = tmp / "proc"
        self.proc_sys = self.proc / "sys"
        (self.proc_sys / "net/ipv4").mkdir(parents=True)
        (self.proc_sys / "net/ipv4/ip_forward").write_text("0\n")
        self.peers: dict[str, str] = {}  # veth -> the netns of its other end
        self.chains: dict[str, list[str]] = {"raw": [], "filter": [], "nat": []}
        self.rules: dict[str, list[list[str]]] = {"raw": [], "filter": [], "nat": []}
        self.dnsmasq: dict[Path, int] = {}  # run dir -> pid
        self.held: set[tuple[str, int]] = set()  # (proto, port) other programs hold
        self.running: set[int] = set()  # pids of containers the test says run
        self.netns_rules: dict[str, list[str]] = {}  # netns -> its nat rules

    # -- what the host reads would find -------------------------------------------------
    def host_links(self) -> set[str]:
        return set(self.names)

    def host_iptables_rules(self, table: str, netns: Path | None = None) -> list[list[str]]:
        if netns is not None:  # a container's netns: its nat table
            return [["-A", *rule.split()] for rule in self.netns_rules.get(netns.name, [])
                    if table == "nat"]
        return ([["-N", chain] for chain in self.chains[table]]
                + [["-A", *rule] for rule in self.rules[table]])

    def routes(self) -> list[Any]:
        return []

    def process_start(self, pid: int) -> int | None:
        return 1 if pid in self.dnsmasq.values() else super().process_start(pid)

    def alive(self, pid: int, start: int) -> bool:
        return pid in self.running or pid in self.dnsmasq.values() or super().alive(pid, start)

    def port_taken(self, proto: str, host_ip: str, port: int) -> OSError | None:
        return OSError(98, "Address already in use") if (proto, port) in self.held else None

    def free_port(self, proto: str, host_ip: str, taken: set[tuple[str, int]]) -> int:
        """The kernel's pick, made predictable: the first port from 49153 not taken."""
        return next(port for port in range(49153, 65536)
                    if (proto, port) not in taken | self.held)

    # -- the stand-ins --------------------------------------------------------------
    def ip(self, cmd: Cmd) -> str:
        argv = cmd.argv
        if argv[1:3] == ["-batch", "-"]:
            for line in (cmd.stdin or "").splitlines():
                self.ip_line(shlex.split(line))
        elif argv[1] == "-netns":
            assert (self.netns_dir / argv[2]).exists(), f"no netns {argv[2]}"
        else:
            self.ip_line(argv[1:])
        return ""

    def ip_line(self, words: list[str]) -> None:
        if words[:2] == ["netns", "add"]:
            (self.netns_dir / words[2]).touch()
        elif words[:2] == ["netns", "delete"]:
            (self.netns_dir / words[2]).unlink()
            self.names -= {veth for veth, ns in self.peers.items() if ns == words[2]}
            self.netns_rules.pop(words[2], None)  # its rules go with it
        elif words[:3] == ["link", "add", "name"]:
            assert words[3] not in self.names, f"{words[3]} exists"
            self.names.add(words[3])
            if words[5] == "bridge":
                (self.proc_sys / f"net/ipv4/conf/{words[3]}").mkdir(parents=True)
            else:
                self.peers[words[3]] = words[-1]
        elif words[:3] == ["link", "delete", "dev"]:
            self.names.remove(words[3])

    def iptables(self, cmd: Cmd) -> str:
        table, action, chain = cmd.argv[3], cmd.argv[4], cmd.argv[5]
        if action == "--new-chain":
            self.chains[table].append(chain)
        elif action == "--flush":
            self.rules[table] = [r for r in self.rules[table] if r[0] != chain]
        elif action == "--delete-chain":
            assert not any(r[0] == chain for r in self.rules[table])
            self.chains[table].remove(chain)
        return ""

    def restore(self, cmd: Cmd) -> str:
        table = ""
        for line in (cmd.stdin or "").splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line != "COMMIT":
                words = shlex.split(line)
                rule = words[1:]
                if words[0] == "--append":
                    self.rules[table].append(rule)
                elif words[0] == "--insert":
                    self.rules[table].insert(0, rule)
                else:
                    assert words[0] == "--delete" and rule in self.rules[table], line
                    self.rules[table].remove(rule)
        return ""

    def dnsmasq_start(self, cmd: Cmd) -> str:
        """As dnsmasq: its pid file, and its cmdline in /proc naming it."""
        option = next(a for a in cmd.argv if a.startswith("--pid-file="))
        pid_file = Path(option.split("=", 1)[1])
        pid = 4242
        self.dnsmasq[pid_file.parent] = pid
        pid_file.write_text(f"{pid}\n")
        (self.proc / str(pid)).mkdir(exist_ok=True)
        (self.proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmd.argv))
        return ""

    def nsenter(self, cmd: Cmd) -> str:
        """`nsenter --net=NETNS -- dnsmasq ...`: a container's own resolver, as dnsmasq
        (its cmdline as the kernel shows it, each word NUL-ended)."""
        assert cmd.argv[1].startswith(f"--net={self.netns_dir}/") and cmd.argv[2] == "--"
        netns = Path(cmd.argv[1].split("=", 1)[1])
        assert netns.exists(), "no such netns"
        if cmd.argv[3:] == ["iptables-restore", "--wait", "--noflush"]:  # its nat table
            assert cmd.stdin is not None
            lines = cmd.stdin.splitlines()
            assert lines[0] == "*nat" and lines[-1] == "COMMIT", lines
            rules = self.netns_rules.setdefault(netns.name, [])
            for line in lines[1:-1]:
                action, rule = line.split(" ", 1)
                if action == "--append":
                    rules.append(rule)
                else:
                    assert action == "--delete" and rule in rules, line
                    rules.remove(rule)
            return ""
        assert cmd.argv[3] == "dnsmasq", cmd.argv
        option = next(a for a in cmd.argv if a.startswith("--pid-file="))
        pid_file = Path(option.split("=", 1)[1])
        pid = 4300 + len(self.dnsmasq)
        self.dnsmasq[pid_file.parent] = pid
        pid_file.write_text(f"{pid}\n")
        (self.proc / str(pid)).mkdir(exist_ok=True)
        (self.proc / str(pid) / "cmdline").write_bytes(
            b"".join(a.encode() + b"\0" for a in cmd.argv[3:]))
        return ""

    def kill(self, cmd: Cmd) -> None:
        if cmd.argv[2] == "TERM":
            self.dnsmasq = {d: p for d, p in self.dnsmasq.items() if p != int(cmd.argv[3])}

    # -- what is left ---------------------------------------------------------------
    def netns(self) -> list[str]:
        return sorted(p.name for p in self.netns_dir.iterdir())

    def tagged(self, tag: str) -> list[list[str]]:
        return [r for rules in self.rules.values() for r in rules if f"shellctr:{tag}" in r]

    def host(self, **kwargs: Any) -> RecordingHost:
        return RecordingHost(substitute={
            "ip": self.ip, "iptables": self.iptables, "iptables-restore": self.restore,
            "dnsmasq": self.dnsmasq_start, "nsenter": self.nsenter, "kill": self.kill},
            facts=self, **kwargs)


@pytest.fixture
def net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNet]:
    fake = FakeNet(tmp_path)
    ids = iter(f"{n:02x}" * 32 for n in range(0xee, 0xff))
    monkeypatch.setattr(network, "new_id", lambda: next(ids))
    yield fake


def new_container(layout: Layout, host: RecordingHost, cid: str = CID, name: str = "web",
                  **flags: object) -> dict[str, Any]:
    if not list(layout.images_dir.glob("*.json")):
        install_image(layout)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(create_module, "new_id", lambda: cid)
        return create(host, Store(layout, host), run_request(
            "busybox", ["true"], name=name, network={"network": "bridge", **flags}))


def host_commands(host: RecordingHost) -> list[str]:
    """The recorded commands but record writes and state dirs (other tests cover those)."""
    return [line for line in host.lines if not line.startswith(("cat > ", "mkdir "))]


def attach(host: RecordingHost, layout: Layout, config: dict[str, Any]) -> list[str]:
    with Rollback(host) as rollback:
        return endpoint.attach(host, Store(layout, host), config, rollback)


# -- the start recipe's network step --------------------------------------------------------
def test_first_container_makes_the_default_network_then_its_endpoint(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    config = new_container(layout, host, publish=["8080:80"])
    host.reset()
    prefix = attach(host, layout, config)
    assert prefix == ["nsenter", f"--net={net.netns_dir}/shc-{CID[:11]}", "--"]
    commands = host_commands(host)
    assert commands == [
        "ip -batch - <<'EOF'\nlink add name shellctr0 type bridge\n"
        "address add 172.17.0.1/16 dev shellctr0\nlink set dev shellctr0 up\nEOF",
        f"echo 1 > {net.proc_sys}/net/ipv4/conf/shellctr0/route_localnet",
        f"echo 1 > {net.proc_sys}/net/ipv4/ip_forward",
        "iptables --wait --table filter --new-chain SHELLCTR-FORWARD",
        "iptables --wait --table filter --new-chain SHELLCTR-ISOLATE-1",
        "iptables --wait --table filter --new-chain SHELLCTR-ISOLATE-2",
        "iptables --wait --table filter --new-chain SHELLCTR-PORTS",
        "iptables --wait --table nat --new-chain SHELLCTR-POSTROUTING",
        "iptables --wait --table nat --new-chain SHELLCTR-DNAT",
        "iptables-restore --wait --noflush <<'EOF'\n*filter\n"
        "--insert FORWARD --match comment --comment shellctr:base --jump SHELLCTR-FORWARD\n"
        "--append SHELLCTR-FORWARD --match comment --comment shellctr:base "
        "--jump SHELLCTR-ISOLATE-1\n"
        "--append SHELLCTR-FORWARD --match comment --comment shellctr:base "
        "--jump SHELLCTR-PORTS\nCOMMIT\n*nat\n"
        "--append POSTROUTING --match comment --comment shellctr:base "
        "--jump SHELLCTR-POSTROUTING\n"
        "--append PREROUTING --match addrtype --dst-type LOCAL --match comment --comment "
        "shellctr:base --jump SHELLCTR-DNAT\n"
        "--append OUTPUT --match addrtype --dst-type LOCAL --match comment --comment "
        "shellctr:base --jump SHELLCTR-DNAT\nCOMMIT\nEOF",
        "iptables-restore --wait --noflush <<'EOF'\n*filter\n"
        "--append SHELLCTR-FORWARD --in-interface shellctr0 --out-interface shellctr0 "
        "--match comment --comment shellctr:net=shellctr0 --jump ACCEPT\n"
        "--append SHELLCTR-ISOLATE-1 --in-interface shellctr0 ! --out-interface shellctr0 "
        "--match comment --comment shellctr:net=shellctr0 --jump SHELLCTR-ISOLATE-2\n"
        "--append SHELLCTR-ISOLATE-2 --out-interface shellctr0 --match comment --comment "
        "shellctr:net=shellctr0 --jump DROP\n"
        "--append SHELLCTR-FORWARD --out-interface shellctr0 --match conntrack --ctstate "
        "RELATED,ESTABLISHED --match comment --comment shellctr:net=shellctr0 --jump ACCEPT\n"
        "--append SHELLCTR-FORWARD --in-interface shellctr0 ! --out-interface shellctr0 "
        "--match comment --comment shellctr:net=shellctr0 --jump ACCEPT\n"
        "--append SHELLCTR-FORWARD ! --in-interface shellctr0 --out-interface shellctr0 "
        "--match comment --comment shellctr:net=shellctr0 --jump DROP\n"
        "COMMIT\n*nat\n"
        "--append SHELLCTR-POSTROUTING --source 172.17.0.0/16 ! --out-interface shellctr0 "
        "--match comment --comment shellctr:net=shellctr0 --jump MASQUERADE\n"
        "--append SHELLCTR-POSTROUTING --source 127.0.0.0/8 --out-interface shellctr0 "
        "--match comment --comment shellctr:net=shellctr0 --jump MASQUERADE\nCOMMIT\nEOF",
        f"ip -batch - <<'EOF'\nnetns add shc-{CID[:11]}\n"
        f"link add name shv{CID[:10]}0 type veth peer name eth0 netns shc-{CID[:11]}\n"
        f"link set dev shv{CID[:10]}0 master shellctr0 up\nEOF",
        f"ip -netns shc-{CID[:11]} -batch - <<'EOF'\n"
        "link set dev eth0 address 02:42:ac:11:00:02\naddress add 172.17.0.2/16 dev eth0\n"
        "link set dev eth0 up\nlink set dev lo up\n"
        "route add default via 172.17.0.1 dev eth0\nEOF",
        "iptables-restore --wait --noflush <<'EOF'\n*filter\n"
        "--append SHELLCTR-PORTS --destination 172.17.0.2/32 ! --in-interface shellctr0 "
        "--out-interface shellctr0 --protocol tcp --destination-port 80 --match comment "
        f"--comment shellctr:ctr={CID[:12]} --jump ACCEPT\nCOMMIT\n*nat\n"
        "--append SHELLCTR-DNAT --protocol tcp --destination-port 8080 --match comment "
        f"--comment shellctr:ctr={CID[:12]} --jump DNAT --to-destination 172.17.0.2:80\n"
        "--append SHELLCTR-POSTROUTING --source 172.17.0.2/32 --destination 172.17.0.2/32 "
        "--protocol tcp --destination-port 80 --match comment --comment "
        f"shellctr:ctr={CID[:12]} --jump MASQUERADE\nCOMMIT\nEOF",
    ]
    hosts = layout.container_etc_file(CID, "hosts").read_text()
    assert hosts.endswith(f"172.17.0.2\t{CID[:12]} web\n")
    record = network.find_network(Store(layout, host), "bridge")
    Network.model_validate(record)
    assert record["endpoints"][CID]["ports"] == [
        {"proto": "tcp", "host_ip": "", "host_port": 8080, "host_port_end": 0, "port": 80}]


def test_release_removes_exactly_the_container_and_prune_the_rest(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    config = new_container(layout, host, publish=["8080:80"])
    attach(host, layout, config)
    host.reset()
    store = Store(layout, host)
    network.release(host, store, CID)
    assert host_commands(host) == [
        "iptables-restore --wait --noflush <<'EOF'\n*filter\n"
        "--delete SHELLCTR-PORTS --destination 172.17.0.2/32 ! --in-interface shellctr0 "
        "--out-interface shellctr0 --protocol tcp --destination-port 80 --match comment "
        f"--comment shellctr:ctr={CID[:12]} --jump ACCEPT\nCOMMIT\n*nat\n"
        "--delete SHELLCTR-DNAT --protocol tcp --destination-port 8080 --match comment "
        f"--comment shellctr:ctr={CID[:12]} --jump DNAT --to-destination 172.17.0.2:80\n"
        "--delete SHELLCTR-POSTROUTING --source 172.17.0.2/32 --destination 172.17.0.2/32 "
        "--protocol tcp --destination-port 80 --match comment --comment "
        f"shellctr:ctr={CID[:12]} --jump MASQUERADE\nCOMMIT\nEOF",
        f"ip netns delete shc-{CID[:11]}",  # its veth goes with it
    ]
    assert net.names == {"shellctr0"} and net.netns() == [] and not net.tagged(f"ctr={CID[:12]}")
    assert network.find_network(store, "bridge")["endpoints"] == {}
    host.reset()
    network.release(host, store, CID)  # again: nothing is left to do
    assert host_commands(host) == []
    assert network.prune(host, store, include_default=True) == []  # the container uses it
    store.remove_container(CID)
    assert network.prune(host, store) == []  # the default network stays ...
    assert network.prune(host, store, include_default=True) == ["shellctr0"]  # ... unless
    assert net.names == set() and net.chains == {"raw": [], "filter": [], "nat": []}
    assert net.rules == {"raw": [], "filter": [], "nat": []}


@pytest.mark.parametrize("fail_at", range(1, 16))
def test_a_failure_at_any_step_of_the_network_step_leaves_nothing_of_the_container(
        layout: Layout, net: FakeNet, fail_at: int) -> None:
    config = new_container(layout, net.host(), publish=["8080:80"])
    host = net.host(fail_at=fail_at)
    with pytest.raises(ShellctrError):
        attach(host, layout, config)
    assert net.netns() == [] and not net.tagged(f"ctr={CID[:12]}")
    assert net.names <= {"shellctr0"}
    for record in network.records(Store(layout, host)):
        assert record["endpoints"] == {}
    if "shellctr0" not in net.names:  # the network's own setup failed: all of it went
        assert net.chains == {"raw": [], "filter": [], "nat": []} and network.records(
            Store(layout, host)) == []


def test_user_network_gets_a_resolver_and_containers_resolve_across_their_networks(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    store = Store(layout, host)
    store.prepare()
    record = network.create(host, store, "shop", subnet="10.1.0.0/24")
    assert record["bridge"] == "shbr-eeeeeeeeee" and record["dns"]
    run_dir = layout.network_run_dir(record["id"])
    assert any(line.startswith(
        f"dnsmasq --conf-file=/dev/null --pid-file={run_dir}/dnsmasq.pid --no-hosts "
        f"--addn-hosts={run_dir}/hosts --servers-file={run_dir}/servers --bind-interfaces "
        "--listen-address=10.1.0.1 "
        "--user=root") for line in host.lines), host.lines
    config = new_container(layout, host, network="shop", aliases=["db"])
    attach(host, layout, config)
    assert (run_dir / "hosts").read_text() == f"10.1.0.2\tweb db {CID[:12]}\n"
    assert (run_dir / "servers").read_text() == \
        f"server=/web/\nserver=/db/\nserver=/{CID[:12]}/\n"
    assert layout.container_etc_file(CID, "resolv.conf").read_text() == "nameserver 10.1.0.1\n"
    assert "kill -s HUP 4242" in host.lines
    with pytest.raises(Conflict, match="active endpoints"):
        network.remove(host, store, "shop")
    network.release(host, store, CID)
    assert (run_dir / "hosts").read_text() == ""
    assert (run_dir / "servers").read_text() == ""
    host.reset()
    assert network.remove(host, store, "shop") == "shop"
    assert "kill -s TERM 4242" in host.lines and not run_dir.exists()
    assert net.names == set() and net.rules == {"raw": [], "filter": [], "nat": []}


def host_resolv_conf(net: FakeNet, layout: Layout) -> str:
    net.etc = layout.root.parent / "host-etc"
    net.etc.mkdir()
    (net.etc / "resolv.conf").write_text("nameserver 192.0.2.53\nsearch example.org\n")
    return "nameserver 192.0.2.53\nsearch example.org\n"


def test_connect_and_disconnect_a_running_container(layout: Layout, net: FakeNet) -> None:
    host = net.host()
    store = Store(layout, host)
    store.prepare()
    network.create(host, store, "back", subnet="10.2.0.0/24")
    config = new_container(layout, host)
    host_text = host_resolv_conf(net, layout)
    attach(host, layout, config)
    resolv = layout.container_etc_file(CID, "resolv.conf")
    assert resolv.read_text() == host_text  # the default bridge has no resolver
    resolv_inode = resolv.stat().st_ino
    state = store.container_state(CID)
    store.write(layout.container_state(CID), {**state, "status": "running", "pid": 1})
    net.running.add(1)
    host.reset()
    endpoint.connect(host, store, "back", "web", "10.2.0.9", ["api"])
    assert f"ip -batch - <<'EOF'\nlink add name shv{CID[:10]}1 type veth peer name eth1 " \
           f"netns shc-{CID[:11]}\nlink set dev shv{CID[:10]}1 master shbr-eeeeeeeeee up\n" \
           "EOF" in host.lines
    assert f"ip -netns shc-{CID[:11]} -batch - <<'EOF'\nlink set dev eth1 address " \
           "02:42:0a:02:00:09\naddress add 10.2.0.9/24 dev eth1\nlink set dev eth1 up\nEOF" \
           in host.lines
    saved = ContainerState.model_validate(store.container_state(CID))
    assert list(saved.networks) == ["shellctr0", "back"]
    hosts = layout.container_etc_file(CID, "hosts")
    inode = hosts.stat().st_ino  # bind-mounted into the container: rewritten in place
    assert hosts.read_text().endswith(f"\t{CID[:12]} web\n10.2.0.9\t{CID[:12]} web\n")
    with hosts.open("a") as stream:
        stream.write("10.9.9.9\tadded-inside")  # kept, as Docker keeps it
    # now on a user network: its resolver, as the next start would write it, in place
    assert resolv.read_text() == "nameserver 10.2.0.1\nsearch example.org\n"
    assert resolv.stat().st_ino == resolv_inode
    assert f"cat > {resolv} <<'EOF'\nnameserver 10.2.0.1\nsearch example.org\nEOF" \
        in host.lines  # through the door: traced
    host.reset()
    endpoint.disconnect(host, store, "back", "web", force=False)
    assert resolv.read_text() == host_text and resolv.stat().st_ino == resolv_inode
    assert hosts.read_text().endswith(f"\t{CID[:12]} web\n10.9.9.9\tadded-inside\n")
    assert "10.2.0.9" not in hosts.read_text() and hosts.stat().st_ino == inode
    assert f"ip link delete dev shv{CID[:10]}1" in host.lines  # its netns stays
    assert net.netns() == [f"shc-{CID[:11]}"]
    assert list(store.container_state(CID)["networks"]) == ["shellctr0"]
    with pytest.raises(Conflict, match="not connected"):
        endpoint.disconnect(host, store, "back", "web", force=False)


def test_a_container_on_two_user_networks_asks_its_own_resolver_with_both_names(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    store = Store(layout, host)
    store.prepare()
    front = network.create(host, store, "front", subnet="10.1.0.0/24")
    back = network.create(host, store, "back", subnet="10.2.0.0/24")
    attach(host, layout, new_container(layout, host, cid=CID2, name="db", network="back"))
    config = new_container(layout, host, network="front")
    attach(host, layout, config)
    state = store.container_state(CID)
    store.write(layout.container_state(CID), {**state, "status": "running", "pid": 1})
    net.running.add(1)
    resolv = layout.container_etc_file(CID, "resolv.conf")
    assert resolv.read_text() == "nameserver 10.1.0.1\n"
    host.reset()
    endpoint.connect(host, store, "back", "web", None, [])
    own = layout.container_resolver_dir(CID)
    assert f"nsenter --net={net.netns_dir}/shc-{CID[:11]} -- dnsmasq --conf-file=/dev/null " \
        f"--pid-file={own}/dnsmasq.pid --no-hosts --addn-hosts={own}/hosts " \
        f"--servers-file={own}/servers --no-resolv --server=10.1.0.1 --bind-interfaces " \
        "--listen-address=127.0.0.11 --port=53053 --user=root" in host.lines
    # its queries to 127.0.0.11:53 go there: port 53 stays free for the container's use
    assert net.netns_rules == {f"shc-{CID[:11]}": [
        f"OUTPUT --destination 127.0.0.11/32 --protocol {proto} --destination-port 53 "
        f"--match comment --comment shellctr:ctr={CID[:12]} --jump DNAT "
        "--to-destination 127.0.0.11:53053" for proto in ("udp", "tcp")]}
    assert (own / "hosts").read_text() == (  # its first network's names first
        f"10.1.0.2\tweb {CID[:12]}\n10.2.0.3\tweb {CID[:12]}\n10.2.0.2\tdb {CID2[:12]}\n")
    assert resolv.read_text() == "nameserver 127.0.0.11\n"
    # the networks' own resolvers know their own containers only
    assert (layout.network_run_dir(front["id"]) / "hosts").read_text() == \
        f"10.1.0.2\tweb {CID[:12]}\n"
    assert (layout.network_run_dir(back["id"]) / "hosts").read_text() == \
        f"10.2.0.3\tweb {CID[:12]}\n10.2.0.2\tdb {CID2[:12]}\n"
    pid = net.dnsmasq[own]
    host.reset()
    endpoint.disconnect(host, store, "front", "web", force=False)
    assert f"kill -s TERM {pid}" in host.lines and not own.exists()
    assert net.netns_rules == {f"shc-{CID[:11]}": []}  # its netns lives on: removed
    assert resolv.read_text() == "nameserver 10.2.0.1\n"  # on one network: its resolver
    endpoint.connect(host, store, "front", "web", None, [])
    assert own.exists() and resolv.read_text() == "nameserver 127.0.0.11\n"
    assert len(net.netns_rules[f"shc-{CID[:11]}"]) == 2
    net.netns_rules[f"shc-{CID[:11]}"].pop()  # as a container with NET_ADMIN may do
    host.reset()
    network.release(host, store, CID)  # the netns goes first, its rules with it
    assert f"shc-{CID[:11]}" not in net.netns() and net.netns_rules == {}
    assert not any(line.startswith("nsenter") for line in host.lines)  # nothing to delete
    assert any(line.startswith("kill -s TERM 43") for line in host.lines) and not own.exists()


@pytest.mark.parametrize("flags", [{"dns": ["9.9.9.9"]},
                                   {"volume": ["/srv/resolv.conf:/etc/resolv.conf:ro"]}],
                         ids=["dns", "mounted"])
def test_connect_leaves_a_resolv_conf_the_user_chose(
        layout: Layout, net: FakeNet, flags: dict[str, list[str]]) -> None:
    host = net.host()
    store = Store(layout, host)
    store.prepare()
    network.create(host, store, "back", subnet="10.2.0.0/24")
    host_resolv_conf(net, layout)
    volumes = flags.get("volume", [])
    config = new_container(layout, host, **{k: v for k, v in flags.items() if k != "volume"}) \
        if not volumes else mounted_container(layout, host, volumes)
    attach(host, layout, config)
    resolv = layout.container_etc_file(CID, "resolv.conf")
    before = resolv.read_text()
    state = store.container_state(CID)
    store.write(layout.container_state(CID), {**state, "status": "running", "pid": 1})
    net.running.add(1)
    host.reset()
    endpoint.connect(host, store, "back", "web", None, [])
    assert resolv.read_text() == before
    assert not any(line.startswith(f"cat > {resolv} ") for line in host.lines)


def mounted_container(layout: Layout, host: RecordingHost, volumes: list[str]) -> dict[str, Any]:
    if not list(layout.images_dir.glob("*.json")):
        install_image(layout)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(create_module, "new_id", lambda: CID)
        return create(host, Store(layout, host), run_request(
            "busybox", ["true"], name="web", network={"network": "bridge"}, volume=volumes))


def test_ports_taken_by_another_container_are_refused(layout: Layout, net: FakeNet) -> None:
    host = net.host()
    attach(host, layout, new_container(layout, host, publish=["8080:80", "53/udp"]))
    record = network.find_network(Store(layout, host), "bridge")
    assert record["endpoints"][CID]["ports"][1] == {
        "proto": "udp", "host_ip": "", "host_port": 49153, "host_port_end": 0, "port": 53}
    other = new_container(layout, host, cid=CID2, name="other", publish=["8080:81"])
    with pytest.raises(Conflict, match=re.escape(
            "bind for 0.0.0.0:8080/tcp failed: port is already allocated")):
        attach(host, layout, other)
    assert net.netns() == [f"shc-{CID[:11]}"]  # the refused one left nothing


def test_publish_all_binds_every_exposed_port_not_published_yet(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    config = new_container(layout, host, publish=["8080:80"], publish_all=True,
                           expose=["9000", "53/udp"])
    assert config["exposed"] == ["9000/tcp", "53/udp", "80/tcp"]
    attach(host, layout, config)
    ports = network.ports_of(Store(layout, host))[CID]
    assert [(p["proto"], p["host_port"], p["port"]) for p in ports] == [
        ("tcp", 8080, 80), ("tcp", 49153, 9000), ("udp", 49153, 53)]


def test_a_release_that_fails_after_the_host_steps_leaves_records_naming_what_is_left(
        layout: Layout, net: FakeNet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The netns goes before the records that name it: a release that fails (or is killed)
    after the host's steps has left nothing on the host, never a netns no record names
    (once the container is removed after, nothing would find it again)."""
    host = net.host()
    store = Store(layout, host)
    attach(host, layout, new_container(layout, host, publish=["8080:80"]))

    def fails(*args: object, **kwargs: object) -> None:
        raise ShellctrError("the resolver could not be told")

    monkeypatch.setattr(network, "refresh_names", fails)
    with pytest.raises(ShellctrError):
        network.release(host, store, CID)
    assert net.netns() == [] and not net.tagged(f"ctr={CID[:12]}")  # the host's part: done
    monkeypatch.undo()
    host.reset()
    network.release(host, store, CID)  # again: nothing is left to do
    assert host_commands(host) == []
    assert network.find_network(store, "bridge")["endpoints"] == {}


def test_a_netns_shared_with_another_container_loses_the_veths_of_its_owner(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    store = Store(layout, host)
    attach(host, layout, new_container(layout, host))
    store.write(layout.container_state(CID), {**store.container_state(CID), "status": "running",
                                              "pid": 4321})
    net.running.add(4321)
    joiner = new_container(layout, host, cid=CID2, name="side", network="container:web")
    assert attach(host, layout, joiner) == ["nsenter", "--net=/proc/4321/ns/net", "--"]
    host.reset()
    network.release(host, store, CID)
    assert host_commands(host) == [f"ip link delete dev shv{CID[:10]}0",
                                   f"ip netns delete shc-{CID[:11]}"]


def test_dry_run_shows_the_endpoint_made_and_removed(layout: Layout, net: FakeNet) -> None:
    config = new_container(layout, net.host())
    host = net.host(dry_run=True)
    attach(host, layout, config)
    network.release(host, Store(layout, host), CID)
    # the netns goes first, then the record that named it
    assert host.lines[-2] == f"ip netns delete shc-{CID[:11]}"
    assert host.lines[-1].startswith("cat > ") and ".endpoints.json" in host.lines[-1]
    assert net.names == set() and net.netns() == []  # nothing was done


# -- IPAM -----------------------------------------------------------------------------------
def test_allocate_takes_the_lowest_free_address_and_honours_ip_and_range() -> None:
    assert ipam.allocate("10.0.0.0/29", "10.0.0.1", "", []) == "10.0.0.2"
    assert ipam.allocate("10.0.0.0/29", "10.0.0.1", "", ["10.0.0.2", "10.0.0.4"]) == "10.0.0.3"
    assert ipam.allocate("10.0.0.0/24", "10.0.0.1", "10.0.0.128/25", []) == "10.0.0.128"
    assert ipam.allocate("10.0.0.0/24", "10.0.0.1", "", [], "10.0.0.77") == "10.0.0.77"
    with pytest.raises(Conflict, match="already in use"):
        ipam.allocate("10.0.0.0/24", "10.0.0.1", "", ["10.0.0.77"], "10.0.0.77")
    with pytest.raises(ShellctrError, match="not in the network's subnet"):
        ipam.allocate("10.0.0.0/24", "10.0.0.1", "", [], "10.9.0.1")
    full = [f"10.0.0.{n}" for n in range(2, 7)]
    with pytest.raises(Conflict, match=r"no free address left in 10.0.0.0/29"):
        ipam.allocate("10.0.0.0/29", "10.0.0.1", "", full)


def test_subnets_are_chosen_free_and_checked() -> None:
    routes = [ipam.parse_subnet("172.18.0.0/16")]
    assert ipam.choose_subnet(["172.17.0.0/16"], routes) == "172.19.0.0/16"
    assert ipam.plan_network("10.5.0.0/24", None, None, []) == ("10.5.0.0/24", "10.5.0.1", "")
    with pytest.raises(Conflict, match="overlaps"):
        ipam.plan_network("10.5.0.0/25", None, None, ["10.5.0.0/24"])
    with pytest.raises(ShellctrError, match="not a host address"):
        ipam.plan_network("10.5.0.0/24", "10.6.0.1", None, [])
    with pytest.raises(ShellctrError, match="invalid subnet"):
        ipam.plan_network("10.5.0.1/24", None, None, [])
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    with pytest.raises(ShellctrError, match="multicast"):
        ipam.check_mac("01:00:5e:00:00:01")


# -- iptables and flags -----------------------------------------------------------------------
def test_internal_networks_drop_everything_leaving_or_entering_the_bridge() -> None:
    rules = iptables.network_rules("shbr-x", "10.9.0.0/24", internal=True)
    assert [(table, " ".join(rule)) for table, rule in rules] == [
        ("filter", "SHELLCTR-FORWARD --in-interface shbr-x --out-interface shbr-x --match "
                   "comment --comment shellctr:net=shbr-x --jump ACCEPT"),
        ("filter", "SHELLCTR-ISOLATE-1 --in-interface shbr-x ! --out-interface shbr-x --match "
                   "comment --comment shellctr:net=shbr-x --jump DROP"),
        ("filter", "SHELLCTR-ISOLATE-1 ! --in-interface shbr-x --out-interface shbr-x --match "
                   "comment --comment shellctr:net=shbr-x --jump DROP"),
    ]


def test_remove_owned_deletes_only_the_rules_it_owns_in_long_form(net: FakeNet) -> None:
    listing = {"filter": [], "nat": [
        shlex.split('-A SHELLCTR-DNAT -p tcp -m tcp --dport 8080 -m comment --comment '
                    '"shellctr:ctr=abc" -j DNAT --to-destination 172.17.0.2:80'),
        shlex.split('-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 1.2.3.4:80'),
        shlex.split('-A SHELLCTR-DNAT -p tcp -m tcp --dport 9 -m comment --comment '
                    '"shellctr:ctr=abd" -j DNAT --to-destination 172.17.0.3:80')]}
    host = RecordingHost()
    iptables.remove_owned(host, ("ctr=abc",), listing)
    assert host.lines == [
        "iptables-restore --wait --noflush <<'EOF'\n*nat\n--delete SHELLCTR-DNAT --protocol tcp "
        "--match tcp --destination-port 8080 --match comment --comment shellctr:ctr=abc "
        "--jump DNAT --to-destination 172.17.0.2:80\nCOMMIT\nEOF"]


def binding(port: int, host_port: int = 0, host_ip: str = "", proto: str = "tcp",
            host_port_end: int = 0) -> dict[str, object]:
    return {"proto": proto, "host_ip": host_ip, "host_port": host_port,
            "host_port_end": host_port_end, "port": port}


@pytest.mark.parametrize(("spec", "parsed"), [
    ("80", [binding(80)]),
    ("8080:80", [binding(80, 8080)]),
    ("127.0.0.1:8080:80/udp", [binding(80, 8080, "127.0.0.1", "udp")]),
    ("127.0.0.1::80", [binding(80, 0, "127.0.0.1")]),
    # ranges, as Docker's nat.ParsePortSpec: one to one, or random host ports
    ("8000-8002:80-82", [binding(80, 8000), binding(81, 8001), binding(82, 8002)]),
    ("127.0.0.1:8000-8002:80-82/udp", [binding(80 + n, 8000 + n, "127.0.0.1", "udp")
                                       for n in range(3)]),
    ("80-82", [binding(80), binding(81), binding(82)]),
    ("127.0.0.1::80-81", [binding(80, 0, "127.0.0.1"), binding(81, 0, "127.0.0.1")]),
    # one container port, a host range: the first free port of the range at start
    ("8000-8010:80", [binding(80, 8000, host_port_end=8010)]),
    ("8000-8000:80-80", [binding(80, 8000)]),
])
def test_publish_specs(spec: str, parsed: list[dict[str, object]]) -> None:
    assert netopts.parse_publish(spec) == parsed


@pytest.mark.parametrize(("spec", "error"), [
    ("0", "invalid containerPort: 0"),
    ("70000", "invalid containerPort: 70000"),
    ("0:80", "invalid hostPort: 0"),
    ("a:80", "invalid hostPort: a"),
    ("80/sctp", "invalid protocol 'sctp' in -p 80/sctp"),
    ("1:2:3:4", "invalid -p '1:2:3:4'"),
    ("x.y:1:2", "invalid IPv4 host address in -p 'x.y'"),
    ("8000-8001:80-82", "invalid ranges specified for container and host Ports: 80-82 and "
                        "8000-8001"),
    ("8000-8004:80-82", "invalid ranges specified for container and host Ports: 80-82 and "
                        "8000-8004"),
    ("82-80", "invalid containerPort: 82-80"),
    ("8002-8000:80-82", "invalid hostPort: 8002-8000"),
    ("8000-70000:80", "invalid hostPort: 8000-70000"),
    ("0-2", "invalid containerPort: 0-2"),
    ("80-", "invalid containerPort: 80-"),
    ("80-81-82", "invalid containerPort: 80-81-82"),
    ("\u0662", "invalid containerPort: \u0662"),  # a digit, but not an ASCII one
])
def test_bad_publish_specs_are_refused_with_dockers_words(spec: str, error: str) -> None:
    with pytest.raises(ShellctrError) as caught:
        netopts.parse_publish(spec)
    assert caught.value.message.startswith(error), caught.value.message
    assert "\n" not in str(caught.value)


def test_expose_takes_ranges_and_refuses_bad_ones() -> None:
    assert netopts.parse_expose("7000-7002") == ["7000/tcp", "7001/tcp", "7002/tcp"]
    assert netopts.parse_expose("53/udp") == ["53/udp"]
    for spec in ("7002-7000", "0", "65536", "70-x", "80/sctp"):
        with pytest.raises(ShellctrError, match=re.escape(spec)):
            netopts.parse_expose(spec)
    with pytest.raises(ShellctrError, match="invalid range format for --expose: 7002-7000"):
        netopts.parse_expose("7002-7000")


def test_a_range_of_publish_and_expose_flags_makes_one_binding_and_exposed_port_each(
        layout: Layout, net: FakeNet) -> None:
    config = new_container(layout, net.host(), publish=["8000-8001:80-81", "90-91/udp"],
                           expose=["7000-7001"])
    assert config["exposed"] == ["7000/tcp", "7001/tcp", "80/tcp", "81/tcp", "90/udp",
                                 "91/udp"]
    assert config["ports"] == [binding(80, 8000), binding(81, 8001), binding(90, proto="udp"),
                               binding(91, proto="udp")]
    ContainerConfig.model_validate(Store(layout, net.host()).container_config(CID))


@pytest.mark.parametrize("spec", ["8000-8001:80-82", "82-80", "8000:0", "--expose=7-5"])
def test_a_bad_range_is_refused_before_anything_is_made(layout: Layout, net: FakeNet,
                                                        spec: str) -> None:
    host = net.host()
    flags = {"expose": [spec.split("=")[1]]} if spec.startswith("--") else {"publish": [spec]}
    with pytest.raises(ShellctrError):
        new_container(layout, host, **flags)
    assert Store(layout, host).container_ids() == []


def test_a_published_range_makes_one_exact_rule_set_per_port(layout: Layout,
                                                              net: FakeNet) -> None:
    host = net.host()
    config = new_container(layout, host, publish=["127.0.0.1:8000-8001:80-81/udp"])
    attach(host, layout, config)
    owner = f"--match comment --comment shellctr:ctr={CID[:12]}"
    assert [line for line in host.lines if line.startswith("iptables-restore")][-1] == (
        "iptables-restore --wait --noflush <<'EOF'\n*raw\n"
        # published on loopback: dropped unless from this host (issue 13, defect 7)
        "--append PREROUTING --destination 127.0.0.1 ! --in-interface lo --protocol udp "
        f"--destination-port 8000 {owner} --jump DROP\n"
        "--append PREROUTING --destination 127.0.0.1 ! --in-interface lo --protocol udp "
        f"--destination-port 8001 {owner} --jump DROP\n"
        "COMMIT\n*filter\n"
        "--append SHELLCTR-PORTS --destination 172.17.0.2/32 ! --in-interface shellctr0 "
        f"--out-interface shellctr0 --protocol udp --destination-port 80 {owner} --jump ACCEPT\n"
        "--append SHELLCTR-PORTS --destination 172.17.0.2/32 ! --in-interface shellctr0 "
        f"--out-interface shellctr0 --protocol udp --destination-port 81 {owner} --jump ACCEPT\n"
        "COMMIT\n*nat\n"
        "--append SHELLCTR-DNAT --destination 127.0.0.1 --protocol udp --destination-port 8000 "
        f"{owner} --jump DNAT --to-destination 172.17.0.2:80\n"
        "--append SHELLCTR-POSTROUTING --source 172.17.0.2/32 --destination 172.17.0.2/32 "
        f"--protocol udp --destination-port 80 {owner} --jump MASQUERADE\n"
        "--append SHELLCTR-DNAT --destination 127.0.0.1 --protocol udp --destination-port 8001 "
        f"{owner} --jump DNAT --to-destination 172.17.0.2:81\n"
        "--append SHELLCTR-POSTROUTING --source 172.17.0.2/32 --destination 172.17.0.2/32 "
        f"--protocol udp --destination-port 81 {owner} --jump MASQUERADE\nCOMMIT\nEOF")
    assert len(net.tagged(f"ctr={CID[:12]}")) == 8
    network.release(host, Store(layout, host), CID)
    assert not net.tagged(f"ctr={CID[:12]}")


def test_a_host_range_takes_its_first_free_port_and_random_ones_never_collide(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    attach(host, layout, new_container(layout, host, publish=["8000:80", "80-82"]))
    other = new_container(layout, host, cid=CID2, name="other",
                          publish=["8000-8010:80", "49154-49160:81", "90-91"])
    attach(host, layout, other)
    ports = network.ports_of(Store(layout, host))
    assert [(p["host_port"], p["port"]) for p in ports[CID]] == [
        (8000, 80), (49153, 80), (49154, 81), (49155, 82)]
    assert [(p["host_port"], p["host_port_end"], p["port"]) for p in ports[CID2]] == [
        (8001, 0, 80), (49156, 0, 81), (49157, 0, 90), (49158, 0, 91)]


def test_publish_all_gives_each_port_of_an_exposed_range_its_own_host_port(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    attach(host, layout, new_container(layout, host, publish_all=True,
                                       expose=["7000-7002", "53/udp"]))
    ports = network.ports_of(Store(layout, host))[CID]
    assert [(p["proto"], p["host_port"], p["port"]) for p in ports] == [
        ("tcp", 49153, 7000), ("tcp", 49154, 7001), ("tcp", 49155, 7002),
        ("udp", 49153, 53)]


def test_a_range_with_a_port_in_use_is_refused_and_leaves_nothing(
        layout: Layout, net: FakeNet) -> None:
    host = net.host()
    attach(host, layout, new_container(layout, host, publish=["8001:80"]))
    other = new_container(layout, host, cid=CID2, name="other", publish=["8000-8002:80-82"])
    with pytest.raises(Conflict, match=re.escape(
            "bind for 0.0.0.0:8001/tcp failed: port is already allocated")):
        attach(host, layout, other)
    full = new_container(layout, host, cid="ab" * 32, name="full", publish=["8001-8001:80"])
    with pytest.raises(Conflict, match=re.escape("bind for 0.0.0.0:8001/tcp failed")):
        attach(host, layout, full)

    net.held = {("tcp", 9000), ("tcp", 9001)}  # by another program
    ranged = new_container(layout, host, cid="cd" * 32, name="ranged",
                           publish=["9000-9001:80"])
    with pytest.raises(Conflict, match=re.escape(
            "bind for 0.0.0.0:9000-9001/tcp failed: Address already in use")):
        attach(host, layout, ranged)
    assert net.netns() == [f"shc-{CID[:11]}"] and len(net.tagged(f"ctr={CID[:12]}")) == 3
    assert list(network.ports_of(Store(layout, host))) == [CID]


def test_etc_files_follow_the_flags() -> None:
    config = {"id": CID, "name": "web", "hostname": "box",
              "extra_hosts": [netopts.parse_add_host("gw:192.0.2.9")],
              "dns": [], "dns_search": ["corp"], "dns_options": ["ndots:2"]}
    assert netopts.hosts_text(config, ["10.0.0.2"]) == (
        netopts.LOCALHOST + f"192.0.2.9\tgw\n10.0.0.2\tbox {CID[:12]} web\n")
    host_text = "nameserver 192.0.2.53\nsearch home\n"
    assert netopts.resolv_text(config, host_text) == (
        "nameserver 192.0.2.53\nsearch corp\noptions ndots:2\n")
    assert netopts.resolv_text({**config, "dns_search": [], "dns_options": []}, host_text,
                               "10.0.0.1") == "nameserver 10.0.0.1\nsearch home\n"
    assert netopts.network_mode(None) == netopts.DEFAULT_MODE
    assert netopts.network_mode("bridge") == "shellctr0"
    with pytest.raises(ShellctrError):
        netopts.parse_add_host("nohost")


def test_resolver_servers_file_makes_each_container_name_local_and_skips_unsafe_words() -> None:
    hosts = "10.1.0.2\tweb db.x abc123\n10.1.0.3\tweb odd/name\n"
    assert dns.servers_text(hosts) == "server=/web/\nserver=/db.x/\nserver=/abc123/\n"


def test_resolver_names_are_each_networks_own_and_a_multi_network_container_has_its_own(
) -> None:
    def ep(name: str, ip: str, ifname: str) -> dict[str, object]:
        return {"name": name, "ip": ip, "aliases": [], "ifname": ifname}

    both, a_only, b_only, d_only = "1" * 64, "2" * 64, "3" * 64, "4" * 64
    bridge = {"id": "d", "dns": False, "endpoints": {both: ep("both", "172.17.0.2", "eth0"),
                                                    d_only: ep("plain", "172.17.0.3", "eth0")}}
    net_b = {"id": "b", "dns": True, "endpoints": {both: ep("both", "10.2.0.2", "eth1"),
                                                   b_only: ep("beta", "10.2.0.3", "eth0")}}
    net_a = {"id": "a", "dns": True, "endpoints": {both: ep("both", "10.1.0.2", "eth2"),
                                                   a_only: ep("alpha", "10.1.0.3", "eth0")}}
    # a container on `a` alone does not resolve `beta`, which is only on `b`
    assert dns.hosts_text(net_a) == (
        f"10.1.0.2\tboth {both[:12]}\n10.1.0.3\talpha {a_only[:12]}\n")
    found = [bridge, net_a, net_b]
    # `both` asks its own resolver, which has both networks' names (its first first)
    assert [r["id"] for r in dns.own_networks(both, found)] == ["b", "a"]
    assert dns.needs_own(both, found)
    assert not dns.needs_own(a_only, found) and not dns.needs_own(d_only, found)
