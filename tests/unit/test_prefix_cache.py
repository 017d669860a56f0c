"""The prompt cache's bookkeeping (engine/prefix_cache.py): which slot a prompt takes, how many
cells it keeps, and the rules that keep cached cells bit-identical to an uncached evaluation."""

from __future__ import annotations

from skyllama.engine.prefix_cache import MIN_EVAL, REFILL_CHUNK, SlotCache, chunk_size, common_prefix

SYSTEM = list(range(20))


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_a_chat_continues_in_its_own_slot_and_keeps_all_but_the_last_tokens() -> None:
    cache = SlotCache(2)
    cache.tokens[1] = SYSTEM + [100, 101]
    slot, keep = cache.choose([0, 1], SYSTEM + [100, 101, 5, 6])
    assert (slot, keep) == (1, 22)
    slot, keep = cache.choose([0, 1], SYSTEM + [100, 101])  # the same prompt again
    assert (slot, keep) == (1, 22 - MIN_EVAL)


def test_another_conversation_takes_an_empty_slot_not_one_sharing_only_the_system_prompt() -> None:
    cache = SlotCache(3)
    cache.tokens[0] = SYSTEM + [100 + i for i in range(40)]
    slot, keep = cache.choose([0, 1, 2], SYSTEM + [7, 8, 9])
    assert slot != 0 and keep == 0


def test_a_long_shared_prefix_is_reused_by_another_conversation() -> None:
    cache = SlotCache(2)
    cache.tokens[0] = SYSTEM * 10 + [1, 2]  # a tool list, then the first conversation's question
    slot, keep = cache.choose([0, 1], SYSTEM * 10 + [3, 4])
    assert (slot, keep) == (0, 200)


def test_disabled_keeps_nothing() -> None:
    cache = SlotCache(1, enabled=False)
    cache.tokens[0] = SYSTEM
    assert cache.choose([0], SYSTEM + [1]) == (0, 0)


def test_chunks_never_leave_a_single_token() -> None:
    assert chunk_size(513, 512) == 511
    assert chunk_size(2, 512) == 2
    assert chunk_size(600, 512) == 512
    assert chunk_size(2, 1) == 1  # a one-place batch cannot do better


def test_an_answer_is_refilled_in_chunks_and_a_new_request_drops_the_refill() -> None:
    cache = SlotCache(1)
    cache.tokens[0] = list(SYSTEM)
    cache.answered(0, len(SYSTEM), list(range(100, 100 + REFILL_CHUNK + 1)))
    slot, pos, chunk = cache.next_refill() or (None, None, [])
    assert (slot, pos, len(chunk)) == (0, 20, REFILL_CHUNK - 1)  # leaves two, not one
    cache.tokens[0] += chunk
    cache.choose([0], SYSTEM)
    assert cache.next_refill() is None


def test_a_one_token_answer_is_refilled_with_the_prompts_last_token() -> None:
    cache = SlotCache(1)
    cache.tokens[0] = list(SYSTEM)
    cache.answered(0, len(SYSTEM), [500])
    assert cache.next_refill() == (0, 19, [19, 500])


def test_no_refill_after_a_shift_or_a_partial_prompt() -> None:
    cache = SlotCache(1)
    cache.tokens[0] = list(SYSTEM)
    cache.shift(0, 4)
    cache.answered(0, len(SYSTEM), [1, 2, 3])
    assert cache.tokens[0] == SYSTEM[:4] and cache.next_refill() is None
