"""The tiny model: built offline, loads like a hub checkpoint, chats, and generates."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from t2g import tiny, toyworld

MESSAGES = [
    {"role": "system", "content": "Extract a graph."},
    {"role": "user", "content": "Kortron makes the Vophone."},
    {"role": "assistant", "content": '<think>one fact</think>{"entities": [], "relations": []}'},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def test_loads_through_the_auto_classes(tiny_model_dir, tokenizer, model):
    assert type(model).__name__ == "Qwen2ForCausalLM"
    # What a hub Qwen2 checkpoint declares, so any transformers (and vLLM) picks its own
    # Qwen2 tokenizer.
    assert json.loads((tiny_model_dir / "tokenizer_config.json").read_text())["tokenizer_class"] == "Qwen2Tokenizer"
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert tokenizer.convert_tokens_to_ids([*tiny.SPECIAL_TOKENS, *tiny.THINK_TOKENS]) == [0, 1, 2, 3, 4]
    assert model.config.tie_word_embeddings
    assert model.config.vocab_size == len(tokenizer)
    assert 300_000 < tiny.parameter_count(model) < 2_000_000
    assert tokenizer.eos_token == tiny.IM_END and tokenizer.pad_token == tiny.PAD
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_reloaded_tokenizer_encodes_like_the_built_one(tokenizer):
    # transformers rebuilds a qwen2 tokenizer around the saved vocabulary; the pipelines
    # must agree or training and serving would see different tokens.
    built = tiny.build_tokenizer(toyworld.corpus(2000, seed=0))
    samples = [*toyworld.corpus(50, seed=9), "Ünïcode 東京 2024!!\n\n  x\ty", "<think>a</think><|im_end|>"]
    for s in samples:
        assert built.encode(s) == tokenizer.encode(s), s


def test_chat_template_renders_chatml_and_round_trips(tokenizer):
    rendered = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nExtract a graph.<|im_end|>\n"
        "<|im_start|>user\nKortron makes the Vophone.<|im_end|>\n"
        '<|im_start|>assistant\n<think>one fact</think>{"entities": [], "relations": []}<|im_end|>\n'
    )
    assert tokenizer.decode(tokenizer.encode(rendered)) == rendered
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and rendered.startswith(prompt)


def test_assistant_mask_covers_the_answer_and_its_stop_token(tokenizer):
    out = tokenizer.apply_chat_template(MESSAGES, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    answer = [t for t, keep in zip(out["input_ids"], out["assistant_masks"]) if keep]
    assert tokenizer.decode(answer) == MESSAGES[2]["content"] + tiny.IM_END


def test_think_tags_are_single_tokens_that_survive_decoding(tokenizer):
    ids = tokenizer.encode("<think>x</think>")
    assert tokenizer.convert_ids_to_tokens(ids)[0] == "<think>" and len(ids) == 3
    chat = tokenizer.encode(f"{tiny.IM_START}assistant\n<think>x</think>{tiny.IM_END}")
    assert tokenizer.decode(chat, skip_special_tokens=True) == "assistant\n<think>x</think>"


def test_a_name_is_the_same_token_in_the_text_and_in_the_json(tokenizer):
    names = toyworld.cast().names
    for etype in ("person", "organisation", "location", "product"):
        for name in names[etype]:
            # after a quote (the JSON) one token; after a space (the text) that same token
            assert tokenizer.tokenize(name) == [name], name
            assert tokenizer.tokenize(" " + name) == ["\u0120", name], name
    for date in names["date"]:
        month = date.split()[0]
        assert tokenizer.tokenize(" " + date)[:2] == ["\u0120", month]  # then a space and four digits


def test_only_capitalised_words_written_both_ways_are_detached():
    # "Xilux" appears after a space and after a quote; "builds" only after a space; "the"
    # both ways but lower-case: only the name loses its space-glued token.
    corpus = ['Quordyne builds the popular Xilux. "Xilux" the end.'] * 20
    tok = tiny.build_tokenizer(corpus, vocab_size=400)
    assert tok.tokenize(" Xilux") == ["\u0120", "Xilux"]
    assert tok.tokenize(" builds") == ["\u0120builds"]
    assert tok.tokenize(" the") == ["\u0120the"]
    # Ids stay contiguous and the special tokens keep theirs.
    assert sorted(tok.get_vocab().values()) == list(range(len(tok)))
    assert tok.convert_tokens_to_ids([tiny.PAD, tiny.IM_START, tiny.IM_END]) == [0, 1, 2]


def test_generate_runs(tokenizer, model):
    inputs = tokenizer.apply_chat_template(
        MESSAGES[:2], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[0] == 1 and inputs["input_ids"].shape[1] < out.shape[1] <= inputs["input_ids"].shape[1] + 8
    assert isinstance(tokenizer.decode(out[0]), str)


def test_build_is_deterministic_and_leaves_global_rng_alone(tokenizer):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = tiny.build_model(tokenizer, hidden_size=64, layers=1, heads=1, seed=5)
    assert torch.equal(torch.rand(1), expected)
    b = tiny.build_model(tokenizer, hidden_size=64, layers=1, heads=1, seed=5)
    c = tiny.build_model(tokenizer, hidden_size=64, layers=1, heads=1, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    corpus = list(toyworld.corpus(300, seed=1))
    assert tiny.build_tokenizer(corpus).get_vocab() == tiny.build_tokenizer(corpus).get_vocab()


def test_sizes_are_checked(tokenizer):
    with pytest.raises(ValueError, match="multiple"):
        tiny.build_model(tokenizer, hidden_size=100, heads=3)


def test_pretrain_lowers_the_loss_and_is_deterministic():
    texts = [d["text"] for d in toyworld.generate(100, seed=0)]
    tokenizer = tiny.build_tokenizer(texts, vocab_size=400)

    def warm(seed: int) -> tuple[list[float], torch.Tensor]:
        model = tiny.build_model(tokenizer, hidden_size=32, layers=2, heads=1)
        losses = tiny.pretrain(model, tokenizer, texts, steps=40, learning_rate=1e-2, batch_size=8, seed=seed)
        return losses, model.model.embed_tokens.weight.detach().clone()

    losses, weights = warm(0)
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.7 * losses[0]
    again, same = warm(0)
    assert again == losses and torch.equal(same, weights)
    assert (
        tiny.pretrain(tiny.build_model(tokenizer, hidden_size=32, layers=1, heads=1), tokenizer, texts, steps=0) == []
    )


@pytest.mark.parametrize("thinking", [False, True])
def test_the_recipe_s_system_prompt_is_one_token_and_round_trips(thinking):
    from t2g.prompts import messages

    tokenizer = tiny.build_tokenizer(toyworld.corpus(200, seed=0), vocab_size=400)
    chat = messages("Kortron makes the Vophone.", ["organisation", "product"], ["makes"], thinking=thinking)
    ids = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True, return_dict=False)
    system = chat[0]["content"]
    assert system in tokenizer.convert_ids_to_tokens(ids)  # the whole prompt, thinking suffix included
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    # Any other system prompt is spelled out as before.
    other = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=True, return_dict=False)
    assert tokenizer.decode(other).startswith("<|im_start|>system\nExtract a graph.")


def test_pack_keeps_each_sequence_whole_and_pads_only_row_ends():
    seqs = [[1] * 9, [2] * 3, [3] * 5, [4] * 4, [5] * 2]
    ids, mask = tiny.pack(seqs, pad_id=0)
    assert ids.shape == (3, 9)  # 9 | 5+4 | 3+2: first fit, longest first
    rows = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
    assert rows == [[1] * 9, [3] * 5 + [4] * 4, [2] * 3 + [5] * 2]
    assert ids[2, :4].tolist() == [0] * 4 and mask[2, :4].tolist() == [0] * 4  # padded on the left
    assert sorted(x for r in rows for x in r) == sorted(x for s in seqs for x in s)
