"""Run the vendor sandbox in its own process for a refresh.

The sandbox's FTP and HTTP servers are Python threads; run inside the refreshing
process they share its GIL with the fetch, standardize and validate work and slow both
down (a real vendor never does). :func:`sandbox_process` starts ``quantlib data
sandbox`` as a child process with a private ``QUANTLIB_HOME`` (so it never overwrites
the user's sandbox state file), waits for its state file and stops it with SIGTERM.
"""

from __future__ import annotations

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

__all__ = ["sandbox_process"]


@contextmanager
def sandbox_process(*, n_assets: int, years: float, seed: int, end: str,
                    markets: tuple[str, ...], timeout_s: float = 600.0) -> Iterator[object]:
    """Start a sandbox child process; yield its :class:`SandboxConnection`; stop it.

    Raises
    ------
    SourceError
        If the child exits or writes no state file within ``timeout_s``; the message
        carries the end of its output.
    """
    from quantlib.sandbox import SandboxConnection

    home = Path(tempfile.mkdtemp(prefix="quantlib-sandbox-home-"))
    state = home / "run" / "sandbox.json"
    log = open(home / "sandbox.log", "w+b")  # noqa: SIM115 - closed in finally
    env = dict(os.environ, QUANTLIB_HOME=str(home))
    cmd = [sys.executable, "-m", "quantlib.cli", "data", "sandbox", "--assets", str(n_assets),
           "--years", str(years), "--seed", str(seed), "--end", end,
           "--markets", ",".join(markets)]
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
