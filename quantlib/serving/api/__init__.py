"""The results API: ``app`` (FastAPI routes), ``docs`` (its docs pages, rendered locally),
``cache`` (response caches: memory, Redis), ``publishing`` (the publish route, the only
writer of the shared results store)."""

__all__ = ["app", "docs", "cache", "publishing"]
