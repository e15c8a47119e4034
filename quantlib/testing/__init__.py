"""Test support: NOT part of the product, and not shipped in the wheel.

What the test suite, the benchmarks and the hub tests' notebook kernels share:

- :mod:`quantlib.testing.devhub`: a real JupyterHub rendered from ``hub-config/platform.yaml``
  by the platform's own :func:`quantlib.platform.hubconfig.configure`;
- :mod:`quantlib.testing.demo`: seeded demo results (marked synthetic) and their what-if
  runner;
- :mod:`quantlib.testing.browser`: how Debian's headless chromium is launched and when a
  page's plots count as painted.

It lives under ``quantlib/`` (not ``tests/``) because processes outside pytest import it:
the benchmarks in ``bench/``, the dev hub's render subprocess, and the scripts the hub
tests run in a user's kernel under that user's own Unix account. No module of the product
imports it (``tests/dashboards/test_packaging.py`` checks both this and that the wheel
leaves it out).
"""

__all__ = ["devhub", "demo", "browser"]
