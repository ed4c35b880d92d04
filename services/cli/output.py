"""How results look: aligned tables for people, one JSON document for scripts, an HTML gallery.

The JSON shapes are part of the public contract (DESIGN.md, "CLI"); change them only with it.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urlparse

from imgsearch.client import ImageResult, SearchResult, WordResult
from imgsearch.reports.html import (
    NO_THUMBNAILS_NOTE,
    can_make_thumbnails,
    page,
    thumbnail_data_uri,
    write_page,
)

URI_WIDTH = 48

# -- JSON ------------------------------------------------------------------------------------------


def images_json(result: SearchResult) -> dict:
    """`search`/`similar`: {"results": [{id, score, uri, label, metadata}], "match_count": n (the
    first n results are matches), "unknown_terms": [...], "ignored_terms": [...]}."""
    return {
        "results": [
            {
                "id": r.id,
                "score": float(r.score),
                "uri": r.uri,
                "label": r.label,
                "metadata": {str(k): str(v) for k, v in r.metadata.items()},
            }
            for r in result.results
        ],
        "match_count": len(result.results) if result.match_count is None else int(result.match_count),
        "unknown_terms": [str(t) for t in result.unknown_terms],
        "ignored_terms": [str(t) for t in result.ignored_terms],
    }


def facets_json(key: str | None, counts: Iterable[tuple[str, int]]) -> dict:
    """`facets`: {"key": KEY or null (labels), "results": [{value, count}]}."""
    return {"key": key, "results": [{"value": v, "count": int(n)} for v, n in counts]}


def facets_table(title: str, counts: Sequence[tuple[str, int]]) -> str:
    """A readable two-column table of facet counts."""
    if not counts:
        return "(no images)\n"
    width = max(len(title), *(len(v) for v, _ in counts))
    lines = [f"{title:<{width}}  images"] + [f"{v:<{width}}  {n:>6}" for v, n in counts]
    return "\n".join(lines) + "\n"


def words_json(words: Iterable[WordResult]) -> dict:
    """`tags`/`words`: {"results": [{word, score}]}."""
    return {"results": [{"word": w.word, "score": float(w.score)} for w in words]}


def ingest_json(ingested: int, duplicates: int, failed: Iterable[tuple[str, str]], updated: int = 0) -> dict:
    """`ingest`: {"ingested": int, "duplicates": int, "failed": [{path, error}], "updated": int}
    (`updated`: known images sent with a new label or metadata, changed without re-embedding)."""
    return {
        "ingested": int(ingested),
        "duplicates": int(duplicates),
        "failed": [{"path": str(p), "error": str(e)} for p, e in failed],
        "updated": int(updated),
    }


def write_json(obj: object, out: TextIO) -> None:
    """One JSON document on one line, so `| jq` and line-based tools both work."""
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


# -- tables ----------------------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool]) -> str:
    """Columns padded to their widest cell; numeric columns right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out) + "\n"


def shorten(text: str, width: int = URI_WIDTH) -> str:
    """Keeps the end of a long path or URI, where the file name is, cut at a "/" when there is one."""
    if len(text) <= width:
        return text
    tail = text[-(width - 1) :]
    slash = tail.find("/")
    if 0 <= slash < len(tail) - 1:
        tail = tail[slash:]
    return "…" + tail


def format_score(score: float) -> str:
    return f"{score:.3f}"


def split_matches(result: SearchResult) -> tuple[list[ImageResult], list[ImageResult]]:
    """(matches, weaker results): the server's `match_count` first results score at or above its
    relevance threshold; a server that does not send the count has every result a match."""
    count = getattr(result, "match_count", None)
    if count is None:
        return list(result.results), []
    return list(result.results[:count]), list(result.results[count:])


WEAKER_DIVIDER = "·· weaker results (below the server's relevance threshold) ··"


