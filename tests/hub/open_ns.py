"""Run a command in a private mount namespace where some 0700 folders are searchable.

CI runs as root with Python under /root (0700) and pytest's temporary folders under
/tmp/pytest-of-root (0700): no other account can reach them, so a server run under a
hub user's own account could not even start its interpreter. A real install puts Python
and QUANTLIB_HOME where accounts can reach them; this script makes the test machine look
like one without changing it: for each folder given, it mounts a 0755 tmpfs over it in a
new mount namespace and bind-mounts every original entry back in place, then runs the
command (which, with everything it starts, stays in that namespace).

Usage (as root): unshare --mount --propagation private python open_ns.py DIR... -- CMD...
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def open_up(folder: str) -> None:
    staging = tempfile.mkdtemp(prefix="open-ns-")
    _mount("--bind", folder, staging)
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", folder)
    for name in os.listdir(staging):
        src, dst = os.path.join(staging, name), os.path.join(folder, name)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
            continue
        if os.path.isdir(src):
            os.mkdir(dst)
        else:
            open(dst, "a").close()
        _mount("--bind", src, dst)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    for folder in argv[:split]:
        open_up(folder)
    os.execvp(argv[split + 1], argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
