"""Run the vendor sandbox in its own process for a refresh.

The sandbox's FTP and HTTP servers are Python threads; run inside the refreshing
process they share its GIL with the fetch, standardize and validate work and slow both
down (a real vendor never does). :func:`sandbox_process` starts ``quantlib data
sandbox`` as a child process with a private ``QUANTLIB_HOME`` (so it never overwrites
the user's sandbox state file), waits for its state file and stops it with SIGTERM.

The child dies with its parent even when the parent is SIGKILLed: it starts through this
module's ``__main__``, which asks the kernel for a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on Linux) before running the sandbox, and exits
at once if its parent is already gone. The private home (a temporary folder named
``quantlib-sandbox-home-*`` holding ``owner.pid``) cannot be removed by a killed parent,
so every start first removes the homes whose owner is dead (:func:`clean_leftovers`),
stopping a sandbox still running from one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quantlib.errors import SourceError
from quantlib.platform.process import pid_alive as _alive

__all__ = ["sandbox_process", "clean_leftovers", "HOME_PREFIX"]

HOME_PREFIX = "quantlib-sandbox-home-"
_PR_SET_PDEATHSIG = 1
_YOUNG_S = 60.0  # a home this young without owner.pid may be being created right now


def _read_pid(path: Path, key: str | None = None) -> int | None:
    try:
        text = path.read_text()
        return int(json.loads(text)[key]) if key else int(text.strip())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clean_leftovers(tmpdir: str | None = None) -> list[Path]:
    """Remove sandbox homes left by killed refreshes; stop their sandboxes if running.

    A home is left over when its ``owner.pid`` process is dead (or, for a home without
    one older than a minute, when its sandbox is not running). Homes of other users and
    of live owners are not touched.

    Returns
    -------
    list of Path
        The homes removed.
    """
    removed = []
    for home in sorted(Path(tmpdir or tempfile.gettempdir()).glob(HOME_PREFIX + "*")):
        try:
            st = home.stat()
        except OSError:
            continue
        if st.st_uid != os.getuid() or not home.is_dir():
            continue
        owner = _read_pid(home / "owner.pid")
        child = _read_pid(home / "run" / "sandbox.json", "pid")
        if owner is None and time.time() - st.st_mtime < _YOUNG_S:
            continue
        if _alive(owner) or (owner is None and child is not None and _alive(child)
                             and _read_ppid(child) not in (None, 1)):
            continue
        if child is not None and _alive(child) and "quantlib" in _cmdline(child):
            os.kill(child, signal.SIGKILL)  # an orphan from before children died with us
        shutil.rmtree(home, ignore_errors=True)
        removed.append(home)
    return removed


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _read_ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _die_with_parent(parent: int) -> None:
    """In the child: get SIGTERM when the parent dies; exit if it is already gone; and
    exit when a watcher thread sees the parent gone (the process was re-parented)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(0)
    import threading

    def watch() -> None:   # the signal can be missed (CI saw an orphan outlive 180 s)
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)        # the home left behind is removed by the next start
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@contextmanager
def sandbox_process(*, n_assets: int, years: float, seed: int, end: str,
                    markets: tuple[str, ...], timeout_s: float = 600.0,
                    start: str | None = None) -> Iterator[object]:
    """Start a sandbox child process; yield its :class:`SandboxConnection`; stop it.

    ``start`` pins the first date (default ``end - years``); the connection's
    :meth:`~quantlib.sandbox.SandboxConnection.advance` moves the child's vendor clock.

    Raises
    ------
    SourceError
        If the child exits or writes no state file within ``timeout_s``; the message
        carries the end of its output.
    """
    from quantlib.sandbox import SandboxConnection

    clean_leftovers()
    home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX))
    (home / "owner.pid").write_text(str(os.getpid()))
    state = home / "run" / "sandbox.json"
    log = open(home / "sandbox.log", "w+b")  # noqa: SIM115 - closed in finally
    env = dict(os.environ, QUANTLIB_HOME=str(home))
    cmd = [sys.executable, "-m", "quantlib.pipeline.sandboxproc", str(os.getpid()),
           "data", "sandbox", "--assets", str(n_assets),
           "--years", str(years), "--seed", str(seed), "--end", end,
           "--markets", ",".join(markets)] + (["--start", start] if start else [])
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while not state.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-800:]
                raise SourceError("the sandbox process must start and write its state file",
                                  found=f"exit code {proc.poll()}; output: {tail!r}",
                                  fix="run `quantlib data sandbox` by hand to see why",
                                  source="sandbox", file=str(state))
            time.sleep(0.2)
        time.sleep(0.1)  # the state file is written whole, but let the servers settle
        yield SandboxConnection.load(state)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":  # the sandbox child: ``<parent pid> data sandbox ...``
    _die_with_parent(int(sys.argv[1]))
    from quantlib.cli import main

    sys.exit(main(sys.argv[2:]))
