"""The OCI distribution protocol's pure parts: media types, the `Accept` header, picking
a platform from an index, WWW-Authenticate challenges, registry error bodies, Docker's
credentials file, and requests shown as the equivalent `curl` line (secrets as ***).

Nothing here talks to the network or the host (engine/pull.py and engine/push.py do,
through the door).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
from typing import Any

from shellctr.core.errors import ShellctrError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEXES = (OCI_INDEX, DOCKER_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
LAYER_TYPES = {  # a layer blob's media type -> its compression
    "application/vnd.oci.image.layer.v1.tar": None,
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": None,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
}
MAX_MANIFEST = 4 << 20  # manifests are small: a bigger answer is refused
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
                 "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


# -- platforms ------------------------------------------------------------------------
def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine, in OCI's words."""
    machine = os.uname().machine
    arch = ARCHITECTURES.get(machine, machine)
    return "linux", arch, "v8" if arch == "arm64" else "v7" if arch == "arm" else ""


def parse_platform(text: str) -> tuple[str, str, str]:
    """`linux/arm64[/v8]` -> (os, architecture, variant)."""
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ShellctrError(f"invalid platform {text!r}", "use OS/ARCH[/VARIANT], e.g. "
                            "linux/amd64 or linux/arm64/v8")
    return parts[0].lower(), ARCHITECTURES.get(parts[1], parts[1]).lower(), \
        (parts[2] if len(parts) == 3 else "").lower()


def platform_text(platform: dict[str, Any]) -> str:
    text = f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"
    return text + (f"/{platform['variant']}" if platform.get("variant") else "")


def select_platform(index: dict[str, Any], wanted: tuple[str, str, str],
                    name: str) -> dict[str, Any]:
    """The descriptor of the index's manifest for the platform `wanted`; a variant
    not asked for matches any (the first listed). A clear error lists what it offers."""
    system, arch, variant = wanted
    offered = [d for d in index.get("manifests") or [] if isinstance(d, dict)]
    candidates = [d for d in offered if (d.get("platform") or {}).get("os") == system and
                  (d.get("platform") or {}).get("architecture") == arch and
                  d.get("mediaType", OCI_MANIFEST) in MANIFESTS]
    exact = [d for d in candidates if (d["platform"].get("variant") or "") == variant]
    # no variant asked: any; one asked: an entry that names none (arm64 is v8) will do
    loose = [d for d in candidates if not variant or not d["platform"].get("variant")]
    if exact or loose:
        return (exact or loose)[0]
    listed = ", ".join(sorted({platform_text(d.get("platform") or {}) for d in offered
                               if d.get("platform")})) or "none"
    asked = platform_text({"os": system, "architecture": arch, "variant": variant})
    raise ShellctrError(f"no matching manifest for {asked} in the manifest list of "
                        f"{name}: it offers {listed}", "choose one of them with --platform")


# -- documents ------------------------------------------------------------------------
def parse_manifest(body: bytes, media_type: str, name: str) -> dict[str, Any]:
    """A manifest or index body as JSON, of a kind shellctr pulls (schema 1 is refused)."""
    if media_type in DOCKER_SCHEMA1:
        raise ShellctrError(f"{name} is a Docker schema 1 image, which is no longer "
                            "supported", "push it again with a current client (schema 2)")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ShellctrError(f"invalid manifest for {name}: {err}") from err
    if not isinstance(document, dict):
        raise ShellctrError(f"invalid manifest for {name}: not a JSON object")
    if document.get("schemaVersion") == 1:
        raise ShellctrError(f"{name} is a Docker schema 1 image, which is no longer "
                            "supported", "push it again with a current client (schema 2)")
    kind = media_type if media_type in (*INDEXES, *MANIFESTS) else document.get("mediaType")
    if kind is None:  # OCI allows mediaType to be absent: tell them apart by their fields
        kind = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if kind not in (*INDEXES, *MANIFESTS):
        raise ShellctrError(f"{name}: unsupported manifest type {kind!r}")
    document["mediaType"] = kind
    return document


def check_descriptor(descriptor: Any, what: str) -> tuple[str, int]:
    """(digest, size) of a descriptor, checked: the digest names a path in the store."""
    if not isinstance(descriptor, dict):
        raise ShellctrError(f"invalid manifest: {what} is not a descriptor")
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(digest, str) or not DIGEST.match(digest):
        raise ShellctrError(f"invalid manifest: unsupported digest {digest!r} of {what}",
                            "only sha256 digests are supported")
    if not isinstance(size, int) or size < 0:
        raise ShellctrError(f"invalid manifest: bad size of {what}")
    return digest, size


def layer_compression(media_type: str) -> str | None:
    """None (plain tar), gzip or zstd; an unknown layer type is refused."""
    if media_type not in LAYER_TYPES:
        raise ShellctrError(f"unsupported layer type {media_type!r}")
    return LAYER_TYPES[media_type]


