"""Per-request llama.cpp sampler chains, built in the order of llama-cpp-python's
``Llama._init_sampler`` so that a seed gives the tokens llama-cpp-python's own path gives, and
the log-probabilities of a sampled token (both engines use them)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import LlamaGrammar

from ..errors import BadRequest
from .base import Sampling, TokenLogprob


def sampler_chain(sampling: Sampling, grammar: str | None, *, vocab: Any, n_vocab: int, n_ctx: int) -> Any:
    """A sampler chain in the order of llama-cpp-python's ``Llama._init_sampler``."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)

    seed = sampling.seed if sampling.seed >= 0 else random.getrandbits(31)
    last_n = sampling.repeat_last_n if sampling.repeat_last_n >= 0 else n_ctx
    add(llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, sampling.repeat_penalty,
                                               sampling.frequency_penalty, sampling.presence_penalty))
    if grammar:
        parsed = LlamaGrammar.from_string(grammar, verbose=False)
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, parsed._grammar.encode("utf-8"),
                                                       parsed._root.encode("utf-8"))
        if not sampler:  # a NULL grammar in the chain would segfault at the first token
            llama_cpp.llama_sampler_free(chain)
            raise BadRequest("invalid format: llama.cpp could not parse the grammar built from it")
        add(sampler)
    temp = sampling.temperature
    if temp < 0:
        add(llama_cpp.llama_sampler_init_dist(seed))
    elif temp == 0:
        add(llama_cpp.llama_sampler_init_greedy())
    elif sampling.mirostat == 1:
        add(llama_cpp.llama_sampler_init_mirostat(n_vocab, seed, sampling.mirostat_tau,
                                                  sampling.mirostat_eta, 100))
    elif sampling.mirostat == 2:
        add(llama_cpp.llama_sampler_init_mirostat_v2(seed, sampling.mirostat_tau, sampling.mirostat_eta))
    else:
        add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
        add(llama_cpp.llama_sampler_init_typical(sampling.typical_p, 1))
        add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
        add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(temp))
        add(llama_cpp.llama_sampler_init_dist(seed))
    return chain


def token_logprob(ctx: Any, row: int, n_vocab: int, token: int, top: int,
                  piece: Callable[[int], bytes]) -> TokenLogprob:
    """Log-softmax of the logits ``row`` of ``ctx`` that produced ``token``, with the ``top`` best."""
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, row), shape=(n_vocab,))
    shifted = logits.astype(np.float64) - float(logits.max())
    logp = shifted - math.log(float(np.exp(shifted).sum()))

    def entry(t: int) -> tuple[str, float, list[int]]:
        raw = piece(t)
        return raw.decode("utf-8", errors="replace"), float(logp[t]), list(raw)

    best = np.argpartition(-logp, top)[:top] if 0 < top < n_vocab else np.array([], dtype=int)
    alternatives = [entry(int(t)) for t in sorted(best.tolist(), key=lambda t: -logp[t])]
    text, value, raw = entry(token)
    return TokenLogprob(text, value, raw, alternatives)
