"""Vendor sandbox: a seeded global equity universe served over real FTP and HTTP.

:func:`generate` builds the truth (canonical frames), :func:`write_ftp_tree` writes the
KR and EU vendor files, :func:`start_sandbox` serves them (plus the JSON API) on
loopback with fault injection; :class:`SandboxConnection` reads the state file.
"""

from quantlib.sandbox.events import STATEMENT_FIELDS
from quantlib.sandbox.faults import FAULT_KINDS, Fault, FaultRegistry
from quantlib.sandbox.identifiers import SECTORS, is_valid_isin
from quantlib.sandbox.server import Sandbox, SandboxConnection, start_sandbox, state_file_path
from quantlib.sandbox.universe import (
    FX_KNOWN_AT_UTC,
    PRICE_LAG,
    SandboxUniverse,
    generate,
)
from quantlib.sandbox.writers import EU_HEADERS, KR_HEADERS, WrittenFile, write_ftp_tree

__all__ = [
    "SandboxUniverse",
    "generate",
    "write_ftp_tree",
    "WrittenFile",
    "start_sandbox",
    "Sandbox",
    "SandboxConnection",
    "state_file_path",
    "FaultRegistry",
    "Fault",
    "FAULT_KINDS",
    "PRICE_LAG",
    "FX_KNOWN_AT_UTC",
    "STATEMENT_FIELDS",
    "SECTORS",
    "KR_HEADERS",
    "EU_HEADERS",
    "is_valid_isin",
]
