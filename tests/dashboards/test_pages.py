"""The page registry (``dashboards/pages.yaml``): one contract over every page.

The server, the quantlib bar and these tests read the same table; each registered page
resolves to the right kind of object, is linked when it says ``nav``, and a real
dashboards server answers its route.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from tornado.web import RequestHandler

from dashboards.layout import nav_links
from quantlib.errors import ConfigError
from quantlib.platform.hubconfig import free_port
from quantlib.serving.server.launch import load_apps, load_handlers
from quantlib.serving.server.pages import load, pages, registry
from quantlib.testing.demo import populate_demo_store

PAGES = pages()


def test_registry_has_the_dashboards_pages_once_each():
    names = [p.name for p in PAGES]
    assert names == ["home", "gallery", "compare", "whatif", "health", "tearsheet"]
    assert len({p.route for p in PAGES}) == len(PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_page_resolves_to_its_kind(page):
    target = load(page.target)
    assert target.__module__ == page.target.split(":")[0]
    if page.kind == "panel":
        assert callable(target) and not isinstance(target, type)
    else:
        assert issubclass(target, RequestHandler)


def test_server_and_navigation_read_the_registry(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    assert sorted(load_apps()) == sorted(p.route for p in PAGES if p.kind == "panel")
    patterns = [pattern for pattern, _ in load_handlers()]
    assert patterns == [f"/{p.route}" if p.route else "/?" for p in PAGES if p.kind == "html"]
    assert nav_links() == [(p.href, p.title) for p in PAGES if p.nav]
    assert ("./tearsheet", "Tear sheet") not in nav_links()  # reached from the cards


def test_a_broken_registry_names_the_file_and_the_key(tmp_path):
    bad = tmp_path / "pages.yaml"
    bad.write_text("pages:\n  - {name: a, route: x, title: A, kind: panel, target: 'm:p'}\n"
                   "  - {name: b, route: x, title: B, kind: html, target: 'm:H'}\n")
    with pytest.raises(ConfigError, match="route must be unique") as err:
        registry(str(bad))
    assert str(bad) in str(err.value) and "['x']" in str(err.value)
    bad.write_text("pages:\n  - {name: a, route: x, title: A, kind: app, target: 'm:p'}\n")
    with pytest.raises(ConfigError, match="pages.0.kind"):
        registry(str(bad))
    with pytest.raises(ConfigError, match="no_such_module"):
        load("no_such_module:page")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A dev-mode dashboards server (manager ``mo``) on two demo results."""
    store = tmp_path_factory.mktemp("results")
    home = tmp_path_factory.mktemp("home")
    ids = populate_demo_store(str(store), n_published=2, years=1, unpublished_author=None)
    port = free_port()
    exe = str(Path(sys.executable).with_name("quantlib"))
    with open(home / "serve.log", "wb") as log:
        proc = subprocess.Popen([exe, "dashboards", "serve", "--no-auth", "--port", str(port),
                                 "--results", str(store), "--dev-user", "mo",
                                 "--dev-groups", "managers"], stdout=log,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "QUANTLIB_HOME": str(home)})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(url + "liveness", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        yield url, ids
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_server_answers_every_registered_route(server, page):
    url, ids = server
    r = requests.get(f"{url}{page.route}", params={"id": ids[0]}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    title = re.search(r"<title>(.*?)</title>", r.text, re.S)
    assert title is not None
    if page.kind == "panel":
        assert html.unescape(title.group(1)).strip() == page.title
    else:  # plain HTML pages carry the quantlib bar themselves
        assert "<header class='ql-top'>" in r.text
