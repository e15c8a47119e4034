"""Placeholder: replaced below."""

import panel as pn

from dashboards.common import header, viewer_or_error

__all__ = ["page"]


def page() -> pn.viewable.Viewable:
    viewer, _ = viewer_or_error()
    return pn.Column(header("health", viewer))
