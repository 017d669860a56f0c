"""``logprobs`` / ``top_logprobs`` on generate and chat, computed from the real model's logits."""

from __future__ import annotations

import math

import httpx
import ollama

from serving import RunningServer

OPTS = {"num_predict": 4, "num_ctx": 512, "temperature": 0}


def test_generate_and_chat_logprobs(demo_server: RunningServer) -> None:
    client = ollama.Client(host=demo_server.url)
    reply = client.generate("smollm2:135m", "The capital of France is", options=OPTS, logprobs=True, top_logprobs=3)
    lps = reply.logprobs
    assert lps and len(lps) == reply.eval_count
    for lp in lps:
        assert lp.logprob <= 0
        assert len(lp.top_logprobs) == 3
        values = [t.logprob for t in lp.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert lp.logprob <= values[0] + 1e-6  # greedy: the chosen token is the most likely
        assert math.isclose(lp.logprob, values[0], abs_tol=1e-4)
    assert "".join(lp.token for lp in lps) == reply.response
    chat = client.chat("smollm2:135m", messages=[{"role": "user", "content": "Hi"}], options=OPTS, logprobs=True)
    assert chat.logprobs and all(not lp.top_logprobs for lp in chat.logprobs)


def test_top_logprobs_range(demo_server: RunningServer) -> None:
    r = httpx.post(f"{demo_server.url}/api/generate",
                   json={"model": "smollm2:135m", "prompt": "x", "logprobs": True, "top_logprobs": 21})
    assert r.status_code == 400 and r.json()["error"] == "top_logprobs must be between 0 and 20"
