"""What the browser tests and the render benchmark share: how Debian's headless chromium
is launched, and when a page's plots count as painted."""

from __future__ import annotations

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PAINTED_CANVASES_JS", "painted_at_least"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: canvases (in shadow roots too) whose pixels are not all one colour: ``{total, painted}``
PAINTED_CANVASES_JS = """() => {
  const found = [];
  const walk = (root) => root.querySelectorAll('*').forEach((el) => {
    if (el.tagName === 'CANVAS') found.push(el);
    if (el.shadowRoot) walk(el.shadowRoot);
  });
  walk(document);
  let painted = 0;
  for (const c of found) {
    if (!c.width || !c.height) continue;
    const ctx = c.getContext('2d');
    if (!ctx) continue;
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length && colours.size < 3; i += 4 * 97) {
      colours.add((data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]);
    }
    if (colours.size > 2) painted += 1;
  }
  return {total: found.length, painted};
}"""


def painted_at_least(n: int) -> str:
    """A Playwright ``wait_for_function`` expression, true once ``n`` canvases are painted.

    Examples
    --------
    >>> painted_at_least(10).endswith(".painted >= 10")
    True
    """
    return f"() => ({PAINTED_CANVASES_JS})().painted >= {int(n)}"
