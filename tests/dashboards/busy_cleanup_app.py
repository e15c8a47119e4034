"""Run by test_server_idle.py: a Panel server set up like the dashboards' (``nthreads``,
an ``onload`` page), one page view in chromium, then whether Panel's busy-counter cleanup
started. Prints ``started=True`` or ``started=False``; ``--no-fix`` skips the workaround."""

from __future__ import annotations

import sys
import threading


def main(port: int, fix: bool) -> None:
    import panel as pn
    from panel.io.state import state
    from tornado.ioloop import IOLoop

    from quantlib.serving.server.launch import _start_busy_cleanup
    from quantlib.testing.browser import CHROMIUM, CHROMIUM_ARGS

    def app():
        body = pn.Column("loading")
        pn.state.onload(lambda: setattr(body, "objects", ["loaded"]))  # runs on a pool thread
        return body

    pn.config.nthreads = 4  # type: ignore[misc]
    loop = IOLoop.current()
    if fix:
        _start_busy_cleanup(loop)
    server = pn.serve({"app": app}, port=port, address="127.0.0.1", show=False, start=False,
                      websocket_origin=[f"127.0.0.1:{port}"])
    outcome: list[str] = []

    def visit() -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/app", timeout=120_000)
                page.wait_for_selector("text=loaded", timeout=120_000)
                browser.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            outcome.append(f"error={type(exc).__name__}: {exc}")

        def report() -> None:
            cleanup = state._busy_cleanup_scheduled
            outcome.append(f"started={bool(cleanup) and cleanup._cb is not None}")
            loop.stop()
        loop.add_callback(report)

    server.start()
    threading.Thread(target=visit, daemon=True).start()
    loop.start()
    print(*outcome)
    server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), fix="--no-fix" not in sys.argv)
