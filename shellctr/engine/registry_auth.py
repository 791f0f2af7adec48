"""Registry credentials: read from Docker's config.json (`auths`, `credHelpers`,
`credsStore` through `docker-credential-NAME get`) and Podman's auth.json; `login` checks
them against the registry and writes Docker's file (mode 0600, atomically); `logout`
removes them. Secrets never reach output, traces or messages: they are shown as ***.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shellctr.core.errors import ShellctrError
from shellctr.core.host import Host
from shellctr.parts.reference import DOCKER_HUB
from shellctr.parts.registry import (
    basic_auth,
    credentials_in,
    document_secrets,
    with_login,
    without_login,
)


def docker_config_path() -> Path:
    """$DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".docker")
    return Path(directory) / "config.json"


def podman_auth_path() -> Path | None:
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return Path(os.environ["REGISTRY_AUTH_FILE"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "containers" / "auth.json" if runtime else None


def read_document(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ShellctrError(f"cannot read the credentials file {path}: "
                            f"{type(err).__name__}", "fix or remove it") from err


def from_helper(host: Host, helper: str, registry: str) -> tuple[str, str] | None:
    """Ask `docker-credential-HELPER get` (Docker's credential helper protocol)."""
    server = "https://index.docker.io/v1/" if registry == DOCKER_HUB else registry
    code, out, _ = host.probe([f"docker-credential-{helper}", "get"], input=server)
    if code != 0:
        return None  # the helper has none for it (it says "credentials not found")
    try:
        answer = json.loads(out)
        return str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError) as err:
        raise ShellctrError(f"docker-credential-{helper} gave no credentials") from err


def credentials_for(host: Host, registry: str) -> tuple[str, str] | None:
    """(user, secret) for `registry`: Docker's file first, then Podman's; or None."""
    for path in (docker_config_path(), podman_auth_path()):
        if path is None:
            continue
        found = credentials_in(read_document(path), registry)
        if isinstance(found, str):
            helped = from_helper(host, found, registry)
            if helped is not None:
                return helped
        elif found is not None:
            return found
    return None


def login(host: Host, registry: str, user: str, password: str,
          tls_verify: bool | None = None) -> None:
    """Check the credentials against the registry, then keep them in Docker's file."""
    check_login(host, registry, user, password, tls_verify)
    path = docker_config_path()
    document = with_login(read_document(path), registry, user, password)
    host.ensure_dir(path.parent, mode=0o700)
    host.write_file(path, json.dumps(document, indent="\t") + "\n", mode=0o600,
                    secrets=(basic_auth(user, password), password,
                             *document_secrets(document)))


def check_login(host: Host, registry: str, user: str, password: str,
                tls_verify: bool | None = None) -> None:
    """Whether the registry takes these credentials (raises Unauthorized if not); the
    API's /auth stops here: its client keeps them."""
    from shellctr.engine.registry_http import Registry

    if not user or not password:
        raise ShellctrError("a user name and a password are required",
                            "give -u USER and -p PASS or --password-stdin")
    client = Registry(host, registry, (user, password), tls_verify)
    client.request("GET", "/v2/", "", expect=(200,), what="the registry")


def server_name(text: str) -> str:
    """A login's server as a registry name: `https://host:5000/v2/` -> `host:5000`;
    Docker Hub's names -> docker.io."""
    name = text.strip()
    for prefix in ("https://", "http://"):
        name = name.removeprefix(prefix)
    name = name.split("/", 1)[0]
    if not name:
        raise ShellctrError(f"invalid registry {text!r}", "give HOST[:PORT]")
    if name in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return DOCKER_HUB
    return name


def logout(host: Host, registry: str) -> bool:
    """Remove `registry`'s credentials from Docker's file; whether it had any."""
    path = docker_config_path()
    document, found = without_login(read_document(path), registry)
    if found:
        host.write_file(path, json.dumps(document, indent="\t") + "\n", mode=0o600,
                        secrets=document_secrets(document))
    return found
