"""Real components for the serving tests: a results store, redis-server, a JupyterHub."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantlib.platform.hubconfig import free_port
from quantlib.testing.demo import populate_demo_store
from quantlib.testing.devhub import start_dev_hub, wait_http

QUANTLIB = str(Path(sys.executable).with_name("quantlib"))


@pytest.fixture(scope="session")
def results_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A results store with 4 published demo results and ann's unpublished one (last id)."""
    url = str(tmp_path_factory.mktemp("results"))
    return url, populate_demo_store(url, years=3)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """A real redis-server from Debian on a free loopback port."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(exe):
        pytest.fail("redis-server is missing: apt-get install -y redis-server")
    port = free_port()
    wd = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(wd)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, results_store, redis_url):
    """A real JupyterHub with the results API as a managed service (cache in Redis)."""
    url, _ids = results_store
    wd = tmp_path_factory.mktemp("hub")
    env = {"REDIS_URL": redis_url, "QUANTLIB_HOME": str(wd / "home")}
    h = start_dev_hub(wd, results_url=url, env=env, services=("results-api",),
                      wait_services=("results-api",))
    yield h
    h.stop()


@pytest.fixture(scope="session")
def tokens(hub) -> dict[str, str]:
    """API tokens of ann, bob (researchers), mo (manager) and eve (no role)."""
    return {name: hub.user_token(name) for name in ("ann", "bob", "mo", "eve")}


@pytest.fixture(scope="session")
def dev_api(tmp_path_factory: pytest.TempPathFactory, results_store):
    """A standalone results API in --no-auth dev mode (in-process cache), user 'mo'."""
    url, _ids = results_store
    port = free_port()
    log = open(tmp_path_factory.mktemp("devapi") / "api.log", "wb")  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.Popen([QUANTLIB, "dashboards", "api", "--no-auth", "--port", str(port),
                             "--results", url, "--dev-user", "mo", "--dev-groups", "managers"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health", proc=proc, timeout=60)
    yield base
    proc.terminate()
    proc.wait(10)

