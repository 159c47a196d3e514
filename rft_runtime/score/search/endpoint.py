"""The generator function of a search, bound to an OpenAI-compatible endpoint (the sampler
Service or a teacher): a partial solution is continued with the chat API's
`continue_final_message` (vLLM) or, without a chat template, by appending it to the raw
prompt; steps end at stop strings, kept in the output so the search can tell a finished
step from the model's own end. Prefix caching on the server makes re-sending the prefix
cheap."""

from __future__ import annotations

import asyncio
from typing import Any

from ...config.jobs import PromptFormat
from ..client import EndpointClient
from ..formatting import request_body
from .params import Params
from .strategies import Ask, Generate, Reply


def continuation_body(
    fmt: PromptFormat, model: str, prompt: str, ask: Ask, params: Params
) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) asking for `ask.n` continuations of `ask.prefix` (pure)."""
    path, body = request_body(
        fmt,
        model,
        prompt,
        n=ask.n,
        temperature=params.temperature,
        top_p=params.top_p,
        max_tokens=ask.max_tokens,
    )
    if ask.stop:
        body["stop"] = list(ask.stop)
        body["include_stop_str_in_output"] = True
    if ask.seed is not None:
        body["seed"] = ask.seed
    if ask.prefix:
        if path.startswith("chat"):
            body["messages"] = [*body["messages"], {"role": "assistant", "content": ask.prefix}]
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        else:
            body["prompt"] = body["prompt"] + ask.prefix
    return path, body


def endpoint_generator(
    client: EndpointClient,
    fmt: PromptFormat,
    model: str,
    prompt: str,
    params: Params,
    limit: asyncio.Semaphore,
) -> Generate:
    """The search's view of the model for one prompt; `limit` bounds requests in flight."""

    async def generate(ask: Ask) -> Reply:
        path, body = continuation_body(fmt, model, prompt, ask, params)
        async with limit:
            generation = await client.generate(path, body)
        return Reply(
            tuple(generation.texts),
            tuple(reason or "stop" for reason in generation.finish_reasons),
            generation.completion_tokens,
        )

    return generate
