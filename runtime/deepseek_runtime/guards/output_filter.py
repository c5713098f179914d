"""Output filter: regex patterns that end a completion with finish_reason "content_filter".

The file holds one Python regex per line (blank lines and `#` comments skipped; use `(?i)` for
case-insensitive). The text up to the start of the first match is returned, nothing after.

Streaming holds back the last `holdback` characters until more text arrives, so a match that
spans two chunks is usually caught before its beginning reaches the client. A match longer
than the holdback can start in text already sent; the stream still stops there.
"""

from __future__ import annotations

import re
from pathlib import Path

# Text older than this is not re-searched: it keeps each chunk's scan bounded on long outputs.
SEARCH_WINDOW = 16384


class FilterFileError(Exception):
    """The --output-filter file is unreadable or holds an invalid regex."""


class OutputFilter:
    def __init__(self, patterns: list[re.Pattern[str]], holdback: int = 64) -> None:
        self.patterns = patterns
        self.holdback = holdback if patterns else 0

    @classmethod
    def load(cls, path: Path, holdback: int = 64) -> OutputFilter:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise FilterFileError(f"cannot read output filter {path}: {exc}") from exc
        patterns = []
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                patterns.append(re.compile(line))
            except re.error as exc:
                raise FilterFileError(f"{path}:{number}: invalid regex {line!r}: {exc}") from exc
        return cls(patterns, holdback)

    def first_match(self, text: str, start: int = 0) -> int | None:
        """Index where the earliest match begins, or None."""
        hits = [m.start() for p in self.patterns if (m := p.search(text, start))]
        return min(hits) if hits else None

    def stream(self) -> FilteredText:
        return FilteredText(self)


class FilteredText:
    """Per-request state: feed generated text, get back what is safe to send."""

    def __init__(self, flt: OutputFilter) -> None:
        self.filter = flt
        self.text = ""
        self.sent = 0
        self.matched = False

    def feed(self, delta: str, final: bool = False) -> str:
        """Text that may be sent now. After a match (`self.matched`) it returns ""."""
        if self.matched:
            return ""
        self.text += delta
        if self.filter.patterns:
            cut = self.filter.first_match(self.text, max(0, len(self.text) - SEARCH_WINDOW))
            if cut is not None:
                self.matched = True
                return self._release(max(cut, self.sent))
        return self._release(len(self.text) if final else len(self.text) - self.filter.holdback)

    def _release(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        out, self.sent = self.text[self.sent : upto], upto
        return out
