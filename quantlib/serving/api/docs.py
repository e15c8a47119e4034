"""The results API's docs in a browser, rendered on the server from its OpenAPI schema.

FastAPI's Swagger UI and ReDoc pages load their scripts and styles from a CDN, which
an offline platform cannot reach (a white page), and no installed package ships
swagger-ui's assets. So the API answers its own docs: one HTML page per request, built
from ``app.openapi()`` (every route, its parameters, media types and a try-it link for
the reads that need no id), plus a page on getting a token with curl and Python
examples filled in with this API's public URL. No script, font or style comes from
outside the platform.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["docs_html", "token_html", "PAGE_CSS"]

PAGE_CSS = """
body {font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
      margin:0; color:#1d2733; background:#f6f8fa;}
header {background:#12355b; color:#fff; padding:0.6em 1.2em; display:flex; gap:1.2em;
        align-items:center; flex-wrap:wrap;}
header a {color:#dce8f5;} header b {font-size:1.15em;}
main {padding:0.6em 1.4em 2em; max-width:70em;}
.ql-op {background:#fff; border:1px solid #dde3ea; border-radius:8px; padding:0.6em 1em;
        margin:0.8em 0;}
.ql-op h3 {margin:0.1em 0 0.3em; font-family:ui-monospace, monospace; font-size:1em;}
.ql-method {background:#2d7a46; color:#fff; border-radius:4px; padding:0.05em 0.5em;
            margin-right:0.5em;}
table {border-collapse:collapse;} td, th {text-align:left; padding:0.15em 1em 0.15em 0;
                                          border-bottom:1px solid #eee;}
pre {background:#0f1b2a; color:#e6edf3; padding:0.8em 1em; border-radius:6px; overflow:auto;}
code {font-family: ui-monospace, SFMono-Regular, Menlo, monospace;}
"""


def _type(schema: dict[str, Any]) -> str:
    """A parameter's type in words.

    Examples
    --------
    >>> _type({"anyOf": [{"type": "string"}, {"type": "null"}]})
    'string'
    >>> _type({"enum": ["json", "csv"], "type": "string"})
    'json | csv'
    """
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if options:
        return " or ".join(_type(s) for s in options)
    return str(schema.get("type", "any"))


def _params(op: dict[str, Any], components: dict[str, Any]) -> str:
    rows = []
    for p in op.get("parameters", []):
        if p.get("in") == "header" and p.get("name") == "authorization":
            continue  # described once, in the page's introduction
        schema = p.get("schema", {})
        if "$ref" in schema:
            schema = components.get(schema["$ref"].rsplit("/", 1)[-1], schema)
        rows.append(f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p.get('in')}</td>"
                    f"<td>{'required' if p.get('required') else 'optional'}</td>"
                    f"<td>{html.escape(_type(schema))}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>parameter</th><th>in</th><th></th><th>type</th></tr>"
            + "".join(rows) + "</table>")


def _operation(path: str, method: str, op: dict[str, Any], base: str,
               components: dict[str, Any]) -> str:
    media = sorted({m for r in op.get("responses", {}).values()
                    for m in (r.get("content") or {})})
    doc = html.escape(op.get("description") or "").replace("\n\n", "<br>")
    link = ""
    if method == "get" and "{" not in path:
        link = f" <a href='{html.escape(base + path.lstrip('/'))}'>try it</a>"
    return (f"<div class='ql-op' id='{html.escape(op.get('operationId', path))}'>"
            f"<h3><span class='ql-method'>{method.upper()}</span>{html.escape(path)}{link}</h3>"
            f"<p>{html.escape(op.get('summary') or '')}{'. ' + doc if doc else ''}</p>"
            f"{_params(op, components)}"
            f"<p>Answers: {html.escape(', '.join(media) or 'application/json')}</p></div>")


def _header(title: str, base: str) -> str:
    return (f"<header><b>quantlib</b><span>{html.escape(title)}</span>"
            f"<a href='{base}'>API docs</a><a href='{base}token'>Get a token</a>"
            f"<a href='{base}openapi.json'>openapi.json</a>"
            f"<a href='{base}../dashboards/'>Dashboards</a></header>")


def docs_html(schema: dict[str, Any], base: str, who: str | None = None) -> str:
    """The API's docs page from its OpenAPI ``schema``; ``base`` is the API's public URL.

    Examples
    --------
    >>> s = {"info": {"title": "T", "version": "1"}, "paths": {"/api/v1/x": {"get": {
    ...      "summary": "X", "operationId": "x", "responses": {}}}}}
    >>> page = docs_html(s, "/services/results-api/", "mo")
    >>> "<span class='ql-method'>GET</span>/api/v1/x" in page, "logged in as <b>mo</b>" in page
    (True, True)
    """
    info = schema.get("info", {})
    components = schema.get("components", {}).get("schemas", {})
    ops = "".join(_operation(path, method, op, base, components)
                  for path, methods in schema.get("paths", {}).items()
                  for method, op in methods.items())
    me = f" You are logged in as <b>{html.escape(who)}</b>." if who else ""
    intro = (f"<h1>{html.escape(info.get('title', 'API'))} <small>{html.escape(str(info.get('version', '')))}"
             f"</small></h1><p>{html.escape(info.get('description', ''))}</p>"
             "<p>In this browser the hub login is enough (the API keeps a cookie)." + me +
             " Scripts send a hub token: <code>Authorization: token &lt;token&gt;</code> — see "
             f"<a href='{base}token'>how to get one</a>.</p>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
            f"{html.escape(info.get('title', 'API'))} docs</title><style>{PAGE_CSS}</style></head>"
            f"<body>{_header('results API', base)}<main>{intro}{ops}</main></body></html>")


def token_html(public_url: str, hub_url: str, who: str | None = None) -> str:
    """How to get a hub token and call the API with it, from curl and from Python.

    Examples
    --------
    >>> page = token_html("http://h/services/results-api/", "http://h/hub/")
    >>> "http://h/hub/token" in page, "curl -H" in page, "requests.get(" in page
    (True, True, True)
    """
    api = html.escape(public_url)
    curl = (f"export QUANTLIB_TOKEN=&lt;paste the token&gt;\n"
            f"curl -H \"Authorization: token $QUANTLIB_TOKEN\" {api}api/v1/results\n"
            f"curl -H \"Authorization: token $QUANTLIB_TOKEN\" \\\n"
            f"     \"{api}api/v1/results/&lt;result_id&gt;/returns?format=csv\" -o returns.csv")
    py = ("import io, os\nimport pandas as pd\nimport requests\n\n"
          f"API = \"{api}api/v1\"\n"
          "HEADERS = {\"Authorization\": f\"token {os.environ['QUANTLIB_TOKEN']}\"}\n\n"
          "results = requests.get(f\"{API}/results\", headers=HEADERS, timeout=30).json()\n"
          "rid = results[0][\"result_id\"]\n"
          "csv = requests.get(f\"{API}/results/{rid}/returns\", params={\"format\": \"csv\"},\n"
          "                   headers=HEADERS, timeout=30).content\n"
          "returns = pd.read_csv(io.BytesIO(csv), index_col=\"date\", parse_dates=True)")
    me = f"<p>You are logged in as <b>{html.escape(who)}</b>.</p>" if who else ""
    body = (f"<h1>Get a token</h1>{me}<ol><li>Open the hub's token page: "
            f"<a href='{html.escape(hub_url)}token'>{html.escape(hub_url)}token</a>.</li>"
            "<li>Give the token a note (what it is for) and an expiry, then "
            "<b>Request new API token</b>; copy it (it is shown once).</li>"
            "<li>Send it in the <code>Authorization</code> header of every request. Keep it "
            "out of notebooks and repositories (an environment variable is fine).</li></ol>"
            f"<h2>curl</h2><pre><code>{curl}</code></pre>"
            f"<h2>Python</h2><pre><code>{py}</code></pre>"
            "<p>Inside a researcher's JupyterLab, <code>JUPYTERHUB_API_TOKEN</code> already "
            "holds a token of yours.</p>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Get a token"
            f"</title><style>{PAGE_CSS}</style></head><body>{_header('Get a token', api)}"
            f"<main>{body}</main></body></html>")
