"""The dashboards server: ``pages`` (the page registry, ``dashboards/pages.yaml``),
``launch`` (one Bokeh/Panel server for every page), ``session`` (per-process settings,
the current viewer, the results view)."""

__all__ = ["pages", "launch", "session"]
