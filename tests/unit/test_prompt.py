"""Ollama's prompt building: the library templates, legacy collation, tools, images, capabilities."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from skyllama.templates.errors import TemplateError
from skyllama.templates.gotemplate import parse
from skyllama.templates.prompt import describe_template, render_chat, render_generate, template_vars

# Generated from ollama/ollama template/*.gotmpl and template/testdata (MIT licence).
OLLAMA_TEMPLATES = {
    'chatml': '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n',
    'llama3-instruct': '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n',
    'mistral-instruct': '[INST] {{ range $index, $_ := .Messages }}\n{{- if eq .Role "system" }}{{ .Content }}\n\n{{ else if eq .Role "user" }}{{ .Content }}[/INST]\n{{- else if eq .Role "assistant" }} {{ .Content }}</s>[INST] {{ end }}\n{{- end }}',
    'alpaca': '{{- $system := "" }}\n{{- range .Messages }}\n{{- if eq .Role "system" }}\n{{- if not $system }}{{ $system = .Content }}\n{{- else }}{{ $system = printf "%s\\n\\n%s" $system .Content }}\n{{- end }}\n{{- else if eq .Role "user" }}\n{{- if $system }}{{ $system }}\n\n{{ $system = "" }}\n{{- end }}### Instruction:\n{{ .Content }}\n\n{{ else if eq .Role "assistant" }}### Response:\n{{ .Content }}\n\n{{ end }}\n{{- end }}### Response:\n',
    'gemma-instruct': '{{- $system := "" }}\n{{- range .Messages }}\n{{- if eq .Role "system" }}\n{{- if not $system }}{{ $system = .Content }}\n{{- else }}{{ $system = printf "%s\\n\\n%s" $system .Content }}\n{{- end }}\n{{- continue }}\n{{- else if eq .Role "user" }}<start_of_turn>user\n{{- if $system }}\n{{ $system }}\n{{- $system = "" }}\n{{- end }}\n{{- else if eq .Role "assistant" }}<start_of_turn>model\n{{- end }}\n{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n',
    'phi-3': '{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n',
    'llama2-chat': '{{- $system := "" }}[INST] {{ range .Messages }}\n{{- if eq .Role "system" }}\n{{- if not $system }}{{ $system = .Content }}\n{{- else }}{{ $system = printf "%s\\n\\n%s" $system .Content }}\n{{- end }}\n{{- else if eq .Role "user" }}<<SYS>>\n{{- if $system }}\n{{ $system }}\n{{ $system = "" }}\n{{- end }}<</SYS>>\n\n{{ .Content }} [/INST]\n{{- else if eq .Role "assistant" }} {{ .Content }}</s><s>[INST] {{ end }}\n{{- end }}',
    'vicuna': '{{- $system := "" }}\n{{- range .Messages }}\n{{- if eq .Role "system" }}\n{{- if not $system }}{{ $system = .Content }}\n{{- else }}{{ $system = printf "%s\\n\\n%s" $system .Content }}\n{{- end }}\n{{- else if eq .Role "user" }}\n{{- if $system }}{{ $system }}\n\n{{ $system = "" }}\n{{- end }}USER: {{ .Content }}\n{{ else if eq .Role "assistant" }}ASSISTANT: {{ .Content }}</s>\n{{ end }}\n{{- end }}ASSISTANT:',
    'command-r': '{{- if or .Tools .System }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>\n{{- if .Tools }}# Safety Preamble\nThe instructions in this section override those in the task description and style guide sections. Don\'t answer questions that are harmful or immoral.\n\n# System Preamble\n## Basic Rules\nYou are a powerful conversational AI trained by Cohere to help people. You are augmented by a number of tools, and your job is to use and consume the output of these tools to best help the user. You will see a conversation history between yourself and a user, ending with an utterance from the user. You will then see a specific instruction instructing you what kind of response to generate. When you answer the user\'s requests, you cite your sources in your answers, according to those instructions.\n\n{{ if .System }}# User Preamble\n{{ .System }}\n{{- end }}\n\n## Available Tools\nHere is a list of tools that you have available to you:\n{{- range .Tools }}\n\n```python\ndef {{ .Function.Name }}(\n{{- range $name, $property := .Function.Parameters.Properties }}{{ $name }}: {{ $property.Type }}, {{ end }}) -> List[Dict]:\n    \'\'\'{{ .Function.Description }}\n\n{{- if .Function.Parameters.Properties }}\n\n    Args:\n{{- range $name, $property := .Function.Parameters.Properties }}\n        {{ $name }} ({{ $property.Type }}): {{ $property.Description }}\n{{- end }}\n{{- end }}\n    \'\'\'\n    pass\n```\n{{- end }}\n{{- else if .System }}{{ .System }}\n{{- end }}<|END_OF_TURN_TOKEN|>\n{{- end }}\n{{- range .Messages }}\n{{- if eq .Role "system" }}\n{{- continue }}\n{{- end }}<|START_OF_TURN_TOKEN|>\n{{- if eq .Role "user" }}<|USER_TOKEN|>{{ .Content }}\n{{- if $.Tools }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Write \'Action:\' followed by a json-formatted list of actions that you want to perform in order to produce a good response to the user\'s last input. You can use any of the supplied tools any number of times, but you should aim to execute the minimum number of necessary actions for the input. You should use the `directly-answer` tool if calling the other tools is unnecessary. The list of actions you want to call should be formatted as a list of json objects, for example:\n```json\n[\n    {\n        "tool_name": title of the tool in the specification,\n        "parameters": a dict of parameters to input into the tool as they are defined in the specs, or {} if it takes no parameters\n    }\n]```\n{{- end }}\n{{- else if eq .Role "assistant" }}<|CHATBOT_TOKEN|>\n{{- if .Content }}{{ .Content }}\n{{- else if .ToolCalls }}\nAction: ```json\n[\n{{- range .ToolCalls }}\n    {\n        "tool_name": "{{ .Function.Name }}",\n        "parameters": {{ .Function.Arguments }}\n    }\n{{- end }}\n]```\n{{- end }}\n{{- else if eq .Role "tool" }}<|SYSTEM_TOKEN|><results>\nconsole_output: {{ .Content }}\n</results>\n{{- end }}<|END_OF_TURN_TOKEN|>\n{{- end }}<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n',
}
OLLAMA_EXPECTED = {
    ('chatml', 'user'): '<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n',
    ('chatml', 'user-assistant-user'): "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n<|im_start|>assistant\n",
    ('chatml', 'system-user-assistant-user'): "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n<|im_start|>assistant\n",
    ('llama3-instruct', 'user'): '<|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    ('llama3-instruct', 'user-assistant-user'): "<|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nI'd like to show off how chat templating works!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ('llama3-instruct', 'system-user-assistant-user'): "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nI'd like to show off how chat templating works!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ('mistral-instruct', 'user'): '[INST] Hello, how are you?[/INST]',
    ('mistral-instruct', 'user-assistant-user'): "[INST] Hello, how are you?[/INST] I'm doing great. How can I help you today?</s>[INST] I'd like to show off how chat templating works![/INST]",
    ('mistral-instruct', 'system-user-assistant-user'): "[INST] You are a helpful assistant.\n\nHello, how are you?[/INST] I'm doing great. How can I help you today?</s>[INST] I'd like to show off how chat templating works![/INST]",
    ('alpaca', 'user'): '### Instruction:\nHello, how are you?\n\n### Response:\n',
    ('alpaca', 'user-assistant-user'): "### Instruction:\nHello, how are you?\n\n### Response:\nI'm doing great. How can I help you today?\n\n### Instruction:\nI'd like to show off how chat templating works!\n\n### Response:\n",
    ('alpaca', 'system-user-assistant-user'): "You are a helpful assistant.\n\n### Instruction:\nHello, how are you?\n\n### Response:\nI'm doing great. How can I help you today?\n\n### Instruction:\nI'd like to show off how chat templating works!\n\n### Response:\n",
    ('gemma-instruct', 'user'): '<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\n',
    ('gemma-instruct', 'user-assistant-user'): "<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\nI'm doing great. How can I help you today?<end_of_turn>\n<start_of_turn>user\nI'd like to show off how chat templating works!<end_of_turn>\n<start_of_turn>model\n",
    ('gemma-instruct', 'system-user-assistant-user'): "<start_of_turn>user\nYou are a helpful assistant.\nHello, how are you?<end_of_turn>\n<start_of_turn>model\nI'm doing great. How can I help you today?<end_of_turn>\n<start_of_turn>user\nI'd like to show off how chat templating works!<end_of_turn>\n<start_of_turn>model\n",
    ('phi-3', 'user'): '<|user|>\nHello, how are you?<|end|>\n<|assistant|>\n',
    ('phi-3', 'user-assistant-user'): "<|user|>\nHello, how are you?<|end|>\n<|assistant|>\nI'm doing great. How can I help you today?<|end|>\n<|user|>\nI'd like to show off how chat templating works!<|end|>\n<|assistant|>\n",
    ('phi-3', 'system-user-assistant-user'): "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello, how are you?<|end|>\n<|assistant|>\nI'm doing great. How can I help you today?<|end|>\n<|user|>\nI'd like to show off how chat templating works!<|end|>\n<|assistant|>\n",
    ('llama2-chat', 'user'): '[INST] <<SYS>><</SYS>>\n\nHello, how are you? [/INST]',
    ('llama2-chat', 'user-assistant-user'): "[INST] <<SYS>><</SYS>>\n\nHello, how are you? [/INST] I'm doing great. How can I help you today?</s><s>[INST] <<SYS>><</SYS>>\n\nI'd like to show off how chat templating works! [/INST]",
    ('llama2-chat', 'system-user-assistant-user'): "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello, how are you? [/INST] I'm doing great. How can I help you today?</s><s>[INST] <<SYS>><</SYS>>\n\nI'd like to show off how chat templating works! [/INST]",
    ('vicuna', 'user'): 'USER: Hello, how are you?\nASSISTANT:',
    ('vicuna', 'user-assistant-user'): "USER: Hello, how are you?\nASSISTANT: I'm doing great. How can I help you today?</s>\nUSER: I'd like to show off how chat templating works!\nASSISTANT:",
    ('vicuna', 'system-user-assistant-user'): "You are a helpful assistant.\n\nUSER: Hello, how are you?\nASSISTANT: I'm doing great. How can I help you today?</s>\nUSER: I'd like to show off how chat templating works!\nASSISTANT:",
    ('command-r', 'user'): '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello, how are you?<|END_OF_TURN_TOKEN|><|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n',
    ('command-r', 'user-assistant-user'): "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello, how are you?<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I'm doing great. How can I help you today?<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>I'd like to show off how chat templating works!<|END_OF_TURN_TOKEN|><|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n",
    ('command-r', 'system-user-assistant-user'): "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant.<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello, how are you?<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I'm doing great. How can I help you today?<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>I'd like to show off how chat templating works!<|END_OF_TURN_TOKEN|><|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n",
}

CHATS = {
    "user": [{"role": "user", "content": "Hello, how are you?"}],
    "user-assistant-user": [
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
        {"role": "user", "content": "I'd like to show off how chat templating works!"},
    ],
}
CHATS["system-user-assistant-user"] = [{"role": "system", "content": "You are a helpful assistant."}, *CHATS["user-assistant-user"]]
TRAILING_SPACE = {"llama2-chat", "mistral-instruct", "vicuna"}


@pytest.mark.parametrize(("name", "case"), sorted(OLLAMA_EXPECTED))
def test_ollama_library_templates_match_ollama_testdata(name: str, case: str) -> None:
    got = render_chat(OLLAMA_TEMPLATES[name], CHATS[case]).prompt
    if name in TRAILING_SPACE and got.endswith(" "):
        got = got[:-1]  # Ollama's own test trims this space the same way
    assert got == OLLAMA_EXPECTED[(name, case)]


MISTRAL_LEGACY = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] "
MISTRAL_RESPONSE = MISTRAL_LEGACY + "{{ .Response }}"
MISTRAL_MESSAGES = """[INST] {{ if .System }}{{ .System }}

