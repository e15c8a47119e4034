"""The platform configuration, its translation to JupyterHub config, passwords, the CLI.

No hub here (see tests/hub); these check what the hub will be told.
"""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from quantlib.cli import main
from quantlib.errors import ConfigError
from quantlib.platform import PasswordFile, load_spec, platform_paths
from quantlib.platform.hubconfig import configure
from quantlib.platform.settings import HUB_CONFIG_DIR

SHIPPED = HUB_CONFIG_DIR / "platform.yaml"


def write_spec(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text())
    mutate(raw)
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_config_is_valid_and_has_the_three_groups():
    spec = load_spec()
    assert set(spec.groups) == {"researchers", "managers", "data-team"}
    assert set(spec.services) == {"dashboards", "results-api", "scheduler", "idle-culler"}
    assert spec.user_groups()["mark"] == ["managers"]
    assert spec.hub["ip"] == "127.0.0.1"


@pytest.mark.parametrize(("mutate", "what", "field"), [
    (lambda r: r["users"].append({"name": "eve", "groups": ["traders"]}),
     "a user's group must be defined under 'groups'", "users.3.groups"),
    (lambda r: r["groups"]["managers"]["scopes"].append("access:services!service=nope"),
     "a scope must name a configured service", "groups.managers"),
    (lambda r: r["groups"]["researchers"]["scopes"].append("custom:unknown"),
     "a custom scope must be defined under 'custom_scopes'", "groups.researchers"),
    (lambda r: r["users"].append({"name": "Bad Name", "groups": []}),
     "the platform configuration must match its schema", "users.3.name"),
    (lambda r: r["services"]["dashboards"].update(comand=["x"]),
     "the platform configuration must match its schema", "services.dashboards"),
])
def test_bad_config_is_refused_naming_file_and_field(tmp_path, mutate, what, field):
    path = write_spec(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(what)
    assert f"file={path}" in msg and f"field={field}" in msg


def hub_config(monkeypatch, tmp_path, spec_path: Path | None = None) -> Config:
    if spec_path is not None:
        monkeypatch.setenv("QUANTLIB_PLATFORM_CONFIG", str(spec_path))
    monkeypatch.setenv("QUANTLIB_PLATFORM_PORT", "18123")
    monkeypatch.setenv("QUANTLIB_PLATFORM_RUN", "run-xyz")
    c = Config()
    configure(c)
    return c


def test_hub_config_binds_loopback_and_keeps_state_in_the_platform_folder(monkeypatch, tmp_path):
    c = hub_config(monkeypatch, tmp_path)
    root = platform_paths().root
    assert c.JupyterHub.ip == "127.0.0.1" and c.JupyterHub.port == 18123
    assert c.JupyterHub.hub_ip == "127.0.0.1" and c.Spawner.ip == "127.0.0.1"
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.db_url == f"sqlite:///{root / 'jupyterhub.sqlite'}"
    chp = Path(c.ConfigurableHTTPProxy.command[0])
    assert chp == HUB_CONFIG_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    assert chp.exists(), "run .ci/setup (npm ci --prefix hub-config)"
    assert c.PlatformSpawner.user_root == str(root / "users")


def test_roles_only_groups_grant_servers(monkeypatch, tmp_path):
    c = hub_config(monkeypatch, tmp_path)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    # JupyterHub's default user role ('self') would let a manager start a server
    assert "self" not in roles["user"]["scopes"]
    assert not any(s.startswith(("servers", "access:servers")) for s in roles["user"]["scopes"])
    assert not any(s.startswith("servers") for s in roles["managers"]["scopes"])
    assert "access:services!service=dashboards" in roles["managers"]["scopes"]
    assert "servers!user" in roles["researchers"]["scopes"]
    assert "custom:results:publish" in roles["researchers"]["scopes"]
    assert "access:services!service=scheduler" in roles["data-team"]["scopes"]
    assert roles["data-team"]["groups"] == ["data-team"]
    assert c.JupyterHub.load_groups["managers"] == {"users": ["mark"]}
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allowed_users == {"admin", "alice", "mark", "dana"}
    culler = roles["service-idle-culler"]
    assert culler["services"] == ["idle-culler"] and "delete:servers" in culler["scopes"]


def test_services_are_supervised_and_get_the_platform_environment(monkeypatch, tmp_path):
    c = hub_config(monkeypatch, tmp_path)
    services = {s["name"]: s for s in c.JupyterHub.services}
    dash = services["dashboards"]
    sep = dash["command"].index("--")
    assert dash["command"][1:3] == ["-m", "quantlib.platform.supervise"]
    assert dash["command"][sep + 1].endswith("/quantlib")
    assert dash["command"][sep + 2:] == ["dashboards", "serve", "--hub"]
    assert dash["url"].startswith("http://127.0.0.1:")
    assert dash["environment"]["QUANTLIB_PLATFORM_RUN"] == "run-xyz"
    assert dash["environment"]["QUANTLIB_STORE"].endswith("/store")
    assert "url" not in services["idle-culler"]
    assert "--timeout=3600" in services["idle-culler"]["command"]
    env = c.Spawner.environment
    assert env["QUANTLIB_STORE"] == dash["environment"]["QUANTLIB_STORE"]
    assert env["DASK_DISTRIBUTED__DASHBOARD__LINK"] == (
        "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status")
    assert env["DASK_DISTRIBUTED__SCHEDULER__IDLE_TIMEOUT"] == "20 minutes"
    assert "--MappingKernelManager.cull_idle_timeout=1800" in c.Spawner.args


def test_disabled_service_is_left_out(monkeypatch, tmp_path):
    path = write_spec(tmp_path, lambda r: r["services"]["scheduler"].update(enabled=False))
    c = hub_config(monkeypatch, tmp_path, path)
    assert "scheduler" not in {s["name"] for s in c.JupyterHub.services}


def test_password_file_is_private_and_holds_no_plaintext(tmp_path):
    pf = PasswordFile(tmp_path / "users.json")
    pf.set_password("alice", "alice-secret-42")
    text = pf.path.read_text()
    assert "alice-secret-42" not in text and "scrypt$" in text
    assert stat.S_IMODE(pf.path.stat().st_mode) == 0o600
    assert pf.check("alice", "alice-secret-42")
    assert not pf.check("alice", "alice-secret-43")
    before = text
    pf.set_password("alice", "alice-secret-42")  # fresh salt each time
    assert pf.path.read_text() != before and pf.check("alice", "alice-secret-42")


def test_cli_sets_passwords_only_for_configured_users(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("long-enough-pw\n"))
    assert main(["platform", "users", "passwd", "alice", "--password-stdin"]) == 0
    assert PasswordFile(platform_paths().users_file).check("alice", "long-enough-pw")
    assert main(["platform", "users", "passwd", "mallory"]) == 2
    err = capsys.readouterr().err
    assert "the user must be listed in the platform configuration; found 'mallory'" in err
    assert main(["platform", "users"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert "password set" in rows["alice"] and "no password" in rows["mark"]
    assert "managers" in rows["mark"] and "admin" in rows["admin"]


def test_status_and_down_when_nothing_runs(capsys):
    with pytest.raises(SystemExit) as info:
        main(["platform", "status"])
    assert info.value.code == 1
    assert main(["platform", "down"]) == 0
    assert "not running" in capsys.readouterr().out


def test_schema_rejects_copying_mistakes_in_the_shipped_file(tmp_path):
    raw = yaml.safe_load(SHIPPED.read_text())
    broken = copy.deepcopy(raw)
    broken["hub"]["ip"] = "10.0.0.5"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError, match="field=hub.ip"):
        load_spec(path)


def test_single_user_servers_get_the_lab_set_up(monkeypatch, tmp_path):
    c = hub_config(monkeypatch, tmp_path)
    env, lab = c.Spawner.environment, HUB_CONFIG_DIR / "lab"
    assert env["JUPYTER_CONFIG_PATH"] == str(lab / "config")
    assert env["JUPYTER_PATH"] == str(lab / "share")
    assert env["DASK_LOGGING__DISTRIBUTED"] == "warning"
    assert Path(env["QUANTLIB_EXAMPLES"]) == HUB_CONFIG_DIR.parent / "notebooks"
    assert f"--LabApp.app_settings_dir={lab / 'settings'}" in c.Spawner.args
    assert c.JupyterHub.implicit_spawn_seconds == 1.0  # lab.auto_spawn_s: land in JupyterLab
    server = json.loads((lab / "config" / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == {"quantlib.lab.server": True}
    overrides = json.loads((lab / "settings" / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert overrides["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True
    kernel = json.loads((lab / "share" / "kernels" / "python3" / "kernel.json").read_text())
    assert "--InteractiveShellApp.extensions=quantlib.lab.startup" in kernel["argv"]
