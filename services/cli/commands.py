"""The commands behind `imgsearch`: each is `(args, settings, out, err) -> ExitStatus`.

They turn flags into client calls and results into output; failed calls surface as ClientError,
which main() maps to an exit status in one place.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TextIO

import grpc

from imgsearch.cli import output
from imgsearch.cli.confirm import asks, confirm, namespace_name
from imgsearch.cli.ingest import expand_paths, ingest_files
from imgsearch.cli.status import CommandError, ExitStatus
from imgsearch.client import ClientError, Filter, ImageSearchClient, SearchResult, WordResult, from_settings
from imgsearch.config import Settings
from imgsearch.reports.html import NO_THUMBNAILS_NOTE
from imgsearch.reports.progress import progress_bar


def connect(args: argparse.Namespace, settings: Settings) -> ImageSearchClient:
    """A client that fails fast when nothing listens (a CLI should not hang on a dead address), in
    the namespace of `--namespace` (default: the default namespace)."""
    namespace = getattr(args, "namespace", None) or ""
    return from_settings(settings, timeout=args.timeout or 30.0, wait_for_ready=False, namespace=namespace)


def parse_meta(pairs: list[str] | None) -> dict[str, str]:
    """`--meta key=value` flags as a dict; a pair without `=` is a usage error."""
    meta: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--meta expects key=value, got {pair!r}", ExitStatus.USAGE)
        meta[key] = value
    return meta


def read_image(path: str) -> bytes:
    p = Path(path).expanduser()
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}", ExitStatus.NOT_FOUND) from None
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e}", ExitStatus.ERROR) from None


def _image_source(args: argparse.Namespace) -> tuple[bytes | None, str | None, Path | None]:
    """(image bytes, id, absolute path for the gallery) from `IMAGE` or `--id`."""
    if bool(args.image) == bool(args.id):
        raise CommandError("give an IMAGE file or --id ID (exactly one)", ExitStatus.USAGE)
    if args.image:
        return read_image(args.image), None, Path(args.image).expanduser().absolute()
    return None, args.id, None


def _write_gallery(gallery: output.Gallery, path: str, err: TextIO) -> None:
    err.write(f"gallery written to {gallery.write(path)}\n")
    if gallery.lacks_thumbnails():  # the client-only install, and no thumbnail from the server
        err.write(NO_THUMBNAILS_NOTE + "\n")


def _emit_images(
    args: argparse.Namespace,
    result: SearchResult,
    title: str,
    out: TextIO,
    err: TextIO,
    query_image: Path | None = None,
) -> int:
    if args.json:
        output.write_json(output.images_json(result), out)
    else:
        matches, weaker = output.split_matches(result)
        first = 1 + (getattr(args, "offset", 0) or 0)
        if getattr(args, "all", False):
            out.write(output.divided_table(result, first))
        elif matches or not weaker:
            out.write(output.images_table(matches, first))
        if weaker and not getattr(args, "all", False):
            none = "no good matches; " if not matches else ""
            err.write(f"{none}{len(weaker)} weaker results hidden (--all shows them)\n")
    if result.unknown_terms:
        err.write(f"unknown words (ignored): {', '.join(result.unknown_terms)}\n")
    if args.html:
        gallery = output.Gallery(title, local_roots=getattr(args, "html_images", None) or ())
        gallery.add_images(title, result, query_image)
        _write_gallery(gallery, args.html, err)
    return ExitStatus.SUCCESS


def _emit_words(
    args: argparse.Namespace,
    words: list[WordResult],
    title: str,
    out: TextIO,
    err: TextIO,
    query_image: Path | None = None,
) -> int:
    if args.json:
        output.write_json(output.words_json(words), out)
    else:
        out.write(output.words_table(words))
    if args.html:
        gallery = output.Gallery(title)
        gallery.add_words(title, words, query_image)
        _write_gallery(gallery, args.html, err)
    return ExitStatus.SUCCESS


# -- queries ---------------------------------------------------------------------------------------


def query_filter(args: argparse.Namespace) -> Filter:
    """The filter flags (--label, --meta, --not-label, --not-meta, --has-meta, --no-meta) as a Filter."""
    return Filter(
        labels=args.label or (),
        metadata=parse_meta(args.meta),
        exclude_labels=args.not_label or (),
        exclude_metadata=tuple(parse_meta([pair]).popitem() for pair in args.not_meta or ()),
        has_metadata=args.has_meta or (),
        missing_metadata=args.no_meta or (),
    )


def _paging(args: argparse.Namespace) -> dict:
    return {"offset": args.offset, "min_score": args.min_score, "diverse": args.diverse}


def cmd_search(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    text = " ".join(args.text).strip()
    if not text:
        raise CommandError("search needs some text", ExitStatus.USAGE)
    with connect(args, settings) as client:
        result = client.search(
            text,
            k=args.k,
            filter=query_filter(args),
            with_thumbnails=bool(args.html),
            mode=args.mode,
            **_paging(args),
        )
    if result.ignored_terms:
        err.write(f"stop words (ignored): {', '.join(result.ignored_terms)}\n")
    return _emit_images(args, result, f"search: {text}", out, err)


def cmd_similar(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    image, id_, path = _image_source(args)
    with connect(args, settings) as client:
        result = client.similar(
            image=image,
            id=id_,
            k=args.k,
            filter=query_filter(args),
            include_self=args.include_self,
            with_thumbnails=bool(args.html),
            **_paging(args),
        )
    return _emit_images(args, result, f"similar: {args.image or args.id}", out, err, path)


def cmd_facets(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    with connect(args, settings) as client:
        counts = client.facets(args.key, filter=query_filter(args), limit=args.limit)
    if args.json:
        output.write_json(output.facets_json(args.key, counts), out)
    else:
        out.write(output.facets_table(args.key or "label", counts))
    return ExitStatus.SUCCESS


def cmd_tags(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    image, id_, path = _image_source(args)
    with connect(args, settings) as client:
        words = client.tags(image=image, id=id_, k=args.k)
    return _emit_words(args, words, f"tags: {args.image or args.id}", out, err, path)


def cmd_words(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    with connect(args, settings) as client:
        words = client.words(args.word, k=args.k)
    return _emit_words(args, words, f"words: {args.word}", out, err)


# -- indexing --------------------------------------------------------------------------------------


def cmd_ingest(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    metadata = parse_meta(args.meta)
    found = expand_paths(args.paths)
    for missing in found.missing:
        err.write(f"no image found for {missing}\n")
    if found.skipped:
        err.write(found.skipped_note() + "\n")
    if not found.files:
        if args.json:
            output.write_json(output.ingest_json(0, 0, [(m, "no such file") for m in found.missing]), out)
        raise CommandError("nothing to ingest", ExitStatus.NOT_FOUND)
    with connect(args, settings) as client, progress_bar(err, len(found.files), "ingest") as bar:
        outcome = ingest_files(
            client,
            found.files,
            label=args.label,
            label_from_dir=args.label_from_dir,
            metadata=metadata,
            max_image_bytes=settings.limits.max_image_bytes,
            progress=bar,
        )
    failed = [(m, "no such file") for m in found.missing] + outcome.failed
    s = outcome.summary
    if args.json:
        output.write_json(output.ingest_json(s.ingested, s.duplicates, failed, s.updated), out)
    else:
        for path, error in failed:
            err.write(f"failed: {path}: {error}\n")
        updated = f", updated {s.updated} (new label or metadata)" if s.updated else ""
        out.write(f"ingested {s.ingested}, duplicates {s.duplicates}{updated}, failed {len(failed)}\n")
    return ExitStatus.PARTIAL if failed else ExitStatus.SUCCESS


def cmd_delete(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    metadata = parse_meta(args.meta)
    ids = [*(args.ids or ()), *(args.id or ())]
    if not (ids or args.label or metadata or args.all):
        raise CommandError("delete needs ID..., --label, --meta key=value or --all", ExitStatus.USAGE)
    if ids and (args.label or metadata or args.all):
        raise CommandError("ids cannot be combined with a filter or --all", ExitStatus.USAGE)
    with connect(args, settings) as client:
        if not ids and asks(args):  # every image, or every image a filter matches: ask first, with a count
            count = _matching(client, args.label, metadata, args.all)
            where = namespace_name(args)
            if count == 0:
                out.write(f"nothing in {where} matches: nothing deleted\n")
                return ExitStatus.SUCCESS
            what = f"all {count} images" if args.all else f"the {count} images matching the filter"
            if not confirm(f"delete {what} of {where}?", args, err):
                err.write("cancelled: nothing deleted\n")
                return ExitStatus.SUCCESS
        deleted = client.delete(ids=ids or None, label=args.label, metadata=metadata, all=args.all)
    if args.json:
        output.write_json({"deleted": deleted}, out)
    else:
        out.write(f"deleted {deleted}\n")
    return ExitStatus.SUCCESS


def _matching(
    client: ImageSearchClient, label: str | None, metadata: dict[str, str], everything: bool
) -> int:
    """How many images a delete would remove (the question says it): the namespace's count, or the
    records the filter lists (paged, without vectors)."""
    if everything:
        return int(client.stats()["images"])
    return sum(
        len(page.images) for page in client.iter_images(page_size=1000, label=label, metadata=metadata)
    )


def cmd_stats(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    with connect(args, settings) as client:
        stats = client.stats()
    if args.json:
        output.write_json(stats, out)
    else:
        out.write(output.stats_table(stats))
    return ExitStatus.SUCCESS


def cmd_vocab(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    err.write("loading the vocabulary into the words collection...\n")
    with connect(args, settings) as client:
        words, loaded = client.load_vocabulary_report(limit=args.limit, force=args.force)
    if args.json:
        output.write_json({"words": words, "loaded": loaded}, out)
    elif loaded:
        out.write(f"words collection holds {words} words (loaded now)\n")
    else:
        out.write(f"words collection already holds {words} words: nothing to load (--force reloads)\n")
    return ExitStatus.SUCCESS


def cmd_reindex(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Asks the indexer to re-embed every stored image with its current head, showing its progress."""
    counts: dict = {}
    with connect(args, settings) as client, progress_bar(err, None, "reindex") as bar:
        for counts in client.reindex():  # the indexer's last message holds the final counts
            bar.total = counts["total"]
            bar.update(counts["done"] + counts["skipped"] - bar.n)
    if args.json:
        output.write_json(counts, out)
    else:
        out.write(
            f"reindexed {counts['done']} of {counts['total']} images with head {counts['head']}, "
            f"skipped {counts['skipped']} without CNN features\n"
        )
    return ExitStatus.SUCCESS