def divided_table(result: SearchResult, first: int = 1) -> str:
    """Every result in one table, a divider line after the matches (the page's "weaker results"
    divider): for `--all` and the demo, which show the weaker results too."""
    matches, weaker = split_matches(result)
    table = images_table(result.results, first)
    if not weaker:
        return table
    lines = table.splitlines(keepends=True)
    cut = 2 + len(matches)  # the header and its underline, then the matches
    return "".join(lines[:cut] + [WEAKER_DIVIDER + "\n"] + lines[cut:])


def images_table(results: Sequence[ImageResult], first: int = 1) -> str:
    """#, score, label, uri (shortened), id; a metadata column only when some result has metadata.
    Rows are numbered from `first` (1 + --offset: the rank among all results)."""
    if not results:
        return "(no results)\n"
    with_meta = any(r.metadata for r in results)
    headers = ["#", "score", "label", "uri", "id"] + (["metadata"] if with_meta else [])
    numeric = [True, True, False, False, False] + ([False] if with_meta else [])
    rows = []
    for i, r in enumerate(results, first):
        row: list[object] = [i, format_score(r.score), r.label, shorten(r.uri), r.id]
        if with_meta:
            row.append(",".join(f"{k}={v}" for k, v in sorted(r.metadata.items())))
        rows.append(row)
    return render_table(headers, rows, numeric)


def words_table(words: Sequence[WordResult]) -> str:
    if not words:
        return "(no results)\n"
    rows = [[i, w.word, format_score(w.score)] for i, w in enumerate(words, 1)]
    return render_table(["#", "word", "score"], rows, [True, False, True])


def stats_table(stats: Mapping[str, object]) -> str:
    """Flattens the nested `model` dict into `model.cnn`-style keys."""
    rows: list[list[object]] = []
    for key, value in stats.items():
        if isinstance(value, Mapping):
            rows += [[f"{key}.{k}", v] for k, v in value.items()]
        else:
            rows.append([key, value])
    return render_table(["key", "value"], rows, [False, False])


# -- HTML gallery ----------------------------------------------------------------------------------


def uri_to_path(uri: str) -> Path | None:
    """The local file a uri names (a plain path or file://), or None."""
    if not uri:
        return None
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        return None
    return Path(uri)


