"""Progress of the long loops a user watches: a bar on a terminal, log lines elsewhere.

A tqdm bar is invisible in a file or a CI log (tqdm draws it with carriage returns, or is
turned off), so scoring 664 frames looked like a hang. Off a terminal, :class:`Progress`
logs one line every ``every`` items and one at the end, with the elapsed time and the rate:
the log then also says how long each phase took.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

logger = logging.getLogger(__name__)

# Items between two progress lines off a terminal: a few lines for a test split of hundreds.
LOG_EVERY = 100
# ... or seconds, whichever comes first: a slow loop (IPI, seconds a frame) still reports.
LOG_SECONDS = 30.0


class Progress:
    """Counts items of a loop; a bar on a terminal, else a line every ``every`` items or 30 s.

    Args:
        total: number of items expected.
        desc: what is being done (``"test"``, ``"scoring"``, ``"inference"``).
        enabled: False shows nothing (e.g. on DDP ranks other than 0).
        unit: the item's name in the bar and the lines.
        every: items between log lines off a terminal; None logs nothing there (a loop
            that logs its own lines, like training).
        initial: items already done (a resumed run).
    """

    def __init__(
        self,
        total: int,
        desc: str,
        enabled: bool = True,
        unit: str = "img",
        every: int | None = LOG_EVERY,
        initial: int = 0,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.count = initial
        self.started = time.perf_counter()
        on_terminal = sys.stderr.isatty()
        self.bar = (
            tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=False)
            if enabled and on_terminal
            else None
        )
        self.every = every if enabled and not on_terminal and every else None
        self._next_line = self._following(initial)
        self._last_line = self.started

    def _following(self, count: int) -> int:
        return (count // self.every + 1) * self.every if self.every else 0

    def update(self, count: int = 1) -> None:
        """Count ``count`` more items done."""
        self.count += count
        if self.bar is not None:
            self.bar.update(count)
            return
        if not self.every:
            return
        now = time.perf_counter()
        if (
            self.count >= self._next_line
            or 0 < self.total <= self.count
            or now - self._last_line >= LOG_SECONDS
        ):
            self._log(now - self.started)
            self._next_line = self._following(self.count)
            self._last_line = now

    def _log(self, seconds: float) -> None:
        rate = self.count / seconds if seconds > 0 else float("nan")
        logger.info(
            "%s: %d/%d %s in %.1f s (%.2f %s/s)",
            self.desc,
            self.count,
            self.total,
            self.unit,
            seconds,
            rate,
            self.unit,
        )

    def set_postfix(self, text: str) -> None:
        """Extra text on the bar (the loss, ms per image); log lines leave it out."""
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
