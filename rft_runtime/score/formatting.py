"""How a row's prompt becomes what the endpoint receives."""

from __future__ import annotations

from typing import Any

from ..config.jobs import PromptFormat


def user_text(fmt: PromptFormat, prompt: str) -> str:
    """The template with `{prompt}` replaced (plain replace: math prompts contain braces)."""
    return fmt.prompt_template.replace("{prompt}", prompt) if fmt.prompt_template else prompt


def chat_messages(fmt: PromptFormat, prompt: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": fmt.system_prompt}] if fmt.system_prompt else []
    return [*messages, {"role": "user", "content": user_text(fmt, prompt)}]


def raw_text(fmt: PromptFormat, prompt: str) -> str:
    body = user_text(fmt, prompt)
    return f"{fmt.system_prompt}\n\n{body}" if fmt.system_prompt else body


def model_input(fmt: PromptFormat, prompt: str) -> list[dict[str, str]] | str:
    """Chat messages (for /v1/chat/completions) or raw text (for /v1/completions)."""
    return chat_messages(fmt, prompt) if fmt.use_chat_template else raw_text(fmt, prompt)


def request_body(
    fmt: PromptFormat,
    model: str,
    prompt: str,
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
) -> tuple[str, dict[str, Any]]:
    """(path, JSON body). Never a `seed`: it crashes vLLM's CPU sampler."""
    body: dict[str, Any] = {
        "model": model,
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
    }
    if fmt.use_chat_template:
        return "chat/completions", {**body, "messages": chat_messages(fmt, prompt)}
    return "completions", {**body, "prompt": raw_text(fmt, prompt)}
