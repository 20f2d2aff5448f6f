"""User-facing errors: each names the problem and the fix, and the CLI turns it into exit code 2."""

from __future__ import annotations

import os
import pwd


class EdgeMetaError(Exception):
    """A problem the user can fix; printed as one line (plus a hint), never as a traceback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class AudioError(EdgeMetaError):
    """Audio that cannot be read or used: missing, empty, corrupt, silent, clipped."""


class BundleError(EdgeMetaError):
    """A model bundle that is missing, damaged, tampered with or from an unsupported schema."""


class StoreError(EdgeMetaError):
    """A profile store that cannot be opened or written, or a request it cannot satisfy."""


class StoreBusy(StoreError):
    """The profile store is write-locked by another process just now (a long import): trying again later works."""


class ConfigError(EdgeMetaError):
    """A configuration file or option that is invalid."""


class DataError(EdgeMetaError):
    """A corpus that is missing or does not hold what was asked of it."""


def permission_denied(exc: PermissionError, cls: type[EdgeMetaError] = EdgeMetaError) -> EdgeMetaError:
    """The error for a file or folder this user may not use: its permissions are the problem, never its contents."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    path = exc.filename or "a file"
    return cls(f"{path}: permission denied for user {user}",
               f"`ls -l {path}` shows its owner and mode: give {user} access to it (and to its folders), "
               "use another path, or run as a user who has access")
