"""Generated text as it is produced, row by row: a `transformers` streamer for a whole batch.

Why: `t2 api` streams answers (OpenAI's server-sent events) while the hf sampler generates several
requests in one batch. transformers' own `TextStreamer` takes one row; this one keeps a token list per row
and hands each row's new text to a callback as soon as a token decodes to something printable (a token
that ends inside a multi-byte character waits for the next one). A row stops at its end-of-sequence token.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers.generation.streamers import BaseStreamer

#: (row, new text): row is the index of the conversation in the caller's list
OnPiece = Callable[[int, str], None]


class RowStreamer(BaseStreamer):
    def __init__(self, tokenizer, rows: list[int], on_piece: OnPiece) -> None:
        self.tok, self.rows, self.on_piece = tokenizer, rows, on_piece
        self.ids: list[list[int]] = [[] for _ in rows]
        self.sent = [""] * len(rows)
        self.done = [False] * len(rows)
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        """Called by `generate` with the prompt ids first (skipped), then with each step's tokens (B,)."""
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for j, tid in enumerate(value.reshape(len(self.rows), -1)[:, -1].tolist()):
            if self.done[j]:
                continue
            if tid == self.tok.eos_token_id:
                self.done[j] = True
                continue
            self.ids[j].append(tid)
            self._emit(j, final=False)

    def end(self) -> None:
        for j in range(len(self.rows)):
            self._emit(j, final=True)

    def _emit(self, j: int, final: bool) -> None:
        text = self.tok.decode(self.ids[j], skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):  # half a character: wait for the rest
            return
        if len(text) > len(self.sent[j]) and text.startswith(self.sent[j]):
            self.on_piece(self.rows[j], text[len(self.sent[j]):])
            self.sent[j] = text
