"""The dashboards' pages, served by ``quantlib dashboards serve``; an installed package.

``pages.yaml`` (here) lists every page: route, title, kind and its ``"module:attr"``
target (see :mod:`quantlib.serving.server.pages`). Panel pages expose ``page()``, a
factory called once per browser session; HTML pages a Tornado handler class.
"""

__all__ = ["home", "gallery", "compare", "tearsheet", "whatif", "health"]
