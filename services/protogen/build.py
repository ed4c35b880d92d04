"""Generates the Python gRPC stubs from protos/ into services/protogen/imagesearch/v1/.

protoc writes absolute imports (`from imagesearch.v1 import common_pb2`); they are rewritten to
`services.protogen.imagesearch.v1` so the stubs live inside our package and need no sys.path tricks.
Run by `make protos` (part of every setup) and by the Docker build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = Path(__file__).resolve().parent
PACKAGE = "services.protogen"


def build() -> list[Path]:
    """Runs protoc over every .proto file and fixes imports; returns the generated files."""
    import grpc_tools
    from grpc_tools import protoc

    sources = sorted(PROTOS.rglob("*.proto"))
    if not sources:
        raise SystemExit(f"no .proto files under {PROTOS}")
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *[str(s.relative_to(PROTOS)) for s in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = []
    for path in sorted(OUT.joinpath("imagesearch").rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = re.sub(r"^from imagesearch\.", f"from {PACKAGE}.imagesearch.", path.read_text(), flags=re.M)
        path.write_text(text)
        generated.append(path)
    for folder in [OUT / "imagesearch", *(p for p in (OUT / "imagesearch").rglob("*") if p.is_dir())]:
        folder.joinpath("__init__.py").touch()
    return generated


if __name__ == "__main__":
    files = build()
    print(f"generated {len(files)} files under {OUT / 'imagesearch'}", file=sys.stderr)
