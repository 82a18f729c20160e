"""A tiny chat model built from nothing, offline: a byte-level BPE trained on a corpus and a
randomly initialised Qwen2 decoder.

It saves like a hub checkpoint (`save_pretrained`), so everything downstream —
`AutoTokenizer`/`AutoModelForCausalLM`, trl's trainers, vLLM — loads it by path and
cannot tell it from a real small model. It exists so the whole pipeline (SFT, GRPO,
evaluation) runs in seconds on a CPU and in tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from random import Random

import torch
from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2_PRETOKENIZE_REGEX

from t2g.progress import Progress
from t2g.prompts import REASONER_SYSTEM_PROMPT, SYSTEM_PROMPT, THINKING_SUFFIX

PAD = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # the end of an assistant turn is the end of generation: eos
SPECIAL_TOKENS = (PAD, IM_START, IM_END)
# Thinking tags are one token each but not *special*: trl decodes completions with
# skip_special_tokens=True, and the format reward must still see them.
THINK_TOKENS = ("<think>", "</think>")
# The recipe's fixed system prompts, one token each. They are the same in every example, so
# to a tiny model they carry nothing, yet spelled out they were ~110 of an SFT example's
# ~245 tokens: close to half of every training step and prefill on a CPU. A real model
# reads them as words; the tiny stand-in reads one token (the longest match wins, so the
# thinking prompt is one token too).
PROMPT_TOKENS = (SYSTEM_PROMPT + THINKING_SUFFIX, SYSTEM_PROMPT, REASONER_SYSTEM_PROMPT)

# ChatML, as Qwen2.5 renders it, minus tools and the default system prompt. The assistant's
# content and its <|im_end|> sit inside {% generation %} so trl's assistant_only_loss masks
# exactly what the model must produce, stop token included; add_generation_prompt ends
# with "assistant\n", so a prompt's rendering is a prefix of prompt + completion's
# (what trl's prompt-completion datasets rely on).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_tokenizer(
    corpus: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2, prompt_tokens: bool = True
) -> PreTrainedTokenizerFast:
    """A byte-level BPE (Qwen style: any text encodes, nothing is unknown) trained on
    `corpus`, with ChatML special tokens and chat template; with `prompt_tokens`, the
    recipe's system prompts are one token each (PROMPT_TOKENS).

    Feed it what the model will read and write — texts, JSON targets, prompts — so frequent
    names and JSON punctuation become single tokens. Deterministic for a given corpus.
    """
    # Train under exactly Qwen2's pipeline (NFC, Qwen's split regex, byte level), then hand
    # vocabulary and merges to transformers' own Qwen2Tokenizer: a qwen2 checkpoint is
    # reloaded as that class whatever tokenizer.json says, so only this way do the built
    # and the reloaded tokenizer agree. One consequence: digits are single tokens, as in Qwen.
    bpe = _qwen_pipeline(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *THINK_TOKENS],  # reserved ids 0..4
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(corpus)
    bpe.train_from_iterator(corpus, trainer=trainer)
    trained = json.loads(bpe.to_str())["model"]
    vocab, merges = detach_spaces(trained["vocab"], [tuple(m) for m in trained["merges"]], _both_ways(bpe, corpus))

    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,  # byte level: nothing is unknown
        model_max_length=4096,
        padding_side="left",  # decoder-only generation pads on the left
    )
    # Matched whole, never split by BPE; they keep their reserved ids.
    tokenizer.add_tokens(
        [AddedToken(IM_START, special=True, normalized=False)]
        + [AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS]
        + [AddedToken(t, special=True, normalized=False) for t in (PROMPT_TOKENS if prompt_tokens else ())]
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


SPACE = "\u0120"  # byte-level BPE's spelling of a leading space


def _both_ways(bpe: Tokenizer, corpus: Iterable[str]) -> set[str]:
    """Capitalised words (names, what extraction copies) that the corpus writes both with
    and without a leading space (in a sentence and in a JSON answer), as pre-tokenized
    chunks. Lower-case words are left alone: detaching " the" would cost a token per use."""
    chunks = {c for text in corpus for c, _ in bpe.pre_tokenizer.pre_tokenize_str(bpe.normalizer.normalize_str(text))}
    return {c for c in chunks if c.isalpha() and c[0].isupper() and SPACE + c in chunks}


def detach_spaces(
    vocab: dict[str, int], merges: list[tuple[str, str]], words: Iterable[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Drop the space-prefixed token of each of `words`, so such a word is the same token
    in "of Xilux" as in `"text": "Xilux"`.

    Why: Qwen's pre-tokenizer glues the leading space to a word, so a name in the middle
    of a sentence (" Xilux") and the same name in the JSON answer ("Xilux") are two
    unrelated tokens, and a tiny model must learn the pairing name by name instead of
    copying (measured on the demo's student: entity recall 0.79 for people and 0.73 for
    companies, the most frequent names, but 0.26 for places, 0.21 for dates and 0.03 for
    products). After this, " Xilux" encodes as " " + "Xilux". Other words keep their one
    token, so an example grows by ~6% (231 tokens against 218 in the tiny profile).
    Returns a vocabulary with contiguous ids (special tokens keep theirs) and the merges
    that remain.
    """
    words = sorted(w for w in words if SPACE + w in vocab and w in vocab)
    drop = {SPACE + w for w in words}
    reserved = len(SPECIAL_TOKENS) + len(THINK_TOKENS)
    while True:
        kept: list[tuple[str, str]] = []
        for a, b in merges:  # in priority order, so a merge's inputs are decided before it
            if a in drop or b in drop or a + b in drop:
                drop.add(a + b)  # what a dropped merge made is unreachable now
            else:
                kept.append((a, b))
        made = {a + b for a, b in kept}
        tokens = [t for t, i in sorted(vocab.items(), key=lambda kv: kv[1])
                  if i < reserved or (t not in drop and (len(t) == 1 or t in made))]  # fmt: skip
        out = {t: i for i, t in enumerate(tokens)}
        # A space-prefixed piece of a dropped word (" Xil" on the way to " Xilux") can still
        # glue the space to the word's start: drop such pieces until every word detaches.
        bpe = _qwen_pipeline(models.BPE(vocab=out, merges=kept))
        glued = {p for w in words for p in bpe.encode(" " + w).tokens if p.startswith(SPACE) and p != SPACE}
        if not glued:
            return out, kept
        drop |= glued


