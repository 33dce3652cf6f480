"""User errors: a mistake in what was asked for (a flag, a path, a file's content).

`fosp` prints such an error as one line on stderr and exits 2, without a traceback. Anything else
is a bug and keeps its traceback. The packages' own error types (`CheckpointError`,
`EpisodeFormatError`, ...) derive from `UserError`.
"""

from __future__ import annotations

import errno
from pathlib import Path


class UserError(Exception):
    """Shown to the user as one line (its message), exit status 2."""


class WriteError(UserError):
    """A file could not be written (disk full, read-only folder, no permission); names the path.
    The partial temporary file has been removed."""

    def __init__(self, path: str | Path, err: OSError):
        self.path, self.errno = Path(path), err.errno
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            problem = f"no space left on the file system holding {self.path.parent}"
        else:
            problem = err.strerror or str(err)
        super().__init__(f"cannot write {path}: {problem}")
