"""``quantlib backtest ...``: list strategies, run one, sweep a grid, publish a result.

``run`` and ``sweep`` read the catalog (``--store``, default the configured store) by
default; ``--synthetic`` backtests a generated panel instead, and such a result is only
published with ``--allow-synthetic``, its title marked ``[synthetic]``.
"""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from quantlib.backtest.result import to_jsonable
from quantlib.errors import BacktestError, StrategyError

__all__ = ["backtest"]


def _parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise StrategyError("parameters must look like name=value", found=repr(item),
                                fix="pass e.g. -p fast=10", field=item)
        out[key] = yaml.safe_load(raw)  # data, not code: numbers, lists, booleans
    return out


def _data(opts: dict[str, Any]) -> Any:
    """The backtest data: the catalog (one pinned snapshot) unless ``--synthetic``."""
    markets = [m for m in opts["markets"].split(",") if m]
    if opts["synthetic"]:
        from quantlib.backtest.synthetic import make_dataset

        return make_dataset(opts["assets"], opts["days"], seed=opts["seed"],
                            markets=tuple(markets))
    import quantlib
    from quantlib.errors import QuantlibError

    params = {k: opts[k] for k in ("start", "end") if opts[k]}
    try:
        # prices + universe + fundamentals from ONE pinned snapshot (attrs["snapshot"])
        return quantlib.load_dataset(opts["store"], compute=True, markets=markets, **params)
    except QuantlibError as exc:
        raise BacktestError("backtest data is read from the catalog's store by default",
                            found=f"{type(exc).__name__}: {exc}",
                            fix="pass --store URL (a refreshed store), or --synthetic for a "
                                "generated panel") from exc


_data_options = [
    click.option("--store", default=None, help="store URL to read (default: the configured "
                 "store)"),
    click.option("--markets", default="US", show_default=True, help="comma separated"),
    click.option("--start", default=None, help="first date (catalog)"),
    click.option("--end", default=None, help="last date (catalog)"),
    click.option("--synthetic", is_flag=True, help="backtest a generated panel instead of "
                 "the catalog (results are marked synthetic)"),
    click.option("--assets", default=50, show_default=True, help="synthetic panel size"),
    click.option("--days", default=756, show_default=True, help="synthetic sessions"),
    click.option("--seed", default=0, show_default=True, help="synthetic generator seed"),
    click.option("--catalog", is_flag=True, hidden=True, help="(the default now)"),
]


def _with_data(f: Any) -> Any:
    for opt in reversed(_data_options):
        f = opt(f)
    return f


@click.group()
def backtest() -> None:
    """Run, sweep and publish backtests."""


@backtest.command("list")
def list_cmd() -> None:
    """Registered strategies and their parameters."""
    from quantlib.backtest.strategies import STRATEGIES

    for name in sorted(STRATEGIES):
        d = STRATEGIES[name].describe()
        params = ", ".join(f"{k}={v['default']!r}" for k, v in d["params"].items())
        click.echo(f"{name}({params})")


@backtest.command("run")
@click.argument("strategy")
@click.option("-p", "--param", "params", multiple=True, help="name=value (YAML value)")
@_with_data
@click.option("--publish", "title", default=None, help="publish under this title")
@click.option("--tag", "tags", multiple=True)
@click.option("--allow-synthetic", is_flag=True,
              help="allow publishing a result on synthetic data (its title is marked)")
@click.option("--replace", is_flag=True,
              help="replace a different published result of the same title")
def run_cmd(strategy: str, params: tuple[str, ...], title: str | None, tags: tuple[str, ...],
            allow_synthetic: bool, replace: bool, **opts: Any) -> None:
    """Run STRATEGY on the catalog and print its metrics as JSON (optionally publish it).

    ``metrics`` are raw numbers, ``units`` their units and ``display`` the same text the
    dashboards show (quantlib.backtest.metrics.format_metric).
    """
    from quantlib.backtest.engine import run
    from quantlib.backtest.metrics import format_metric, metric_units
    from quantlib.results import publish

    kwargs = _parse_params(params)  # a malformed -p fails before any data is read
    res = run(strategy, _data(opts), **kwargs)
    out: dict[str, Any] = {"result_id": res.result_id, "snapshot": res.provenance["snapshot"],
                           "synthetic": bool(res.provenance.get("synthetic")),
                           "metrics": res.metrics, "units": metric_units(res.metrics),
                           "display": {k: format_metric(k, v) for k, v in res.metrics.items()}}
    if title:
        out["published"] = publish(res, title, tags=list(tags), replace=replace,
                                   allow_synthetic=allow_synthetic)
    click.echo(json.dumps(to_jsonable(out), indent=1, default=str))


@backtest.command("sweep")
@click.argument("strategy")
@click.option("-g", "--grid", "grid", multiple=True, help="name=[v1, v2, ...]")
@_with_data
@click.option("--per-asset", is_flag=True)
@click.option("--scheduler", default=None, help="Dask scheduler address")
def sweep_cmd(strategy: str, grid: tuple[str, ...], per_asset: bool, scheduler: str | None,
              **opts: Any) -> None:
    """Sweep STRATEGY over a grid and print the metrics table."""
    from quantlib.backtest.sweep import sweep

    client = None
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
    g = {k: (v if isinstance(v, list) else [v]) for k, v in _parse_params(grid).items()}
    df = sweep(strategy, g, _data(opts), client=client,
               per_asset=per_asset)
    click.echo(df.to_string(index=False))
