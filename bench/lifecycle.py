"""Detached containers side by side with the raw floor (and Docker/Podman if usable).

- 20 detached starts in a row: `shellctr run -d busybox sleep 1000` against the floor
  (`unshare` + overlay + `sleep`, put in the background);
- `ps` with 100 containers;
- `exec CTR true` latency against `nsenter` into the same container;
- the monitor's resident memory per container (Podman's conmon: ~2 MiB here, Docker's
  containerd-shim: ~13 MiB).
Usage: bench/lifecycle.py [ROUNDS]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Sandbox, interleave, median_ms, run

STARTS = 20
PS_CONTAINERS = 100


def floor_detached(layer: Path, scratch: Path, index: int) -> subprocess.Popen[bytes]:
    """The least a detached start does: namespaces, overlay, the process, in the background."""
    base = scratch / str(index)
    for name in ("upper", "work", "merged"):
        (base / name).mkdir(parents=True)
    options = f"lowerdir={layer},upperdir={base}/upper,workdir={base}/work"
    return subprocess.Popen(
        ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
         "--kill-child",  # killing unshare kills the container too
         "--propagation", "private", "--", "sh", "-c",
         'mount -t overlay overlay -o "$1" "$2" && exec chroot "$2" /bin/sleep 1000',
         "sh", options, str(base / "merged")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    box = Sandbox()
    ctr = box.shellctr
    scratch = Path(tempfile.mkdtemp(prefix="shellctr-floor-"))
    try:
        layer = box.layer_dir()

        # time the starts only: each case cleans up inside, so time them separately
        samples: dict[str, list[float]] = {"floor": [], "shellctr": []}
        monitors: list[int] = []
        for round_number in range(rounds):
            start = time.perf_counter()
            processes = [floor_detached(layer, scratch, i) for i in range(STARTS)]
            samples["floor"].append(time.perf_counter() - start)
            for process in processes:
                process.kill()
                process.wait()
            shutil.rmtree(scratch)
            scratch.mkdir()
            start = time.perf_counter()
            for _ in range(STARTS):
                run(ctr("run", "-d", "busybox", "sleep", "1000"), env=box.env)
            samples["shellctr"].append(time.perf_counter() - start)
            if round_number == rounds - 1:
                for cid in subprocess.run(ctr("ps", "-q", "--no-trunc"), env=box.env,
                                          capture_output=True, text=True).stdout.split():
                    state = json.loads((box.dir / "root" / "containers" / cid /
                                        "state.json").read_text())
                    reaper = int(Path(f"/proc/{state['pid']}/stat").read_text()
                                 .rsplit(")", 1)[1].split()[1])  # PID 1's parent
                    monitors.append(rss_kib(state["monitor_pid"]) + rss_kib(reaper))
            ids = subprocess.run(ctr("ps", "-q"), env=box.env, capture_output=True,
                                 text=True, check=True).stdout.split()
            run(ctr("rm", "-f", *ids), env=box.env)
        floor_ms, ours_ms = median_ms(samples["floor"]), median_ms(samples["shellctr"])
        print(f"{STARTS} detached starts in a row, median of {rounds} rounds")
        print(f"  floor (unshare + overlay + sleep, &)  {floor_ms:8.1f} ms   1.0x")
        print(f"  shellctr run -d busybox sleep 1000    {ours_ms:8.1f} ms "
              f"{ours_ms / floor_ms:5.1f}x")
        print("shellctr's processes per running container (monitor + reaper), resident: "
              f"median {sorted(monitors)[len(monitors) // 2]} KiB (max {max(monitors)} KiB);"
              " conmon ~2048 KiB, containerd-shim ~13312 KiB")

        # exec latency, against nsenter into the same container
        cid = subprocess.run(ctr("run", "-d", "busybox", "sleep", "1000"), env=box.env,
                             capture_output=True, text=True, check=True).stdout.strip()
        pid = json.loads((box.dir / "root" / "containers" / cid / "state.json")
                         .read_text())["pid"]
        exec_samples = interleave({
            "floor (nsenter ... true)": lambda: run(
                ["nsenter", f"--target={pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
                 "--", "true"]),
            "shellctr exec CTR true": lambda: run(ctr("exec", cid, "true"), env=box.env),
        }, rounds * 10)
        base = median_ms(next(iter(exec_samples.values())))
        print(f"exec latency, median of {rounds * 10}")
        for name, values in exec_samples.items():
            ms = median_ms(values)
            print(f"  {name:38s} {ms:8.1f} ms {ms / base:5.1f}x")
        run(ctr("rm", "-f", cid), env=box.env)

        # ps with 100 containers
        for _ in range(PS_CONTAINERS):
            run(ctr("create", "busybox", "true"), env=box.env)
        ps = interleave({"shellctr ps -a (100 containers)": lambda: run(
            ctr("ps", "-a"), env=box.env)}, rounds * 5)
        for name, values in ps.items():
            print(f"  {name:38s} {median_ms(values):8.1f} ms")
        ids = subprocess.run(ctr("ps", "-aq"), env=box.env, capture_output=True,
                             text=True, check=True).stdout.split()
        run(ctr("rm", *ids), env=box.env)
    finally:
        leftover = subprocess.run(ctr("ps", "-aq"), env=box.env, capture_output=True,
                                  text=True).stdout.split()
        if leftover:
            subprocess.run(ctr("rm", "-f", *leftover), env=box.env)
        shutil.rmtree(scratch, ignore_errors=True)
        box.close()


if __name__ == "__main__":
    main()
