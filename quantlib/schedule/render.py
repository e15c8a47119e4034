"""Render the jobs file into Kubernetes ``CronJob`` manifests.

Each job becomes a ``batch/v1`` CronJob that runs the same notebook in the same
single-user image, through the same code path as the local service
(``quantlib schedule run <job> --retries 0``: papermill, run record, state) with
Kubernetes doing the retries:

=====================  ==============================================================
schedules.yaml         CronJob
=====================  ==============================================================
``cron``               ``spec.schedule`` (``timeZone: Etc/UTC``)
(no overlap)           ``concurrencyPolicy: Forbid``
(missed ticks -> once) ``startingDeadlineSeconds``: a tick missed while the controller
                       was down still starts, once, within this window
``retries``            ``jobTemplate.spec.backoffLimit``
``timeout_s``          pod ``activeDeadlineSeconds``; the Job's is
                       ``timeout_s * (retries + 1)``
``owner``              label ``quantlib.io/owner``
``enabled: false``     ``suspend: true``
=====================  ==============================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from quantlib.schedule.jobs import Job, load_schedules

__all__ = ["render_cronjobs", "write_cronjobs", "cronjob_for", "DEFAULT_IMAGE",
           "IMAGE_REPO_ROOT"]

#: single-user image built by hub-config/Dockerfile (tag set at deploy time)
DEFAULT_IMAGE = "ghcr.io/quant-platform/quantlib-singleuser:latest"
#: where hub-config/Dockerfile copies the repository (notebooks/, catalogs/) in the image
IMAGE_REPO_ROOT = "/srv/quantlib"
_RUNS_MOUNT = "/var/lib/quantlib"


def _labels(job: Job) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "quantlib",
            "app.kubernetes.io/component": "scheduled-notebook",
            "quantlib.io/job": job.name, "quantlib.io/owner": job.owner}


def cronjob_for(job: Job, *, image: str = DEFAULT_IMAGE, namespace: str | None = None,
                service_account: str = "quantlib-scheduler") -> dict[str, Any]:
    """The CronJob manifest of one job.

    Examples
    --------
    >>> from quantlib.schedule.jobs import Job
    >>> from pathlib import Path
    >>> job = Job("nightly", "0 1 * * *", Path("/x/nb.ipynb"), "data-team", retries=2,
    ...           timeout_s=600, notebook_rel="notebooks/nb.ipynb")
    >>> cj = cronjob_for(job)
    >>> cj["spec"]["schedule"], cj["spec"]["concurrencyPolicy"]
    ('0 1 * * *', 'Forbid')
    >>> cj["spec"]["jobTemplate"]["spec"]["backoffLimit"]
    2
    >>> cj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    1800
    """
    labels = _labels(job)
    container = {
        "name": "notebook",
        "image": image,
        "command": ["quantlib", "schedule", "run", job.name, "--retries", "0",
                    "--schedules", f"{IMAGE_REPO_ROOT}/catalogs/schedules.yaml"],
        "env": [{"name": "QUANTLIB_HOME", "value": _RUNS_MOUNT},
                {"name": "QUANTLIB_SCHEDULED_NOTEBOOK", "value": job.notebook_rel}],
        "envFrom": [{"configMapRef": {"name": "quantlib-platform"}},
                    {"secretRef": {"name": "quantlib-store-credentials", "optional": True}}],
        "resources": {"requests": {"cpu": "1", "memory": "4Gi"},
                      "limits": {"memory": "8Gi"}},
        "volumeMounts": [{"name": "runs", "mountPath": _RUNS_MOUNT},
                         {"name": "shared-data", "mountPath": "/srv/data", "readOnly": True}],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "activeDeadlineSeconds": int(job.timeout_s),
        "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
        "containers": [container],
        "volumes": [
            {"name": "runs", "persistentVolumeClaim": {"claimName": "quantlib-schedule-runs"}},
            {"name": "shared-data", "persistentVolumeClaim": {
                "claimName": "quantlib-shared-data", "readOnly": True}},
        ],
    }
    metadata: dict[str, Any] = {"name": f"quantlib-{job.name}", "labels": labels,
                                "annotations": {"quantlib.io/notebook": job.notebook_rel,
                                                "quantlib.io/description": job.description}}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            "schedule": job.cron,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 6 * 3600,
            "suspend": not job.enabled,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": int(job.retries),
                    "activeDeadlineSeconds": int(job.timeout_s) * (int(job.retries) + 1),
                    "ttlSecondsAfterFinished": 7 * 24 * 3600,
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                },
            },
        },
    }


def render_cronjobs(schedules_path: str | Path | None = None, *, image: str = DEFAULT_IMAGE,
                    namespace: str | None = None) -> list[dict[str, Any]]:
    """One CronJob manifest per job in the jobs file, in file order.

    Examples
    --------
    >>> [cj["metadata"]["name"] for cj in render_cronjobs("catalogs/schedules.yaml")]
    ['quantlib-refresh-data', 'quantlib-compact-store', 'quantlib-data-health-report']
    """
    return [cronjob_for(job, image=image, namespace=namespace)
            for job in load_schedules(schedules_path).values()]


def write_cronjobs(schedules_path: str | Path, output: str | Path, *,
                   image: str = DEFAULT_IMAGE, namespace: str | None = None) -> Path:
    """Write :func:`render_cronjobs` as a multi-document YAML file; return its path."""
    docs = render_cronjobs(schedules_path, image=image, namespace=namespace)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Generated by `quantlib schedule render-k8s` from {schedules_path}.\n"
              "# Do not edit: change catalogs/schedules.yaml and re-render.\n")
    out.write_text(header + yaml.safe_dump_all(docs, sort_keys=False))
    return out
