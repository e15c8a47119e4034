"""A Panel app served from a kernel answers under the hub's proxied path."""

from __future__ import annotations

import re
import time

import requests

from quantlib.lab.serve import serve


def test_app_and_its_resources_answer_under_the_proxied_prefix():
    import panel as pn

    served = serve(pn.pane.Markdown("# hello from the kernel"), title="t",
                   environ={"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"})
    try:
        port = int(re.search(r"/proxy/absolute/(\d+)/$", served.url).group(1))
        assert served.url == f"/user/alice/proxy/absolute/{port}/"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                page = requests.get(base + served.url, timeout=30)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert page.status_code == 200 and "<title>t</title>" in page.text
        scripts = re.findall(r'src="([^"]+\.js[^"]*)"', page.text)
        assert scripts, page.text[:500]
        for src in scripts:  # every script the page loads is under the same prefix
            assert src.startswith(served.url) or src.startswith(("static/", "./")), src
            url = src if src.startswith("/") else served.url + src
            assert requests.get(base + url, timeout=30).status_code == 200, url
        assert "Open the app" in served._repr_html_()
    finally:
        served.stop()
