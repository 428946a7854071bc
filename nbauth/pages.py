"""The small HTML pages the browser sees at the end of a login (success or the reason it failed).

Self-contained and inert: no scripts, no third-party resources, every dynamic string escaped
(RFC 9700 §4.2.4: the page must not leak the URL through a Referer or run provider text).
"""

from __future__ import annotations

from html import escape

__all__ = ["PAGE_HEADERS", "render_page"]

#: Headers for every page nbauth serves to the browser.
PAGE_HEADERS: dict[str, str] = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;
color:#222}}h1{{font-size:1.4rem;color:{color}}}p{{line-height:1.5}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p>{hint}</p>{back}</body></html>
"""


def render_page(title: str, message: str, *, ok: bool, back: str | None = None) -> bytes:
    """Render a complete, escaped HTML page; `back` adds a link to that (same-site) path."""
    hint = ("You can close this tab and return to your notebook." if ok
            else "Return to your notebook; it shows what to do next.")
    return _TEMPLATE.format(
        title=escape(title),
        message=escape(message),
        hint=escape(hint),
        color="#1a7f37" if ok else "#b42318",
        back="" if back is None else
        f'<p><a href="{escape(back, quote=True)}">Back to Jupyter</a></p>',
    ).encode("utf-8")
