"""The vllm backend: an in-process `vllm.LLM`, created once per worker process.

A shard's prompts go to vLLM in one `generate` call with a SamplingParams per request
(each with its own JSON schema through `StructuredOutputsParams`, vLLM's current
structured-outputs API): continuous batching keeps the GPU busy, unlike batches of 8
sent one after another. vllm is imported here only: the CPU install has none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from t2g.llm.base import Request, Result, failed, fit_prompt


def sampling_params(request: Request) -> Any:
    """vLLM's SamplingParams for one request (its own JSON schema, if any)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    s = request.sampling
    structured = StructuredOutputsParams(json=request.schema) if request.schema is not None else None
    return SamplingParams(
        max_tokens=s.max_new_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        seed=s.seed,
        structured_outputs=structured,
    )


class VllmBackend:
    name = "vllm"

    def __init__(
        self,
        model: str,
        trust_remote_code: bool = False,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        quantization: str | None = None,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        too_long: str = "truncate",
        max_prompt_tokens: int | None = None,
    ):
        try:
            import vllm
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("backend vllm needs the vllm extra: pip install 't2g[vllm]' on a GPU machine") from exc
        self.model = model
        self.too_long = too_long
        self.max_prompt_tokens = max_prompt_tokens
        kwargs: dict[str, Any] = dict(
            model=model,
            trust_remote_code=trust_remote_code,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        if quantization:
            kwargs["quantization"] = quantization
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self._attach(vllm.LLM(**kwargs), sampling_params)

    @classmethod
    def on_engine(
        cls,
        llm: Any,
        params: Callable[[Request], Any],
        model: str = "",
        too_long: str = "truncate",
        max_prompt_tokens: int | None = None,
    ) -> VllmBackend:
        """The backend around an engine already made, with `params` turning a Request into
        what `llm.generate` takes per prompt: the seam tests use to run the request/answer
        mapping without a GPU (any object with `vllm.LLM`'s generate/get_tokenizer)."""
        self = cls.__new__(cls)
        self.model, self.too_long, self.max_prompt_tokens = model, too_long, max_prompt_tokens
        self._attach(llm, params)
        return self

    def _attach(self, llm: Any, params: Callable[[Request], Any]) -> None:
        self.llm = llm
        self._params = params
        self.tokenizer = self.llm.get_tokenizer()
        model_config = getattr(self.llm, "model_config", None) or self.llm.llm_engine.model_config
        self.context = int(model_config.max_model_len)
        self._lock = threading.Lock()  # one generate at a time per engine

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        prompts, params, index, truncated = [], [], [], []
        for i, request in enumerate(requests):
            if request.messages is not None:
                text = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
            else:
                text = request.prompt or ""
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            limit = self.max_prompt_tokens or max(1, self.context - request.sampling.max_new_tokens)
            fitted, cut = fit_prompt(ids, limit, self.too_long)
            if fitted is None:
                results[i] = failed(f"prompt too long: {len(ids)} tokens > {limit}", "skipped", len(ids))
                continue
            prompts.append({"prompt_token_ids": fitted})
            params.append(self._params(request))
            index.append(i)
            truncated.append(cut)
        if prompts:
            with self._lock:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            if len(outputs) != len(prompts):  # never zip a short answer list onto the wrong requests
                raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
            for i, cut, out in zip(index, truncated, outputs):
                if not out.outputs:  # an aborted request finishes with no completion
                    results[i] = failed(
                        "vLLM returned no completion (request aborted)", "error", len(out.prompt_token_ids or [])
                    )
                    continue
                completion = out.outputs[0]
                results[i] = Result(
                    text=completion.text,
                    finish_reason=completion.finish_reason or "",
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(completion.token_ids),
                    truncated=cut,
                )
        return results  # type: ignore[return-value]
