"""The build cache's index: `<root>/build-cache/<key>` names the image a build step made
(and the image it was made on), the key being a hash of the parent image and the step
(engine/build.py). Kept apart from the builder so that `images` reads it cheaply."""

from __future__ import annotations

import json
import os

from shellctr.core.layout import Layout

CACHE_DIR = "build-cache"


def intermediate_images(layout: Layout) -> set[str]:
    """The images a build step was made on (the parents the cache names): `images` hides
    them unless -a, as Docker hides the intermediate images of its builds."""
    cache = layout.root / CACHE_DIR
    parents: set[str] = set()
    for name in os.listdir(cache) if cache.is_dir() else []:
        try:
            parents.add(str(json.loads((cache / name).read_text()).get("parent", "")))
        except (OSError, ValueError):
            continue
    return parents
