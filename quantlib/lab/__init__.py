"""The researcher's JupyterLab: examples in the home, Dask sidebar, Panel behind the hub.

- :mod:`quantlib.lab.server`: the single-user server's extension (examples, clusters);
- :mod:`quantlib.lab.startup`: the kernels' IPython extension (Panel prefix, quiet logs);
- :mod:`quantlib.lab.clusters`: notebook clusters in dask-labextension's list;
- :mod:`quantlib.lab.examples`: copy the shipped notebooks without overwriting edits;
- :mod:`quantlib.lab.serve`: ``serve(app)``, a Panel app from a kernel behind the hub.
"""

from quantlib.lab.clusters import register_cluster, unregister_cluster
from quantlib.lab.examples import ExamplesReport, install_examples
from quantlib.lab.serve import Served, serve
from quantlib.lab.startup import panel_endpoint

__all__ = ["install_examples", "ExamplesReport", "register_cluster", "unregister_cluster",
           "panel_endpoint", "serve", "Served"]
