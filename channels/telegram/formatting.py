"""Markdown -> Telegram HTML, through markdown-it-py.

Telegram's HTML parse mode accepts only a few tags; this renderer emits only those
(`b`, `i`, `s`, `u`, `code`, `pre`, `a`, `blockquote`) and escapes every other character
that HTML would interpret, so raw HTML in a reply shows as text. Headings become bold
lines, lists get bullets or numbers, tables become aligned monospace `pre` blocks.

`measure` is what the aggregator chunks by: the rendered HTML length in UTF-16 code units
(Telegram counts UTF-16 units, and the tags count toward our limit too, so a block that
measures <= 4096 is always within Telegram's limit after parsing).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

TELEGRAM_LIMIT = 4096
_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_TAG = re.compile(r"<[^>]*>")

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def render_html(markdown: str) -> str:
    """Telegram HTML for a Markdown text (blocks separated by one blank line)."""
    tree = SyntaxTreeNode(_md.parse(markdown))
    return _blocks(tree.children, depth=0).strip("\n")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts text."""
    return len(text.encode("utf-16-le")) // 2


@lru_cache(maxsize=4096)
def measure(markdown: str) -> int:
    """Length of the rendered HTML in UTF-16 code units.

    Cached: the aggregator measures each pending line again after every cut."""
    return utf16_len(render_html(markdown))


def html_to_plain(rendered: str) -> str:
    """The text a rendered block shows, without markup (the fallback when Telegram refuses
    the HTML). Tags come only from this renderer, so stripping them is exact."""
    return html.unescape(_TAG.sub("", rendered))


def plain_chunks(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split plain text into pieces of at most `limit` UTF-16 units, at newlines if possible."""
    chunks: list[str] = []
    rest = text
    while len(rest.encode("utf-16-le")) // 2 > limit:
        cut = limit
        while len(rest[:cut].encode("utf-16-le")) // 2 > limit:
            cut -= 1
        newline = rest.rfind("\n", 0, cut)
        if newline > cut // 2:
            cut = newline + 1
        chunks.append(rest[:cut])
        rest = rest[cut:]
    if rest.strip():
        chunks.append(rest)
    return chunks


# -- block level ----------------------------------------------------------------------------


def _blocks(nodes: list[SyntaxTreeNode], depth: int) -> str:
    parts = [_block(node, depth) for node in nodes]
    return "\n\n".join(p for p in parts if p)


def _block(node: SyntaxTreeNode, depth: int) -> str:
    kind = node.type
    if kind == "paragraph":
        return _inline_children(node)
    if kind == "heading":
        return f"<b>{_inline_children(node)}</b>"
    if kind in ("fence", "code_block"):
        return _code(node.content, node.info.strip().split(" ")[0] if kind == "fence" else "")
    if kind == "blockquote":
        return f"<blockquote>{_blocks(node.children, depth)}</blockquote>"
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, depth)
    if kind == "hr":
        return "———"
    if kind == "table":
        return _table(node)
    if kind == "html_block":
        return _esc(node.content.rstrip("\n"))
    return _blocks(node.children, depth) if node.children else _esc(node.content)


def _code(content: str, language: str) -> str:
    body = _esc(content.rstrip("\n"))
    if language and re.fullmatch(r"[\w#+.-]{1,32}", language):
        return f'<pre><code class="language-{language}">{body}</code></pre>'
    return f"<pre>{body}</pre>"


def _list(node: SyntaxTreeNode, depth: int) -> str:
    ordered = node.type == "ordered_list"
    start = int(node.attrs.get("start", 1)) if ordered else 1
    indent = "  " * depth
    lines = []
    for number, item in enumerate(node.children, start=start):
        marker = f"{number}." if ordered else "•"
        body = _blocks(item.children, depth + 1)
        # A loose list item's paragraphs are joined by blank lines; keep them tight here.
        body = body.replace("\n\n", "\n")
        lines.append(f"{indent}{marker} {body}")
    return "\n".join(lines)


def _table(node: SyntaxTreeNode) -> str:
    rows: list[list[str]] = []
    for section in node.children:
        for row in section.children:
            rows.append([html_to_plain(_inline_children(cell)) for cell in row.children])
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    cols = [max((len(r[i]) if i < len(r) else 0) for r in rows) for i in range(width)]
    lines = []
    for index, cells_text in enumerate(rows):
        cells = [
            (cells_text[i] if i < len(cells_text) else "").ljust(cols[i]) for i in range(width)
        ]
        lines.append(" | ".join(cells).rstrip())
        if index == 0 and len(rows) > 1:
            lines.append("-+-".join("-" * c for c in cols))
    return f"<pre>{_esc(chr(10).join(lines))}</pre>"


# -- inline level ---------------------------------------------------------------------------

_WRAP = {"strong": "b", "em": "i", "s": "s"}


def _inline_children(node: SyntaxTreeNode) -> str:
    return "".join(_inline(child) for child in node.children)


def _inline(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "inline":
        return _inline_children(node)
    if kind == "text":
        return _esc(node.content)
    if kind in _WRAP:
        tag = _WRAP[kind]
        return f"<{tag}>{_inline_children(node)}</{tag}>"
    if kind == "code_inline":
        return f"<code>{_esc(node.content)}</code>"
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "link":
        href = str(node.attrs.get("href", ""))
        label = _inline_children(node)
        if href.startswith(_SAFE_SCHEMES):
            return f'<a href="{_attr(href)}">{label}</a>'
        return label
    if kind == "image":
        src = str(node.attrs.get("src", ""))
        alt = _esc(node.content) or "image"
        return f'<a href="{_attr(src)}">{alt}</a>' if src.startswith(_SAFE_SCHEMES) else alt
    if kind == "html_inline":
        return _esc(node.content)
    return _inline_children(node) if node.children else _esc(node.content)
