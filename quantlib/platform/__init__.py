"""The local research platform: JupyterHub with hashed-password login, roles, services.

``quantlib platform up`` starts it (see :mod:`quantlib.platform.core`); the hub reads
``hub-config/platform.yaml`` through :mod:`quantlib.platform.hubconfig`.
The hub-side classes (:mod:`~quantlib.platform.auth`, :mod:`~quantlib.platform.spawner`)
are imported by JupyterHub itself, by name, and are not re-exported here.
"""

from quantlib.platform.core import PlatformInfo, down, status, up
from quantlib.platform.passwords import PasswordFile, hash_password, verify_password
from quantlib.platform.settings import PlatformSpec, load_spec, platform_paths

__all__ = [
    "up",
    "down",
    "status",
    "PlatformInfo",
    "load_spec",
    "PlatformSpec",
    "platform_paths",
    "PasswordFile",
    "hash_password",
    "verify_password",
]