@dataclass
class _Section:
    title: str
    query_thumb: str | None = None
    query_caption: str = ""
    images: list[ImageResult] = field(default_factory=list)
    words: list[WordResult] | None = None
    note: str = ""


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{width:176px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;font-size:.8rem}
.card img,.ph{width:160px;height:160px;object-fit:contain;background:#eee;display:block}
.ph{display:flex;align-items:center;justify-content:center;color:#888}
.score{font-weight:bold}.uri{color:#666;word-break:break-all}
.query{border-color:#4a7}.note{color:#a50}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}td.num{text-align:right}
"""


def under_roots(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path`, with links resolved, lies inside one of `roots` (folders the user named)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return False
    return any(real.is_relative_to(root.resolve()) for root in roots)


def stored_thumbnail(result: ImageResult) -> str | None:
    """The thumbnail the server keeps for a result (asked for with `with_thumbnails`), as a data URI;
    it needs no file on this machine and no Pillow."""
    if not result.thumbnail:
        return None
    kind = "webp" if result.thumbnail[8:12] == b"WEBP" else "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(result.thumbnail).decode('ascii')}"


class Gallery:
    """An HTML page of result images, one section per query; images embedded, no external files.

    A result's uri comes from the store, written by whoever ingested it: it is shown as text, and
    its picture is read from this machine only when it names a file under `local_roots`, folders
    the user named (`--html-images DIR`, the demo's sample photos), never any other path."""

    def __init__(
        self, title: str = "imgsearch results", thumb_size: int = 160, local_roots: Sequence[Path] = ()
    ):
        self.title = title
        self.thumb_size = thumb_size
        self.local_roots = [Path(r).expanduser() for r in local_roots]
        self._sections: list[_Section] = []
        self._thumbs: dict[str, str | None] = {}

    def __len__(self) -> int:
        return len(self._sections)

    def _thumb(self, uri: str) -> str | None:
        """The result's thumbnail, made once per uri; None for a uri that names no file under
        `local_roots`."""
        if uri not in self._thumbs:
            path = uri_to_path(uri)
            allowed = path is not None and under_roots(path, self.local_roots)
            self._thumbs[uri] = thumbnail_data_uri(path, self.thumb_size) if path and allowed else None
        return self._thumbs[uri]

    def _query(self, query_image: Path | None) -> tuple[str | None, str]:
        """The query image's thumbnail and caption (its path: a file the user named); nothing for
        a text query."""
        if query_image is None:
            return None, ""
        return thumbnail_data_uri(query_image, self.thumb_size), str(query_image)

    def add_images(self, title: str, result: SearchResult, query_image: Path | None = None) -> None:
        """A section of image results (search, similar); unknown query words become a note."""
        thumb, caption = self._query(query_image)
        unknown = result.unknown_terms
        note = f"unknown words: {', '.join(unknown)}" if unknown else ""
        self._sections.append(_Section(title, thumb, caption, list(result.results), None, note))

    def add_words(self, title: str, words: Sequence[WordResult], query_image: Path | None = None) -> None:
        """A section of word results (tags, similar words), with the query image if there is one."""
        thumb, caption = self._query(query_image)
        self._sections.append(_Section(title, thumb, caption, [], list(words)))

    def lacks_thumbnails(self) -> bool:
        """Whether a picture is missing for want of Pillow: a query image, or a result the server
        sent no thumbnail for, with Pillow not installed (the client-only install)."""
        if can_make_thumbnails():
            return False
        return any(s.query_caption or any(not r.thumbnail for r in s.images) for s in self._sections)

    def render(self) -> str:
        esc = html.escape
        parts = [f'<p class="note">{esc(NO_THUMBNAILS_NOTE)}</p>'] if self.lacks_thumbnails() else []
        for s in self._sections:
            # one section named like the page: the page's heading says it already
            same = len(self._sections) == 1 and s.title == self.title
            parts.append("<section>" if same else f"<section><h2>{esc(s.title)}</h2>")
            if s.note:
                parts.append(f'<p class="note">{esc(s.note)}</p>')
            parts.append('<div class="grid">')
            if s.query_caption:
                parts.append(self._card(s.query_thumb, "query", "", s.query_caption, css="card query"))
            for r in s.images:
                thumb = stored_thumbnail(r) or self._thumb(r.uri)
                parts.append(self._card(thumb, format_score(r.score), r.label, r.uri, r.id))
            parts.append("</div>")
            if s.words is not None:
                rows = "".join(
                    f'<tr><td class="num">{i}</td><td>{esc(w.word)}</td>'
                    f'<td class="num">{format_score(w.score)}</td></tr>'
                    for i, w in enumerate(s.words, 1)
                )
                parts.append(f"<table><tr><th>#</th><th>word</th><th>score</th></tr>{rows}</table>")
            if not s.images and s.words is None:
                parts.append("<p>(no results)</p>")
            parts.append("</section>")
        return page(self.title, parts, _CSS)

    def _card(
        self, thumb: str | None, score: str, label: str, uri: str, id: str = "", css: str = "card"
    ) -> str:
        esc = html.escape
        img = (
            f'<img src="{thumb}" alt="{esc(label or uri)}">' if thumb else '<div class="ph">no preview</div>'
        )
        title = f' title="{esc(id)}"' if id else ""
        return (
            f'<div class="{css}"{title}>{img}<div class="score">{esc(score)}</div>'
            f'<div>{esc(label)}</div><div class="uri">{esc(uri)}</div></div>'
        )

    def write(self, path: str | Path) -> Path:
        return write_page(path, self.render())
