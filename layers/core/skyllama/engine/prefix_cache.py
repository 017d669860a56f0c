"""Prompt (KV) cache bookkeeping: which tokens each sequence slot's KV cells hold.

A context keeps, per sequence slot, the KV cells of the tokens it last evaluated (a chat's
history, a long system prompt or tool list). A new request goes to the free slot whose tokens
share the longest prefix with its prompt (Ollama's ``LoadCacheSlot``, llama.cpp server's slot
similarity), the cells past that prefix are removed, and only the rest of the prompt is
evaluated. Pure bookkeeping: the engine (``multiseq.py``) does the cell work it asks for.

Exactness: llama.cpp computes a token's row the same way in any batch of two tokens or more,
but a batch of one token takes other kernels (its logits differ in the last bits, enough to
change a seeded sample). So a cell is only ever cached as a batch of >= 2 computed it:

- at least :data:`MIN_EVAL` prompt tokens are evaluated, never just the last one;
- prompt chunks never leave a single token for the last step (:func:`chunk_size`);
- a generated token's cell was computed alone, so it is not cached as it is: once the answer is
  out and the context is idle, the answer is evaluated again as a prompt would be (the refill),
  and the next turn of the chat, which starts with that answer, finds it.
- a context shift moves cells (their keys are re-rotated, not recomputed): only the cells before
  the shift's ``num_keep`` stay cached.
"""

from __future__ import annotations

MIN_EVAL = 2  # prompt tokens always evaluated: a one-token batch computes other floats
REFILL_CHUNK = 64  # tokens per refill step: a request that arrives waits for one chunk at most


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def chunk_size(left: int, room: int) -> int:
    """How many of ``left`` prompt tokens go into a batch with ``room`` places: as many as fit,
    but never leaving exactly one for a batch of its own."""
    take = min(left, room)
    if left - take == 1 and take > 1:
        take -= 1
    return take


class SlotCache:
    """The tokens whose KV cells each slot holds, in position order (cell ``i`` holds ``tokens[i]``),
    and the answers waiting to be evaluated into their slot (the refills)."""

    def __init__(self, n_slots: int, *, enabled: bool = True) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(n_slots)]
        self.refills: dict[int, list[int]] = {}
        self.enabled = enabled

    def choose(self, free: list[int], prompt: list[int]) -> tuple[int, int]:
        """The free slot to use for ``prompt`` and how many of its cells to keep.

        The longest common prefix wins; on a tie, the slot holding the least (the others keep
        the longer histories for the conversations they belong to). A slot that holds another
        conversation, sharing with this prompt less than half of what it holds (a system prompt
        only), is left to that conversation when an empty slot is free. The last
        :data:`MIN_EVAL` prompt tokens are always evaluated. A refill pending on the chosen slot
        is dropped.
        """
        best = max(free, key=lambda s: (common_prefix(self.tokens[s], prompt), -len(self.tokens[s])))
        empty = [s for s in free if not self.tokens[s]]
        if empty and 2 * common_prefix(self.tokens[best], prompt) < len(self.tokens[best]):
            best = empty[0]
        self.refills.pop(best, None)
        if not self.enabled:
            return best, 0
        keep = min(common_prefix(self.tokens[best], prompt), max(len(prompt) - MIN_EVAL, 0))
        return best, keep

    def keep(self, slot: int, n: int) -> None:
        """The slot's cells from ``n`` on are removed."""
        del self.tokens[slot][n:]

    def add(self, slot: int, token: int) -> None:
        """A token's cell was computed at the next position, in a batch of two or more."""
        self.tokens[slot].append(token)

    def shift(self, slot: int, keep: int) -> None:
        """A context shift moved the cells after the first ``keep``: they no longer count."""
        del self.tokens[slot][keep:]

    def forget(self, slot: int) -> None:
        """The slot's cells are gone (a failed or aborted decode)."""
        self.tokens[slot] = []
        self.refills.pop(slot, None)

    def answered(self, slot: int, prompt_len: int, generated: list[int]) -> None:
        """A sequence that evaluated its whole prompt into ``slot`` generated ``generated``: queue
        its refill. The answer's cells (computed one token at a time) are replaced; an answer of
        one token is evaluated with the prompt's last token, so the refill batch holds two."""
        if not self.enabled or not generated or len(self.tokens[slot]) != prompt_len:
            return
        if len(generated) == 1:
            if not prompt_len:
                return
            generated = [self.tokens[slot].pop(), *generated]
        self.refills[slot] = list(generated)

    def next_refill(self, room: int = REFILL_CHUNK) -> tuple[int, int, list[int]] | None:
        """The slot, the position and the (at most ``room``) tokens of the next refill step,
        taken off the queue."""
        if not self.refills:
            return None
        slot = next(iter(self.refills))
        pending = self.refills[slot]
        take = chunk_size(len(pending), room)
        chunk, rest = pending[:take], pending[take:]
        if rest:
            self.refills[slot] = rest
        else:
            del self.refills[slot]
        return slot, len(self.tokens[slot]), chunk
