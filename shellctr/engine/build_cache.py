"""The build cache: `<root>/build-cache/<key>` names the image a build step made (and the
image it was made on), the key being a hash of the parent image and the step's history
line (engine/build_state.py computes them), and `builder prune`. What `images` hides,
the images the cache's steps were made on, the store reads (Store.intermediate_image_ids).
"""

from __future__ import annotations

import json
import os

from shellctr.core.host import Host
from shellctr.core.ids import SHORT
from shellctr.core.store import Store


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