# -- operations ------------------------------------------------------------------------------------


def cmd_serve(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Runs the chosen services in this process until SIGTERM; "all" (the default) means all three."""
    from imgsearch.app import serve as app  # TensorFlow and Qdrant load only for `serve`

    try:
        roles = app.parse_roles(args.roles)
    except ValueError as e:
        raise CommandError(str(e), ExitStatus.USAGE) from e
    return app.serve(settings, roles)


def cmd_health(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Exit 0 when SERVING (the Docker HEALTHCHECK); UNAVAILABLE otherwise. With `--timeout`, waits
    up to that long for the server to come up and report SERVING (a script right after `serve`)."""
    deadline = time.monotonic() + (args.timeout or 0.0)
    with connect(args, settings) as client:
        while True:
            try:
                serving = client.health(args.service, timeout=min(args.timeout or 5.0, 5.0))
            except ClientError as e:
                if e.code == grpc.StatusCode.NOT_FOUND:
                    raise CommandError(
                        f"the server has no service {args.service!r}", ExitStatus.NOT_FOUND
                    ) from e
                raise
            if serving or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        reachable = True
        if not serving:  # down, or nothing there at all: say which
            try:
                client.connect()
            except ClientError as e:
                reachable = False
                err.write(f"{e.message} (is `imgsearch serve` running?)\n")
    status = "SERVING" if serving else "NOT_SERVING" if reachable else "UNREACHABLE"
    if args.json:
        output.write_json({"status": status}, out)
    else:
        out.write(status + "\n")
    return ExitStatus.SUCCESS if serving else ExitStatus.UNAVAILABLE


def cmd_warmup(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Converts and caches the models now (e.g. while building an image), not on first start."""
    from imgsearch.embedder import runtime

    err.write(f"warming up models in {settings.cache_dir}...\n")
    info = runtime.warmup(settings)
    err.write(
        f"models ready: {info.cnn} ({info.visual_dim}-d), head {info.head_detail or info.head}, "
        f"{info.word_vectors} ({info.vocabulary_size} words, {info.semantic_dim}-d)\n"
    )
    return ExitStatus.SUCCESS


def cmd_demo(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    from imgsearch.cli import demo

    return demo.run(args, settings, out, err)
