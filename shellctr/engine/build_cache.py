"""The build cache: `<root>/build-cache/<key>` names the image a build step made (and the
image it was made on), the key being a hash of the parent image and the step's history
line (engine/build.py computes them). The states a build goes through (`State`), the
cache's keys, `builder prune`, and what `images` hides: importing this module costs
`images` nothing of the builder."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from shellctr.core.host import Host
from shellctr.core.ids import SHORT
from shellctr.core.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shellctr.parts.dockerfile_config import StageConfig

@dataclass
class State:
    """An image a step made (or a stage's base): its id ("" before a scratch stage has a
    layer), its config document, the stage's config, its layers and their sizes."""

    id: str
    document: dict[str, Any]
    config: StageConfig
    layers: list[str]
    sizes: list[int]
    cmd_set: bool = False
    run_image: str = ""  # --dry-run: an image with these layers, for a RUN's container

    @property
    def key(self) -> str:
        """What the cache keys of the next step start from."""
        if self.id:
            return self.id
        blob = json.dumps([self.config.to_config(), self.document.get("history")],
                          sort_keys=True)
        return "scratch:" + sha256_hex(blob.encode())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def history_entry(created: str, created_by: str, empty_layer: bool = False) -> dict[str, Any]:
    """One `history` item, as the classic builder writes it."""
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if empty_layer:
        entry["empty_layer"] = True
    return entry


def cache_key(parent: State, created_by: str) -> str:
    return sha256_hex(json.dumps([parent.key, created_by]).encode())


def prune_cache(host: Host, store: Store) -> list[str]:
    """`builder prune`: every cache entry goes, and the images they name that have no tag
    and that no container uses (with the layers only they held). Docker's report lines."""
    from shellctr.core.state import Image
    from shellctr.engine.image import remove_unused_layers

    layout = store.layout
    cache = layout.build_cache_dir
    report: list[str] = []
    with store.lock():
        names = sorted(os.listdir(cache)) if cache.is_dir() else []
        ids: list[str] = []
        for name in names:
            try:
                ids.append(str(json.loads((cache / name).read_text()).get("id", "")))
            except (OSError, ValueError):
                continue
        used = {store.container_config(cid)["image_id"] for cid in store.container_ids()}
        gone: set[str] = set()
        for image_id in dict.fromkeys(ids):
            path = layout.image_file(image_id)
            if not image_id or not path.is_file() or image_id in used:
                continue
            if Image.model_validate_json(path.read_text()).repo_tags:
                continue
            host.step(f"remove build cache image {image_id[:SHORT]}")
            host.remove_file(path)
            host.remove_file(layout.blob(image_id))
            gone.add(image_id)
            report.append(f"deleted: sha256:{image_id}")
        for name in names:
            host.remove_file(cache / name)
        if gone:
            remove_unused_layers(host, store, gone=gone)
    return report
