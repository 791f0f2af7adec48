"""Name resolution on user networks: one dnsmasq per network, on its gateway address.

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
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.facts import Facts
from shellctr.core.host import Host

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from shellctr.core.store import Record


def hosts_text(record: Record, others: list[Record] | None = None) -> str:
    """The names a container on the network can reach: each endpoint's address, container
    name, aliases and short id; then, as Docker's resolver answers across all the
    networks of the asking container, the endpoints of the other user networks its
    containers are on (`others`: every network record). Not those of a network without
    a resolver (the default bridge): its names resolve nowhere, as Docker's."""
    endpoints = record.get("endpoints", {})
    lines = [entry(cid, ep) for cid, ep in sorted(endpoints.items())]
    for other in others or []:
        if other["id"] != record["id"] and other.get("dns") and \
                set(other["endpoints"]) & set(endpoints):
            lines += [entry(cid, ep) for cid, ep in sorted(other["endpoints"].items())
                      if cid not in endpoints]
    return "".join(lines)


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


def pid_of(facts: Facts, run_dir: Path) -> int:
    """The running dnsmasq of this run dir, or 0 (its cmdline must name the pid file)."""
    pid_file = run_dir / "dnsmasq.pid"
    try:
        pid = int(facts.read_text(pid_file).strip() or 0)
        cmdline = facts.read_bytes(facts.proc / str(pid) / "cmdline")
    except (OSError, ValueError):
        return 0
    running = facts.process_start(pid) is not None
    return pid if running and f"--pid-file={pid_file}".encode() in cmdline else 0


def start(host: Host, record: Record, run_dir: Path) -> None:
    """Start the network's dnsmasq unless it runs; its hosts file first."""
    host.ensure_dir(run_dir, mode=0o700)
    write_names(host, run_dir, hosts_text(record))
    if not pid_of(host.facts, run_dir):
        host.run(argv(record, run_dir))  # it daemonizes once it listens


def refresh(host: Host, records: list[Record], run_dir_of: Callable[[str], Path]) -> None:
    """Rewrite the hosts files that changed and tell their dnsmasq to reread them."""
    for record in records:
        run_dir = run_dir_of(record["id"])
        if not record.get("dns") or not host.exists(run_dir):
            continue
        text = hosts_text(record, records)
        if host.facts.read_text(run_dir / "hosts", "") == text:
            continue
        write_names(host, run_dir, text)
        pid = pid_of(host.facts, run_dir)
        if pid:
            host.kill(pid, signal.SIGHUP)


def stop(host: Host, run_dir: Path) -> None:
    """Stop the network's dnsmasq if it runs, and remove its files."""
    pid = pid_of(host.facts, run_dir)
    if pid:
        host.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while host.facts.process_start(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.005)
    host.remove_tree(run_dir)
