"""Work on several items at once, in threads (blob downloads and uploads, layer
extractions: their hashing, zlib and I/O release the GIL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def in_parallel(work: Callable[[T], None], items: Iterable[T], workers: int) -> None:
    """`work` on each item, `workers` threads at a time; the first item's error is
    raised once all are done. (Plain threads: concurrent.futures imports logging,
    ~6 ms.)"""
    queue = list(enumerate(items))
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index, item = queue.pop(0)
            try:
                work(item)
            except BaseException as err:  # any: raised again in the caller's thread
                errors[index] = err

    threads = [threading.Thread(target=worker) for _ in range(min(workers, len(queue)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
