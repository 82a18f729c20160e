"""The one generation protocol every backend speaks.

A backend takes a list of `Request`s and returns one `Result` per request, in order: a
request that fails (rejected by the server, too long for the model, out of retries)
ends with a Result that carries the error, so a caller never loses or duplicates one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Request:
    """A chat (`messages`) or a raw `prompt`; `schema` constrains the answer to JSON that
    validates against it (None: free text)."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    schema: dict[str, Any] | None = None
    sampling: Sampling = field(default_factory=Sampling)
    # Which sample of this request (several answers to one prompt): its own cache entry.
    sample: int = 0

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request takes exactly one of messages or prompt")


@dataclass(frozen=True)
class Result:
    text: str = ""
    reasoning: str | None = None  # what the server returned apart as reasoning_content
    finish_reason: str = ""  # stop, length, skipped, error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""  # "" on success
    truncated: bool = False  # the prompt was cut to fit the context (recipe too_long: truncate)

    @property
    def ok(self) -> bool:
        return not self.error


def failed(error: str, finish_reason: str = "error", prompt_tokens: int = 0) -> Result:
    return Result(finish_reason=finish_reason, error=error, prompt_tokens=prompt_tokens)


class Backend(Protocol):
    name: str
    model: str

    def generate(self, requests: Sequence[Request]) -> list[Result]: ...


# (position in the caller's list, request): what a streaming backend is handed, a batch at a time
Numbered = tuple[int, Request]


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that takes requests while it answers earlier ones (a served model): the
    LLM cache looks up the next batch while the misses found so far are in flight."""

    def stream(self, batches: Iterable[Sequence[Numbered]], on_result: Callable[[int, Result], None]) -> None:
        """Call `on_result(position, result)` once for each request of every batch."""
        ...


def fit_prompt(ids: list[int], limit: int, too_long: str) -> tuple[list[int] | None, bool]:
    """Apply the recipe's too_long rule to a tokenized prompt: (ids to use or None when
    skipped, whether it was truncated). Truncation cuts the middle, keeping the head
    (system prompt, requested types) and the tail (the end of the turn and the
    assistant cue a chat template appends), so the model still knows what to answer."""
    if len(ids) <= limit:
        return ids, False
    if too_long == "skip" or limit < 8:
        return None, False
    tail = min(32, limit // 4)
    return ids[: limit - tail] + ids[len(ids) - tail :], True
