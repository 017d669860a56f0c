"""``POST /v1/messages`` through the official ``anthropic`` client, streamed and not."""

from __future__ import annotations

import anthropic
import pytest

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

TOOLS = [{"name": "get_weather", "description": "Weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def client(server: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


def test_messages_real_model(demo_server: RunningServer) -> None:
    c = client(demo_server)
    reply = c.messages.create(model="smollm2:135m", max_tokens=5, system="Be brief.", extra_body={"top_k": 1},
                              messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.content[0].type == "text" and reply.content[0].text
    assert reply.stop_reason in ("max_tokens", "end_turn") and 0 < reply.usage.output_tokens <= 5
    with c.messages.stream(model="smollm2:135m", max_tokens=5, stop_sequences=["\n\n"],
                           messages=[{"role": "user", "content": "Hi"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    assert final.content[0].text
    with pytest.raises(anthropic.NotFoundError) as err:
        c.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_tool_use_and_results_streamed(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    engine = fake_engine
    engine.enqueue(['<tool_call>\n{"name": "get_weather", "arguments": ', '{"city": "Paris"}}\n</tool_call>'])
    c = client(demo_fake_server)
    with c.messages.stream(model="smollm2:135m", max_tokens=50, tools=TOOLS,  # type: ignore[arg-type]
                           messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        final = stream.get_final_message()
    use = [b for b in final.content if b.type == "tool_use"]
    assert use and use[0].name == "get_weather" and use[0].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    engine.enqueue(["It is sunny."])
    reply = c.messages.create(model="smollm2:135m", max_tokens=50, tools=TOOLS,  # type: ignore[arg-type]
                              messages=[{"role": "user", "content": "Weather in Paris?"},
                                        {"role": "assistant", "content": [{"type": "tool_use", "id": use[0].id,
                                                                           "name": "get_weather",
                                                                           "input": {"city": "Paris"}}]},
                                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use[0].id,
                                                                      "content": "sunny, 21C"}]}])
    assert reply.content[0].text == "It is sunny."
    assert "sunny, 21C" in engine.prompts[-1]
