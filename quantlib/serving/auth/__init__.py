"""Who is calling: ``tokens`` (hub tokens for the API, dev mode), ``hub_oauth`` (hub OAuth
for the dashboards, a Bokeh auth provider), ``api_oauth`` (hub OAuth and its cookie for
the API in a browser)."""

__all__ = ["tokens", "hub_oauth", "api_oauth"]
