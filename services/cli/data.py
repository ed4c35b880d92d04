"""The data commands: `get`, `list`, `update`, `export`, `import`.

`--json` shapes: `get` prints {"results": [record], "not_found": [id]}; `list` prints
{"results": [record], "next_page_token": str}; a record is {"id", "namespace", "uri", "label",
"metadata", "ingested_at" (ISO 8601, UTC), "sha256", "width", "height"}. `update` prints {"updated": int},
`export` {"exported": int, "file": str, "seconds": float}, `import` {"imported": int,
"skipped": int, "seconds": float}.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from imgsearch.cli import output
from imgsearch.cli.commands import connect, parse_meta, query_filter
from imgsearch.cli.confirm import namespace_name
from imgsearch.cli.status import CommandError, ExitStatus
from imgsearch.client import Filter, StoredImage
from imgsearch.config import Settings
from imgsearch.reports.progress import progress_bar


def ingested_date(seconds: float) -> str:
    """When an image was stored, as ISO 8601 in UTC (seconds), or "" when the record has none."""
    if not seconds:
        return ""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


def record_json(r: StoredImage) -> dict:
    return {
        "id": r.id,
        "namespace": r.namespace,
        "uri": r.uri,
        "label": r.label,
        "metadata": dict(r.metadata),
        "ingested_at": ingested_date(r.ingested_at),
        "sha256": r.sha256,
        "width": r.width,
        "height": r.height,
    }


def records_table(records: Sequence[StoredImage]) -> str:
    if not records:
        return "(no images)\n"
    rows = [
        [
            r.id,
            r.label,
            output.shorten(r.uri),
            ingested_date(r.ingested_at).replace("T", " ").removesuffix("+00:00"),
            ",".join(f"{k}={v}" for k, v in sorted(r.metadata.items())),
        ]
        for r in records
    ]
    return output.render_table(["id", "label", "uri", "ingested (UTC)", "metadata"], rows, [False] * 5)


def cmd_get(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    ids = [*(args.ids or ()), *(args.id or ())]
    if not ids:
        raise CommandError("get needs at least one ID", ExitStatus.USAGE)
    with connect(args, settings) as client:
        found, missing = client.get(ids)
    if args.json:
        output.write_json({"results": [record_json(r) for r in found], "not_found": missing}, out)
    else:
        out.write(records_table(found))
    for i in missing:
        err.write(f"not found in {namespace_name(args)}: {i}\n")
    return ExitStatus.NOT_FOUND if missing else ExitStatus.SUCCESS


def cmd_list(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    flt = query_filter(args)
    with connect(args, settings) as client:
        if args.every_page:
            records: list[StoredImage] = []
            token = ""
            for page in client.iter_images(
                page_size=args.limit,
                page_token=args.page_token,
                filter=flt,
                all_namespaces=args.all_namespaces,
            ):
                records += page.images
        else:
            page = client.list_images(
                filter=flt, limit=args.limit, page_token=args.page_token, all_namespaces=args.all_namespaces
            )
            records, token = page.images, page.next_page_token
    if args.json:
        output.write_json({"results": [record_json(r) for r in records], "next_page_token": token}, out)
    else:
        out.write(records_table(records))
        if token:
            err.write(f"more: --page-token {token}\n")
    return ExitStatus.SUCCESS


def cmd_update(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    ids = [*(args.ids or ()), *(args.id or ())]
    where = Filter(labels=args.where_label or (), metadata=parse_meta(args.where_meta))
    if bool(ids) == bool(where.labels or where.metadata):
        raise CommandError(
            "update needs ID... (or --id) or a filter (--where-label, --where-meta)", ExitStatus.USAGE
        )
    changes = parse_meta(args.meta)
    if args.label is None and not changes and not args.remove_meta:
        raise CommandError("update needs --label, --meta KEY=VALUE or --remove-meta KEY", ExitStatus.USAGE)
    with connect(args, settings) as client:
        updated = client.update(
            ids or None,
            label=args.label,
            set_metadata=changes,
            remove_metadata=args.remove_meta or (),
            filter=None if ids else where,
        )
    if args.json:
        output.write_json({"updated": updated}, out)
    else:
        out.write(f"updated {updated}\n")
    if ids and updated < len(set(ids)):
        err.write(f"{len(set(ids)) - updated} id(s) not found in {namespace_name(args)}\n")
        return ExitStatus.NOT_FOUND
    return ExitStatus.SUCCESS


def _transfer():
    try:
        from imgsearch.client import transfer

        transfer._pyarrow()
    except ImportError as e:
        raise CommandError(str(e), ExitStatus.ERROR) from None
    return transfer


def cmd_export(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    folder = Path(args.file).expanduser().absolute().parent
    if not folder.is_dir():  # said before any record is read, not as pyarrow's errno at the end
        raise CommandError(f"no such folder: {folder} (create it first)", ExitStatus.NOT_FOUND)
    transfer = _transfer()
    with connect(args, settings) as client, progress_bar(err, None, "export", unit="rec") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total or None
            bar.update(done - bar.n)

        summary = transfer.export(client, args.file, all_namespaces=args.all_namespaces, progress=progress)
    if args.json:
        output.write_json(
            {"exported": summary.records, "file": str(summary.path), "seconds": round(summary.seconds, 3)},
            out,
        )
    else:
        out.write(f"exported {summary.records} images to {summary.path} in {summary.seconds:.1f} s\n")
    return ExitStatus.SUCCESS


def cmd_import(args, settings: Settings, out: TextIO, err: TextIO) -> int:
    transfer = _transfer()
    try:
        header = transfer.read_header(args.file)
    except FileNotFoundError:
        raise CommandError(f"no such file: {args.file}", ExitStatus.NOT_FOUND) from None
    except (ValueError, OSError) as e:
        raise CommandError(str(e), ExitStatus.USAGE) from None
    with connect(args, settings) as client, progress_bar(err, header.records, "import", unit="rec") as bar:
        try:
            summary = transfer.import_file(
                client,
                args.file,
                namespace=args.namespace if args.namespace is not None else None,
                progress=lambda done, total: bar.update(done - bar.n),
            )
        except transfer.BadExport as e:  # a value the file's metadata could not vouch for
            raise CommandError(str(e), ExitStatus.USAGE) from None
    if args.json:
        output.write_json(
            {"imported": summary.imported, "skipped": summary.skipped, "seconds": round(summary.seconds, 3)},
            out,
        )
    else:
        out.write(
            f"imported {summary.imported}, skipped {summary.skipped} already stored, "
            f"in {summary.seconds:.1f} s\n"
        )
    return ExitStatus.SUCCESS
