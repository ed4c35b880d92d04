"""The data commands of the CLI against the real server: get, list, update, namespaces, the
confirmation of destructive deletes, export and import. Each test works in its own namespace, so
the session's shared server keeps its other images."""

from __future__ import annotations

import io
import json
import re
import uuid

import pytest

from imgsearch.cli.main import Environment, ExitStatus, main

pytestmark = pytest.mark.slow


def run(server, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=Environment(stdout=out, stderr=err, environ={"IMGSEARCH_ADDR": server.addr}))
    return code, out.getvalue(), err.getvalue()


def js(server, *argv: str) -> dict:
    code, out, err = run(server, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def namespace(server, photos, tmp_path) -> tuple[str, dict[str, str]]:
    """A fresh namespace holding three photos (label pets, metadata kind=animal); uri -> id."""
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    paths = []
    for name in ("puppy", "black_cat", "coffee"):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(photos[name].read_bytes())
        paths.append(str(path))
    doc = js(server, "ingest", *paths, "--label", "pets", "--meta", "kind=animal", "--namespace", ns)
    assert doc["ingested"] == 3
    listed = js(server, "list", "--namespace", ns)["results"]
    return ns, {r["uri"]: r["id"] for r in listed}


class Terminal(io.StringIO):
    """A stdin that is a terminal and answers `answer`."""

    def __init__(self, answer: str):
        super().__init__(answer + "\n")

    def isatty(self) -> bool:
        return True


def test_get_list_and_update(server, namespace):
    ns, ids = namespace
    pid = next(iter(ids.values()))
    doc = js(server, "get", pid, "--namespace", ns)
    (record,) = doc["results"]
    assert doc["not_found"] == [] and record["id"] == pid and record["label"] == "pets"
    assert set(record) == {
        "id",
        "namespace",
        "uri",
        "label",
        "metadata",
        "ingested_at",
        "sha256",
        "width",
        "height",
    }
    # a date, not epoch seconds (issue 22 item 16)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["ingested_at"]), record
    assert js(server, "update", pid, "--label", "dog", "--meta", "seen=yes", "--namespace", ns) == {
        "updated": 1
    }
    (record,) = js(server, "get", pid, "--namespace", ns)["results"]
    assert (record["label"], record["metadata"]) == ("dog", {"kind": "animal", "seen": "yes"})
    assert (
        js(server, "update", "--where-label", "pets", "--remove-meta", "kind", "--namespace", ns)["updated"]
        == 2
    )
    code, out, err = run(server, "get", pid, str(uuid.uuid4()), "--namespace", ns, "--json")
    assert code == ExitStatus.NOT_FOUND and len(json.loads(out)["not_found"]) == 1
    assert run(server, "get", pid)[0] == ExitStatus.NOT_FOUND  # not in the default namespace
    first = js(server, "list", "-k", "2", "--namespace", ns)
    assert len(first["results"]) == 2 and first["next_page_token"]
    rest = js(server, "list", "-k", "2", "--page-token", first["next_page_token"], "--namespace", ns)
    assert len(rest["results"]) == 1 and rest["next_page_token"] == ""
    assert {r["id"] for r in first["results"] + rest["results"]} == set(ids.values())
    assert run(server, "update", pid, "--namespace", ns)[0] == ExitStatus.USAGE  # nothing to change


def test_delete_all_asks_on_a_terminal(server, namespace, monkeypatch):
    ns, ids = namespace
    monkeypatch.setattr("sys.stdin", Terminal("n"))
    code, _, err = run(server, "delete", "--all", "--namespace", ns)
    # the question says how many; a "no" is no error (issue 22 item 13)
    assert code == ExitStatus.SUCCESS and "cancelled" in err and ns in err and "all 3 images" in err
    assert js(server, "stats", "--namespace", ns)["images"] == 3
    code, _, err = run(server, "delete", "--label", "pets", "--namespace", ns)
    assert code == ExitStatus.SUCCESS and "the 3 images matching the filter" in err
    monkeypatch.setattr("sys.stdin", Terminal("y"))  # nothing matches: nothing asked, nothing to say yes to
    code, out, err = run(server, "delete", "--label", "no-such-label", "--namespace", ns)
    assert code == ExitStatus.SUCCESS and "nothing deleted" in out and "[y/N]" not in err
    monkeypatch.setattr("sys.stdin", Terminal("y"))
    assert js(server, "delete", "--label", "pets", "--namespace", ns) == {"deleted": 3}
    monkeypatch.setattr("sys.stdin", Terminal(""))  # --yes: no question
    assert js(server, "delete", "--all", "--yes", "--namespace", ns) == {"deleted": 0}


def test_delete_takes_ids_as_arguments_like_get_and_update(server, namespace):
    ns, ids = namespace
    first, second, _ = ids.values()
    assert js(server, "delete", first, second, "--namespace", ns) == {"deleted": 2}
    assert js(server, "stats", "--namespace", ns)["images"] == 1


def test_export_then_import_restores_the_namespace(server, namespace, tmp_path):
    ns, ids = namespace
    before = js(server, "search", "dog", "--namespace", ns)["results"]
    file = tmp_path / "backup.parquet"
    assert js(server, "export", str(file), "--namespace", ns)["exported"] == 3
    assert js(server, "delete", "--all", "--yes", "--namespace", ns) == {"deleted": 3}
    doc = js(server, "import", str(file))
    assert (doc["imported"], doc["skipped"]) == (3, 0)
    after = js(server, "search", "dog", "--namespace", ns)["results"]
    assert [(h["id"], h["label"], h["metadata"]) for h in after] == [
        (h["id"], h["label"], h["metadata"]) for h in before
    ]
    assert [round(h["score"], 4) for h in after] == [round(h["score"], 4) for h in before]
    assert js(server, "import", str(file)) | {"seconds": 0} == {"imported": 0, "skipped": 3, "seconds": 0}
    code, _, err = run(server, "import", str(tmp_path / "missing.parquet"))
    assert code == ExitStatus.NOT_FOUND
    (tmp_path / "not.parquet").write_text("not parquet")
    code, _, err = run(server, "import", str(tmp_path / "not.parquet"))
    assert code == ExitStatus.USAGE and "Parquet" in err


def test_import_of_a_record_the_server_refuses_is_one_line(server, namespace, tmp_path):
    """A file whose metadata passes but whose record holds NaN (extra_json): the server answers
    INVALID_ARGUMENT (was INTERNAL), the CLI prints one line and exits 2, nothing is stored."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ns, _ = namespace
    file = tmp_path / "nan.parquet"
    assert js(server, "export", str(file), "--namespace", ns)["exported"] == 3
    table = pq.read_table(file)
    nan = pa.array(['{"feature_norm": NaN}'] * table.num_rows, pa.string())
    table = table.set_column(table.schema.get_field_index("extra_json"), "extra_json", nan)
    pq.write_table(table, file, compression="zstd")
    other = f"nan-{uuid.uuid4().hex[:6]}"
    code, out, err = run(server, "import", str(file), "--namespace", other)
    assert code == ExitStatus.USAGE and "INVALID_ARGUMENT" in err and "NaN" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2  # the bar's line, the error
    assert js(server, "stats", "--namespace", other)["images"] == 0
