"""``quantlib backtest ...``: list strategies, run one, sweep a grid, publish a result."""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from quantlib.errors import StrategyError

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


def _data(assets: int, days: int, seed: int, markets: str, catalog: bool) -> Any:
    if catalog:
        import quantlib

        # prices + universe + fundamentals from ONE pinned snapshot (attrs["snapshot"])
        return quantlib.load_dataset(compute=True, markets=markets.split(","))
    from quantlib.backtest.synthetic import make_dataset

    return make_dataset(assets, days, seed=seed, markets=tuple(m for m in markets.split(",")
                                                               if m))


_data_options = [
    click.option("--assets", default=50, show_default=True, help="synthetic panel size"),
    click.option("--days", default=756, show_default=True, help="synthetic sessions"),
    click.option("--seed", default=0, show_default=True),
    click.option("--markets", default="US", show_default=True, help="comma separated"),
    click.option("--catalog", is_flag=True, help="read the Intake catalog instead"),
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
def run_cmd(strategy: str, params: tuple[str, ...], assets: int, days: int, seed: int,
            markets: str, catalog: bool, title: str | None, tags: tuple[str, ...]) -> None:
    """Run STRATEGY and print its metrics as JSON (optionally publish it)."""
    from quantlib.backtest.engine import run
    from quantlib.results import publish

    res = run(strategy, _data(assets, days, seed, markets, catalog), **_parse_params(params))
    out = {"result_id": res.result_id, "metrics": res.metrics}
    if title:
        out["published"] = publish(res, title, tags=list(tags))
    click.echo(json.dumps(out, indent=1, default=str))


@backtest.command("sweep")
@click.argument("strategy")
@click.option("-g", "--grid", "grid", multiple=True, help="name=[v1, v2, ...]")
@_with_data
@click.option("--per-asset", is_flag=True)
@click.option("--scheduler", default=None, help="Dask scheduler address")
def sweep_cmd(strategy: str, grid: tuple[str, ...], assets: int, days: int, seed: int,
              markets: str, catalog: bool, per_asset: bool, scheduler: str | None) -> None:
    """Sweep STRATEGY over a grid and print the metrics table."""
    from quantlib.backtest.sweep import sweep

    client = None
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
    g = {k: (v if isinstance(v, list) else [v]) for k, v in _parse_params(grid).items()}
    df = sweep(strategy, g, _data(assets, days, seed, markets, catalog), client=client,
               per_asset=per_asset)
    click.echo(df.to_string(index=False))