# -- authentication -------------------------------------------------------------------
_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'
                              r'([^,\s]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm:, ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _CHALLENGE_PARAM.match(rest, position)
        if match is None or match.end() == position:
            break
        value = match[2] if match[2] is not None else match[3]
        params[match[1].lower()] = re.sub(r"\\(.)", r"\1", value)
        position = match.end()
    return scheme.lower(), params


def basic_auth(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


# -- credentials files (Docker's config.json, Podman's auth.json) ---------------------
def auth_keys(registry: str) -> list[str]:
    """The keys a credentials file may file `registry` under (Docker Hub has its old
    URL as its key)."""
    if registry == "docker.io":
        return ["https://index.docker.io/v1/", "index.docker.io", "docker.io",
                "registry-1.docker.io"]
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v2/"]


def login_key(registry: str) -> str:
    return "https://index.docker.io/v1/" if registry == "docker.io" else registry


def credentials_in(document: Any, registry: str) -> tuple[str, str] | str | None:
    """(user, secret) filed for `registry` in a config.json/auth.json document; the name
    of its credential helper (a str) if one is configured; or None."""
    if not isinstance(document, dict):
        return None
    helpers = document.get("credHelpers") or {}
    for key in auth_keys(registry):
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            return str(helpers[key])
    auths = document.get("auths") or {}
    for key in auth_keys(registry):
        entry = auths.get(key) if isinstance(auths, dict) else None
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            if sep:
                return user, secret
        if entry.get("identitytoken"):
            return "<token>", str(entry["identitytoken"])
    store = document.get("credsStore")
    return str(store) if isinstance(store, str) and store else None


def with_login(document: Any, registry: str, user: str, secret: str) -> dict[str, Any]:
    """The config.json document with `registry`'s credentials set (other keys kept)."""
    new = dict(document) if isinstance(document, dict) else {}
    auths = dict(new.get("auths") or {})
    for key in auth_keys(registry):
        auths.pop(key, None)
    auths[login_key(registry)] = {"auth": basic_auth(user, secret)}
    new["auths"] = auths
    return new


def without_login(document: Any, registry: str) -> tuple[dict[str, Any], bool]:
    """The document with `registry`'s credentials removed; whether there were any."""
    new = dict(document) if isinstance(document, dict) else {}
    auths = dict(new.get("auths") or {})
    found = False
    for key in auth_keys(registry):
        found = auths.pop(key, None) is not None or found
    new["auths"] = auths
    return new, found


def document_secrets(document: Any) -> tuple[str, ...]:
    """Every secret in a credentials document (to show it with *** in their place)."""
    auths = document.get("auths") if isinstance(document, dict) else None
    found: list[str] = []
    for entry in (auths or {}).values() if isinstance(auths, dict) else []:
        if isinstance(entry, dict):
            found += [str(entry[key]) for key in ("auth", "identitytoken", "password")
                      if entry.get(key)]
            if isinstance(entry.get("auth"), str):
                try:
                    found.append(base64.b64decode(entry["auth"]).decode().partition(":")[2])
                except (ValueError, UnicodeDecodeError):
                    pass
    return tuple(sorted({word for word in found if word}, key=len, reverse=True))


# -- errors ---------------------------------------------------------------------------
def error_detail(body: bytes) -> str:
    """The first message of a registry's error body (`{"errors": [{code, message}]}`),
    cut to one short line: the registry is not trusted to write our messages."""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, TypeError, UnicodeDecodeError):
        return ""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text[:200]


def error_code(body: bytes) -> str:
    try:
        return str((json.loads(body).get("errors") or [{}])[0].get("code", ""))
    except (ValueError, AttributeError, IndexError, TypeError, UnicodeDecodeError):
        return ""


# -- showing requests -----------------------------------------------------------------
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie")


def curl_argv(method: str, url: str, headers: dict[str, str], *, output: str | None = None,
              upload: str | None = None, user: str | None = None,
              continue_at: int = 0) -> list[str]:
    """The `curl` command that makes the same request (secret values as ***, which
    `Cmd(secrets=...)` also masks); `output`: the file the body is written to."""
    argv = ["curl", "--fail", "--silent", "--show-error", "--location"]
    if method not in ("GET", "HEAD") or upload is not None:
        argv += ["--request", method]
    elif method == "HEAD":
        argv += ["--head"]
    if user is not None:
        argv += ["--user", f"{user}:***"]
    for name, value in headers.items():
        shown = "***" if name.lower() in SECRET_HEADERS else value
        if name.lower() in SECRET_HEADERS and " " in value:
            shown = value.split(" ", 1)[0] + " ***"  # the scheme is no secret
        argv += ["--header", f"{name}: {shown}"]
    if upload is not None:
        argv += ["--upload-file", upload]
    if continue_at:
        argv += ["--continue-at", str(continue_at)]
    if output is not None:
        argv += ["--output", output]
    return [*argv, url]


def curl_line(argv: list[str]) -> str:
    return shlex.join(argv)
