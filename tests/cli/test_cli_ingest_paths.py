"""Which files `imgsearch ingest PATH...` picks: files, folders (recursively), globs, labels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.cli.ingest import expand_paths, label_for


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """cats/a.jpg cats/b.PNG cats/notes.txt dogs/puppies/c.webp dogs/d.gif .hidden/e.jpg top.tiff"""
    files = ["cats/a.jpg", "cats/b.PNG", "dogs/puppies/c.webp", "dogs/d.gif", ".hidden/e.jpg", "top.tiff"]
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), "red").save(path, format=Image.registered_extensions()[path.suffix.lower()])
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    (tmp_path / "cats" / ".thumb.jpg").write_bytes(b"hidden")
    return tmp_path


def rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_folder_is_walked_recursively_skipping_hidden_and_non_images(tree):
    found = expand_paths([str(tree)])
    assert rel(found.files, tree) == [
        "cats/a.jpg",
        "cats/b.PNG",
        "dogs/d.gif",
        "dogs/puppies/c.webp",
        "top.tiff",
    ]
    assert found.missing == []
    assert all(p.is_absolute() for p in found.files)


def test_explicit_files_are_taken_whatever_their_extension(tree):
    found = expand_paths([str(tree / "cats" / "notes.txt"), str(tree / "top.tiff")])
    assert rel(found.files, tree) == ["cats/notes.txt", "top.tiff"]


def test_globs_including_recursive_ones(tree):
    found = expand_paths([str(tree / "cats" / "*")])
    assert rel(found.files, tree) == ["cats/a.jpg", "cats/b.PNG"]  # notes.txt filtered out
    found = expand_paths([str(tree / "**" / "*.webp")])
    assert rel(found.files, tree) == ["dogs/puppies/c.webp"]
    found = expand_paths([str(tree / "d*")])  # a glob matching a folder walks it
    assert rel(found.files, tree) == ["dogs/d.gif", "dogs/puppies/c.webp"]


def test_relative_paths_become_absolute(tree, monkeypatch):
    monkeypatch.chdir(tree)
    found = expand_paths(["cats", "top.tiff"])
    assert found.files == [tree / "cats" / "a.jpg", tree / "cats" / "b.PNG", tree / "top.tiff"]


def test_duplicates_are_dropped_and_order_kept(tree):
    found = expand_paths([str(tree / "top.tiff"), str(tree), str(tree / "cats" / "a.jpg")])
    assert rel(found.files, tree)[0] == "top.tiff"
    assert len(found.files) == len(set(found.files)) == 5


def test_missing_paths_and_empty_globs_are_reported(tree):
    found = expand_paths([str(tree / "nope.jpg"), str(tree / "*.bmp"), str(tree / "cats" / "a.jpg")])
    assert found.missing == [str(tree / "nope.jpg"), str(tree / "*.bmp")]
    assert rel(found.files, tree) == ["cats/a.jpg"]


def test_label_from_dir_uses_the_parent_folder(tree):
    found = expand_paths([str(tree / "dogs")])
    labels = [label_for(p, None, True) for p in found.files]
    assert labels == ["dogs", "puppies"]
    assert label_for(found.files[0], "pets", False) == "pets"
    assert label_for(found.files[0], None, False) == ""


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_symlinked_duplicate_counts_once(tree):
    (tree / "link.jpg").symlink_to(tree / "cats" / "a.jpg")
    found = expand_paths([str(tree / "cats" / "a.jpg"), str(tree / "link.jpg")])
    assert len(found.files) == 1


def test_folder_files_are_read_by_content_and_the_skipped_are_counted(tree):
    """A JPEG without extension (a phone's export) is taken by its bytes; a .heic and a text file
    are skipped and said (issue 22 item 17)."""
    Image.new("RGB", (8, 8), "blue").save(tree / "cats" / "IMG_0001", format="JPEG")
    (tree / "cats" / "IMG_0002.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 16)
    found = expand_paths([str(tree)])
    assert "cats/IMG_0001" in rel(found.files, tree)
    assert found.skipped == {".txt": 1, ".heic": 1}
    assert found.skipped_note() == "skipped 2 files that are no image the server reads (.heic: 1, .txt: 1)"