def _qwen_pipeline(model: models.Model) -> Tokenizer:
    """A tokenizer under exactly Qwen2's pipeline: NFC, Qwen's split regex, byte level."""
    bpe = Tokenizer(model)
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return bpe


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 2,
    kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_positions: int = 1024,
    seed: int = 0,
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 decoder sized for `tokenizer` (tied embeddings).

    Defaults give ~1.3M parameters with a 2048-token vocabulary. The head size
    (hidden_size / heads) defaults to 64, which every vLLM attention backend supports.
    Initialisation is a function of `seed` only; the global torch RNG is left untouched.
    """
    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of heads {heads}")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        use_sliding_window=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return model


def pretrain(
    model: Qwen2ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    steps: int,
    learning_rate: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """Warm a freshly initialised model up to copy from its context, as any pretrained
    base model can: causal LM on `text <eos> text`, where the second copy is predictable
    only by looking back (the task that grows induction heads); batches are packed (`pack`).

    Why: the recipe's student copies entity names from the text. A random tiny model has
    no copying circuit and, under SFT alone, finds one only after hundreds of steps on a
    loss plateau (measured: entity F1 0.06-0.14 after 300-500 SFT steps without, 0.20
    after 300 with 300 warm-up steps, 0.47 after 600). The texts are unlabelled: nothing
    of the answers leaks in. Deterministic for a seed; returns the loss per step.
    """
    if steps <= 0 or not texts:
        return []
    # Each text tokenized once; `t <eos> t <eos>` is then its ids twice.
    eos = tokenizer.convert_tokens_to_ids(IM_END)
    copies = [ids + [eos] + ids + [eos] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    rng = Random(seed)
    losses: list[float] = []
    # On the GPU when there is one (on an H200 machine the SFT stage's time outside its
    # training loop went from 109 s on the 16 CPU cores to 43 s); the model goes back
    # where it was, so callers save it as before.
    home = next(model.parameters()).device
    device = torch.device("cuda") if torch.cuda.is_available() else home
    model.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
        warmup = max(1, min(20, steps // 10))
        model.train()
        progress = Progress("copy warm-up", steps)
        for step in range(steps):
            ids, mask = pack(rng.choices(copies, k=batch_size), tokenizer.pad_token_id)
            labels = ids.masked_fill(mask == 0, -100)
            for group in opt.param_groups:  # linear warm-up, then constant
                group["lr"] = learning_rate * min(1.0, (step + 1) / warmup)
            loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            progress.step(step + 1, loss=losses[-1])
    model.to(home).eval()
    return losses


def pack(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole sequences packed first-fit, longest first, into rows as long as the longest
    one; only row ends are padded (on the left, as the tokenizer pads). Returns input ids
    and attention mask.

    Why: the warm-up's texts are 12 to 90 tokens, and padded to the longest in the batch
    45% of every step was padding. A packed sequence may attend to the one before it in its
    row, as in any pretraining that packs documents; each is whole, so its second copy can
    always look back at its first.
    """
    width = max(len(s) for s in sequences)
    rows: list[list[int]] = []
    for seq in sorted(sequences, key=len, reverse=True):
        row = next((r for r in rows if len(r) + len(seq) <= width), None)
        if row is None:
            rows.append(list(seq))
        else:
            row.extend(seq)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids, mask


def build_tiny(
    out_dir: str | Path,
    corpus: Iterable[str],
    vocab_size: int = 2048,
    pretrain_texts: Sequence[str] = (),
    pretrain_steps: int = 0,
    pretrain_lr: float = 3e-3,
    prompt_tokens: bool = True,
    **sizes,
) -> Path:
    """Train the tokenizer on `corpus`, build the model (`sizes` go to `build_model`),
    warm it up on `pretrain_texts` for `pretrain_steps` (see `pretrain`), and save both
    to `out_dir` like a hub checkpoint. Returns `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus, vocab_size=vocab_size, prompt_tokens=prompt_tokens)
    model = build_model(tokenizer, **sizes)
    pretrain(model, tokenizer, pretrain_texts, pretrain_steps, pretrain_lr, seed=sizes.get("seed", 0))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
