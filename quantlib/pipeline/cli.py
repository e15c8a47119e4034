"""``quantlib data refresh|ingest|status|compact``.

Errors are :class:`~quantlib.errors.QuantlibError` subclasses; :func:`quantlib.cli.main`
prints their message and exits with their ``exit_code`` (e.g. 4 for a rejected batch).
"""

from __future__ import annotations

import json
import sys

import click

from quantlib.markets import DEFAULT_MARKETS

__all__ = ["refresh", "ingest", "status", "compact"]

_STORE = click.option("--store", "store", default=None, metavar="URL",
                      help="Store URL (local folder or s3://bucket/prefix); default: config.")


def _markets(value: str) -> tuple[str, ...]:
    from quantlib.calendars import market

    codes = tuple(m.strip().upper() for m in value.split(",") if m.strip())
    for code in codes:
        market(code)  # raises CatalogError naming the bad code
    return codes


@click.command()
@_STORE
@click.option("--markets", default=",".join(DEFAULT_MARKETS), show_default=True,
              help="Comma-separated markets to refresh (FX always comes along).")
@click.option("--sandbox", is_flag=True, help="Start the vendor sandbox for this refresh.")
@click.option("--assets", "n_assets", type=int, default=None,
              help="Sandbox assets per market (default: config sandbox.n_assets).")
@click.option("--years", type=float, default=None,
              help="Sandbox years of history (default: config sandbox.years).")
@click.option("--max-bad-fraction", type=click.FloatRange(0.0, 1.0), default=None,
              help="Per-market bad-row limit (default: config validation.max_bad_row_fraction).")
@click.option("--tag", default=None, help="Tag for the new version.")
@click.option("--full", is_flag=True, help="Rebuild the whole history (not incremental).")
@click.option("--partitioned/--one-frame", default=None,
              help="First build of an empty store as market x time-partition Dask tasks, "
              "or one frame per market (default: partitioned above "
              "quantlib.pipeline.build.ONE_FRAME_MAX_ROWS price bars).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def refresh(store: str | None, markets: str, sandbox: bool, n_assets: int | None,
            years: float | None, max_bad_fraction: float | None, tag: str | None,
            full: bool, partitioned: bool | None, progress: bool) -> None:
    """Fetch, validate and commit a new data version (one tagged snapshot)."""
    from quantlib.pipeline.refresh import refresh as run_refresh

    result = run_refresh(store, markets=_markets(markets), sandbox=sandbox, progress=progress,
                         max_bad_row_fraction=max_bad_fraction, n_assets=n_assets,
                         years=years, tag=tag, full=full, partitioned=partitioned)
    click.echo(str(result))


@click.command()
@click.argument("path")
@click.option("--format", "fmt", default="yahoo-csv", show_default=True,
              help="Reader of the drop's files.")
@click.option("--market", default="US", show_default=True)
@_STORE
@click.option("--max-bad-fraction", type=click.FloatRange(0.0, 1.0), default=None,
              help="Bad-row limit (default: config validation.max_bad_row_fraction).")
@click.option("--tag", default=None, help="Tag for the new version.")
def ingest(path: str, fmt: str, market: str, store: str | None,
           max_bad_fraction: float | None, tag: str | None) -> None:
    """Ingest a file drop (file or folder, e.g. bokeh-sampledata stocks) as a new version."""
    from quantlib.pipeline.ingest import ingest as run_ingest

    market = _markets(market)[0]
    click.echo(str(run_ingest(path, fmt, market, store, tag=tag,
                              max_bad_row_fraction=max_bad_fraction)))


@click.command()
@_STORE
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(store: str | None, as_json: bool) -> None:
    """Versions, freshness per market and source, quarantine counts."""
    from quantlib.pipeline.status import status as get_status

    st = get_status(store)
    if as_json:
        json.dump(st.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        click.echo(str(st))


@click.command()
@_STORE
@click.option("--tag", default=None, help="Tag for the new version.")
def compact(store: str | None, tag: str | None) -> None:
    """Rewrite fragmented panel arrays with the read-friendly chunks (its own commit)."""
    from quantlib.store.compact import compact as run_compact

    click.echo(str(run_compact(store, tag=tag)))
