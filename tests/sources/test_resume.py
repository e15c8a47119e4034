"""A fetch killed midway (SIGKILL) and rerun completes without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from quantlib.raw import RawZone
from quantlib.sources import fetch_market

CHILD = textwrap.dedent("""
    import sys
    from quantlib.raw import RawZone
    from quantlib.sources import RetryPolicy, fetch_market, load_connection
    slow = RetryPolicy(initial=60, maximum=60, jitter=0, max_attempts=5, max_total=600)
    fetch_market("KR", raw=RawZone(sys.argv[1]), connection=load_connection(),
                 fetch_id="crashed", retry=slow, workers=2)
""")


def test_resume_after_sigkill(sandbox, fast_retry, tmp_path):
    store = tmp_path / "store"
    # every file from July on fails transiently: the child stores the first half of the
    # year, then sits in a 60 s backoff, where it is killed
    sandbox.faults.add(kind="http_5xx", match="kr/prices/20250[7-9]*", times=None,
                       protocol="ftp")
    sandbox.faults.add(kind="http_5xx", match="kr/prices/20251*", times=None, protocol="ftp")
    env = {**os.environ, "QUANTLIB_FTP_URL": f"ftp://{sandbox.ftp_user}:"
           f"{sandbox.ftp_password}@{sandbox.ftp_host}:{sandbox.ftp_port}",
           "QUANTLIB_API_URL": sandbox.http_url, "QUANTLIB_API_KEY": sandbox.api_key}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(store)], env=env)
    try:
        deadline = time.monotonic() + 120
        manifest = store / "tables" / "manifest"
        while time.monotonic() < deadline:
            if manifest.exists() and len(list(manifest.glob("*.parquet"))) >= 2:
                break
            if child.poll() is not None:
                raise AssertionError(f"child exited early with {child.returncode}")
            time.sleep(0.2)
        time.sleep(1.0)   # let it reach the failing files and block in its backoff
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    partial = RawZone(str(store)).manifest()
    kr_price_files = sorted(f.path for f in sandbox.files if f.path.startswith("kr/prices/"))
    assert 40 <= len(partial) < len(kr_price_files)
    stored_before = set((store / "raw").rglob("*"))

    sandbox.faults.clear()
    raw = RawZone(str(store))
    new = fetch_market("KR", raw=raw, connection=sandbox, fetch_id="resumed", retry=fast_retry,
                       new_only=True)
    m = raw.manifest()
    assert not m.duplicated(["source", "file", "sha256", "status"]).any()
    want = {f.path: f.sha256 for f in sandbox.files if f.path.startswith("kr/")}
    got = m[m["source"] == "ftp-kr"]
    assert dict(zip(got["file"], got["sha256"], strict=True)) == want
    # only what the crashed run had not recorded was recorded now
    assert {d.file for d in new if d.source == "ftp-kr"} == set(want) - set(partial["file"])
    assert stored_before <= set((store / "raw").rglob("*"))
    for path, sha in want.items():
        assert raw.get(sha) == (sandbox.root / path).read_bytes()
