"""Image references (`busybox`, `busybox:1.36`, `sha256:1a2b...`) and finding them.

Stdlib only: `run` resolves its image through here without importing pydantic.
"""

from __future__ import annotations

from shellctr.core.errors import NotFound, ShellctrError

TYPE_CHECKING = False  # typing is not imported at run time: `run` resolves images here
if TYPE_CHECKING:
    from collections.abc import Sequence

    from shellctr.core.records import Record

DEFAULT_TAG = "latest"
DOCKER_HUB = "docker.io"  # the registry of a name without one (Docker's default)
DOCKER_HUB_API = "registry-1.docker.io"  # where docker.io's distribution API answers
# The grammar, as patterns: `re` (~5 ms) is imported by parse_reference, which an image
# looked up by one of its own tags or its id does not need (find_image_record)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPO = rf"^{_COMPONENT}(?:/{_COMPONENT})*$"
TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
DIGEST = r"^sha256:[0-9a-f]{64}$"
# a registry host: DNS labels or an IPv4/[IPv6] address, with an optional port
DOMAIN = (r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
          r"(?::[0-9]{1,5})?$")
HEX = frozenset("0123456789abcdef")


class Reference:
    """A reference as Docker parses it: `busybox` is registry docker.io, repository
    library/busybox, tag latest; `localhost:5000/a/b:t@sha256:...` keeps all four."""

    __slots__ = ("digest", "registry", "repository", "tag")

    def __init__(self, registry: str, repository: str, tag: str, digest: str) -> None:
        self.registry, self.repository, self.tag, self.digest = (registry, repository,
                                                                 tag, digest)

    @property
    def name(self) -> str:
        """Docker's familiar name: `busybox`, `user/app`, `localhost:5000/x`."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def full_name(self) -> str:
        """`docker.io/library/busybox`: the registry and repository in full."""
        return f"{self.registry}/{self.repository}"

    @property
    def tagged(self) -> str:
        """The familiar `name:tag` an image is tagged with (the tag defaults to latest)."""
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    @property
    def wanted(self) -> str:
        """What a registry's manifests endpoint is asked for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag or not self.digest:
            text += f":{self.tag or DEFAULT_TAG}"
        return f"{text}@{self.digest}" if self.digest else text

    def __repr__(self) -> str:
        return f"Reference({self.full_name!r}, tag={self.tag!r}, digest={self.digest!r})"


def parse_reference(ref: str) -> Reference:
    """`NAME[:TAG][@DIGEST]` normalised as Docker does; refuses what Docker refuses."""
    def invalid(why: str) -> ShellctrError:
        return ShellctrError(f"invalid reference format: {ref!r} ({why})",
                             "use [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST] in lowercase, "
                             "e.g. busybox:latest")

    import re

    rest, _, digest = ref.partition("@")
    if digest and not re.match(DIGEST, digest):
        raise invalid("a digest is sha256: and 64 lowercase hex digits")
    tag = ""
    if ":" in rest.rsplit("/", 1)[-1]:
        rest, tag = rest.rsplit(":", 1)
        if not re.match(TAG, tag):
            raise invalid("bad tag")
    first, slash, path = rest.partition("/")
    if slash and (re.search(r"[.:]", first) or first == "localhost" or first != first.lower()):
        registry = first
        if not re.match(DOMAIN, registry):
            raise invalid("bad registry host")
    else:
        registry, path = DOCKER_HUB, rest
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not re.match(REPO, path) or len(rest) > 255:
        raise invalid("bad repository name")
    return Reference(registry, path, tag, digest)


def normalize_ref(ref: str) -> str:
    """`busybox` -> `busybox:latest` (Docker's familiar name and a tag): what images are
    tagged with; `docker.io/library/busybox` is the same name. Refuses what Docker refuses."""
    parsed = parse_reference(ref)
    if parsed.digest:
        raise ShellctrError(f"invalid reference format: {ref!r} (a digest is not a tag)",
                            "tag with NAME[:TAG]")
    return parsed.tagged


def is_id(ref: str) -> bool:
    """An image id or its prefix: 1 to 64 lowercase hex digits, `sha256:` before them or
    not."""
    bare = ref.removeprefix("sha256:")
    return 0 < len(bare) <= 64 and HEX.issuperset(bare)


def find_image_record(records: Sequence[Record], ref: str) -> Record:
    """Of the image `records`, the one `ref` names: name[:tag], full or short id, or
    `sha256:` id."""
    if is_id(ref):
        bare = ref.removeprefix("sha256:")
        matches = [record for record in records if record["id"].startswith(bare)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ShellctrError(f"ambiguous image id prefix {ref!r}", "give more of the id")
    if "@" not in ref:  # one of the tags as they are stored (normalised: parsing keeps it)
        wanted = ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:{DEFAULT_TAG}"
        for record in records:
            if wanted in record["repo_tags"]:
                return record
    parsed = parse_reference(ref)
    if parsed.digest:  # NAME@sha256:...: the manifest pulled for NAME
        wanted = f"{parsed.name}@{parsed.digest}"
        for record in records:
            if wanted in record.get("repo_digests", []):
                return record
    else:
        wanted = parsed.tagged
        for record in records:
            if wanted in record["repo_tags"]:
                return record
    raise NotFound(f"unable to find image {wanted!r} locally",
                   f"pull it first: shellctr pull {wanted}")
