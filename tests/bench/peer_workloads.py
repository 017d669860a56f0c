"""The requests of the peer benchmark (bench_peer.py): a growing chat, an Open WebUI-sized tool list,
and streaming clients for ``/v1/chat/completions`` and ``/api/chat`` that time every content piece.

Both servers get byte-identical bodies wherever the API allows; the only difference is the tool
list, which skyllama gets as ``tools`` (as Open WebUI sends it to Ollama) and the peer as the
system message its chat template would otherwise drop (SmolLM2's GGUF template ignores ``tools``),
rendered as skyllama's template renders it, so both evaluate a prompt of the same length.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

# Six user turns of a conversation whose history grows (each ~40 tokens, replies up to TURN_TOKENS).
TURNS = [
    "I am planning a three-day trip to Lisbon in early spring with two friends who like food, old streets "
    "and the sea. Where should we start on the first morning? (trip number {n})",
    "That sounds good. We also want one day outside the city, somewhere we can reach by train in under an "
    "hour. What would you pick, and why?",
    "One of us cannot walk long distances because of a knee injury. How would you change the plan for the "
    "first two days to keep the walking short?",
    "What should we eat for dinner on each of the three evenings? We would like at least one seafood place "
    "and one that is cheap.",
    "Can you summarise the whole plan as a short list, one line per morning, afternoon and evening?",
    "Finally, what should we pack for the weather in that season, and is there anything we should book?",
]
TURN_TOKENS = 64

_TOOL_SUBJECTS = [
    ("weather", "the current weather and a three-day forecast for a city"),
    ("calendar_events", "the events in the user's calendar between two dates"),
    ("email", "a short email to one or more recipients"),
    ("web_search", "the top results of a web search engine for a query"),
    ("stock_quote", "the latest price and daily change of a stock ticker"),
    ("currency_rate", "the exchange rate between two currencies on a given day"),
    ("translation", "a translation of a text into another language"),
    ("reminder", "a reminder that fires at a given time with a message"),
    ("news_headlines", "today's news headlines for a topic and a country"),
    ("recipe", "a recipe that uses the given ingredients and fits a diet"),
    ("flight_status", "the status, gate and delay of a flight by its number"),
    ("hotel_rooms", "the free hotel rooms in a city for a range of nights"),
    ("restaurant_table", "a table at a restaurant for a number of guests"),
    ("wikipedia_summary", "the first paragraph of the Wikipedia article on a subject"),
    ("unit_conversion", "a value converted from one unit of measure to another"),
    ("timezone_time", "the local time in a time zone or a city"),
    ("file_contents", "the text of a file in the user's document store"),
    ("note", "a note saved in the user's notebook with a title and tags"),
    ("todo_items", "the open items of the user's to-do list, by project"),
    ("map_route", "a route between two places by car, bicycle or on foot"),
    ("public_transport", "the next departures from a bus, tram or train stop"),
    ("package_tracking", "where a parcel is now, by carrier and tracking number"),
    ("sports_scores", "the latest scores of a league or a team"),
    ("movie_showtimes", "the showtimes of a film at cinemas near a place"),
    ("book_lookup", "the author, year and summary of a book by its title or ISBN"),
    ("dictionary", "the definitions and examples of an English word"),
    ("calculator", "the value of an arithmetic expression"),
    ("code_runner", "the output of a short Python program run in a sandbox"),
    ("image_caption", "a caption for an image given by its URL"),
    ("sql_query", "the rows that a read-only SQL query returns from the analytics database"),
    ("smart_light", "a smart light switched on or off, or dimmed, by room"),
    ("thermostat", "the target temperature of the home thermostat"),
    ("music_playback", "music played, paused or skipped on a speaker"),
    ("contact_details", "the phone number and address of a contact"),
    ("expense_report", "an expense added to the user's monthly report"),
    ("air_quality", "the air quality index and pollen levels for a city"),
    ("podcast_episodes", "the latest episodes of a podcast by its name"),
    ("github_issues", "the open issues of a GitHub repository with a label"),
]
_VERBS = ["get", "find", "create", "list", "fetch", "lookup"]


def tool_list(nonce: int) -> list[dict[str, Any]]:
    """38 tool definitions (~3,700 tokens as skyllama's template renders them; Open WebUI's 36 make ~4,000).
    ``nonce`` goes into the first tool's name, so each repeat starts from a prefix no cache holds."""
    tools = []
    for i, (subject, what) in enumerate(_TOOL_SUBJECTS):
        name = f"{_VERBS[i % len(_VERBS)]}_{subject}" + (f"_{nonce}" if i == 0 else "")
        tools.append({"type": "function", "function": {
            "name": name,
            "description": f"Returns {what}.",
            "parameters": {"type": "object", "required": ["query"], "properties": {
                "query": {"type": "string", "description": f"What to look up or act on for {subject.replace('_', ' ')}"},
                "limit": {"type": "integer", "description": "The most results to return (default 10)"},
            }},
        }})
    return tools


def tools_as_system(tools: list[dict[str, Any]]) -> str:
    """The system message skyllama's SmolLM2 template renders for ``tools`` (data/smollm2.template)."""
    # Ollama's ``json`` template function is Go's json.Marshal: compact, no spaces.
    lines = "\n".join('{"type": "function", "function": ' + json.dumps(t["function"], separators=(",", ":")) + "}"
                      for t in tools)
    return ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            f"{lines}\n</tools>\n\nFor each function call, return a json object with function name and "
            "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


@dataclass
class Streamed:
    """One streamed answer: time to the first content piece, pieces per second after it, the text."""

    ttft_ms: float
    pieces: int
    decode_per_s: float
    text: str
    prompt_tokens: int | None = None


def _streamed(start: float, times: list[float], text: list[str], prompt_tokens: int | None) -> Streamed:
    if not times:
        raise RuntimeError("the server streamed no content")
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return Streamed((times[0] - start) * 1e3, len(times), rate, "".join(text), prompt_tokens)


def stream_v1(client: httpx.Client, model: str, messages: list[dict[str, Any]], max_tokens: int) -> Streamed:
    """Streamed ``/v1/chat/completions``, greedy; one SSE content delta is one token on both servers."""
    body = {"model": model, "messages": messages, "stream": True, "max_tokens": max_tokens,
            "temperature": 0, "seed": 1}
    times: list[float] = []
    text: list[str] = []
    start = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                if piece := (choice.get("delta") or {}).get("content"):
                    times.append(time.perf_counter())
                    text.append(piece)
    return _streamed(start, times, text, None)


def stream_api_chat(client: httpx.Client, model: str, messages: list[dict[str, Any]], max_tokens: int,
                    *, num_ctx: int, tools: list[dict[str, Any]] | None = None) -> Streamed:
    """Streamed ``/api/chat`` (skyllama only), greedy; the time of the first content or tool call."""
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True, "keep_alive": -1,
                            "options": {"num_predict": max_tokens, "temperature": 0, "seed": 1, "num_ctx": num_ctx}}
    if tools:
        body["tools"] = tools
    times: list[float] = []
    text: list[str] = []
    prompt_tokens = None
    start = time.perf_counter()
    with client.stream("POST", "/api/chat", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            chunk = json.loads(line)
            message = chunk.get("message") or {}
            if message.get("content") or message.get("tool_calls"):
                times.append(time.perf_counter())
                text.append(message.get("content") or json.dumps(message["tool_calls"]))
            prompt_tokens = chunk.get("prompt_eval_count", prompt_tokens)
    return _streamed(start, times, text, prompt_tokens)
