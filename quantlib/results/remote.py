"""Publishing from a notebook run by the hub: through the results service, never directly.

Under the local platform's per-user accounts (and on Kubernetes) the shared results
store is written by the results service only. The hub gives each single-user server
``QUANTLIB_RESULTS_API`` (the service's URL) and ``JUPYTERHUB_API_TOKEN`` (a token that
may publish, as that user and nobody else); :func:`quantlib.results.publish` then calls
:func:`publish_via_service`, which sends the saved result's files to
``POST <QUANTLIB_RESULTS_API>api/v1/results``. The service records the token's user as
the author. Outside the hub (no ``QUANTLIB_RESULTS_API``), ``publish`` writes directly.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

from quantlib.errors import StoreError
from quantlib.results.layout import result_files

if TYPE_CHECKING:
    from quantlib.backtest.result import Result

__all__ = ["service_target", "publish_via_service"]


def service_target(url: str | None) -> tuple[str, str] | None:
    """``(api_url, token)`` when ``publish`` must go through the service, else ``None``.

    Only when no explicit store ``url`` is given and the hub set both variables.

    Examples
    --------
    >>> service_target("memory://r") is None
    True
    """
    api = os.environ.get("QUANTLIB_RESULTS_API", "")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if url is not None or not api or not token:
        return None
    return api.rstrip("/") + "/", token


def publish_via_service(result: Result, api_url: str, token: str, *, title: str,
                        description: str = "", tags: list[str] | None = None,
                        allowed_params: dict[str, Any] | None = None,
                        replace: bool = False, allow_synthetic: bool = False,
                        timeout: float = 300.0) -> str:
    """Publish ``result`` through the results service; return its ``result_id``.

    Raises
    ------
    StoreError
        If the service refuses (the message carries its status and reason) or cannot
        be reached.
    """
    import requests

    files = {name: base64.b64encode(data).decode()
             for name, data in result_files(result).items()}
    body = {"title": title, "description": description, "tags": list(tags or []),
            "allowed_params": allowed_params, "replace": replace,
            "allow_synthetic": allow_synthetic, "files": files}
    url = f"{api_url}api/v1/results"
    try:
        resp = requests.post(url, json=body, timeout=timeout,
                             headers={"Authorization": f"token {token}"})
    except requests.RequestException as exc:
        raise StoreError("the results service must answer a publish", found=str(exc),
                         fix="check that the hub's results-api service runs", file=url) from exc
    if resp.status_code != 201:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text[:500]
        raise StoreError("the results service must accept the publish",
                         found=f"HTTP {resp.status_code}: {detail}",
                         fix="see the reason; publishing needs the custom:results:publish scope",
                         file=url)
    return str(resp.json()["result_id"])
