"""Input a verb reads twice (a layer is checked, then extracted), kept in a scratch file:
stdin of `import -` and `load`, a named pipe, a compressed archive stored uncompressed.

The file is made through the door (`Host.scratch_file`): a `--dry-run` script makes the same
file with the command shown (`cat > FILE`, or the engine's own decompressor)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, BinaryIO

from shellctr.core.cmd import Argv, path_arg
from shellctr.core.errors import ShellctrError
from shellctr.core.host import Host, ScratchFile
from shellctr.core.layout import CHECKOUT


def decompress_argv(path: Path | None) -> Argv:
    """The command that writes `path` (stdin if None), decompressed, to stdout."""
    return ["env", f"PYTHONPATH={path_arg(CHECKOUT)}", sys.executable, "-m",
            "shellctr.engine.pack", "decompress", *([path_arg(path)] if path else [])]


def spooled(host: Host, source: IO[bytes] | None = None, path: Path | None = None,
            decompress: bool = False) -> ScratchFile:
    """`with spooled(host, ...) as file:` what `source` holds (stdin if None; read from
    `path` when the source is that file), decompressed if asked, in a new scratch file."""
    stream = source if source is not None else sys.stdin.buffer
    if decompress:
        argv = decompress_argv(path)
    else:
        argv = ["cat", *([path_arg(path)] if path else [])]

    def write(out: BinaryIO) -> None:
        from shellctr.engine.layers import decompressing

        try:
            shutil.copyfileobj(decompressing(stream) if decompress else stream, out, 1 << 20)
        except (OSError, EOFError) as err:
            raise ShellctrError(f"invalid archive: {err}") from err

    name = f"shellctr-spool-{os.getpid()}-{os.urandom(4).hex()}"
    return host.scratch_file(argv, Path(tempfile.gettempdir()) / name, write)
