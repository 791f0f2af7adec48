"""`build` against a real peer: Debian's Podman (4.3, buildah 1.28 inside) builds each
Dockerfile of the corpus (tests/fixtures/dockerfiles) too, rootful with its own --root and
--runroot under this worker's base, from the same busybox image (`save` → `podman load`).
For each case the two images must have the same config (Env, Cmd, Entrypoint, WorkingDir,
User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, OnBuild) and the same
filesystem: paths, types, modes, owners, sizes, content hashes and symlink targets, read
from `export` of a container of each (not mtimes: a new directory's is the build's time).

Where Podman differs from Docker's documented behaviour, shellctr follows Docker and the
corpus index (corpus.json) says so: `podman: false` (Podman cannot build the case as
Docker does: it is built by shellctr alone, and checked in test_build.py), or
`podman_differs` (config fields left out of the comparison), with the reason in `why`.
Podman's own `io.buildah.version` label is dropped before comparing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .support import DEFAULT_TIMEOUT, Ctr, Worker

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "dockerfiles"
INDEX: dict[str, dict[str, Any]] = json.loads((CORPUS / "corpus.json").read_text())["cases"]
FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
          "Labels", "StopSignal", "Healthcheck", "OnBuild")
# what a runtime adds to a container's root, not the image's: left out of the listings
RUNTIME = {"dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/resolv.conf", "run",
           "run/.containerenv", "."}
BUILDAH_LABEL = "io.buildah.version"

pytestmark = pytest.mark.skipif(shutil.which("podman") is None or shutil.which("runc") is None,
                                reason="needs Debian's podman and runc (make deps)")


@dataclass
class Podman:
    root: Path

    def argv(self, *args: str) -> list[str]:
        # runc: crun refuses this hybrid cgroup layout; vfs: no overlay mounts to leak;
        # --tmpdir: its own /run/libpod (two workers' podmans must not share it)
        return ["podman", "--root", str(self.root / "root"), "--runroot",
                str(self.root / "run"), "--tmpdir", str(self.root / "tmp"),
                "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager",
                "cgroupfs", "--events-backend", "none", *args]

    def env(self) -> dict[str, str]:
        """Its own containers.conf: file locks in its own dir, not the host's shared
        memory locks (which two podmans with different roots would share)."""
        conf = self.root / "containers.conf"
        if not conf.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            conf.write_text('[engine]\nlock_type = "file"\n')
        return {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True,
                              env=self.env(), timeout=DEFAULT_TIMEOUT * 4, check=False)
        assert proc.returncode == 0, f"podman {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="session")
def podman(worker: Worker) -> Iterator[Podman]:
    """A Podman of this worker's own, holding our busybox image."""
    peer = Podman(worker.base / "podman")
    archive = worker.scratch / "busybox-for-podman.tar"
    Ctr(worker.root, worker.runroot, worker.scratch)("save", "-o", str(archive),
                                                     "busybox").ok()
    peer("load", "--quiet", "--input", str(archive))
    archive.unlink()
    yield peer
    subprocess.run(peer.argv("system", "reset", "--force"), capture_output=True,
                   env=peer.env(), timeout=DEFAULT_TIMEOUT * 4, check=False)


def listing(archive: Path) -> dict[str, tuple[str, int, int, int, int, str, str]]:
    """What an exported root holds: per path its type, mode bits, owner, size, content
    hash and link target."""
    found = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/") or "."
            if name in RUNTIME or name.split("/")[0] in ("dev", "proc", "sys"):
                continue
            digest = ""
            if member.isreg():
                data = tar.extractfile(member)
                assert data is not None
                digest = hashlib.sha256(data.read()).hexdigest()
            found[name] = (member.type.decode(), member.mode & 0o7777, member.uid,
                           member.gid, member.size if member.isreg() else 0, digest,
                           member.linkname)
    return found


def config_of(config: dict[str, Any], differs: list[str]) -> dict[str, Any]:
    out = {}
    for key in FIELDS:
        if key in differs:
            continue
        value = config.get(key) or None
        if key == "Labels" and value:
            value = {k: v for k, v in value.items() if k != BUILDAH_LABEL} or None
        out[key] = value
    return out


def build_flags(case: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in (case.get("build_args") or {}).items():
        flags += ["--build-arg", f"{key}={value}"]
    if case.get("target"):
        flags += ["--target", case["target"]]
    return flags


COMPARED = [name for name, case in sorted(INDEX.items()) if case.get("podman", True)]


def test_most_of_the_corpus_is_compared_with_podman() -> None:
    assert len(COMPARED) >= 25, COMPARED


@pytest.mark.parametrize("name", COMPARED)
def test_build_matches_podman(ctr: Ctr, podman: Podman, worker: Worker, tmp_path: Path,
                              name: str) -> None:
    case = INDEX[name]
    directory = CORPUS / name
    flags = build_flags(case)
    ours = ctr("build", "-q", *flags, str(directory)).ok().out.strip().removeprefix("sha256:")
    theirs = podman("build", "--quiet", "--format", "docker", *flags,
                    str(directory)).strip().splitlines()[-1]
    our_config = json.loads((worker.root / "blobs" / "sha256" / ours).read_text())["config"]
    their_config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}",
                                     theirs))
    health = json.loads(podman("image", "inspect", "--format", "{{json .HealthCheck}}",
                               theirs))
    their_config.setdefault("Healthcheck", health)
    differs = list(case.get("podman_differs") or [])
    assert config_of(our_config, differs) == config_of(their_config, differs)

    ours_tar, theirs_tar = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    cid = ctr("create", ours).ok().out.strip()
    ctr("export", "-o", str(ours_tar), cid).ok()
    ctr("rm", "--volumes", cid).ok()
    their_cid = podman("create", theirs).strip()
    podman("export", "-o", str(theirs_tar), their_cid)
    podman("rm", "--volumes", their_cid)
    podman("rmi", "--force", theirs)
    ctr("rmi", ours).ok()
    ctr("builder", "prune", "--force").ok()
    mine, peer = listing(ours_tar), listing(theirs_tar)
    skipped = set(case.get("podman_fs_differs") or [])
    different = {path: (mine.get(path), peer.get(path)) for path in set(mine) | set(peer)
                 if mine.get(path) != peer.get(path) and path not in skipped}
    assert not different, sorted(different.items())[:20]
