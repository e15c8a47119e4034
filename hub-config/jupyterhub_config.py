"""JupyterHub configuration of the local (one-machine) platform.

Everything configurable lives in platform.yaml (checked against platform.schema.json);
this file only hands JupyterHub's config object to quantlib, which reads it. Start the hub
with `quantlib platform up` (it sets QUANTLIB_HOME, the port and the run id), or directly:

    QUANTLIB_HOME=~/.quantlib jupyterhub -f hub-config/jupyterhub_config.py
"""

from quantlib.platform.hubconfig import configure

configure(c)  # noqa: F821 (`c` is provided by JupyterHub when it loads this file)
