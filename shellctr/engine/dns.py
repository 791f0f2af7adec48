"""Name resolution on user networks: one dnsmasq per network, on its gateway address,
and one more in the network namespace of each container on several of them.

dnsmasq (Debian's dnsmasq-base: the program, no system service) answers the names,
aliases and short ids of the network's running containers from a hosts file that
shellctr rewrites (then SIGHUP: dnsmasq rereads it) whenever one comes or goes, and
forwards other names to the host's resolvers. It answers every query for those names
itself (a servers file, reread on SIGHUP too, makes each one local): a query of another
type than A (musl asks AAAA too) gets NOERROR with no record, as Docker's resolver,
rather than whatever the host's resolvers say (REFUSED when there are none). It is
started with the network (or on first use after a reboot) and stopped with it; its pid
file, hosts file and servers file live in RUNROOT/networks/<id>/, so its command
line names shellctr's run root.
The default network has none, as Docker's default bridge.

Names are scoped to the asking container, as Docker's resolver scopes them: a network's
resolver knows only that network's names, so a container on it alone resolves no name
of another network. A container on two or more user networks gets a resolver of its
own (`sync_own`), as Docker's embedded one at 127.0.0.11 in the container's network
namespace: a dnsmasq there (`nsenter --net`; the host's binary in the host's mount
namespace, never in the container's root) with the names of all its networks, other
names forwarded to its first network's resolver; it listens on OWN_PORT, where two nat
rules in the netns send the container's queries to 127.0.0.11:53 (port 53 stays free for
the container's use, as with Docker's). Its files live in RUNROOT/resolvers/<container
id>/; it goes when the container has fewer such networks.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.facts import Facts, long_form
from shellctr.core.host import Host
from shellctr.engine import iptables

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from shellctr.core.layout import Layout
    from shellctr.core.store import Record


OWN_ADDRESS = "127.0.0.11"  # a container's own resolver, in its netns (Docker's address)
OWN_PORT = 53053  # where it listens (own_nat): port 53 stays the container's


def hosts_text(record: Record) -> str:
    """The names the network's resolver answers: each endpoint's address, container
    name, aliases and short id (its own containers' only: names are scoped per asking
    container; one on several networks asks its own resolver, which has them all)."""
    return "".join(entry(cid, ep) for cid, ep in sorted(record.get("endpoints", {}).items()))


def own_networks(cid: str, records: list[Record]) -> list[Record]:
    """The user networks with a resolver that the container is on, its first first."""
    found = [record for record in records if record.get("dns") and cid in record["endpoints"]]
    return sorted(found, key=lambda record: int(record["endpoints"][cid]["ifname"][3:]))


def needs_own(cid: str, records: list[Record]) -> bool:
    """Whether the container asks a resolver of its own (it is on several networks)."""
    return len(own_networks(cid, records)) > 1


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # what a servers-file line may name


def servers_text(hosts: str) -> str:
    """dnsmasq's servers file: each name of the hosts file answered here only (`server=`
    with no address is `local=`), whatever the query's type; other names are forwarded."""
    names = dict.fromkeys(name for line in hosts.splitlines() for name in line.split()[1:]
                          if NAME.fullmatch(name))
    return "".join(f"server=/{name}/\n" for name in names)


def write_names(host: Host, run_dir: Path, hosts: str) -> None:
    """The hosts file and the servers file made from it (dnsmasq rereads both on SIGHUP)."""
    host.write_file(run_dir / "servers", servers_text(hosts), durable=False)
    host.write_file(run_dir / "hosts", hosts, durable=False)


def entry(cid: str, endpoint: Record) -> str:
    names = [endpoint["name"], *endpoint.get("aliases", []), cid[:12]]
    return f"{endpoint['ip']}\t{' '.join(dict.fromkeys(n for n in names if n))}\n"


def argv(record: Record, run_dir: Path) -> list[str]:
    return [
        "dnsmasq",
        "--conf-file=/dev/null",  # none of the host's dnsmasq configuration
        f"--pid-file={path_arg(run_dir / 'dnsmasq.pid')}",
        "--no-hosts",  # not the host's /etc/hosts: only the network's containers
        f"--addn-hosts={path_arg(run_dir / 'hosts')}",
        f"--servers-file={path_arg(run_dir / 'servers')}",  # its names: never forwarded
        "--bind-interfaces", f"--listen-address={record['gateway']}",  # nowhere else
        # root: it rereads the hosts file under the run root (mode 700) on SIGHUP
        "--user=root",
    ]


def own_argv(run_dir: Path, netns: Path, forward: str) -> list[str]:
    """The container's own dnsmasq: in its network namespace (nsenter --net only), on
    OWN_ADDRESS, names from its hosts file, other names forwarded to `forward`."""
    return [
        "nsenter", f"--net={path_arg(netns)}", "--",
        "dnsmasq",
        "--conf-file=/dev/null",
        f"--pid-file={path_arg(run_dir / 'dnsmasq.pid')}",
        "--no-hosts",
        f"--addn-hosts={path_arg(run_dir / 'hosts')}",
        f"--servers-file={path_arg(run_dir / 'servers')}",
        # not the host's resolv.conf: its loopback resolvers are not in this netns
        "--no-resolv", f"--server={forward}",
        "--bind-interfaces", f"--listen-address={OWN_ADDRESS}", f"--port={OWN_PORT}",
        "--user=root",
    ]


