"""Jupyter server extension of the platform's single-user servers.

Enabled by ``hub-config/lab/config/jupyter_server_config.json`` (the hub points the
server's ``JUPYTER_CONFIG_PATH`` there). When the server starts, as the user:

1. the example notebooks are installed in the server's root folder (the user's home),
   see :func:`quantlib.lab.examples.install_examples`; the source folder is
   ``$QUANTLIB_EXAMPLES`` (set by the hub) or the repository's ``notebooks/``;
2. clusters started in kernels are kept in dask-labextension's sidebar list
   (:class:`quantlib.lab.clusters.LabClusterSync`, polled every 2 s); kernels learn the
   registration folder from ``QUANTLIB_LAB_CLUSTERS``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from quantlib.lab.clusters import ENV_VAR, LabClusterSync
from quantlib.lab.examples import install_examples

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]

REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "quantlib.lab.server"}]


def _install(serverapp: Any) -> None:
    from importlib.metadata import version

    source = Path(os.environ.get("QUANTLIB_EXAMPLES") or REPO_NOTEBOOKS)
    if not source.is_dir():
        serverapp.log.warning("quantlib: no example notebooks at %s", source)
        return
    try:
        report = install_examples(serverapp.root_dir, source, version=version("quantlib"))
    except OSError as exc:  # a read-only or full home must not stop the server
        serverapp.log.warning("quantlib: example notebooks not installed: %s", exc)
        return
    serverapp.log.info("quantlib: examples copied %s, updated %s, new versions %s",
                       report.copied, report.updated, report.versioned)


def _start_cluster_sync(serverapp: Any) -> None:
    from dask_labextension.manager import manager
    from jupyter_core.paths import jupyter_runtime_dir
    from tornado.ioloop import PeriodicCallback

    folder = Path(jupyter_runtime_dir()) / "quantlib-dask"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_VAR] = str(folder)  # inherited by kernels started from now on
    sync = LabClusterSync(folder, manager)
    serverapp.web_app.settings["quantlib_cluster_sync"] = sync
    PeriodicCallback(sync.sync, 2000).start()


def _load_jupyter_server_extension(serverapp: Any) -> None:
    _install(serverapp)
    _start_cluster_sync(serverapp)
