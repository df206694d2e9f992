"""Progress of a prepare: tokens written and their rate. A bar on a terminal; elsewhere (a log
file, CI, a Slurm job) a line every PROGRESS_SECONDS, so a long run is never silent."""
from __future__ import annotations

import time
from typing import TextIO

from tqdm import tqdm

PROGRESS_SECONDS = 30.0


class Progress:
    def __init__(self, stream: TextIO, seconds: float = PROGRESS_SECONDS):
        self.stream, self.seconds = stream, seconds
        self.tokens, self.started = 0, time.monotonic()
        self.last_line = self.started
        self.bar = (tqdm(unit="tok", unit_scale=True, dynamic_ncols=True, file=stream, desc="tokens")
                    if stream.isatty() else None)

    def update(self, tokens: int, where: str) -> None:
        """`tokens` more written; `where`: the file being read."""
        self.tokens += tokens
        if self.bar is not None:
            self.bar.update(tokens)
            self.bar.set_postfix_str(where, refresh=False)
            return
        now = time.monotonic()
        if now - self.last_line >= self.seconds:
            self.last_line = now
            print(f"prepare: {self.tokens:,} tokens, {self.rate():,.0f} tokens/s, reading {where}",
                  file=self.stream, flush=True)

    def rate(self) -> float:
        return self.tokens / max(time.monotonic() - self.started, 1e-9)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
