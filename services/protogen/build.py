"""Generates the Python gRPC stubs from protos/ into services/protogen/imagesearch/v1/.

protoc writes absolute imports (`from imagesearch.v1 import common_pb2`); they are rewritten to
`imgsearch.protogen.imagesearch.v1` so the stubs live inside our package and need no sys.path tricks.
Run by `make protos` and by every package build (setup.py calls `build(out)` for the wheel), so a
plain `pip install .` of a clone carries the stubs although they are never committed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = Path(__file__).resolve().parent
PACKAGE = "imgsearch.protogen"


def build(out: Path = OUT, protos: Path = PROTOS) -> list[Path]:
    """Runs protoc over every .proto file under `protos` into `out` and fixes imports; returns the
    generated files."""
    import grpc_tools
    from grpc_tools import protoc

    sources = sorted(protos.rglob("*.proto"))
    if not sources:
        raise SystemExit(f"no .proto files under {protos}")
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{protos}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(s.relative_to(protos)) for s in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = []
    for path in sorted(out.joinpath("imagesearch").rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = re.sub(r"^from imagesearch\.", f"from {PACKAGE}.imagesearch.", path.read_text(), flags=re.M)
        path.write_text(text)
        generated.append(path)
    for folder in [out / "imagesearch", *(p for p in (out / "imagesearch").rglob("*") if p.is_dir())]:
        folder.joinpath("__init__.py").touch()
    return generated


if __name__ == "__main__":
    files = build()
    print(f"generated {len(files)} files under {OUT / 'imagesearch'}", file=sys.stderr)
