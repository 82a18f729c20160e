"""trl's real GRPOTrainer, a few steps on CPU: the tiny model, toy-world prompts in
conversational form, and every registered reward — the GRPO stage's wiring, end to end."""

from __future__ import annotations

import json
import math

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from t2g import toyworld
from t2g.graph import Graph
from t2g.rewards import REWARDS

SYSTEM = "Extract the entities and relations of the requested types as a JSON graph."


def conversational_rows(n: int) -> list[dict]:
    rows = []
    for doc in toyworld.generate(n, seed=11):
        user = (
            f"Text: {doc['text']}\n"
            f"Entity types: {', '.join(doc['entity_types'])}\n"
            f"Relation types: {', '.join(doc['relation_types'])}"
        )
        gold = Graph.model_validate({"entities": doc["entities"], "relations": doc["relations"]})
        rows.append(
            {
                "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                "solution": gold.to_json(),
                "entity_types": doc["entity_types"],
                "relation_types": doc["relation_types"],
            }
        )
    return rows


def test_grpo_trains_with_every_reward(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    calls = {name: 0 for name in REWARDS}

    def counted(name, func):
        def reward(prompts, completions, **kwargs):
            calls[name] += 1
            assert isinstance(completions[0], list)  # conversational completions
            return func(prompts, completions, **kwargs)

        reward.__name__ = func.__name__  # trl logs rewards/<__name__>/mean
        return reward

    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=2,  # two prompts of two completions per step
        max_completion_length=32,
        learning_rate=1e-4,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        use_vllm=False,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[counted(name, func) for name, func in REWARDS.items()],
        args=args,
        train_dataset=Dataset.from_list(conversational_rows(8)),
        processing_class=tokenizer,
    )
    trainer.train()

    assert all(count >= 2 for count in calls.values()), calls
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(logged) == 2
    for name in REWARDS:
        values = [entry[f"rewards/{name}/mean"] for entry in logged]
        assert all(0.0 <= v <= 1.0 for v in values if not math.isnan(v)), (name, values)
    json.dumps(trainer.state.log_history)  # the log stays plain data
