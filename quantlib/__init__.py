"""quantlib: the quant research platform's library."""
__version__ = "0.1.0"

from quantlib.catalog import open_catalog  # noqa: E402
from quantlib.results import publish  # noqa: E402
from quantlib.store import sql  # noqa: E402

__all__ = ["__version__", "open_catalog", "publish", "sql"]
