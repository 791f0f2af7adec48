"""pull, push, login, run --pull against a real registry (Debian's docker-registry on
loopback), filled by shellctr itself and by skopeo from OCI layouts the tests write."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .registries import PASSWORD, USER, Misbehaving, Registry, running
from .support import Ctr, Result, inspect, one_line_error, wait_for

pytestmark = pytest.mark.skipif(
    not all(Path(f"/usr/bin/{tool}").exists() for tool in ("docker-registry", "skopeo")),
    reason="needs docker-registry and skopeo (make deps)")


def one_error_line(result: Result, starting: str) -> None:
    """One `shellctr:` error line (Docker's exit code for the verb, no traceback) that
    starts with `starting`."""
    line = one_line_error(result)
    assert line.startswith(starting), str(result)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, worker: Any) -> Iterator[Registry]:
    with running(tmp_path_factory.mktemp("registry")) as started:
        yield started


@pytest.fixture
def auth_env(tmp_path: Path) -> dict[str, str]:
    """Credentials files of this test's own (Docker's and Podman's)."""
    return {"DOCKER_CONFIG": str(tmp_path / "docker"),
            "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}


def repo() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


class Layout:
    """An OCI image layout written by the test, for skopeo to copy into a registry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data: bytes, media: str) -> dict[str, Any]:
        (self.path / "blobs" / "sha256" / sha(data)).write_bytes(data)
        return {"mediaType": media, "digest": f"sha256:{sha(data)}", "size": len(data)}

    def image(self, tars: list[bytes], arch: str = "amd64", compress: str = "gzip"
              ) -> dict[str, Any]:
        layers = []
        for tar in tars:
            if compress == "gzip":
                layers.append(self.blob(gzip.compress(tar, mtime=0),
                                        "application/vnd.oci.image.layer.v1.tar+gzip"))
            elif compress == "zstd":
                data = subprocess.run(["zstd", "--quiet", "--stdout"], input=tar, check=True,
                                      capture_output=True, timeout=60).stdout
                layers.append(self.blob(data, "application/vnd.oci.image.layer.v1.tar+zstd"))
            else:
                layers.append(self.blob(tar, "application/vnd.oci.image.layer.v1.tar"))
        config = json.dumps({
            "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"], "Env": [f"ARCH={arch}"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(t)}" for t in tars]},
        }).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.blob(config, "application/vnd.oci.image.config.v1+json"),
            "layers": layers}).encode()
        descriptor = self.blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        return {**descriptor, "platform": {"os": "linux", "architecture": arch},
                "config_digest": f"sha256:{sha(config)}"}

    def index(self, manifests: list[dict[str, Any]], tag: str = "latest") -> None:
        """index.json naming one image (tagged), or an image index of several."""
        clean = [{k: v for k, v in m.items() if k != "config_digest"} for m in manifests]
        if len(clean) == 1:
            top = {k: v for k, v in clean[0].items() if k != "platform"}
        else:
            data = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.index.v1+json",
                               "manifests": clean}).encode()
            top = self.blob(data, "application/vnd.oci.image.index.v1+json")
        top["annotations"] = {"org.opencontainers.image.ref.name": tag}
        (self.path / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "manifests": [top]}))


def skopeo_copy(layout: Path, registry: Registry, name: str, *extra: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--all", *registry.skopeo_tls(), *extra,
                    f"oci:{layout}:latest", f"docker://{registry.name}/{name}"],
                   check=True, capture_output=True, timeout=120)


def skopeo_digest(registry: Registry, name: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{registry.name}/{name}"], check=True,
                         capture_output=True, timeout=60).stdout
    return f"sha256:{sha(out)}"


def tar_bytes(rootfs_tar: Callable[..., Path], name: str, **extra: bytes) -> bytes:
    return rootfs_tar(name, {f"etc/{k}": v for k, v in extra.items()}).read_bytes()


def rmi(ctr: Ctr, *refs: str) -> None:
    for ref in refs:
        ctr("rmi", "--force", ref)


# -- shellctr push -> pull ----------------------------------------------------------
def test_push_then_pull_gives_the_same_image_and_digest_and_skopeo_agrees(
        ctr: Ctr, registry: Registry) -> None:
    name = f"{registry.name}/{repo()}/bb:v1"
    ctr("tag", "busybox", name).ok()
    pushed = ctr("push", name).ok()
    digest = pushed.out.strip().splitlines()[-1].split()[2]
    assert pushed.out.strip().splitlines()[-1].startswith("v1: digest: sha256:"), pushed
    assert skopeo_digest(registry, name.split("/", 1)[1]) == digest
    image_id = inspect(ctr, name)["Id"]
    ctr("rmi", name).ok()  # busybox keeps the layers: the pull needs only the manifest
    pulled = ctr("pull", name).ok()
    assert f"Digest: {digest}" in pulled.out
    assert "Already exists" in pulled.out and "Downloading" not in pulled.out  # busybox's
    assert pulled.out.strip().splitlines()[-1] == name
    info = inspect(ctr, name)
    assert info["Id"] == image_id
    assert info["RepoDigests"] == [f"{name.rsplit(':', 1)[0]}@{digest}"]
    assert ctr("run", "--rm", name, "echo", "pulled").ok().out == "pulled\n"
    ctr("rmi", name).ok()


def test_pull_by_digest_and_run_pull_missing(ctr: Ctr, registry: Registry,
                                             rootfs_tar: Callable[..., Path],
                                             tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    tar = tar_bytes(rootfs_tar, "a.tar")
    image = layout.image([tar, tar_bytes(rootfs_tar, "b.tar", extra=b"second layer\n")])
    layout.index([image])
    name = f"{repo()}/app"
    skopeo_copy(layout.path, registry, name)
    digest = image["digest"]
    by_digest = f"{registry.name}/{name}@{digest}"
    result = ctr("pull", by_digest).ok()
    assert "Pull complete" in result.out and f"Digest: {digest}" in result.out
    info = inspect(ctr, by_digest)
    assert info["Id"] == image["config_digest"]
    assert info["RepoTags"] == [] and info["RepoDigests"] == [f"{registry.name}/{name}@{digest}"]
    rows = [line.split() for line in ctr("images", "--digests").ok().out.splitlines()]
    assert [f"{registry.name}/{name}", "<none>", digest,
            image["config_digest"][7:19]] in [row[:4] for row in rows]
    rmi(ctr, image["config_digest"])
    # run --pull missing (the default) pulls it first, its lines on stderr
    run = ctr("run", "--rm", f"{registry.name}/{name}", "cat", "/etc/extra")
    assert run.ok().out == "second layer\n"
    assert f"Unable to find image '{registry.name}/{name}:latest' locally" in run.err
    assert "Pull complete" in run.err
    rmi(ctr, f"{registry.name}/{name}")


def test_run_pull_never_of_a_missing_image_is_a_clear_error(ctr: Ctr,
                                                            registry: Registry) -> None:
    result = ctr("run", "--pull", "never", "--rm", f"{registry.name}/nothing/here", "true")
    one_error_line(result, f"shellctr: unable to find image '{registry.name}/nothing/here:"
                           "latest' locally")


def test_the_index_picks_this_host_and_platform_picks_another(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    amd64 = layout.image([tar_bytes(rootfs_tar, "amd.tar")], "amd64")
    arm64 = layout.image([tar_bytes(rootfs_tar, "arm.tar")], "arm64")
    layout.index([amd64, arm64])
    name = f"{registry.name}/{repo()}/multi"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    ctr("pull", name).ok()
    assert inspect(ctr, name)["Id"] == amd64["config_digest"]
    assert inspect(ctr, name)["Architecture"] == "amd64"
    ctr("pull", "--platform", "linux/arm64", name).ok()
    assert inspect(ctr, name)["Id"] == arm64["config_digest"]
    missing = ctr("pull", "--platform", "linux/s390x", name)
    one_error_line(missing, "shellctr: no matching manifest for linux/s390x in the manifest "
                            f"list of {name}:latest: it offers linux/amd64, linux/arm64")
    rmi(ctr, amd64["config_digest"], arm64["config_digest"])


def test_zstd_layers_are_pulled(ctr: Ctr, registry: Registry,
                                rootfs_tar: Callable[..., Path], tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    image = layout.image([tar_bytes(rootfs_tar, "z.tar", extra=b"zstd\n")], compress="zstd")
    layout.index([image])
    name = f"{registry.name}/{repo()}/zst"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    ctr("pull", name).ok()
    assert ctr("run", "--rm", name, "cat", "/etc/extra").ok().out == "zstd\n"
    rmi(ctr, name)


def test_a_corrupt_blob_is_refused_and_nothing_is_stored(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path,
        worker: Any) -> None:
    layout = Layout(tmp_path / "oci")
    image = layout.image([tar_bytes(rootfs_tar, "c.tar")])
    layout.index([image])
    name = f"{registry.name}/{repo()}/bad"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    manifest = json.loads((layout.path / "blobs/sha256" /
                           image["digest"].removeprefix("sha256:")).read_bytes())
    data = registry.blob_file(manifest["layers"][0]["digest"])
    corrupt = bytearray(data.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    data.write_bytes(bytes(corrupt))
    before = sorted(os.listdir(worker.root / "blobs" / "sha256"))
    result = ctr("pull", name)
    one_error_line(result, f"shellctr: blob digest mismatch: {manifest['layers'][0]['digest']}")
    assert sorted(os.listdir(worker.root / "blobs" / "sha256")) == before
    assert ctr("images", "-q", name).ok().out == ""


def content_size(tar: bytes) -> int:
    """Bytes of regular file content in a tar (what an image's size counts)."""
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return sum(member.size for member in archive if member.isfile())


def test_a_pulled_layer_is_kept_compressed_and_extracted_on_its_first_use(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path,
        worker: Any) -> None:
    layout = Layout(tmp_path / "oci")
    tars = [tar_bytes(rootfs_tar, "lazy1.tar"),
            tar_bytes(rootfs_tar, "lazy2.tar", extra=b"lazy\n", noise=os.urandom(1 << 16))]
    image = layout.image(tars)
    layout.index([image])
    name = f"{registry.name}/{repo()}/lazy"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    manifest = json.loads((layout.path / "blobs/sha256" /
                           image["digest"].removeprefix("sha256:")).read_bytes())
    ctr("pull", name).ok()
    top = sha(tars[1])
    blobs = worker.root / "blobs" / "sha256"
    assert (blobs / manifest["layers"][1]["digest"][7:]).is_file()  # as served
    assert not (worker.root / "layers" / top).exists() and not (blobs / top).exists()
    # until its first use, the image's size is what it takes: its compressed layers
    assert inspect(ctr, name)["Size"] == sum(layer["size"] for layer in manifest["layers"])
    assert ctr("run", "--rm", name, "cat", "/etc/extra").ok().out == "lazy\n"
    assert (worker.root / "layers" / top).is_dir() and (blobs / top).is_file()
    assert inspect(ctr, name)["Size"] == sum(content_size(tar) for tar in tars)
    assert ctr("run", "--rm", name, "true").code == 0  # the second use extracts nothing
    rmi(ctr, name)
    assert not (worker.root / "layers" / top).exists() and not (blobs / top).exists()
    assert not (blobs / manifest["layers"][1]["digest"][7:]).exists()


def test_a_corrupted_kept_blob_is_refused_at_its_first_use_and_nothing_is_left(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path,
        worker: Any) -> None:
    layout = Layout(tmp_path / "oci")
    tar = tar_bytes(rootfs_tar, "rot.tar", extra=os.urandom(1 << 16))
    image = layout.image([tar])
    layout.index([image])
    name = f"{registry.name}/{repo()}/rot"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    manifest = json.loads((layout.path / "blobs/sha256" /
                           image["digest"].removeprefix("sha256:")).read_bytes())
    ctr("pull", name).ok()
    kept = worker.root / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    data = bytearray(kept.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the disk rotted, or someone wrote into the store
    kept.write_bytes(bytes(data))
    before = {d: sorted(os.listdir(worker.root / d)) for d in ("blobs/sha256", "layers")}
    result = ctr("run", "--rm", name, "true")
    one_error_line(result, f"shellctr: layer sha256:{sha(tar)[:12]} is corrupt in the store")
    assert "pull it again" in result.err
    assert {d: sorted(os.listdir(worker.root / d)) for d in before} == before
    assert ctr("ps", "--all", "--quiet").ok().out == ""
    rmi(ctr, name)
    ctr("pull", name).ok()  # the registry's copy is whole: pulled again, it runs
    assert ctr("run", "--rm", name, "true").code == 0
    rmi(ctr, name)


def test_a_build_from_a_pulled_image_outlives_the_pulled_image(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    image = layout.image([tar_bytes(rootfs_tar, "base.tar", extra=b"from the base\n")])
    layout.index([image])
    name = f"{registry.name}/{repo()}/base"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    ctr("pull", name).ok()
    context = tmp_path / "ctx"
    context.mkdir()
    # no RUN, no COPY: the built image lists the pulled layers and keeps none of its blobs
    (context / "Dockerfile").write_text(f"FROM {name}\nLABEL built=yes\n")
    ctr("build", "--tag", "built-on-pulled", str(context), trace=False).ok()
    rmi(ctr, name)
    assert ctr("run", "--rm", "built-on-pulled", "cat", "/etc/extra").ok().out == \
        "from the base\n"
    rmi(ctr, "built-on-pulled")


def test_a_missing_repository_or_tag_is_one_line(ctr: Ctr, registry: Registry) -> None:
    result = ctr("pull", f"{registry.name}/no/such:tag")
    one_error_line(result, f"shellctr: {registry.name}/no/such:tag: not found on "
                           f"{registry.name}")


def test_an_unreachable_registry_is_one_line(ctr: Ctr) -> None:
    result = ctr("pull", "127.0.0.1:1/x")
    one_error_line(result, "shellctr: cannot reach the registry 127.0.0.1:1")


def test_dry_run_pull_prints_a_script_and_changes_nothing(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path,
        worker: Any) -> None:
    layout = Layout(tmp_path / "oci")
    image = layout.image([tar_bytes(rootfs_tar, "d.tar")])
    layout.index([image])
    name = f"{registry.name}/{repo()}/dry"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    before = sorted(os.listdir(worker.root / "blobs" / "sha256"))
    script = ctr("--dry-run", "pull", name).ok().out
    assert script.startswith("#!/usr/bin/env bash\n"), script
    manifest = json.loads((layout.path / "blobs/sha256" /
                           image["digest"].removeprefix("sha256:")).read_bytes())
    layer = manifest["layers"][0]["digest"]
    assert f"/v2/{name.split('/', 1)[1]}/blobs/{layer}" in script
    assert "sha256sum --check" in script
    # the layer is kept as served, and extracted when first used (the `run` below)
    assert f"{worker.root}/blobs/sha256/{layer[7:]}" in script, script
    assert "gzip --decompress" not in script and "tar --extract" not in script
    assert sorted(os.listdir(worker.root / "blobs" / "sha256")) == before
    assert ctr("images", "-q", name).ok().out == ""
    # the promise: the script, run by hand, pulls the same image
    done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    info = inspect(ctr, name)
    assert info["Id"] == image["config_digest"]
    assert info["RepoDigests"] == [f"{name}@{image['digest']}"]
    assert ctr("run", "--rm", name, "true").code == 0
    rmi(ctr, name)


# -- misbehaving servers ------------------------------------------------------------
def test_rate_limiting_is_one_line_with_the_retry_time(ctr: Ctr, worker: Any) -> None:
    server = Misbehaving("127.0.0.1:1", "429")
    try:
        result = ctr("pull", f"{server.name}/x")
    finally:
        server.stop()
    one_error_line(result, f"shellctr: toomanyrequests: {server.name} rate-limits this "
                           "client; retry after 42s")


def test_a_connection_cut_mid_blob_is_resumed(ctr: Ctr, registry: Registry,
                                              rootfs_tar: Callable[..., Path],
                                              tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    image = layout.image([tar_bytes(rootfs_tar, "cut.tar", extra=os.urandom(1 << 20))])
    layout.index([image])
    name = repo() + "/cut"
    skopeo_copy(layout.path, registry, name)
    proxy = Misbehaving(registry.name, "cut")
    try:
        result = ctr("pull", f"{proxy.name}/{name}").ok()
    finally:
        proxy.stop()
    assert proxy.cuts == 1 and proxy.ranges and proxy.ranges[0].startswith("bytes=")
    assert "Retrying" in result.out
    assert inspect(ctr, f"{proxy.name}/{name}")["Id"] == image["config_digest"]
    rmi(ctr, image["config_digest"])


def test_a_pull_killed_half_way_leaves_nothing_and_pulls_again(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path,
        worker: Any) -> None:
    layout = Layout(tmp_path / "oci")
    tars = [tar_bytes(rootfs_tar, f"k{i}.tar", extra=os.urandom(4 << 20)) for i in range(3)]
    image = layout.image(tars)
    layout.index([image])
    name = f"{registry.name}/{repo()}/killed"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    running_pull = ctr.popen("pull", name)
    blobs = worker.root / "blobs" / "sha256"
    wait_for(lambda: (blobs.is_dir() and any(e.endswith(".partial") for e in os.listdir(blobs)))
             or running_pull.process.poll() is not None, "a partial blob")
    running_pull.process.send_signal(signal.SIGKILL)
    running_pull.process.wait(timeout=30)
    ctr("pull", name).ok()
    assert not [e for e in os.listdir(blobs) if e.endswith(".partial")]
    assert ctr("run", "--rm", name, "true").code == 0
    rmi(ctr, name)


# -- authentication ---------------------------------------------------------------
def test_basic_auth_login_pull_push_logout(ctr: Ctr, tmp_path: Path,
                                           auth_env: dict[str, str], worker: Any) -> None:
    with running(tmp_path / "basic", "basic") as basic:
        name = f"{basic.name}/{repo()}/private"
        ctr("tag", "busybox", name).ok()
        denied = ctr("push", name, env=auth_env)
        one_error_line(denied, f"shellctr: unauthorized: {basic.name} needs a user name")
        wrong = ctr("login", "-u", USER, "--password-stdin", basic.name, input="wrong\n",
                    env=auth_env)
        assert "wrong" not in wrong.err
        one_error_line(wrong, "shellctr: unauthorized")
        assert not (tmp_path / "docker" / "config.json").exists()
        login = ctr("login", "-u", USER, "--password-stdin", basic.name,
                    input=PASSWORD + "\n", env=auth_env).ok()
        assert login.out == "Login Succeeded\n" and PASSWORD not in login.err
        config = tmp_path / "docker" / "config.json"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert PASSWORD not in config.read_text()  # base64 in Docker's shape
        assert basic.name in json.loads(config.read_text())["auths"]
        pushed = ctr("push", name, env=auth_env).ok()
        assert PASSWORD not in pushed.err
        ctr("rmi", name).ok()
        ctr("pull", name, env=auth_env).ok()
        assert ctr("logout", basic.name, env=auth_env).ok().out == \
            f"Removing login credentials for {basic.name}\n"
        assert basic.name not in json.loads(config.read_text())["auths"]
        ctr("rmi", name).ok()
        # no secret anywhere in the store or the run dirs (the state files, logs, temp files)
        import base64
        secrets = [PASSWORD.encode(), base64.b64encode(f"{USER}:{PASSWORD}".encode())]
        leaked = [p for p in Path(worker.base).rglob("*") if p.is_file() and
                  any(secret in p.read_bytes()[:1 << 20] for secret in secrets)]
        assert not leaked
        assert [p.name for p in config.parent.iterdir()] == ["config.json"]  # no temp file


def test_token_auth_anonymous_pull_and_push_with_credentials(
        ctr: Ctr, tmp_path: Path, auth_env: dict[str, str]) -> None:
    with running(tmp_path / "token", "token") as reg:
        name = f"{reg.name}/{repo()}/tok"
        ctr("tag", "busybox", name).ok()
        denied = ctr("push", name, env=auth_env)
        one_error_line(denied, "shellctr: unauthorized: authentication required for")
        ctr("login", "-u", USER, "-p", PASSWORD, reg.name, env=auth_env).ok()
        pushed = ctr("push", name, env=auth_env).ok()
        assert "Authorization: Bearer ***" in pushed.err, pushed
        assert reg.token_server is not None
        token_count = reg.token_server.issued
        assert token_count >= 1
        ctr("logout", reg.name, env=auth_env).ok()
        ctr("rmi", name).ok()
        reg.token_server.stingy = 1  # the first token grants nothing: 401, then a fresh one
        issued = reg.token_server.issued
        ctr("pull", name, env=auth_env).ok()  # anonymous: pull is allowed
        assert reg.token_server.issued >= issued + 2 and reg.token_server.stingy == 0
        assert inspect(ctr, name)["RepoDigests"]
        wrong = ctr("login", "-u", USER, "--password-stdin", reg.name, input="nope",
                    env=auth_env)
        one_error_line(wrong, f"shellctr: unauthorized: {reg.name} refused the credentials")
        ctr("rmi", name).ok()


def test_tls_registry_needs_its_ca(ctr: Ctr, tmp_path: Path) -> None:
    with running(tmp_path / "tls", "tls") as reg:
        name = f"{reg.name}/{repo()}/tls"
        ctr("tag", "busybox", name).ok()
        untrusted = ctr("push", name)
        one_error_line(untrusted, f"shellctr: TLS failure talking to {reg.name}")
        env = {"SHELLCTR_CERTS_D": str(reg.certs_d)}
        ctr("push", name, env=env).ok()
        ctr("rmi", name).ok()
        ctr("pull", name, env=env).ok()
        ctr("rmi", name).ok()
        ctr("pull", "--tls-verify=false", name).ok()
        ctr("rmi", name).ok()


# -- peers ----------------------------------------------------------------------------
@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[bytes]]]:
    """Podman with storage of its own in tmp_path (reset afterwards: no mount is left);
    runc, cgroupfs and small rlimits, as these machines need (DESIGN.md, section 9)."""
    if not Path("/usr/bin/podman").exists():
        pytest.skip("needs podman")
    import tempfile
    short = Path(tempfile.mkdtemp(prefix="shc-podman-"))  # podman takes runroots <= 50 chars
    flags = ["--root", str(tmp_path / "podman"), "--runroot", str(short),
             "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]

    def call(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["podman", *flags, *args], capture_output=True, timeout=180,
                              check=False)

    yield call
    call("system", "reset", "--force")
    shutil.rmtree(short, ignore_errors=True)


def test_an_image_pushed_by_shellctr_runs_in_podman(
        ctr: Ctr, registry: Registry,
        podman: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    name = f"{registry.name}/{repo()}/for-podman:v2"
    ctr("tag", "busybox", name).ok()
    digest = ctr("push", "--quiet", name).ok().out.strip()
    pulled = podman("pull", "--tls-verify=false", name)
    assert pulled.returncode == 0, pulled.stderr.decode()
    assert pulled.stdout.decode().strip() == inspect(ctr, name)["Id"].removeprefix("sha256:")
    ran = podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                 "--ulimit", "nproc=1024:1024", name, "echo", "from podman")
    assert ran.returncode == 0 and ran.stdout == b"from podman\n", ran.stderr.decode()
    info = json.loads(podman("image", "inspect", name).stdout)[0]
    assert info["Digest"] == digest
    ctr("rmi", name).ok()


def test_push_of_a_pulled_image_mounts_its_blobs_from_the_other_repository(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci")
    image = layout.image([tar_bytes(rootfs_tar, "m.tar")])
    layout.index([image])
    source = f"{registry.name}/{repo()}/src"
    skopeo_copy(layout.path, registry, source.split("/", 1)[1])
    ctr("pull", source).ok()
    target = f"{registry.name}/{repo()}/dst:copy"
    ctr("tag", source, target).ok()
    pushed = ctr("push", target).ok()
    assert "?mount=sha256:" in pushed.err, pushed
    assert "Mounted from" in pushed.out and ": Pushed" not in pushed.out, pushed
    # the pulled manifest is pushed as it came: the same digest
    assert pushed.out.strip().splitlines()[-1].split()[2] == image["digest"]
    assert skopeo_digest(registry, target.split("/", 1)[1]) == image["digest"]
    rmi(ctr, image["config_digest"])


def test_a_chunked_push_gives_the_same_digest(ctr: Ctr, registry: Registry,
                                              rootfs_tar: Callable[..., Path]) -> None:
    name = f"{registry.name}/{repo()}/chunked:v1"
    ctr("import", str(rootfs_tar()), name).ok()  # its own layer: nothing to mount
    pushed = ctr("push", name, env={"SHELLCTR_PUSH_CHUNK_SIZE": "500000"}).ok()
    assert pushed.err.count("--request PATCH") >= 4, pushed  # the 2 MB layer in pieces
    digest = pushed.out.strip().splitlines()[-1].split()[2]
    assert skopeo_digest(registry, name.split("/", 1)[1]) == digest
    ctr("rmi", name).ok()
    ctr("pull", name).ok()
    assert ctr("run", "--rm", name, "true").code == 0
    ctr("rmi", name).ok()


def test_all_tags_are_pushed_and_pulled(ctr: Ctr, registry: Registry,
                                        rootfs_tar: Callable[..., Path]) -> None:
    name = f"{registry.name}/{repo()}/many"
    ctr("import", str(rootfs_tar()), f"{name}:one").ok()
    ctr("tag", f"{name}:one", f"{name}:two").ok()
    ctr("push", "--all-tags", name).ok()
    image_id = inspect(ctr, f"{name}:one")["Id"]
    rmi(ctr, f"{name}:one", f"{name}:two")
    ctr("pull", "--all-tags", name).ok()
    assert inspect(ctr, f"{name}:one")["Id"] == inspect(ctr, f"{name}:two")["Id"] == image_id
    refused = ctr("pull", "--all-tags", f"{name}:one")
    one_error_line(refused, "shellctr: tag can't be used with --all-tags/-a")
    rmi(ctr, f"{name}:one", f"{name}:two")


def test_save_after_pull_loads_in_podman_under_the_same_id(
        ctr: Ctr, registry: Registry, rootfs_tar: Callable[..., Path], tmp_path: Path,
        worker: Any, podman: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    layout = Layout(tmp_path / "oci")
    image = layout.image([tar_bytes(rootfs_tar, "s.tar", extra=b"saved\n")])
    layout.index([image])
    name = f"{registry.name}/{repo()}/saved"
    skopeo_copy(layout.path, registry, name.split("/", 1)[1])
    ctr("pull", name).ok()
    for fmt in ("docker-archive", "oci-archive"):
        archive = tmp_path / f"{fmt}.tar"
        ctr("save", "--format", fmt, "-o", str(archive), name).ok()
        loaded = podman("load", "-i", str(archive))
        assert loaded.returncode == 0, loaded.stderr.decode()
        ids = podman("images", "--no-trunc", "--quiet").stdout.decode().split()
        assert image["config_digest"] in ids, ids
    rmi(ctr, name)
    blobs = set(os.listdir(worker.root / "blobs" / "sha256"))
    manifest = json.loads((layout.path / "blobs/sha256" /
                           image["digest"].removeprefix("sha256:")).read_bytes())
    # rmi took the pulled image's blobs too: its compressed layer, manifest and config
    assert not blobs & {manifest["layers"][0]["digest"][7:], image["digest"][7:],
                        image["config_digest"][7:]}
