"""The wire form of the engine's messages to the other ranks: int64 tensors, broadcast from
rank 0 over the step group (a length, then the words). No pickle: a follower decodes numbers,
never objects, from the network.

A StepInput is all a rank needs to run the same forward (engine/step.py): every rank keeps a
paged KV cache with the same blocks, so the block tables rank 0 decided are valid everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from deepseek_runtime.engine.step import StepInput, WorkItem

OPEN, STEP, RESET, STOP = 1, 2, 3, 4


@dataclass(slots=True, frozen=True)
class Open:
    """The runner every rank builds: the same KV budget, blocks and padding as rank 0's."""

    num_blocks: int
    block_size: int
    pad_token_id: int


@dataclass(slots=True, frozen=True)
class Reset:
    """A step failed on rank 0: forget every sequence (rank 0's runner did)."""


@dataclass(slots=True, frozen=True)
class Stop:
    """The engine stopped: followers leave their loop and exit 0."""


Message = Open | StepInput | Reset | Stop


def encode(message: Message) -> list[int]:
    if isinstance(message, Open):
        return [OPEN, message.num_blocks, message.block_size, message.pad_token_id]
    if isinstance(message, Reset):
        return [RESET]
    if isinstance(message, Stop):
        return [STOP]
    words = [STEP, message.block_size, len(message.items)]
    for item in message.items:
        words += [item.seq_id, item.start, len(item.token_ids), len(item.block_table)]
        words += item.token_ids
        words += item.block_table
    return words


def decode(words: list[int]) -> Message:
    kind = words[0]
    if kind == OPEN:
        return Open(*words[1:4])
    if kind == RESET:
        return Reset()
    if kind == STOP:
        return Stop()
    if kind != STEP:
        raise ValueError(f"unknown step message kind {kind}")
    block_size, count = words[1], words[2]
    at, items = 3, []
    for _ in range(count):
        seq_id, start, n_tokens, n_blocks = words[at : at + 4]
        at += 4
        tokens = tuple(words[at : at + n_tokens])
        blocks = tuple(words[at + n_tokens : at + n_tokens + n_blocks])
        at += n_tokens + n_blocks
        items.append(WorkItem(seq_id, tokens, start, blocks))
    return StepInput(tuple(items), block_size)


class StepChannel:
    """Rank 0 sends, every other rank receives, in the same order (one collective each)."""

    def __init__(self, group: dist.ProcessGroup) -> None:
        self.group = group

    def send(self, message: Message) -> None:
        words = torch.tensor(encode(message), dtype=torch.int64)
        dist.broadcast(torch.tensor([words.numel()], dtype=torch.int64), 0, group=self.group)
        dist.broadcast(words, 0, group=self.group)

    def receive(self) -> Message:
        length = torch.zeros(1, dtype=torch.int64)
        dist.broadcast(length, 0, group=self.group)
        words = torch.empty(int(length), dtype=torch.int64)
        dist.broadcast(words, 0, group=self.group)
        return decode(words.tolist())
