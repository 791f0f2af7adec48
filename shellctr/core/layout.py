"""Every path shellctr uses on disk, under --root (persistent) and --runroot (tmpfs)."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # bin/, build/ (the monitor), shellctr/
DEFAULT_ROOT = "/var/lib/shellctr"
DEFAULT_RUNROOT = "/run/shellctr"


class Layout:
    """Paths under the state root and the run root."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.root, self.runroot = root, runroot
        # `ps` asks for a container's paths hundreds of times: the fixed part once
        self._containers = root / "containers"

    @classmethod
    def from_env(cls, root: str | None = None, runroot: str | None = None) -> Layout:
        """Flags win over SHELLCTR_ROOT / SHELLCTR_RUNROOT, which win over the defaults."""
        return cls(
            Path(root or os.environ.get("SHELLCTR_ROOT") or DEFAULT_ROOT).absolute(),
            Path(runroot or os.environ.get("SHELLCTR_RUNROOT") or DEFAULT_RUNROOT).absolute(),
        )

    # -- shared --------------------------------------------------------------
    @property
    def lock_file(self) -> Path:
        """flock'ed around every allocation of names and ids."""
        return self.root / "lock"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the same filesystem as the store (for atomic renames)."""
        return self.root / "tmp"

    # -- images --------------------------------------------------------------
    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def build_cache_dir(self) -> Path:
        """The build cache: one small JSON file per cached step (engine/build_cache.py)."""
        return self.root / "build-cache"

    def image_file(self, image_id: str) -> Path:
        return self.images_dir / f"{image_id}.json"

    @property
    def layers_dir(self) -> Path:
        return self.root / "layers"

    def layer_dir(self, digest_hex: str) -> Path:
        """A layer's files, extracted once into their own directory."""
        return self.layers_dir / digest_hex

    @property
    def blobs_dir(self) -> Path:
        """Content-addressed blobs: layer tars (uncompressed) and image config JSON."""
        return self.root / "blobs" / "sha256"

    def blob(self, digest_hex: str) -> Path:
        return self.blobs_dir / digest_hex

    # -- volumes -------------------------------------------------------------
    @property
    def volumes_dir(self) -> Path:
        return self.root / "volumes"

    def volume_dir(self, name: str) -> Path:
        return self.volumes_dir / name

    def volume_record(self, name: str) -> Path:
        return self.volume_dir(name) / "volume.json"

    def volume_data(self, name: str) -> Path:
        """The volume's files, as Docker keeps them (its Mountpoint)."""
        return self.volume_dir(name) / "_data"

    # -- containers ----------------------------------------------------------
    @property
    def containers_dir(self) -> Path:
        return self._containers

    def container_dir(self, cid: str) -> Path:
        return self.containers_dir / cid

    def container_config(self, cid: str) -> Path:
        return self.container_dir(cid) / "config.json"

    def container_state(self, cid: str) -> Path:
        return self.container_dir(cid) / "state.json"

    def container_upper(self, cid: str) -> Path:
        """The container's writable layer (overlay upperdir)."""
        return self.container_dir(cid) / "upper"

    def container_work(self, cid: str) -> Path:
        """overlayfs' scratch dir; must be on the upper dir's filesystem."""
        return self.container_dir(cid) / "work"

    def container_rootfs(self, cid: str) -> Path:
        """Mount point of the overlay; mounted only inside the container's mount ns."""
        return self.container_dir(cid) / "rootfs"

    def container_etc_file(self, cid: str, name: str) -> Path:
        """hostname / hosts / resolv.conf, bind-mounted into the container's /etc."""
        return self.container_dir(cid) / name

    def container_log(self, cid: str) -> Path:
        """Everything the container printed, in Docker's json-file format (the monitor's)."""
        return self.container_dir(cid) / "container.log"

    def container_exit_file(self, cid: str) -> Path:
        """Written by the monitor when the container has ended: its exit code and time."""
        return self.container_dir(cid) / "exit.json"

    def container_run_dir(self, cid: str) -> Path:
        return self.runroot / "containers" / cid

    def container_init_spec(self, cid: str) -> Path:
        """What init.py reads: the final step's instructions, rewritten on each start."""
        return self.container_run_dir(cid) / "init.json"

    # -- networks (issue 5) ----------------------------------------------------
    @property
    def networks_dir(self) -> Path:
        return self.root / "networks"

    def network_file(self, nid: str) -> Path:
        """A network's record: its subnet, bridge and the endpoints of its containers."""
        return self.networks_dir / f"{nid}.json"

    def network_run_dir(self, nid: str) -> Path:
        """The network's resolver (dnsmasq): its pid file and hosts file."""
        return self.runroot / "networks" / nid

    def container_resolver_dir(self, cid: str) -> Path:
        """A container's own resolver (on several user networks: dns.sync_own): its pid,
        hosts and servers files. Not in its run dir, whose processes are its monitors."""
        return self.resolvers_dir / cid

    @property
    def resolvers_dir(self) -> Path:
        return self.runroot / "resolvers"

    def network_endpoints(self, nid: str) -> Path:
        """The network's endpoints (its running containers): runtime state, which a
        reboot clears with the run root."""
        return self.runroot / "networks" / f"{nid}.endpoints.json"
