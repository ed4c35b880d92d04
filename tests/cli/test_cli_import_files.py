"""`imgsearch import` of crafted Parquet files: each is refused with one line and its exit code
before anything reaches a server (the checks read the file's metadata only), never a traceback;
a small file that holds a huge compressed string is refused without decompressing it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgsearch.cli.main import Environment, ExitStatus, main
from imgsearch.client import transfer

VIS, SEM = 4, 3
MODEL = {"cnn": "c", "head": "h", "visual_dim": VIS, "semantic_dim": SEM}
# Nothing listens here: a file the checks pass would fail with UNAVAILABLE, not USAGE.
NOWHERE = {"IMGSEARCH_ADDR": "127.0.0.1:1", "IMGSEARCH_TIMEOUT": "2"}


def _meta(model: object = MODEL, **more: str) -> dict[str, str]:
    meta = {"imgsearch.format": transfer.FORMAT, "imgsearch.namespace": "", **more}
    if model is not None:
        meta["imgsearch.model"] = model if isinstance(model, str) else json.dumps(model)
    return meta


def _columns(rows: int = 2) -> dict[str, pa.Array]:
    """The columns of a valid export of `rows` records."""
    schema = transfer._schema(pa, VIS, SEM, {})
    values = {
        "id": [f"00000000-0000-0000-0000-00000000000{i}" for i in range(rows)],
        "namespace": [""] * rows,
        "uri": [""] * rows,
        "label": [""] * rows,
        "metadata": [[]] * rows,
        "ingested_at": [1.0] * rows,
        "sha256": [""] * rows,
        "width": [0] * rows,
        "height": [0] * rows,
        "extra_json": [""] * rows,
        "class_ids": [[]] * rows,
        "class_scores": [[]] * rows,
    }
    out = {}
    for field in schema:
        if field.name in ("visual", "semantic"):
            flat = pa.array(np.ones(rows * field.type.list_size, np.float32))
            out[field.name] = pa.FixedSizeListArray.from_arrays(flat, field.type.list_size)
        else:
            out[field.name] = pa.array(values[field.name], field.type)
    return out


def _write(path: Path, columns: dict[str, pa.Array], meta: dict[str, str]) -> Path:
    table = pa.table(columns).replace_schema_metadata({k: v.encode() for k, v in meta.items()})
    pq.write_table(table, path, compression="zstd")
    return path


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=Environment(stdout=out, stderr=err, environ=dict(NOWHERE)))
    return code, out.getvalue(), err.getvalue()


def _ragged() -> dict[str, pa.Array]:
    columns = _columns()
    columns["visual"] = pa.array([[1.0] * VIS, [1.0] * (VIS + 1)], pa.list_(pa.float32()))
    return columns


CRAFTED = {
    "no model": (lambda: _columns(), _meta(None), "names no model"),
    "model not an object": (lambda: _columns(), _meta("[1, 2]"), "JSON object"),
    "model not JSON": (lambda: _columns(), _meta("{"), "not JSON"),
    "model without sizes": (lambda: _columns(), _meta({"cnn": "c"}), "visual_dim"),
    "no visual column": (
        lambda: {k: v for k, v in _columns().items() if k != "visual"},
        _meta(),
        "no 'visual' column",
    ),
    "integer ids": (lambda: {**_columns(), "id": pa.array([1, 2], pa.int64())}, _meta(), "'id' is int64"),
    "ragged vectors": (_ragged, _meta(), "'visual' is list"),
    "vectors of another size": (
        lambda: _columns(),
        _meta({**MODEL, "visual_dim": VIS + 1}),
        "'visual' is fixed_size_list",
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_file_is_one_line_and_its_exit_code(tmp_path, case):
    columns, meta, why = CRAFTED[case]
    path = _write(tmp_path / "crafted.parquet", columns(), meta)
    code, out, err = _run("import", str(path))
    assert code == ExitStatus.USAGE, err
    assert why in err and "Traceback" not in err and err.count("\n") == 1 and out == ""


def test_a_valid_file_passes_the_checks(tmp_path):
    path = _write(tmp_path / "fine.parquet", _columns(3), _meta())
    header = transfer.read_header(path)
    assert header.records == 3 and header.model == MODEL
    (batch,) = list(transfer.read_records(path))
    assert [r.id for r in batch] == [f"00000000-0000-0000-0000-00000000000{i}" for i in range(3)]
    assert batch[0].visual.shape == (VIS,)
    code, _, err = _run("import", str(path))
    assert code == ExitStatus.UNAVAILABLE, err  # it went as far as the (absent) server


def test_records_are_sent_in_runs_bounded_by_bytes():
    records = [transfer.StoredImage(id=str(i), extra_json="x" * 1000) for i in range(10)]
    runs = list(transfer._by_size(records, 3500))
    assert [len(r) for r in runs] == [3, 3, 3, 1]
    assert list(transfer._by_size(records[:1], 10)) == [records[:1]]  # never below one record


@pytest.mark.slow
def test_a_small_file_holding_a_huge_compressed_string_is_refused_unread(tmp_path):
    """A 300 MiB string compresses to a few KB: the import refuses it from the row group's
    uncompressed size in the metadata, and its peak memory stays far below the string's size."""
    path = tmp_path / "bomb.parquet"
    write = (
        "import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq\n"
        "from tests.cli.test_cli_import_files import _columns, _meta\n"
        "columns = _columns(1)\n"
        "columns['extra_json'] = pa.array(['a' * (300 << 20)])\n"
        "t = pa.table(columns).replace_schema_metadata({k: v.encode() for k, v in _meta().items()})\n"
        "pq.write_table(t, sys.argv[1], compression='zstd')\n"
    )
    subprocess.run([sys.executable, "-c", write, str(path)], check=True)
    assert path.stat().st_size < 1 << 20
    probe = (
        "import io, sys\n"
        "from imgsearch.cli.main import Environment, main\n"
        "err = io.StringIO()\n"
        "code = main(['import', sys.argv[1]], env=Environment(stdout=io.StringIO(), stderr=err, "
        "environ={'IMGSEARCH_ADDR': '127.0.0.1:1'}))\n"
        # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0].split()[1]\n"
        "print(code, hwm, repr(err.getvalue()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True
    )
    code, peak_kib, err = done.stdout.split(" ", 2)
    assert int(code) == ExitStatus.USAGE and "row group 0" in err
    assert int(peak_kib) < 250 * 1024  # MiB: the interpreter and pyarrow, not the 300 MiB string
