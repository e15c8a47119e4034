"""Panel apps served by ``quantlib dashboards serve``: gallery, tear sheet, what-if, data health.

Each module exposes ``page()``, a factory called once per browser session.
"""

__all__ = ["gallery", "tearsheet", "whatif", "health"]
