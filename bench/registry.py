"""pull and push against a loopback registry, side by side with skopeo and podman.

A 100 MB image of 5 gzip layers (half random bytes, half text, as real layers compress)
is copied by skopeo into a docker-registry on 127.0.0.1; then, cold each round (nothing
of the image present beforehand):
  pull: `shellctr pull` vs `skopeo copy docker://... oci:DIR` vs `podman pull`;
  first use: `shellctr create` of the image just pulled (it extracts the layers then)
        vs `podman create` (podman extracted them in its pull): pull + create is the
        like-for-like sum against podman;
  push: `shellctr push` vs `skopeo copy oci:DIR docker://...`, each into a fresh registry
        (so that no blob is there already and nothing can be mounted).
What each stores: skopeo's copy and shellctr's pull keep the compressed blobs (digests
checked) and extract nothing; podman's pull also decompresses and extracts every layer.
Reports medians and ratios to skopeo. Run as root: `make bench` or
`.venv/bin/python bench/registry.py [ROUNDS]`. Not a timed test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHELLCTR, median_ms, own_network_namespace, run

LAYERS, LAYER_MB = 5, 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.name = f"127.0.0.1:{self.port}"
        base.mkdir(parents=True)
        (base / "config.yml").write_text(
            f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {base / 'storage'}\n"
            f"http:\n  addr: {self.name}\n")
        self.process = subprocess.Popen(["docker-registry", "serve", str(base / "config.yml")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.base)


def write_layout(path: Path) -> None:
    """An OCI layout of one image: LAYERS gzip layers of LAYER_MB each."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(data: bytes, media: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}

    layers, diff_ids = [], []
    text = b"".join(b"line %d of a text file in a layer\n" % i for i in range(400_000))
    for index in range(LAYERS):
        half = LAYER_MB << 19
        content = os.urandom(half) + (text * 2)[:half]
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
            info = tarfile.TarInfo(f"data/layer{index}.bin")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        raw = tar.getvalue()
        diff_ids.append(f"sha256:{hashlib.sha256(raw).hexdigest()}")
        layers.append(blob(gzip.compress(raw, compresslevel=6, mtime=0),
                           "application/vnd.oci.image.layer.v1.tar+gzip"))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": blob(config, "application/vnd.oci.image.config.v1+json"),
                           "layers": layers}).encode()
    top = blob(manifest, "application/vnd.oci.image.manifest.v1+json")
    top["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))


CPU: dict[str, list[float]] = {}  # case -> CPU seconds of its process tree, per round


def timed(argv: list[str], env: dict[str, str] | None = None, name: str = "") -> float:
    """Wall seconds of `argv`; its process tree's CPU seconds go to CPU[name] (on a
    loaded machine the CPU time is the steadier figure)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run(argv, env=env, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(name, []).append(after.ru_utime - before.ru_utime +
                                    after.ru_stime - before.ru_stime)
    return wall


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    own_network_namespace()  # the registries listen on a loopback of our own
    work = Path(tempfile.mkdtemp(prefix="shellctr-bench-registry-"))
    source = Registry(work / "source")
    podman_ok = shutil.which("podman") is not None
    try:
        write_layout(work / "oci")
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:" + str(work / "oci"),
             f"docker://{source.name}/bench/big:latest"])
        image = f"{source.name}/bench/big:latest"
        samples: dict[str, list[float]] = {}

        def add(name: str, seconds: float) -> None:
            samples.setdefault(name, []).append(seconds)

        for round_ in range(rounds):
            env = {**os.environ, "SHELLCTR_ROOT": str(work / "root"),
                   "SHELLCTR_RUNROOT": str(work / "run")}
            add("skopeo copy docker:// oci:", timed(
                ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{image}",
                 f"oci:{work / f'copy{round_}'}"], name="skopeo copy docker:// oci:"))
            shutil.rmtree(work / f"copy{round_}")
            add("shellctr pull", timed([SHELLCTR, "pull", "--quiet", image], env,
                                       name="shellctr pull"))
            add("shellctr create (extracts)", timed(
                [SHELLCTR, "create", "--network", "none", "--name", f"first{round_}", image,
                 "true"], env, name="shellctr create (extracts)"))
            run([SHELLCTR, "rm", f"first{round_}"], env=env)
            if podman_ok:
                short = Path(tempfile.mkdtemp(prefix="shc-bp-"))
                flags = ["--root", str(work / "podman"), "--runroot", str(short),
                         "--events-backend", "none"]
                add("podman pull", timed(["podman", *flags, "pull", "--quiet",
                                          "--tls-verify=false", image], name="podman pull"))
                add("podman create", timed(["podman", *flags, "create", "--network", "none",
                                            image, "true"], name="podman create"))
                run(["podman", *flags, "system", "reset", "--force"],
                    stderr=subprocess.DEVNULL)
                shutil.rmtree(short, ignore_errors=True)
            # push: each into a registry of its own, empty
            target = Registry(work / f"push-skopeo{round_}")
            add("skopeo copy oci: docker://", timed(
                ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                 "oci:" + str(work / "oci"), f"docker://{target.name}/bench/big:latest"],
                name="skopeo copy oci: docker://"))
            target.close()
            target = Registry(work / f"push-shellctr{round_}")
            run([SHELLCTR, "tag", image, f"{target.name}/bench/big:latest"], env=env)
            add("shellctr push", timed([SHELLCTR, "push", "--quiet",
                                        f"{target.name}/bench/big:latest"], env,
                                       name="shellctr push"))
            target.close()
            run([SHELLCTR, "system", "prune", "--all", "--force"], env=env,
                stderr=subprocess.DEVNULL)
            shutil.rmtree(work / "root", ignore_errors=True)
        print(f"pull/push of a {LAYERS * LAYER_MB} MB image of {LAYERS} gzip layers "
              f"(loopback registry), median of {rounds} cold rounds")
        for name, (first, second) in {"shellctr pull + create": ("shellctr pull",
                                                                 "shellctr create (extracts)"),
                                      "podman pull + create": ("podman pull",
                                                               "podman create")}.items():
            if first in samples and second in samples:  # the sums, round by round
                samples[name] = [a + b for a, b in zip(samples[first], samples[second],
                                                       strict=True)]
                CPU[name] = [a + b for a, b in zip(CPU[first], CPU[second], strict=True)]
        groups = {"skopeo copy docker:// oci:": ["shellctr pull", "podman pull"],
                  "shellctr pull + create": ["podman pull + create", "shellctr create (extracts)",
                                             "podman create"],
                  "skopeo copy oci: docker://": ["shellctr push"]}
        print("(skopeo's copy and shellctr's pull keep the compressed blobs and extract "
              "nothing; podman's pull extracts every layer, shellctr's first create does)")
        for base, others in groups.items():
            floor, cpu_floor = median_ms(samples[base]), median_ms(CPU[base])
            unit = "skopeo" if base.startswith("skopeo") else "shc+cr"
            for name in [base, *others]:
                if name in samples:
                    ms, cpu = median_ms(samples[name]), median_ms(CPU[name])
                    print(f"  {name:30s} {ms:8.0f} ms {ms / floor:5.2f}x {unit}   "
                          f"CPU {cpu:6.0f} ms {cpu / cpu_floor:5.2f}x")
    finally:
        source.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
