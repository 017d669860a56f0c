"""Prompt templates: Ollama's Go templates, GGUF Jinja chat templates, and tool-call parsing."""

from .errors import TemplateError
from .gotemplate import Template, parse
from .jinja import describe_jinja_template, render_jinja
from .prompt import RenderedPrompt, describe_template, render_chat, render_generate, template_vars
from .tools import ToolCall, ToolCallParser, parse_tag

__all__ = [
    "RenderedPrompt",
    "Template",
    "TemplateError",
    "ToolCall",
    "ToolCallParser",
    "describe_jinja_template",
    "describe_template",
    "parse",
    "parse_tag",
    "render_chat",
    "render_generate",
    "render_jinja",
    "template_vars",
]
