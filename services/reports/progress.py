"""Progress bars from tqdm, configured once for every long task (ingest, reindex, features, training).

On a terminal the bar is redrawn in place with a rate and the time left. Elsewhere (pipes, logs,
tests) nothing is drawn while the work runs and one summary line is written when it ends, so logs
hold no carriage returns.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm

# `ingest [#########.....................] 45/150  30% 12.30 img/s`, then `, <postfix>` if one is set
SUMMARY_FORMAT = "{desc} [{bar:30}] {n_fmt}/{total_fmt} {percentage:3.0f}% {rate_noinv_fmt}{postfix}"
LIVE_FORMAT = (
    "{desc} [{bar:30}] {n_fmt}/{total_fmt} {percentage:3.0f}% {rate_noinv_fmt} eta {remaining}{postfix}"
)
# On a terminal the first draw waits this long, so work that is done at once does not flash a bar.
FIRST_DRAW_SECONDS = 0.1


@contextmanager
def progress_bar(
    stream: TextIO | None, total: int | None, label: str, unit: str = "img", initial: int = 0
) -> Iterator[tqdm]:
    """A tqdm bar on `stream` (default stderr) counting `total` units from `initial` (a resumed task).

    `total` may be set later, by a task that learns its size as it goes. tqdm counts without a
    lock, so callers that `update()` from several threads hold their own. The bar is closed, and
    off a terminal its summary line written, when the block ends.
    """
    stream = sys.stderr if stream is None else stream
    live = stream.isatty()
    bar = tqdm(
        total=total,
        desc=label,
        initial=initial,
        file=stream,
        unit=f" {unit}",  # `12.30 img/s`, not `12.30img/s`
        ascii=".#",
        bar_format=LIVE_FORMAT,
        mininterval=0.1,
        delay=FIRST_DRAW_SECONDS if live else math.inf,  # never drawn off a terminal
    )
    try:
        yield bar
    finally:
        bar.close()
        if not live:
            stream.write(tqdm.format_meter(**{**bar.format_dict, "bar_format": SUMMARY_FORMAT}) + "\n")
            stream.flush()
