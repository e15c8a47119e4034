"""A Panel app served from a kernel answers under the hub's proxied path."""

from __future__ import annotations

import re
import time

import requests

from quantlib.lab.serve import route_show, serve


def _get(url: str) -> requests.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(url, timeout=30)
        except requests.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_app_and_its_resources_answer_under_the_proxied_prefix():
    import panel as pn

    served = serve(pn.pane.Markdown("# hello from the kernel"), title="t",
                   environ={"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"})
    try:
        port = int(re.search(r"/proxy/absolute/(\d+)/$", served.url).group(1))
        assert served.url == f"/user/alice/proxy/absolute/{port}/"
        base = f"http://127.0.0.1:{port}"
        page = _get(base + served.url)
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


def test_panel_show_in_a_hub_kernel_serves_behind_the_prefix_and_displays_the_link(capsys):
    import panel as pn
    import panel.io.server
    import panel.viewable

    original = panel.io.server.serve
    route_show({"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"})
    try:
        assert panel.viewable.serve is pn.serve is not original
        server = pn.pane.Markdown("# shown").show(title="shown")
        shown = capsys.readouterr().out  # display() outside IPython prints the repr
        url = re.search(r"url='(/user/alice/proxy/absolute/(\d+)/)'", shown)
        assert url, shown
        page = _get(f"http://127.0.0.1:{url.group(2)}{url.group(1)}")
        assert page.status_code == 200 and "<title>shown</title>" in page.text
        server.stop()
    finally:
        for module in (pn, panel.io, panel.io.server, panel.viewable):
            module.serve = original
