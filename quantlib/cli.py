"""The ``quantlib`` command line.

Each command lives beside the code it drives and is imported only when used, so
``quantlib --help`` stays fast. A :class:`~quantlib.errors.QuantlibError` ends the
program with its message on stderr and its ``exit_code``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from quantlib.errors import QuantlibError

__all__ = ["main", "cli"]


class LazyGroup(click.Group):
    """A click group whose subcommands are ``"module:attribute"`` strings, imported on use."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            target, _help = self.lazy[cmd_name]
            module, _, attr = target.partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_t, help_) in sorted(self.lazy.items())]
        rows += [(name, cmd.get_short_help_str()) for name, cmd in sorted(self.commands.items())]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup, lazy={
    "backtest": ("quantlib.backtest.cli:backtest", "Run, sweep and publish backtests."),
    "cluster": ("quantlib.cluster.cli:cluster", "Start or inspect a Dask cluster."),
    "schedule": ("quantlib.schedule.cli:schedule", "Scheduled notebook jobs."),
    "platform": ("quantlib.platform.cli:platform", "Bring the local platform up or down."),
    "dashboards": ("quantlib.serving.cli:dashboards", "Serve dashboards and the results API."),
})
@click.version_option(package_name="quantlib")
def cli() -> None:
    """Quant research platform: point-in-time data, backtests, dashboards."""


@cli.group(cls=LazyGroup, lazy={
    "sandbox": ("quantlib.sandbox.cli:sandbox", "Start the vendor sandbox (FTP + HTTP) on loopback."),
    "refresh": ("quantlib.pipeline.cli:refresh", "Fetch, validate, align and commit a new version."),
    "ingest": ("quantlib.pipeline.cli:ingest", "Ingest a file drop (e.g. yahoo-csv) into the store."),
    "status": ("quantlib.pipeline.cli:status", "Versions, freshness and quarantine counts."),
    "compact": ("quantlib.pipeline.cli:compact", "Rechunk fragmented panels (own commit)."),
})
def data() -> None:
    """Vendor data: sandbox, refresh, ingest, status, compact."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quantlib`` console script; returns the exit status."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except QuantlibError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
