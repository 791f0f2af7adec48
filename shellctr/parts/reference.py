"""Image references (`busybox`, `busybox:1.36`, `sha256:1a2b...`) and finding them.

Stdlib only: `run` resolves its image through here without importing pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.records import Record

DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPO = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ID_PREFIX = re.compile(r"^(?:sha256:)?[0-9a-f]{1,64}$")


def normalize_ref(ref: str) -> str:
    """`busybox` -> `busybox:latest`; refuses what Docker refuses."""
    name, tag = ref, DEFAULT_TAG
    if ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
    first, _, rest = name.partition("/")
    # a registry host (with a dot or a port) may stand in front of the repository path
    repo = rest if rest and re.search(r"[.:]", first) else name
    if not REPO.match(repo) or not TAG.match(tag):
        raise ShellctrError(
            f"invalid reference format: {ref!r}",
            "use lowercase REPOSITORY[:TAG], e.g. busybox:latest",
        )
    return f"{name}:{tag}"


def is_id(ref: str) -> bool:
    return bool(ID_PREFIX.match(ref))


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
    wanted = normalize_ref(ref)
    for record in records:
        if wanted in record["repo_tags"]:
            return record
    raise NotFound(
        f"unable to find image {wanted!r} locally",
        "shellctr cannot pull yet: import or load it (make demo builds busybox)",
    )
