"""The states a build goes through (one per step: an image, its config, its layers) and
the keys of the build cache (engine/build_cache.py keeps the index)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

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
