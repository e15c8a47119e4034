"""What the browser tests and the render benchmark share: how Debian's headless chromium
is launched, and when a page's plots count as painted."""

from __future__ import annotations

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PAINTED_CANVASES_JS", "VIEW_PAINTED_JS",
           "painted_at_least"]

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


#: true once the page's ``#ql-rendered`` marker is attached and everything in the viewport
#: is drawn: no ``[data-ql-pending]`` placeholder in view, and every plot (the element
#: holding a shadow root with canvases) in view has a canvas of non-uniform pixels
VIEW_PAINTED_JS = """() => {
  if (!document.getElementById('ql-rendered')) return false;
  const inView = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight
      && r.right > 0 && r.left < innerWidth;
  };
  if ([...document.querySelectorAll('[data-ql-pending]')].some(inView)) return false;
  const painted = (c) => {
    if (!c.width || !c.height) return false;
    const ctx = c.getContext('2d');
    if (!ctx) return false;
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length && colours.size < 3; i += 4 * 97) {
      colours.add((data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]);
    }
    return colours.size > 2;
  };
  let plots = 0;
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (!el.shadowRoot) continue;
      const own = [...el.shadowRoot.children].filter((c) => c.tagName === 'CANVAS');
      if (own.length && inView(el)) {
        if (!own.some(painted)) return false;
        plots += 1;
      }
      if (walk(el.shadowRoot) === false) return false;
    }
    return true;
  };
  return walk(document) && plots > 0;
}"""


def painted_at_least(n: int) -> str:
    """A Playwright ``wait_for_function`` expression, true once ``n`` canvases are painted.

    Examples
    --------
    >>> painted_at_least(10).endswith(".painted >= 10")
    True
    """
    return f"() => ({PAINTED_CANVASES_JS})().painted >= {int(n)}"
