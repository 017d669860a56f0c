"""The pure OpenAI ↔ Ollama translations (``skyllama.services.openai_compat``), checked against the
shapes of Ollama's ``openai/openai.go`` and ``middleware/openai.go``."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from skyllama.errors import BadRequest
from skyllama.http.openai import compat as compat
from skyllama.http.openai.types import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

PNG = base64.b64encode(b"\x89PNG fake").decode()
CREATED = "2026-01-02T03:04:05.123456789Z"
CREATED_UNIX = 1767323045


def chat_req(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                 **fields})


def test_chat_request_defaults_and_sampling() -> None:
    body = compat.from_chat_request(chat_req())
    assert body["options"] == {"temperature": 1.0, "top_p": 1.0}
    assert body["stream"] is False and body["format"] is None and body["tools"] is None and body["think"] is None
    body = compat.from_chat_request(chat_req(max_tokens=7, seed=3, stop="END", temperature=0, top_p=0.5,
                                             frequency_penalty=0.2, presence_penalty=0.1, stream=True))
    assert body["options"] == {"num_predict": 7, "seed": 3, "stop": ["END"], "temperature": 0, "top_p": 0.5,
                               "frequency_penalty": 0.2, "presence_penalty": 0.1}
    assert body["stream"] is True
    assert compat.from_chat_request(chat_req(stop=["a", 1, "b"]))["options"]["stop"] == ["a", "b"]
    assert compat.from_chat_request(chat_req(max_completion_tokens=5))["options"]["num_predict"] == 5


@pytest.mark.parametrize(("fmt", "expected"), [
    ({"type": "json_object"}, "json"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}, {"type": "object"}),
    ({"type": "text"}, None),
    (None, None),
])
def test_response_format(fmt: Any, expected: Any) -> None:
    assert compat.from_chat_request(chat_req(response_format=fmt))["format"] == expected


def test_content_parts_images_and_tools() -> None:
    req = chat_req(messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "this?"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                                     {"type": "image_url", "image_url": f"data:;base64,{PNG}"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "name": "explicit", "content": "named"},
    ], tools=[{"type": "function", "function": {"name": "look"}}])
    body = compat.from_chat_request(req)
    assert body["messages"] == [
        {"role": "user", "content": "What is\nthis?", "images": [PNG, PNG]},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1",
                                                             "function": {"name": "look", "arguments": {"x": 1}}}]},
        {"role": "tool", "content": "a cat", "tool_call_id": "call_1", "tool_name": "look"},
        {"role": "tool", "content": "named", "tool_name": "explicit"},
    ]
    assert body["tools"] == [{"type": "function", "function": {"name": "look"}}]


@pytest.mark.parametrize(("messages", "message"), [
    ([], "[] is too short - 'messages'"),
    ([{"role": "user", "content": None}], "invalid message content type"),
    ([{"role": "user", "content": [{"type": "audio"}]}], "invalid message format"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}],
     "image URLs are not currently supported"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/gif;base64,AAAA"}}]}],
     "invalid image input"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%"}}]}],
     "invalid image input"),
    ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}],
     "invalid tool call arguments"),
])
def test_bad_chat_requests(messages: list[Any], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        compat.from_chat_request(chat_req(messages=messages))


def test_reasoning_effort() -> None:
    assert compat.from_chat_request(chat_req(reasoning_effort="none"))["think"] is False
    assert compat.from_chat_request(chat_req(reasoning={"effort": "minimal"}))["think"] == "low"
    assert compat.from_chat_request(chat_req(reasoning_effort="xhigh"))["think"] == "max"
    with pytest.raises(BadRequest, match="invalid reasoning value"):
        compat.from_chat_request(chat_req(reasoning_effort="huge"))


def test_completion_request() -> None:
    req = CompletionRequest.model_validate({"model": "m", "prompt": ["Once"], "max_tokens": 3, "stop": ["x"],
                                            "suffix": "end", "top_p": 0})
    assert compat.from_completion_request(req) == {
        "model": "m", "prompt": "Once", "suffix": "end", "stream": False,
        "options": {"num_predict": 3, "temperature": 1.0, "top_p": 1.0, "stop": ["x"],
                    "frequency_penalty": 0.0, "presence_penalty": 0.0}}
    with pytest.raises(BadRequest, match="invalid type for 'stop' field"):
        compat.from_completion_request(CompletionRequest.model_validate({"model": "m", "stop": ["a", 2]}))
    with pytest.raises(BadRequest, match="single string prompt"):
        compat.from_completion_request(CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]}))


def test_embedding_request() -> None:
    def embed(**fields: Any) -> dict[str, Any]:
        return compat.from_embedding_request(EmbeddingRequest.model_validate({"model": "m", **fields}))

    assert embed(input="")["input"] == [""]
    assert embed(input=["a", "b"], dimensions=8) == {"model": "m", "input": ["a", "b"], "dimensions": 8}
    # token arrays (OpenAI's form) go to the service as ids under ``tokens``
    assert embed(input=[1, 2])["tokens"] == [[1, 2]]
    assert embed(input=[[1, 2], [3]]) == {"model": "m", "input": None, "tokens": [[1, 2], [3]], "dimensions": None}
    for bad in ({"input": None}, {"input": []}, {"input": [1, "a"]}, {"input": [[1], []]}, {"input": [[1, "a"]]},
                {"input": [True, 2]}, {"input": "x", "encoding_format": "hex"}):
        with pytest.raises(BadRequest):
            embed(**bad)


def final(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "created_at": CREATED, "done": True, "done_reason": "stop", "prompt_eval_count": 5,
            "eval_count": 3, **fields}


TOOL_CALL = {"id": "call_abc", "function": {"index": 0, "name": "f", "arguments": {"city": "Paris"}}}


def test_chat_completion() -> None:
    out = compat.to_chat_completion("chatcmpl-1", final(message={"role": "assistant", "content": "Hi"}))
    assert out == {"id": "chatcmpl-1", "object": "chat.completion", "created": CREATED_UNIX, "model": "m",
                   "system_fingerprint": "fp_ollama",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    tools = compat.to_chat_completion("c", final(message={"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}))
    assert tools["choices"][0]["finish_reason"] == "tool_calls"
    assert tools["choices"][0]["message"]["tool_calls"] == [
        {"id": "call_abc", "index": 0, "type": "function", "function": {"name": "f", "arguments": '{"city":"Paris"}'}}]
    length = compat.to_chat_completion("c", final(done_reason="length", message={"content": "x", "role": "assistant"}))
    assert length["choices"][0]["finish_reason"] == "length"


def test_chat_stream_chunks() -> None:
    stream = compat.ChatStream("chatcmpl-7", include_usage=True)
    events = [{"model": "m", "created_at": CREATED, "message": {"role": "assistant", "content": "He"}, "done": False},
              {"model": "m", "created_at": "2026-01-02T03:05:00Z", "message": {"role": "assistant", "content": "llo"}},
              {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}},
              final(message={"role": "assistant", "content": ""})]
    chunks = [c for e in events for c in stream.chunks(e)]
    assert {c["id"] for c in chunks} == {"chatcmpl-7"} and {c["created"] for c in chunks} == {CREATED_UNIX}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[:2] == [{"role": "assistant", "content": "He"}, {"content": "llo"}]
    assert deltas[2]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'
    assert deltas[3] == {} and chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:3]] == [None, None, None]
    assert chunks[4]["choices"] == [] and chunks[4]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3,
                                                                 "total_tokens": 8}
    assert len(chunks) == 5


def test_chat_stream_edge_cases() -> None:
    empty = compat.ChatStream("c").chunks(final(done_reason="length", message={"role": "assistant", "content": ""}))
    assert [c["choices"][0]["delta"] for c in empty] == [{"role": "assistant", "content": ""}, {}]
    assert empty[1]["choices"][0]["finish_reason"] == "length"
    mixed = compat.ChatStream("c").chunks({"model": "m", "message": {"content": "A", "thinking": "hmm"}})
    assert [c["choices"][0]["delta"] for c in mixed] == [{"role": "assistant", "content": "", "reasoning": "hmm"},
                                                         {"content": "A"}]


def test_completions() -> None:
    out = compat.to_completion("cmpl-1", final(response="Once", done_reason="length"))
    assert out["object"] == "text_completion" and out["choices"] == [{"text": "Once", "index": 0,
                                                                       "finish_reason": "length"}]
    assert out["usage"]["total_tokens"] == 8 and out["system_fingerprint"] == "fp_ollama"
    assert compat.completion_chunks("cmpl-1", {"model": "m", "response": "a"})[0]["choices"][0]["finish_reason"] is None
    last = compat.completion_chunks("cmpl-1", final(response=""), include_usage=True)
    assert last[0]["choices"][0]["finish_reason"] == "stop" and last[1]["choices"] == []
    assert last[1]["usage"]["prompt_tokens"] == 5 and "usage" not in last[0]


def test_embeddings_float_and_base64() -> None:
    result = {"embeddings": [[0.5, -0.25], [1.0, 0.0]], "prompt_eval_count": 4}
    floats = compat.to_embedding_list("m", result, None)
    assert floats == {"object": "list", "model": "m", "usage": {"prompt_tokens": 4, "total_tokens": 4},
                      "data": [{"object": "embedding", "embedding": [0.5, -0.25], "index": 0},
                               {"object": "embedding", "embedding": [1.0, 0.0], "index": 1}]}
    b64 = compat.to_embedding_list("m", result, "BASE64")["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(b64)) == (0.5, -0.25)


def test_models() -> None:
    listing = compat.to_model_list([{"name": "smollm2:135m", "model": "smollm2:135m", "modified_at": CREATED},
                                    {"name": "me/mine:v1", "model": "me/mine:v1", "modified_at": CREATED},
                                    {"name": "reg.example.com/team/x:1", "modified_at": CREATED}])
    assert listing["object"] == "list"
    assert [(m["id"], m["owned_by"], m["created"], m["object"]) for m in listing["data"]] == [
        ("smollm2:135m", "library", CREATED_UNIX, "model"), ("me/mine:v1", "me", CREATED_UNIX, "model"),
        ("reg.example.com/team/x:1", "team", CREATED_UNIX, "model")]
    assert compat.to_model("m", CREATED) == {"id": "m", "object": "model", "created": CREATED_UNIX,
                                             "owned_by": "library"}


def test_errors_ids_and_sse() -> None:
    assert compat.error_body(404, "gone") == {"error": {"message": "gone", "type": "not_found_error",
                                                        "param": None, "code": None}}
    assert compat.error_body(400, "x")["error"]["type"] == "invalid_request_error"
    assert compat.error_body(503, "x")["error"]["type"] == "api_error"
    assert compat.new_id("chatcmpl").startswith("chatcmpl-") and int(compat.new_id("cmpl")[5:]) < 999
    assert compat.sse({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert compat.sse("[DONE]") == b"data: [DONE]\n\n"
    assert json.loads(compat.sse({"b": 1})[6:]) == {"b": 1}
