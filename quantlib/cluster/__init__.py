"""Elastic Dask clusters: an adaptive LocalCluster or a dask-kubernetes operator KubeCluster.

In a notebook: ``client = quantlib.cluster.connect()`` picks the backend (a pod gets
a KubeCluster running its own image, a laptop a LocalCluster), adapts between the
configured bounds and shuts the cluster down when idle.
"""

from quantlib.cluster.connect import ClusterClient, connect, resolve_kind
from quantlib.cluster.kube import REQUIRED_PERMISSIONS, notebook_image, preflight
from quantlib.cluster.local import configure_dashboard_link
from quantlib.cluster.profiles import get_profile, load_profiles
from quantlib.cluster.spec import cluster_name, make_autoscaler_spec, make_cluster_spec

__all__ = [
    "connect",
    "resolve_kind",
    "ClusterClient",
    "make_cluster_spec",
    "make_autoscaler_spec",
    "cluster_name",
    "load_profiles",
    "get_profile",
    "preflight",
    "notebook_image",
    "configure_dashboard_link",
    "REQUIRED_PERMISSIONS",
]
