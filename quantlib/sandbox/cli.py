"""``quantlib data sandbox``: run the vendor sandbox until Ctrl-C or SIGTERM.

``quantlib data sandbox --advance DATE`` instead moves the clock of the sandbox already
running (found through its state file) to ``DATE``, prints the files it delivered and
exits.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import click

from quantlib.config import load_config
from quantlib.markets import DEFAULT_MARKETS
from quantlib.sandbox.faults import parse_fault_spec
from quantlib.sandbox.server import SandboxConnection, start_sandbox

__all__ = ["sandbox", "STOP_GRACE_S"]

STOP_GRACE_S = 15.0  # an orphaned sandbox is gone this long after its SIGTERM, at most


def _markets(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(m.strip().upper() for m in value.split(",") if m.strip())


def _sizes(_ctx: click.Context, _param: click.Parameter, value: str | None
           ) -> int | dict[str, int] | None:
    """``300`` or ``KR=5000,US=14000,EU=6000``."""
    if value is None:
        return None
    try:
        if "=" not in value:
            return int(value)
        pairs = (item.split("=") for item in value.split(",") if item.strip())
        return {code.strip().upper(): int(n) for code, n in pairs}
    except ValueError:
        raise click.BadParameter(f"expected a number or MARKET=N,... (e.g. KR=5000,US=14000);"
                                 f" found {value!r}") from None


@click.command("sandbox")
@click.option("--assets", "n_assets", default=None, callback=_sizes,
              help="Assets per market, one number or MARKET=N,... (e.g. "
              "KR=5000,US=14000,EU=6000) [config sandbox.n_assets, 300].")
@click.option("--years", type=float, default=None, help="Years of history [config, 10].")
@click.option("--seed", type=int, default=None, help="Random seed [config, 42].")
@click.option("--end", default=None, help="Last date YYYY-MM-DD: the vendor's clock "
              "[config, 2025-12-31].")
@click.option("--start", default=None, help="First date YYYY-MM-DD [--end minus --years].")
@click.option("--advance", "advance_to", default=None, metavar="DATE",
              help="Move the running sandbox's clock to DATE and exit.")
@click.option("--markets", default=",".join(DEFAULT_MARKETS), callback=_markets,
              show_default=True,
              help="Comma-separated market codes.")
@click.option("--fault", "faults", multiple=True, metavar="KIND[:GLOB[:TIMES]]",
              help="Arm a fault at start (repeatable), e.g. truncate:kr/prices/*:2.")
@click.option("--ftp-port", type=int, default=0, show_default=True, help="0 = any free port.")
@click.option("--http-port", type=int, default=0, show_default=True, help="0 = any free port.")
@click.option("--rate", type=float, default=50.0, show_default=True,
              help="API rate limit, requests per second per key.")
@click.option("--burst", type=float, default=100.0, show_default=True,
              help="API rate limit burst size.")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Write the FTP tree here (default: a temporary folder).")
@click.option("--stream", "streamed", is_flag=True,
              help="Serve out of core (the real-size vendor): files written month by "
              "month, API prices/fundamentals from Arrow partitions beside --root.")
@click.option("--show-secrets", is_flag=True, help="Print the FTP password and API key.")
def sandbox(n_assets: int | dict[str, int] | None, years: float | None, seed: int | None,
            end: str | None, start: str | None, advance_to: str | None,
            markets: tuple[str, ...], faults: tuple[str, ...], ftp_port: int, http_port: int,
            rate: float, burst: float, root: str | None, streamed: bool,
            show_secrets: bool) -> None:
    """Start the vendor sandbox (FTP + HTTP JSON API) on 127.0.0.1 until interrupted."""
    if advance_to is not None:
        _advance(advance_to)
        return
    specs = [parse_fault_spec(f) for f in faults]
    cfg = load_config()["sandbox"]
    sb = start_sandbox(
        n_assets=n_assets or cfg["n_assets"], years=years or cfg["years"],
        seed=cfg["seed"] if seed is None else seed, end=end or cfg["end"], markets=markets,
        start=start, rate_limit=(rate, burst), ftp_port=ftp_port, http_port=http_port,
        root=root, progress=True, streamed=streamed)
    try:
        for spec in specs:
            sb.faults.add(**spec)
        _print_info(sb, show_secrets)
        _wait_for_signal()
    finally:
        _exit_after(STOP_GRACE_S)
        sb.stop()
        click.echo("sandbox stopped")


def _advance(to: str) -> None:
    answer = SandboxConnection.load().advance(to)
    files = answer.get("files", [])
    click.echo(f"clock:    {answer['start']}..{answer['end']} ({len(files)} files delivered)")
    for f in files:
        click.echo(f"file:     {f['path']} ({f['rows']} rows)")


def _print_info(sb, show_secrets: bool) -> None:  # type: ignore[no-untyped-def]
    hidden = "(hidden; --show-secrets or read the state file)"
    u = sb.reference
    bars = "streamed" if sb.vendor is not None else f"{len(u.prices)} bars"
    click.echo(f"universe: {len(u.assets)} assets in {','.join(u.markets)}, "
               f"{u.start.date()}..{u.end.date()}, seed {u.seed}, {bars}")
    click.echo(f"ftp:      ftp://{sb.ftp_host}:{sb.ftp_port}  user {sb.ftp_user}  password "
               f"{sb.ftp_password if show_secrets else hidden}")
    click.echo(f"http:     {sb.http_url}  api key {sb.api_key if show_secrets else hidden}")
    click.echo(f"tree:     {sb.root} ({len(sb.files)} files)")
    for f in sb.faults.list():
        click.echo(f"fault:    {f.kind} on {f.match} x{f.times or 'inf'}")
    click.echo(f"state:    {sb.state_file}")
    click.echo("running; Ctrl-C or SIGTERM to stop", nl=True)


def _exit_after(seconds: float) -> None:
    """Exit the process ``seconds`` from now if it is still stopping by then.

    Stopping closes both servers and removes the tree; a handler thread stuck on a dead
    client (its refresh SIGKILLed) or a busy box must not keep an orphaned sandbox alive:
    what it leaves behind is removed by the next start
    (:func:`quantlib.pipeline.sandboxproc.clean_leftovers`).
    """
    timer = threading.Timer(seconds, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


def _wait_for_signal() -> None:
    done = threading.Event()

    def _handler(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(0.5):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
