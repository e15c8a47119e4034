"""A guard against a deadlock in icechunk-python's ``IcechunkStore.__str__``.

zarr formats ``str(StorePath(store, path))`` each time it opens a group or array
(``zarr.core.group._read_metadata_v3``), on its I/O event-loop thread. icechunk's
``__str__`` (its ``PyRepr`` fields, icechunk-python/src/store.rs) takes the session's
lock with ``blocking_read()`` *holding the GIL*. A write in flight on another thread
(a dask task's ``set_orthogonal_selection``) holds the session's write lock and needs
the GIL to finish: neither moves. Seen once: a 20 y full build hung for good in
``_write_lazy_panels`` (every thread idle; the zarr loop in ``IcechunkStore.__str__``).

The string is only a label (zarr puts it in metadata error messages), so it is
replaced by one built without touching the session. :func:`install` is idempotent
and runs when :mod:`quantlib.store` is imported.
"""

from __future__ import annotations

from typing import Any

import icechunk

__all__ = ["install"]


def _label(self: Any) -> str:
    return f"<icechunk.IcechunkStore at 0x{id(self):x}>"


def install() -> None:
    """Replace ``IcechunkStore.__str__`` by a label that takes no lock.

    Examples
    --------
    >>> import icechunk, tempfile
    >>> install()
    >>> repo = icechunk.Repository.create(icechunk.local_filesystem_storage(tempfile.mkdtemp()))
    >>> str(repo.writable_session("main").store).startswith("<icechunk.IcechunkStore at 0x")
    True
    """
    icechunk.IcechunkStore.__str__ = _label  # type: ignore[method-assign]


install()
