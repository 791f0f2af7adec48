"""image: rmi (untag, delete, refuse), and the busybox image built from a static binary."""

from __future__ import annotations

import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from shellctr.core.errors import Conflict, NotFound, ShellctrError
from shellctr.core.layout import Layout
from shellctr.core.state import Image
from shellctr.core.store import Store
from shellctr.engine.busybox import build_busybox, is_static_elf
from shellctr.engine.create import create
from shellctr.engine.image import remove_image

from .helpers import (
    CID,
    LAYER,
    RecordingHost,
    fake_tar,
    image_model,
    install_image,
    q,
    run_request,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("fixed")

OTHER_LAYER = "ef" * 32


def rmi(layout: Layout, ref: str, force: bool = False,
        users: dict[str, tuple[str, bool]] | None = None) -> tuple[list[str], list[str]]:
    host = RecordingHost()
    report = remove_image(host, Store(layout, host), ref, force, users or {})
    return report, host.lines


def test_rmi_of_one_of_several_tags_only_untags(layout: Layout) -> None:
    image = install_image(layout, image_model(repo_tags=["a:1", "b:1"]), layer_dir=True)
    report, lines = rmi(layout, "a:1")
    assert report == ["Untagged: a:1"]
    assert len(lines) == 1 and lines[0].startswith(f"cat > {q(layout.image_file(image.id))} ")
    assert Image.model_validate_json(layout.image_file(image.id).read_text()).repo_tags == ["b:1"]


def test_rmi_deletes_the_image_and_its_unused_layer(layout: Layout) -> None:
    image = install_image(layout, layer_dir=True)
    report, lines = rmi(layout, "busybox")
    assert report == ["Untagged: busybox:latest", f"Deleted: sha256:{image.id}"]
    assert lines == [f"rm {q(layout.image_file(image.id))}",
                     f"rm --recursive {q(layout.layer_dir(LAYER))}"]


def test_rmi_keeps_a_layer_another_image_uses(layout: Layout) -> None:
    image = install_image(layout, layer_dir=True)
    install_image(layout, image_model(id="12" * 32, repo_tags=["other:1"],
                                      layers=[LAYER, OTHER_LAYER]), layer_dir=True)
    _, lines = rmi(layout, "other:1")
    assert lines == [f"rm {q(layout.image_file('12' * 32))}",
                     f"rm --recursive {q(layout.layer_dir(OTHER_LAYER))}"]
    assert layout.layer_dir(LAYER).is_dir() and layout.image_file(image.id).is_file()


def test_rmi_refuses_an_image_a_running_container_uses(layout: Layout) -> None:
    image = install_image(layout, layer_dir=True)
    before = snapshot(layout.root)
    with pytest.raises(Conflict, match=f"used by running container {CID[:12]}"):
        rmi(layout, "busybox", force=True, users={CID: (image.id, True)})
    assert snapshot(layout.root) == before


def test_rmi_of_an_image_a_stopped_container_uses_needs_force(layout: Layout) -> None:
    image = install_image(layout, layer_dir=True)
    host = RecordingHost()
    create(host, Store(layout, host), run_request("busybox"))
    with pytest.raises(Conflict, match=f"container {CID[:12]} is using it") as info:
        rmi(layout, "busybox", users={CID: (image.id, False)})
    assert info.value.hint == "remove the container first, or use rmi -f"
    report, lines = rmi(layout, "busybox", force=True, users={CID: (image.id, False)})
    assert report[-1] == f"Deleted: sha256:{image.id}"
    assert lines == [f"rm {q(layout.image_file(image.id))}"]  # the container keeps the layer


def test_rmi_by_id_of_an_image_with_several_tags_needs_force(layout: Layout) -> None:
    image = install_image(layout, image_model(repo_tags=["a:1", "b:1"]), layer_dir=True)
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        rmi(layout, image.id[:12])
    report, _ = rmi(layout, f"sha256:{image.id}", force=True)
    assert report == ["Untagged: a:1", "Untagged: b:1", f"Deleted: sha256:{image.id}"]


def test_rmi_of_a_missing_image(layout: Layout) -> None:
    with pytest.raises(NotFound, match="unable to find image 'nope:latest' locally"):
        rmi(layout, "nope")


# -- busybox ---------------------------------------------------------------------------
def elf(path: Path, *, interp: bool = False, bits64: bool = True) -> Path:
    """A minimal ELF header with one program header (PT_INTERP if `interp`, else PT_LOAD)."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2 if bits64 else 1
    header[5] = 1  # little endian
    header[32:40] = struct.pack("<Q", 64)  # e_phoff
    header[54:58] = struct.pack("<HH", 56, 1)  # e_phentsize, e_phnum
    program = struct.pack("<I", 3 if interp else 1) + bytes(52)
    path.write_bytes(bytes(header) + program)
    return path


def test_is_static_elf(tmp_path: Path) -> None:
    assert is_static_elf(elf(tmp_path / "static"))
    assert not is_static_elf(elf(tmp_path / "dynamic", interp=True))
    assert not is_static_elf(elf(tmp_path / "elf32", bits64=False))
    (tmp_path / "script").write_text("#!/bin/sh\necho hi\n")
    assert not is_static_elf(tmp_path / "script")
    assert not is_static_elf(Path(sys.executable).resolve())  # needs its ld.so


class BusyboxHost(RecordingHost):
    """`busybox --list-full` answered without running anything."""

    def probe(self, argv: list[str]) -> tuple[int, str, str]:
        assert argv[1:] == ["--list-full"]
        return 0, "bin/ls\nsbin/init\nusr/bin/env\nopt/nowhere/x\nbin/busybox\n\n", ""


def test_build_busybox_imports_a_rootfs_around_the_binary(layout: Layout, tmp_path: Path) -> None:
    busybox = elf(tmp_path / "busybox")
    host = BusyboxHost(substitute={"tar": fake_tar})
    image = build_busybox(host, Store(layout, host), busybox, "busybox:latest")
    assert image.repo_tags == ["busybox:latest"]
    assert image.config.Cmd == ["sh"]
    assert image.comment == f"built from the host's {busybox}"
    root = layout.layer_dir(image.layers[0])
    assert (root / "bin" / "busybox").read_bytes() == busybox.read_bytes()
    for applet in ("bin/ls", "sbin/init", "usr/bin/env"):
        assert (root / applet).readlink() == Path("/bin/busybox")
    assert not (root / "opt").exists()  # applets outside the image's dirs are left out
    assert "user:x:1000:1000:user:/home/user:/bin/sh" in (root / "etc/passwd").read_text()
    assert "wheel:x:10:root,user" in (root / "etc/group").read_text()
    assert list(layout.tmp_dir.iterdir()) == []  # the scratch tar is gone


def test_build_busybox_layer_is_reproducible(layout: Layout, tmp_path: Path) -> None:
    busybox = elf(tmp_path / "busybox")
    host = BusyboxHost(substitute={"tar": fake_tar})
    first = build_busybox(host, Store(layout, host), busybox, "busybox:latest")
    second = build_busybox(host, Store(layout, host), busybox, "busybox:2")
    assert first.layers == second.layers
    # the same busybox, the same image: no dangling image left by a rebuild
    assert first.id == second.id
    assert len(list(layout.images_dir.glob("*.json"))) == 1


def test_dry_run_build_busybox_on_a_fresh_root_changes_nothing(layout: Layout,
                                                               tmp_path: Path) -> None:
    import io

    out = io.StringIO()
    host = BusyboxHost(dry_run=True, out=out)
    build_busybox(host, Store(layout, host), elf(tmp_path / "busybox"), "busybox:latest")
    subprocess.run(["bash", "-n"], input=out.getvalue().encode(), check=True)
    assert "\ntar --extract --file=" in out.getvalue()
    assert not layout.root.exists()


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing", "no busybox at"),
    (lambda p: elf(p / "dyn", interp=True), "is not a static 64-bit executable"),
])
def test_build_busybox_needs_a_static_busybox(layout: Layout, tmp_path: Path, make: object,
                                             message: str) -> None:
    host = BusyboxHost()
    with pytest.raises(ShellctrError, match=message):
        build_busybox(host, Store(layout, host), make(tmp_path), "busybox")  # type: ignore[operator]
    assert host.cmds == []


def test_tar_members_of_the_busybox_rootfs(tmp_path: Path) -> None:
    import io

    from shellctr.engine.busybox import busybox_rootfs_tar

    out = io.BytesIO()
    busybox_rootfs_tar(elf(tmp_path / "busybox"), ["/bin/sh", "bin/busybox"], out)
    out.seek(0)
    with tarfile.open(fileobj=out) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert [name for name in members if name == "bin/busybox"] == ["bin/busybox"]
