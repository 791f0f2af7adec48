"""Every path shellctr uses on disk, under --root (persistent) and --runroot (tmpfs).

Each path is built once, as a string (the `..._at` names, with posixpath); the name
without `_at` gives the same path as a pathlib.Path. The read verbs use only the strings:
pathlib, with the `re`, fnmatch and urllib.parse it imports, costs each of them ~4 ms
(README, Performance), so it is imported when the first Path is asked for.
"""

from __future__ import annotations

import os
from posixpath import join

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_ROOT = "/var/lib/shellctr"
DEFAULT_RUNROOT = "/run/shellctr"


def __getattr__(name: str) -> Path:
    """CHECKOUT, the checkout this code runs from (bin/, build/: the monitor, shellctr/),
    made when first asked for."""
    if name != "CHECKOUT":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def as_path(path: str) -> Path:
    """`path` as a pathlib.Path (pathlib imported on first use)."""
    from pathlib import Path

    return Path(path)


class Layout:
    """Paths under the state root and the run root."""

    def __init__(self, root: str | os.PathLike[str], runroot: str | os.PathLike[str]) -> None:
        self.root_at, self.runroot_at = os.fspath(root), os.fspath(runroot)
        # `ps` asks for a container's paths hundreds of times: the fixed part once
        self.containers_dir_at = join(self.root_at, "containers")

    @property
    def root(self) -> Path:
        return as_path(self.root_at)

    @property
    def runroot(self) -> Path:
        return as_path(self.runroot_at)

    @classmethod
    def from_env(cls, root: str | None = None, runroot: str | None = None) -> Layout:
        """Flags win over SHELLCTR_ROOT / SHELLCTR_RUNROOT, which win over the defaults."""
        return cls(
            os.path.abspath(root or os.environ.get("SHELLCTR_ROOT") or DEFAULT_ROOT),
            os.path.abspath(runroot or os.environ.get("SHELLCTR_RUNROOT") or DEFAULT_RUNROOT),
        )

    # -- shared --------------------------------------------------------------

    @property
    def lock_file_at(self) -> str:
        """flock'ed around every allocation of names and ids."""
        return join(self.root_at, "lock")

    @property
    def lock_file(self) -> Path:
        return as_path(self.lock_file_at)

    @property
    def tmp_dir_at(self) -> str:
        """Scratch space on the same filesystem as the store (for atomic renames)."""
        return join(self.root_at, "tmp")

    @property
    def tmp_dir(self) -> Path:
        return as_path(self.tmp_dir_at)

    # -- images --------------------------------------------------------------

    @property
    def images_dir_at(self) -> str:
        return join(self.root_at, "images")

    @property
    def images_dir(self) -> Path:
        return as_path(self.images_dir_at)

    @property
    def build_cache_dir_at(self) -> str:
        """The build cache: one small JSON file per cached step (engine/build_cache.py)."""
        return join(self.root_at, "build-cache")

    @property
    def build_cache_dir(self) -> Path:
        return as_path(self.build_cache_dir_at)

    def image_file_at(self, image_id: str) -> str:
        return join(self.images_dir_at, f"{image_id}.json")

    def image_file(self, image_id: str) -> Path:
        return as_path(self.image_file_at(image_id))

    @property
    def layers_dir_at(self) -> str:
        return join(self.root_at, "layers")

    @property
    def layers_dir(self) -> Path:
        return as_path(self.layers_dir_at)

    def layer_dir_at(self, digest_hex: str) -> str:
        """A layer's files, extracted once into their own directory."""
        return join(self.layers_dir_at, digest_hex)

    def layer_dir(self, digest_hex: str) -> Path:
        return as_path(self.layer_dir_at(digest_hex))

    @property
    def blobs_dir_at(self) -> str:
        """Content-addressed blobs: layer tars (uncompressed) and image config JSON."""
        return join(self.root_at, "blobs", "sha256")

    @property
    def blobs_dir(self) -> Path:
        return as_path(self.blobs_dir_at)

    def blob_at(self, digest_hex: str) -> str:
        return join(self.blobs_dir_at, digest_hex)

    def blob(self, digest_hex: str) -> Path:
        return as_path(self.blob_at(digest_hex))

    # -- volumes -------------------------------------------------------------

    @property
    def volumes_dir_at(self) -> str:
        return join(self.root_at, "volumes")

    @property
    def volumes_dir(self) -> Path:
        return as_path(self.volumes_dir_at)

    def volume_dir_at(self, name: str) -> str:
        return join(self.volumes_dir_at, name)

    def volume_dir(self, name: str) -> Path:
        return as_path(self.volume_dir_at(name))

    def volume_record_at(self, name: str) -> str:
        return join(self.volume_dir_at(name), "volume.json")

    def volume_record(self, name: str) -> Path:
        return as_path(self.volume_record_at(name))

    def volume_data_at(self, name: str) -> str:
        """The volume's files, as Docker keeps them (its Mountpoint)."""
        return join(self.volume_dir_at(name), "_data")

    def volume_data(self, name: str) -> Path:
        return as_path(self.volume_data_at(name))

    # -- containers ----------------------------------------------------------

    @property
    def containers_dir(self) -> Path:
        return as_path(self.containers_dir_at)

    def container_dir_at(self, cid: str) -> str:
        return join(self.containers_dir_at, cid)

    def container_dir(self, cid: str) -> Path:
        return as_path(self.container_dir_at(cid))

    def container_config_at(self, cid: str) -> str:
        return join(self.container_dir_at(cid), "config.json")

    def container_config(self, cid: str) -> Path:
        return as_path(self.container_config_at(cid))

    def container_state_at(self, cid: str) -> str:
        return join(self.container_dir_at(cid), "state.json")

    def container_state(self, cid: str) -> Path:
        return as_path(self.container_state_at(cid))

    def container_upper_at(self, cid: str) -> str:
        """The container's writable layer (overlay upperdir)."""
        return join(self.container_dir_at(cid), "upper")

    def container_upper(self, cid: str) -> Path:
        return as_path(self.container_upper_at(cid))

    def container_work_at(self, cid: str) -> str:
        """overlayfs' scratch dir; must be on the upper dir's filesystem."""
        return join(self.container_dir_at(cid), "work")

    def container_work(self, cid: str) -> Path:
        return as_path(self.container_work_at(cid))

    def container_rootfs_at(self, cid: str) -> str:
        """Mount point of the overlay; mounted only inside the container's mount ns."""
        return join(self.container_dir_at(cid), "rootfs")

    def container_rootfs(self, cid: str) -> Path:
        return as_path(self.container_rootfs_at(cid))

    def container_etc_file_at(self, cid: str, name: str) -> str:
        """hostname / hosts / resolv.conf, bind-mounted into the container's /etc."""
        return join(self.container_dir_at(cid), name)

    def container_etc_file(self, cid: str, name: str) -> Path:
        return as_path(self.container_etc_file_at(cid, name))

    def container_log_at(self, cid: str) -> str:
        """Everything the container printed, in Docker's json-file format (the monitor's)."""
        return join(self.container_dir_at(cid), "container.log")

    def container_log(self, cid: str) -> Path:
        return as_path(self.container_log_at(cid))

    def container_exit_file_at(self, cid: str) -> str:
        """Written by the monitor when the container has ended: its exit code and time."""
        return join(self.container_dir_at(cid), "exit.json")

    def container_exit_file(self, cid: str) -> Path:
        return as_path(self.container_exit_file_at(cid))

    def container_run_dir_at(self, cid: str) -> str:
        return join(self.runroot_at, "containers", cid)

    def container_run_dir(self, cid: str) -> Path:
        return as_path(self.container_run_dir_at(cid))

    def container_init_spec_at(self, cid: str) -> str:
        """What init.py reads: the final step's instructions, rewritten on each start."""
        return join(self.container_run_dir_at(cid), "init.json")

    def container_init_spec(self, cid: str) -> Path:
        return as_path(self.container_init_spec_at(cid))

    # -- networks (issue 5) ----------------------------------------------------

    @property
    def networks_dir_at(self) -> str:
        return join(self.root_at, "networks")

    @property
    def networks_dir(self) -> Path:
        return as_path(self.networks_dir_at)

    def network_file_at(self, nid: str) -> str:
        """A network's record: its subnet, bridge and the endpoints of its containers."""
        return join(self.networks_dir_at, f"{nid}.json")

    def network_file(self, nid: str) -> Path:
        return as_path(self.network_file_at(nid))

    def network_run_dir_at(self, nid: str) -> str:
        """The network's resolver (dnsmasq): its pid file and hosts file."""
        return join(self.runroot_at, "networks", nid)

    def network_run_dir(self, nid: str) -> Path:
        return as_path(self.network_run_dir_at(nid))

    def container_resolver_dir(self, cid: str) -> Path:
        """A container's own resolver (on several user networks: dns.sync_own): its pid,
        hosts and servers files. Not in its run dir, whose processes are its monitors."""
        return as_path(join(self.runroot_at, "resolvers", cid))

    @property
    def resolvers_dir(self) -> Path:
        return as_path(join(self.runroot_at, "resolvers"))

    def network_endpoints_at(self, nid: str) -> str:
        """The network's endpoints (its running containers): runtime state, which a
        reboot clears with the run root."""
        return join(self.runroot_at, "networks", f"{nid}.endpoints.json")

    def network_endpoints(self, nid: str) -> Path:
        return as_path(self.network_endpoints_at(nid))
