"""An idle dashboards server does not spin: Panel's busy-counter cleanup starts on the loop.

Panel 1.10 starts that cleanup at the first busy event; with ``nthreads`` (the dashboards
server's ``num_threads``) the event comes from a pool thread, where the cleanup's
``PeriodicCallback.start`` re-queues itself for ever (the CI run's session dashboards
server: ~60 % of a core for 40 minutes after its tests). ``serve_dashboards`` starts the
cleanup on the server's loop first (``launch._start_busy_cleanup``). A real chromium opens
one ``onload`` page of a server set up the same way (``busy_cleanup_app.py``, its own
process: Panel's state is global); the cleanup must then be running as a loop task.
Without the workaround the same script prints ``started=False`` (checked by hand: if Panel
fixes the bug upstream, the workaround can go).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantlib.platform.hubconfig import free_port

pytestmark = pytest.mark.browser

APP = Path(__file__).with_name("busy_cleanup_app.py")


def test_busy_cleanup_runs_on_the_loop_after_a_page_view():
    done = subprocess.run([sys.executable, str(APP), str(free_port())], capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last == "started=True", done.stdout + done.stderr[-3000:]
