"""Images: `load` and `commit` against plain `tar` doing the same extraction / packing.

- load: a ~100 MB docker-archive of 4 layers (large files and many small ones) into a
  fresh root, against `tar -x` of the same layer tars, each into a fresh directory
  (the floor: what any layer store must write), and against the shell way of loading
  such an archive (`tar -x` of the archive, then of each layer).
- commit: a stopped container with ~50 MB of changes (large and small files), against
  `tar -c` of its upper dir (the floor: commit writes the layer tar once, and hashes it).
- the first container created from that fresh commit extracts the layer's files (once):
  `create` then against a second `create` (the layer there) and `tar -x` of the tar.
Usage: bench/images.py [ROUNDS] [load|commit]...
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from common import SHELLCTR, Sandbox, interleave, median_ms, run, timed

MB = 1 << 20


def layer_tar(path: Path, index: int, big: int, small: int) -> bytes:
    """`big` MB in 4 MB files plus `small` 8 kB files, as a layer tar."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        def add(name: str, data: bytes | None, kind: bytes = tarfile.REGTYPE) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mtime = kind, 1_700_000_000
            info.mode = 0o755 if data is None else 0o644
            info.size = len(data) if data is not None else 0
            archive.addfile(info, io.BytesIO(data) if data is not None else None)

        top = f"layer{index}"
        add(top, None, tarfile.DIRTYPE)
        for n in range(big // 4):
            add(f"{top}/big{n}", os.urandom(4 * MB))
        add(f"{top}/small", None, tarfile.DIRTYPE)
        for n in range(small):
            add(f"{top}/small/f{n}", os.urandom(8192))
    return path.read_bytes()


def make_archive(scratch: Path, busybox_tar: bytes) -> tuple[Path, list[Path]]:
    layers = [scratch / "layer0.tar"]
    layers[0].write_bytes(busybox_tar)
    datas = [busybox_tar]
    for index in range(1, 5):  # 4 x (20 MB + 4.7 MB of 8 kB files) ~ 100 MB
        path = scratch / f"layer{index}.tar"
        datas.append(layer_tar(path, index, 20, 600))
        layers.append(path)
    digests = [hashlib.sha256(d).hexdigest() for d in datas]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in digests]},
        "history": [{"created_by": f"layer {n}"} for n in range(len(datas))]}).encode()
    config_id = hashlib.sha256(config).hexdigest()
    archive_path = scratch / "image.tar"
    with tarfile.open(archive_path, "w") as archive:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add(f"{config_id}.json", config)
        for digest, data in zip(digests, datas, strict=True):
            add(f"{digest}.tar", data)
        add("manifest.json", json.dumps([{"Config": f"{config_id}.json",
                                          "RepoTags": ["bench:load"],
                                          "Layers": [f"{d}.tar" for d in digests]}]).encode())
    return archive_path, layers


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    only = sys.argv[2:] or ["load", "commit"]
    box = Sandbox()
    scratch = Path(tempfile.mkdtemp(prefix="shellctr-bench-images-"))
    try:
        blobs = box.dir / "root" / "blobs" / "sha256"
        busybox_layer = box.layer_dir().name
        archive, layers = make_archive(scratch, (blobs / busybox_layer).read_bytes())
        size = archive.stat().st_size / MB

        def fresh_root() -> dict[str, str]:
            target = scratch / "load-root"
            shutil.rmtree(target, ignore_errors=True)
            return {**os.environ, "SHELLCTR_ROOT": str(target),
                    "SHELLCTR_RUNROOT": str(scratch / "load-run")}

        def load() -> None:
            run([SHELLCTR, "load", "-q", "-i", str(archive)], env=fresh_root())

        def tar_layers() -> None:
            target = scratch / "floor"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            for n, layer in enumerate(layers):
                (target / str(n)).mkdir()
                run(["tar", "-x", "-f", str(layer), "-C", str(target / str(n))])

        def tar_archive_then_layers() -> None:
            target = scratch / "shell"
            shutil.rmtree(target, ignore_errors=True)
            (target / "archive").mkdir(parents=True)
            run(["tar", "-x", "-f", str(archive), "-C", str(target / "archive")])
            for n, name in enumerate(sorted(os.listdir(target / "archive"))):
                if name.endswith(".tar"):
                    (target / str(n)).mkdir()
                    run(["tar", "-x", "-f", str(target / "archive" / name),
                         "-C", str(target / str(n))])

        if "load" in only:
            samples = interleave({
                "tar -x of each layer, fresh dirs": tar_layers,
                "shell: tar -x archive, then layers": tar_archive_then_layers,
                "shellctr load -i": load,
            }, rounds, warmup=1)
            report(f"load of a {size:.0f} MB docker-archive ({len(layers)} layers)", samples,
                   rounds)

        # -- commit ------------------------------------------------------------------
        if "commit" not in only:
            return
        name = "bench-commit"
        run(box.shellctr("run", "--name", name, "busybox", "sh", "-c",
                         "mkdir -p /data/small && for n in 0 1 2 3 4 5 6 7 8 9; do "
                         "dd if=/dev/urandom of=/data/big$n bs=1M count=4 2>/dev/null; done; "
                         "n=0; while [ $n -lt 1200 ]; do "
                         "dd if=/dev/urandom of=/data/small/f$n bs=8k count=1 2>/dev/null; "
                         "n=$((n+1)); done"), env=box.env)
        (cid,) = os.listdir(box.dir / "root" / "containers")
        upper = box.dir / "root" / "containers" / cid / "upper"

        def commit() -> None:
            run(box.shellctr("commit", name, "bench:commit"), env=box.env)

        def tar_create() -> None:
            run(["tar", "-c", "-f", str(scratch / "upper.tar"), "-C", str(upper), "."])

        def tar_extract() -> None:  # what the first container of a fresh commit needs
            target = scratch / "layer"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            run(["tar", "-x", "-f", str(scratch / "upper.tar"), "-C", str(target)])

        def create(label: str) -> Callable[[], None]:
            return lambda: run(box.shellctr("create", "--name", label, "bench:commit",
                                            "true"), env=box.env)

        def startup() -> None:  # what any verb pays before its work: Python, imports
            subprocess.run(box.shellctr("commit", "no-such-container", "bench:none"),
                           env=box.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)

        changed = sum(f.stat().st_size for f in upper.rglob("*") if f.is_file()) / MB
        commits: dict[str, list[float]] = {"tar -c of the upper dir": [],
                                           "shellctr commit": [],
                                           "shellctr start-up (no such container)": []}
        starts: dict[str, list[float]] = {
            "tar -x of that tar into a fresh dir": [],
            "shellctr create (layer there: 2nd)": [],
            "shellctr create (1st: extracts)": []}
        for round_ in range(rounds + 1):  # the first is a warm-up
            took = [timed(tar_create), timed(commit), timed(startup), timed(tar_extract)]
            first, second = timed(create("bench-first")), timed(create("bench-second"))
            took += [second, first]
            run(box.shellctr("rm", "bench-first", "bench-second"), env=box.env)
            run(box.shellctr("rmi", "bench:commit"), env=box.env)  # its layer goes too
            if round_:
                for label, seconds in zip([*commits, *starts], took, strict=True):
                    (commits if label in commits else starts)[label].append(seconds)
        report(f"commit of a container with {changed:.0f} MB of changes", commits, rounds)
        report("first container from the fresh commit (its layer's files extracted)",
               starts, rounds)
        run(box.shellctr("rm", name), env=box.env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        box.close()


def report(title: str, samples: dict[str, list[float]], rounds: int) -> None:
    base = median_ms(next(iter(samples.values())))
    print(f"{title}, median of {rounds} rounds")
    for label, values in samples.items():
        ms = median_ms(values)
        print(f"  {label:40s} {ms:8.1f} ms   {ms / base:5.2f}x")


if __name__ == "__main__":
    main()
