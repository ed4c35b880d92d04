"""What the images promise beyond serving: the non-root user, no TensorFlow in the embedder or lite
image, and sizes near what docs/deploy.md states (measured on the local Debian base; the read-only
root filesystem is exercised by every container the other modules run)."""

from __future__ import annotations

import pytest

from tests.containers import engine
from tests.containers.conftest import record

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1200)]

# docs/deploy.md's figures over the base image (the registry's python:3.11-slim-bookworm is about
# 125 MB; the local debootstrap base these tests build on is about 190 MB): what the Dockerfile
# adds, measured 766 MB (embedder) and 210 MB (lite), with some room.
ADDED_MB = {"embedder": 850, "lite": 260}


@pytest.mark.parametrize("target", ["embedder", "lite"])
def test_the_image_runs_as_the_non_root_user(images, target):
    image = images[target]
    assert engine.docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.strip() == "imgsearch"
    ids = engine.docker(
        "run", "--rm", "--label", engine.LABEL, "--network", "none", "--entrypoint", "id", image
    )
    assert ids.stdout.startswith("uid=10001(imgsearch) gid=10001(imgsearch)"), ids.stdout


@pytest.mark.parametrize("target", ["embedder", "lite"])
def test_the_image_has_no_tensorflow(images, target):
    probe = (
        "import importlib.util, sys; import imgsearch; "
        "sys.exit(1 if importlib.util.find_spec('tensorflow') or importlib.util.find_spec('keras') else 0)"
    )
    found = engine.docker(
        "run", "--rm", "--label", engine.LABEL, "--network", "none", "--read-only",
        "--entrypoint", "python", images[target], "-c", probe, check=False,
    )  # fmt: skip
    assert found.returncode == 0, f"{target}: TensorFlow or Keras is installed\n{found.stderr}"


def test_the_images_sizes(images):
    base = engine.image_size_mb(engine.BASE_IMAGE)
    record("size base (debootstrap bookworm, python3)", f"{base:.0f} MB")
    for target, most in ADDED_MB.items():
        added = engine.image_size_mb(images[target]) - base
        record(f"size {target} over the base", f"{added:.0f} MB")
        assert added < most, f"{target} adds {added:.0f} MB to its base; docs/deploy.md says less"
