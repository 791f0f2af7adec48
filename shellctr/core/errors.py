"""The errors shellctr reports: one line saying what is wrong, and what to do."""

from __future__ import annotations

ENGINE_ERROR = 125  # Docker's code for "the engine could not do it"
CANNOT_INVOKE = 126  # the command exists but cannot be executed
NOT_FOUND = 127  # the command is not on the container's PATH


class ShellctrError(Exception):
    """An error the user can act on: `message`, then an optional `hint`."""

    exit_code = ENGINE_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(ShellctrError):
    """Bad flags or arguments on the command line."""


class NotFound(ShellctrError):
    """No container, image or file by that name."""


class Gone(NotFound, FileNotFoundError):
    """The container was removed between finding it and reading it (a parallel rm):
    still a FileNotFoundError to the readers that skip what went meanwhile."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        NotFound.__init__(self, message, hint)


class CorruptRecord(ShellctrError):
    """A record that is not what shellctr wrote (truncated, garbage, empty, another JSON
    type): that object's problem only. Listings show it as a row; rm -f removes it."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"corrupt record {path}: {problem}",
                         "remove the object with rm -f / rmi -f / network rm, or run "
                         "`shellctr system check --repair`")
        self.path = path


class Conflict(ShellctrError):
    """The request clashes with existing state (a name in use, a running container)."""


class HostCommandError(ShellctrError):
    """A host command failed; the message carries the command and its stderr."""


class ExecError(ShellctrError):
    """The container's command could not be started (126 or 127)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