def pid_of(facts: Facts, run_dir: Path) -> int:
    """The running dnsmasq of this run dir, or 0 (its cmdline must name the pid file)."""
    pid_file = run_dir / "dnsmasq.pid"
    try:
        pid = int(facts.read_text(pid_file).strip() or 0)
        cmdline = facts.read_bytes(facts.proc / str(pid) / "cmdline")
    except (OSError, ValueError):
        return 0
    start = facts.process_start(pid)
    running = start is not None and facts.alive(pid, start)  # a zombie has ended
    return pid if running and f"--pid-file={pid_file}".encode() in cmdline else 0


def start(host: Host, record: Record, run_dir: Path) -> None:
    """Start the network's dnsmasq unless it runs; its hosts file first."""
    host.ensure_dir(run_dir, mode=0o700)
    write_names(host, run_dir, hosts_text(record))
    if not pid_of(host.facts, run_dir):
        host.run(argv(record, run_dir))  # it daemonizes once it listens


def refresh(host: Host, records: list[Record], layout: Layout,
            netns_of: Callable[[str], Path]) -> None:
    """Rewrite the hosts files that changed and tell their dnsmasq to reread them; then
    give each container on several networks its own resolver, and take it from one on
    fewer (sync_own)."""
    for record in records:
        run_dir = layout.network_run_dir(record["id"])
        if not record.get("dns") or not host.exists(run_dir):
            continue
        reread(host, run_dir, hosts_text(record))
    counts: dict[str, int] = {}
    for record in records:
        for cid in record["endpoints"] if record.get("dns") else ():
            counts[cid] = counts.get(cid, 0) + 1
    have = host.facts.listdir(layout.resolvers_dir)  # one read, not one stat per container
    for cid in sorted({cid for cid, count in counts.items() if count > 1} | set(have)):
        sync_own(host, layout, cid, records, netns_of(cid))


def reread(host: Host, run_dir: Path, text: str) -> None:
    """A resolver's hosts (and servers) file as `text`, reread if it changed."""
    if host.facts.read_text(run_dir / "hosts", "") == text:
        return
    write_names(host, run_dir, text)
    pid = pid_of(host.facts, run_dir)
    if pid:
        host.kill(pid, signal.SIGHUP)


def sync_own(host: Host, layout: Layout, cid: str, records: list[Record], netns: Path) -> None:
    """The container's own resolver as its networks want it: running, with the names of
    all of them, while it is on several and its netns exists; else none."""
    run_dir = layout.container_resolver_dir(cid)
    networks = own_networks(cid, records)
    if len(networks) < 2 or not host.facts.exists(netns):
        if host.exists(run_dir):
            stop_own(host, run_dir, netns)
        return
    argv = own_argv(run_dir, netns, networks[0]["gateway"])
    pid = pid_of(host.facts, run_dir)
    if pid and host.facts.read_bytes(host.facts.proc / str(pid) / "cmdline") != \
            "\0".join(argv[3:]).encode() + b"\0":
        stop_own(host, run_dir, netns)  # its first network changed: another to forward to
        pid = 0
    text = "".join(hosts_text(record) for record in networks)
    if pid:
        reread(host, run_dir, text)
        return
    host.ensure_dir(run_dir, mode=0o700)
    write_names(host, run_dir, text)
    own_nat(host, cid, netns, present=True)
    host.run(argv)  # it daemonizes once it listens


def own_nat(host: Host, cid: str, netns: Path, *, present: bool) -> None:
    """The two rules in the container's netns that send its queries to 127.0.0.11:53 on
    to OWN_PORT, where its own resolver listens, so that port 53 stays free for a DNS
    server of its own (as Docker's embedded DNS does it): added or deleted, its nat
    table probed first (a container given NET_ADMIN may have changed it). They would go
    with the netns anyway."""
    found = [words for words in host.facts.host_iptables_rules("nat", netns)
             if words[:1] == ["-A"] and iptables.owned(words, (f"ctr={cid[:12]}",))]
    if present and not found:
        lines = [f"--append OUTPUT --destination {OWN_ADDRESS}/32 --protocol {proto} "
                 f"--destination-port 53 --match comment --comment shellctr:ctr={cid[:12]} "
                 f"--jump DNAT --to-destination {OWN_ADDRESS}:{OWN_PORT}"
                 for proto in ("udp", "tcp")]
    elif not present and found:
        lines = [iptables.line(["--delete", *long_form(words[1:])]) for words in found]
    else:
        return
    host.run(["nsenter", f"--net={path_arg(netns)}", "--", "iptables-restore", "--wait",
              "--noflush"], input=iptables.restore_text({"nat": lines}))


def stop_own(host: Host, run_dir: Path, netns: Path) -> None:
    """Stop the container's own resolver and remove its rules (if its netns is still
    there: else they went with it) and files."""
    if host.facts.exists(netns):
        own_nat(host, run_dir.name, netns, present=False)
    stop(host, run_dir)


def stop(host: Host, run_dir: Path) -> None:
    """Stop the network's dnsmasq if it runs, and remove its files."""
    pid = pid_of(host.facts, run_dir)
    if pid:
        start = host.facts.process_start(pid) or 0
        host.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        # until it has ended: a zombie holds no socket, and its reaper (the host's init,
        # as it daemonized) may take a second or two to reap it
        while host.facts.alive(pid, start) and time.monotonic() < deadline:
            time.sleep(0.005)
    host.remove_tree(run_dir)
