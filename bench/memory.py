"""Peak working memory of a bench step (Linux): reset the process's RSS high-water mark
before the step, read it after. Stdlib only (the peers' environment imports it too)."""

from __future__ import annotations

from pathlib import Path


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    return float("nan")


def rss_mb() -> float:
    """Resident set size now (MB)."""
    return _status("VmRSS")


def reset_peak() -> None:
    """Make the high-water mark the current RSS (``clear_refs`` 5; no-op where refused)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mb() -> float:
    """Peak RSS since the last :func:`reset_peak` (or the process's start), MB."""
    return _status("VmHWM")
