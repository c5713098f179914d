"""Split a reasoning model's `<think>...</think>` out of its answer, incrementally.

DeepSeek-R1 style chat templates often end the prompt with `<think>\\n`, so the output starts
inside the reasoning and only the closing tag appears; otherwise an opening tag at the very
start of the output switches reasoning on. Tags split across streamed chunks are held back
until they can be recognised, so `reasoning_content` never leaks a half tag into `content`.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


def prompt_opens_reasoning(prompt_text: str) -> bool:
    return prompt_text.rstrip().endswith(OPEN)


def tokenizer_has_think_tags(tokenizer: object) -> bool:
    """True when the vocabulary knows both tags as tokens: the mark of a reasoning model."""
    get_vocab = getattr(tokenizer, "get_vocab", None)
    try:
        vocab = get_vocab() if callable(get_vocab) else {}
    except Exception:  # some tokenizers build the vocab lazily and may refuse: assume no
        return False
    return OPEN in vocab and CLOSE in vocab


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of text that is a proper prefix of tag."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ReasoningSplitter:
    def __init__(self, in_reasoning: bool) -> None:
        self.state = "reasoning" if in_reasoning else "start"
        self.saw_reasoning = in_reasoning
        self.buf = ""

    def feed(self, text: str, final: bool = False) -> tuple[str, str]:
        """Returns (reasoning_delta, content_delta) that can be sent now."""
        self.buf += text
        reasoning, content = "", ""
        while True:
            if self.state == "start":
                head = self.buf.lstrip()
                if head.startswith(OPEN):
                    self.state, self.buf = "reasoning", head[len(OPEN) :]
                    self.saw_reasoning = True
                    continue
                if OPEN.startswith(head) and not final:
                    break  # maybe the beginning of an opening tag: wait for more
                self.state = "content"
                continue
            if self.state == "reasoning":
                end = self.buf.find(CLOSE)
                if end >= 0:
                    reasoning += self.buf[:end]
                    self.state, self.buf = "after", self.buf[end + len(CLOSE) :]
                    continue
                keep = 0 if final else _held_suffix(self.buf, CLOSE)
                reasoning += self.buf[: len(self.buf) - keep]
                self.buf = self.buf[len(self.buf) - keep :]
                break
            if self.state == "after":  # drop the blank lines between the tag and the answer
                self.buf = self.buf.lstrip()
                if not self.buf and not final:
                    break
                self.state = "content"
                continue
            content += self.buf
            self.buf = ""
            break
        return reasoning, content


def split_reasoning(text: str, in_reasoning: bool) -> tuple[str | None, str]:
    """Whole-text form for non-streaming responses: (reasoning or None, content)."""
    splitter = ReasoningSplitter(in_reasoning)
    reasoning, content = splitter.feed(text, final=True)
    return (reasoning if splitter.saw_reasoning else None), content
