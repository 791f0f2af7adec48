"""The one executor of host commands, for the door (host.Host) and its reads (facts).

Every command runs with a pinned environment (`LC_ALL=C` and a fixed `PATH`, nothing of
the caller's: parsed output must not depend on it), stdin from /dev/null unless the step
feeds it, and a missing tool reported as `TOOL is not installed (apt-get install PKG)`.
plumbum, imported on first use, runs them; `lean` (the verbs on the start path, see
cli.main.LEAN_VERBS) runs the same argv with the standard library's subprocess instead:
plumbum's import (~70 ms) would double their cost.
"""

from __future__ import annotations

import os

from shellctr.core.errors import HostCommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import IO, Any

# The one environment host commands run in: the caller's locale and variables never reach
# them (ip, iptables and ps print what shellctr parses).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENVIRONMENT = {"PATH": SYSTEM_PATH, "LC_ALL": "C"}
# the Debian package of each host tool shellctr runs, for the "not installed" message
PACKAGES = {
    "ip": "iproute2", "iptables": "iptables", "iptables-restore": "iptables",
    "iptables-save": "iptables", "unshare": "util-linux", "nsenter": "util-linux",
    "setsid": "util-linux", "mount": "mount", "umount": "mount", "tar": "tar",
    "dnsmasq": "dnsmasq-base", "setfattr": "attr", "ps": "procps", "curl": "curl",
    "sha256sum": "coreutils", "mknod": "coreutils", "env": "coreutils", "sh": "dash",
}


def not_installed(program: str) -> HostCommandError:
    name = os.path.basename(program)
    package = PACKAGES.get(name)
    return HostCommandError(f"{name} is not installed",
                            f"apt-get install {package}" if package else
                            "see the README for the packages shellctr needs")


def execute(argv: Sequence[str], input: str | None, stdout: IO[bytes] | None,
            lean: bool) -> tuple[int, str, str]:
    """Run one host command to its end: (exit code, stdout, stderr). stdin is /dev/null
    unless `input` is given; stdout goes to `stdout` if given (then "" comes back)."""
    import subprocess  # here: the verbs that run no command do not pay for its import

    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    sink = stdout if stdout is not None else subprocess.PIPE
    try:
        if lean:
            process = subprocess.Popen(list(argv), stdin=stdin, stdout=sink,
                                       stderr=subprocess.PIPE, env=ENVIRONMENT)
        else:
            process = _plumbum_popen(argv, stdin, sink)
    except FileNotFoundError as missing:
        raise not_installed(argv[0]) from missing
    out, err = process.communicate(input.encode() if input is not None else None)
    return (process.returncode, (out or b"").decode(errors="replace"),
            (err or b"").decode(errors="replace"))


def _plumbum_popen(argv: Sequence[str], stdin: int, sink: IO[bytes] | int) -> Any:
    # Imported here: plumbum costs ~70 ms to import, and the lean verbs never need it.
    from plumbum import CommandNotFound, local

    with local.env():
        local.env.clear()
        local.env.update(**ENVIRONMENT)
        try:
            command = local[argv[0]][list(argv[1:])]
        except CommandNotFound as err:
            raise FileNotFoundError(2, "not found", argv[0]) from err
        return command.popen(stdin=stdin, stdout=sink, stderr=-1)  # -1: subprocess.PIPE
