"""`shellctr run --rm busybox true` against the raw floor (and Docker/Podman if usable).

The floor is what any container start must do at least: `unshare` new namespaces,
mount the overlay inside the new mount namespace, and /proc in it, run `true` in it,
clean up. Its
network namespace has loopback only, like `--network none`; the default (bridged) run
is shown beside it.
Usage: bench/start.py [ROUNDS]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Sandbox, engine_available, interleave, median_ms, run


def floor(layer: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="shellctr-floor-"))
    for name in ("upper", "work", "merged"):
        (scratch / name).mkdir()
    options = f"lowerdir={layer},upperdir={scratch}/upper,workdir={scratch}/work"
    run(["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
         "--propagation", "private", "--", "sh", "-c",
         'mount -t overlay overlay -o "$1" "$2" && mount -t proc proc "$2/proc" && '
         'exec chroot "$2" /bin/true',
         "sh", options, str(scratch / "merged")])
    shutil.rmtree(scratch)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    box = Sandbox()
    try:
        layer = box.layer_dir()
        cases = {
            "floor (unshare + overlay + /proc + true)": lambda: floor(layer),
            "shellctr run --rm --network none ... true": lambda: run(
                box.shellctr("run", "--rm", "--network", "none", "busybox", "true"),
                env=box.env),
            # the default network: a veth on the bridge, an address, NAT rules
            "shellctr run --rm busybox true": lambda: run(
                box.shellctr("run", "--rm", "busybox", "true"), env=box.env),
        }
        for engine in ("docker", "podman"):
            if engine_available(engine):
                subprocess.run([engine, "pull", "-q", "busybox"], capture_output=True)
                trial = subprocess.run([engine, "run", "--rm", "busybox", "true"],
                                       capture_output=True)
                if trial.returncode != 0:  # e.g. no image and no registry to pull from
                    print(f"({engine}: cannot run busybox here, skipped)")
                    continue
                cases[f"{engine} run --rm busybox true"] = (
                    lambda engine=engine: run([engine, "run", "--rm", "busybox", "true"]))
            else:
                print(f"({engine}: not usable here, skipped)")
        samples = interleave(cases, rounds)
        base = median_ms(next(iter(samples.values())))
        print(f"container start, median of {rounds} rounds")
        for name, values in samples.items():
            ms = median_ms(values)
            print(f"  {name:40s} {ms:7.1f} ms   {ms / base:5.1f}x floor")
    finally:
        box.close()


if __name__ == "__main__":
    main()
