"""Networking, side by side with the raw floor (a veth pair set up by hand).

- TCP throughput container -> container on a user network (veth, bridge, veth) against
  two namespaces joined by one veth pair;
- TCP throughput host -> a published port on 127.0.0.1 (DNAT in OUTPUT, MASQUERADE)
  against host -> a namespace over a veth pair, no NAT;
- the start latency a bridged container adds over `--network none`.

Throughput is measured with iperf3 (Debian's iperf3) run in the containers' network
namespaces through nsenter, so only the network path differs; without iperf3, a Python
sender and receiver stand in. Everything happens in a network namespace of this
process's own (common.Sandbox). Usage: bench/network.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from common import SHELLCTR, Sandbox, interleave, median_ms, run

SECONDS = 2  # of each throughput run
RUNS = 5
RECEIVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
buf = bytearray(1 << 20)
while conn.recv_into(buf):
    pass
"""
SENDER = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
chunk = bytes(1 << 20)
sent, start = 0, time.perf_counter()
while time.perf_counter() - start < float(sys.argv[3]):
    sock.sendall(chunk)
    sent += len(chunk)
sock.close()
print(sent * 8 / (time.perf_counter() - start))
"""


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={netns}", "--", *argv] if netns else argv


def throughput(server_ns: str | None, client_ns: str | None, address: str, port: int,
               listen_port: int) -> float:
    """Bits per second from client to server (server listening on listen_port)."""
    if shutil.which("iperf3"):
        server = subprocess.Popen(in_netns(server_ns, ["iperf3", "--server", "--one-off",
                                                       "--port", str(listen_port)]),
                                  stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):  # until it listens
                probe = subprocess.run(in_netns(client_ns, [
                    "iperf3", "--client", address, "--port", str(port), "--time",
                    str(SECONDS), "--json"]), capture_output=True, text=True)
                result = json.loads(probe.stdout or "{}")
                if probe.returncode == 0 and "sum_received" in result.get("end", {}):
                    return float(result["end"]["sum_received"]["bits_per_second"])
                time.sleep(0.05)
            raise RuntimeError(f"iperf3 failed: {probe.stdout} {probe.stderr}")
        finally:
            server.kill()
            server.wait()
    server = subprocess.Popen(in_netns(server_ns, [sys.executable, "-c", RECEIVER,
                                                   str(listen_port)]),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        out = subprocess.run(in_netns(client_ns, [sys.executable, "-c", SENDER, address,
                                                  str(port), str(SECONDS)]),
                             check=True, capture_output=True, text=True).stdout
        return float(out)
    finally:
        server.kill()
        server.wait()


class RawPair:
    """Two namespaces (or the host and one) joined by one veth pair, by hand."""

    def __init__(self, tag: str, host_end: bool) -> None:
        prefix = f"/run/netns/shb-{os.getpid()}-{tag}"  # /run/netns is the whole host's
        self.a = None if host_end else f"{prefix}-a"
        self.b = f"{prefix}-b"
        self.names = [n for n in (self.a, self.b) if n]
        for path in self.names:
            run(["ip", "netns", "add", path.rsplit("/", 1)[1]])
        b_name = self.b.rsplit("/", 1)[1]
        run(["ip", "link", "add", "name", f"shb{tag}", "type", "veth", "peer", "name", "eth0",
             "netns", b_name])
        if self.a:
            run(["ip", "link", "set", "dev", f"shb{tag}", "netns", self.a.rsplit("/", 1)[1]])
        self.cmd(self.a, ["ip", "address", "add", "10.250.0.1/24", "dev", f"shb{tag}"])
        self.cmd(self.a, ["ip", "link", "set", "dev", f"shb{tag}", "up"])
        self.cmd(self.b, ["ip", "address", "add", "10.250.0.2/24", "dev", "eth0"])
        self.cmd(self.b, ["ip", "link", "set", "dev", "eth0", "up"])
        for path in self.names:
            self.cmd(path, ["ip", "link", "set", "dev", "lo", "up"])
        self.tag = tag

    @staticmethod
    def cmd(netns: str | None, argv: list[str]) -> None:
        run(in_netns(netns, argv))

    def close(self) -> None:
        if self.a is None:
            run(["ip", "link", "delete", "dev", f"shb{self.tag}"])
        for path in self.names:
            run(["ip", "netns", "delete", path.rsplit("/", 1)[1]])


def interleaved(runs: int, ours: Callable[[], float],
                raw: Callable[[], float]) -> tuple[float, float]:
    """Medians of `runs` runs of each, taken in turn: drift on a busy host hits both."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        samples[0].append(ours())
        samples[1].append(raw())
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    box = Sandbox()
    try:
        sc = [SHELLCTR]
        run([*sc, "network", "create", "--subnet", "10.251.0.0/24", "benchnet"], env=box.env)
        ids = [subprocess.run([*sc, "run", "-d", "--network", "benchnet", *extra, "busybox",
                               "sleep", "1000"], env=box.env, check=True, capture_output=True,
                              text=True).stdout.strip() for extra in ([], ["-p", "15201:5201"])]
        netns = [f"/run/netns/shc-{cid[:11]}" for cid in ids]
        server_ip = "10.251.0.3"  # the second container's, which publishes 15201
        pair, host_pair = RawPair("p", host_end=False), RawPair("h", host_end=True)
        try:
            rows = [
                ("container -> container (bridge)",
                 lambda: throughput(netns[1], netns[0], server_ip, 5201, 5201),
                 "raw veth pair, netns -> netns",
                 lambda: throughput(pair.b, pair.a, "10.250.0.2", 5201, 5201)),
                ("host -> published 127.0.0.1:15201",
                 lambda: throughput(netns[1], None, "127.0.0.1", 15201, 5201),
                 "raw veth pair, host -> netns",
                 lambda: throughput(host_pair.b, None, "10.250.0.2", 5201, 5201)),
            ]
            tool = "iperf3" if shutil.which("iperf3") else "python sender/receiver"
            print(f"TCP throughput ({tool}, {SECONDS} s runs, median of {RUNS}, interleaved)")
            for name, measure, raw_name, raw in rows:
                ours, floor = interleaved(RUNS, measure, raw)
                print(f"  {name:38s} {ours / 1e9:6.2f} Gbit/s")
                print(f"  {raw_name:38s} {floor / 1e9:6.2f} Gbit/s   ratio {ours / floor:4.2f}")
        finally:
            pair.close()
            host_pair.close()
            run([*sc, "rm", "--force", *ids], env=box.env)
        cases = {
            "run --rm --network none busybox true": lambda: run(
                [*sc, "run", "--rm", "--network", "none", "busybox", "true"], env=box.env),
            "run --rm busybox true (default bridge)": lambda: run(
                [*sc, "run", "--rm", "busybox", "true"], env=box.env),
        }
        samples = interleave(cases, rounds)
        none, bridged = (median_ms(values) for values in samples.values())
        print(f"start latency, median of {rounds} rounds")
        print(f"  --network none {none:6.1f} ms, default bridge {bridged:6.1f} ms: "
              f"+{bridged - none:.1f} ms")
    finally:
        box.close()


if __name__ == "__main__":
    main()
