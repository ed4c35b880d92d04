"""Every command of the README works as printed (issue 22 item 28).

The README's fenced shell and Python blocks run, as written, in one bash script against the real
server they start (`imgsearch serve ... &`), in a scratch folder whose HOME holds a `Pictures`
folder of sample photos. Only what would collide on a shared machine is changed: the gRPC port
comes from the environment (IMGSEARCH_PORT, IMGSEARCH_ADDR) and the HTTP port 8080 is replaced by
a free one; a smaller vocabulary makes the first start quicker. The two `make` commands (which
build this very environment) and the commands quoted inline are checked one by one instead.
The README stays a page a newcomer reads: at most 300 lines, linking nothing outside the
repository.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgsearch.app.process import free_port
from imgsearch.cli.main import build_parser
from imgsearch.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def commands(body: str) -> list[str]:
    """The command lines of a shell block, comments dropped."""
    out = []
    for line in body.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(shlex.join(words))
    return out


def inline_commands(text: str) -> list[str]:
    """Commands quoted inline outside the fenced blocks: `imgsearch ...`, `make ...`, `pip ...`."""
    prose = FENCE.sub("", text)
    return [c for c in re.findall(r"`([^`\n]+)`", prose) if c.split()[0] in ("imgsearch", "make", "pip")]


def test_the_readme_is_short_and_links_only_into_the_repository():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert not re.match(r"[a-z]+:", target), f"a link out of the repository: {target}"
        assert (ROOT / target.split("#")[0]).exists(), f"a link to nothing: {target}"
    for url in re.findall(r"https?://[^\s`)]+", text):
        assert re.match(r"https?://localhost[:/]", url), f"an address outside this machine: {url}"
    for page in ("configuration", "query-language", "data-management", "storage", "security", "development"):
        assert f"(docs/{page}.md)" in text, page
    assert "(docs/benchmarks.md)" in text and "(benchmarks/README.md)" in text


def test_the_make_commands_are_the_makefiles():
    text = README.read_text()
    shell = [c for lang, body in blocks(text) if lang == "sh" for c in commands(body)]
    assert "make demo" in shell and "make test" in shell
    for target, runs in (("demo", "imgsearch demo"), ("test", "pytest")):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0 and runs in dry.stdout, dry.stdout + dry.stderr


def test_the_inline_commands_parse_as_printed():
    parser = build_parser()
    makefile = (ROOT / "Makefile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    for command in inline_commands(README.read_text()):
        words = shlex.split(command)
        if words[0] == "imgsearch":
            with open(os.devnull, "w") as quiet, pytest.MonkeyPatch.context() as patch:
                patch.setattr(sys, "stderr", quiet)
                parser.parse_args(words[1:])  # SystemExit (a failed test) when it does not parse
        elif words[0] == "make":
            assert len(words) == 1 or re.search(rf"^{words[1]}:", makefile, re.M), command
        else:
            assert words[:2] == ["pip", "install"] and words[2] in (".", ".[server]"), command
            assert "[project.optional-dependencies]" in pyproject


@pytest.mark.slow
def test_the_readme_blocks_run_as_printed(tmp_path, photos):
    text = README.read_text()
    runnable = [(lang, body) for lang, body in blocks(text) if lang in ("sh", "python")]
    shell = [body for lang, body in runnable if lang == "sh" and "make demo" not in body]
    python = [body for lang, body in runnable if lang == "python"]
    assert len(shell) >= 2 and len(python) == 1, "the README's blocks changed: update this test"
    grpc_port, http_port = free_port(), free_port()

    home = tmp_path / "home"
    pictures = home / "Pictures"
    pictures.mkdir(parents=True)
    for name in ("puppy", "black_cat", "coffee", "island", "beverages", "guitar"):
        shutil.copy(photos[name], pictures / f"{name}{photos[name].suffix}")
    shutil.copy(photos["black_cat"], pictures / "cat.jpg")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))

    def local(body: str) -> str:
        return body.replace("8080", str(http_port)).replace("localhost:50051", f"localhost:{grpc_port}")

    script = "\n".join(
        [
            "set -euo pipefail",
            "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT",
            *(f"echo '+ {line}'\n{line}" for body in shell for line in local(body).splitlines() if line),
            "python - <<'PYTHON'",
            local(python[0]).rstrip(),
            "PYTHON",
            "echo README-DONE",
        ]
    )
    environ = {
        **os.environ,
        "HOME": str(home),
        "IMGSEARCH_PORT": str(grpc_port),
        "IMGSEARCH_ADDR": f"localhost:{grpc_port}",
        "IMGSEARCH_CACHE": str(Settings.from_env(os.environ).cache_dir),
        "IMGSEARCH_VOCAB_SIZE": "20000",
    }
    done = subprocess.run(
        ["bash", "-c", script], cwd=work, env=environ, capture_output=True, text=True, timeout=540
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "README-DONE" in done.stdout, output[-4000:]
    assert '"results"' in done.stdout  # the curl search answered JSON results
    assert re.search(r"^\d\.\d{3} .*Pictures/", done.stdout, re.M), output[-2000:]  # the Python block
    assert "Traceback" not in output