{{ end }}
{{- range .Messages }}
{{- if eq .Role "user" }}{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}[INST] {{ end }}
{{- end }}"""


@pytest.mark.parametrize("template", [MISTRAL_LEGACY, MISTRAL_RESPONSE, MISTRAL_MESSAGES])
@pytest.mark.parametrize(("messages", "expected"), [
    ([{"role": "user", "content": "Hello friend!"}, {"role": "assistant", "content": "Hello human!"},
      {"role": "user", "content": "What is your name?"}],
     "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "),
    ([{"role": "system", "content": "You are a helpful assistant!"}, {"role": "user", "content": "Hello friend!"},
      {"role": "assistant", "content": "Hello human!"}, {"role": "user", "content": "What is your name?"}],
     "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] "),
])
def test_legacy_and_messages_templates_agree(template: str, messages: list[dict[str, str]], expected: str) -> None:
    # Ollama's TestExecuteWithMessages: legacy templates run once per turn.
    assert render_chat(template, messages).prompt == expected


def test_legacy_template_cut_after_response_lets_the_model_continue() -> None:
    template = "[INST] {{ .Prompt }}[/INST] {{ .Response }}</s>"
    messages = [{"role": "user", "content": "Hello friend!"}, {"role": "assistant", "content": "Hello human!"},
                {"role": "user", "content": "What is your name?"}, {"role": "assistant", "content": "My name is"}]
    assert render_chat(template, messages).prompt == (
        "[INST] Hello friend![/INST] Hello human!</s>[INST] What is your name?[/INST] My name is")


def test_legacy_system_prompt_template() -> None:
    prompt = render_generate("{{ .System }} {{ .Prompt }}", system="Be terse.", prompt="Hi").prompt
    assert prompt == "Be terse. Hi"


SUFFIX = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}"


def test_suffix_renders_fill_in_the_middle() -> None:
    assert render_generate(SUFFIX, prompt="def add(", suffix="return x").prompt == "<PRE> def add( <SUF>return x <MID>"
    assert render_generate(SUFFIX, prompt="hello").prompt == "hello"


@pytest.mark.parametrize(("template", "names"), [
    ("{{ .Prompt }}", ["prompt", "response"]),
    ("{{ .System }} {{ .Prompt }} {{ .Response }}", ["prompt", "response", "system"]),
    ("{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}", ["prompt", "response", "system", "tools"]),
    ("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}", ["content", "messages", "role"]),
])
def test_template_vars_match_ollama(template: str, names: list[str]) -> None:
    assert template_vars(parse(template)) == names


def test_consecutive_messages_are_collated_but_tool_messages_are_not() -> None:
    template = "{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}|{{ .System }}"
    messages = [{"role": "system", "content": "s1"}, {"role": "system", "content": "s2"},
                {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                {"role": "tool", "content": "t1"}, {"role": "tool", "content": "t2"}]
    assert render_chat(template, messages).prompt == "[system:s1\n\ns2][user:a\n\nb][tool:t1][tool:t2]|s1\n\ns2"


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"unit": {"type": "string", "enum": ["c", "f"]}, "city": {"type": "string", "description": "The city"}}}}}]
TOOL_CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}]},
    {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
]
TOOL_JSON = ('{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","required":["city"],'
             '"properties":{"city":{"type":"string","description":"The city"},"unit":{"type":"string","enum":["c","f"]}}}}')


def test_tool_values_print_as_json_like_go() -> None:
    template = ("{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}"
                "{{ range $k, $v := .Function.Arguments }} {{ $k }}={{ $v }}{{ end }}{{ end }}{{ end }}"
                "|{{ range .Tools }}{{ .Function.Parameters.Properties }}"
                "{{ range $n, $p := .Function.Parameters.Properties }} {{ $n }}:{{ $p.Type }}{{ end }}{{ end }}"
                "|{{ range .Tools }}{{ . }}{{ end }}|{{ .Tools }}")
    got = render_chat(template, TOOL_CHAT, TOOLS).prompt
    args, props, tool, tools = got.split("|")
    assert args == '{"city":"Paris","days":3} city=Paris days=3'
    assert props.startswith('{"city":{"type":"string","description":"The city"},"unit"') and props.endswith(" city:string unit:string")
    assert tool == '{"type":"function","function":' + TOOL_JSON + "}"
    assert tools == "[" + tool + "]"
    assert render_chat("{{ .Messages }}{{ .Tools }}", TOOL_CHAT).prompt.endswith("null")


def smollm2_template() -> str:
    return resources.files("skyllama").joinpath("data/smollm2.template").read_text()


def test_smollm2_template_renders_a_multi_turn_chat_with_tools() -> None:
    expected = (
        "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": ' + TOOL_JSON + "}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris","days":3}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert render_chat(smollm2_template(), TOOL_CHAT, TOOLS).prompt == expected


def test_smollm2_template_without_tools_is_plain_chatml() -> None:
    got = render_chat(smollm2_template(), [{"role": "user", "content": "Hi"}]).prompt
    assert got == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render_generate(smollm2_template(), prompt="Hi", system="S").prompt == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_smollm2_params_stop_on_chatml_markers() -> None:
    params = json.loads(resources.files("skyllama").joinpath("data/smollm2.params.json").read_text())
    assert params["stop"] == ["<|im_start|>", "<|im_end|>"]


def test_describe_template_reports_ollama_capabilities() -> None:
    smol = describe_template(smollm2_template())
    assert smol["capabilities"] == ["tools"] and smol["tool_call_tag"] == "<tool_call>"
    assert describe_template(SUFFIX)["capabilities"] == ["insert"]
    thinking = describe_template(
        "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}")
    assert thinking["capabilities"] == ["thinking"] and thinking["thinking_tags"] == ("<think>", "</think>")
    assert describe_template("{{ .Prompt }}")["capabilities"] == []


def test_think_values_reach_the_template() -> None:
    template = "{{ range .Messages }}{{ end }}{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}"
    assert render_chat(template, CHATS["user"], think=True).prompt == "true medium true"
    assert render_chat(template, CHATS["user"], think="low").prompt == "true low true"
    assert render_chat(template, CHATS["user"]).prompt == "false  false"


def test_images_are_tagged_in_order() -> None:
    messages = [{"role": "user", "content": "a", "images": [b"1"]}, {"role": "user", "content": "see [img] here", "images": [b"2"]}]
    rendered = render_chat("{{ range .Messages }}{{ .Content }};{{ end }}", messages)
    assert rendered.prompt == "[img-0]a\n\nsee [img-1] here;"
    assert rendered.images == [b"1", b"2"]


def test_truncation_drops_old_messages_but_keeps_system_and_last() -> None:
    messages = [{"role": "system", "content": "sys"}] + [{"role": "user", "content": f"m{i} " * 10} for i in range(5)]
    template = "{{ range .Messages }}{{ .Content }}|{{ end }}"
    rendered = render_chat(template, messages[:1] + [dict(m, role=r) for m, r in zip(messages[1:], "uauau", strict=True)],
                           num_ctx=30, count_tokens=lambda s: len(s.split()))
    assert rendered.dropped > 0
    assert rendered.prompt.startswith("sys|") and rendered.prompt.endswith("m4 " * 10 + "|")


def test_bad_templates_raise_template_error() -> None:
    with pytest.raises(TemplateError):
        render_chat("{{ .Messages ", CHATS["user"])
    with pytest.raises(TemplateError):
        render_chat("{{ range .Messages }}{{ .Nope }}{{ end }}", CHATS["user"])
