"""The prompt every model sees, teacher and student alike: an assistant that extracts the
entities and relations of the requested types and answers with one JSON graph.

Teacher and student share it so the student learns exactly the task the teacher was given.
Changing it changes the code version of every stage that prompts a model.
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM_PROMPT = (
    "You extract knowledge graphs from text. Given a text and the entity and relation types "
    "wanted, answer with one JSON object: "
    '{"entities": [{"id": 0, "text": "...", "type": "..."}], '
    '"relations": [{"head": "...", "tail": "...", "type": "..."}]}. '
    "Use only the requested types. Entity texts are copied from the text; relation heads and "
    "tails are entity texts. Types that do not occur in the text are left out."
)

THINKING_SUFFIX = " First reason step by step inside <think>...</think>, then give the JSON."


def user_prompt(text: str, entity_types: Sequence[str], relation_types: Sequence[str]) -> str:
    return (
        f"Entity types: {', '.join(entity_types) or '(none)'}\n"
        f"Relation types: {', '.join(relation_types) or '(none)'}\n"
        f"Text: {text}"
    )


def messages(
    text: str, entity_types: Sequence[str], relation_types: Sequence[str], thinking: bool = False
) -> list[dict[str, str]]:
    """The conversational prompt (system + user), as trl and chat templates take it."""
    system = SYSTEM_PROMPT + (THINKING_SUFFIX if thinking else "")
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user_prompt(text, entity_types, relation_types)},
    ]


# The reasoner (R1) is shown the answer and asked for the reasoning that reaches it, written
# as if it had not seen it: the student will be trained to produce that reasoning from the
# text alone, so it must not lean on the graph it is given.
REASONER_SYSTEM_PROMPT = (
    "You are shown a text, the entity and relation types requested from it, and the knowledge "
    "graph that is the correct answer. Think step by step, as if you had not seen the answer, "
    "about how to reach it from the text alone: find the mentions of each requested type, "
    "decide their types, then the relations between them, and note which requested types do "
    "not occur. Do not quote or copy the JSON answer. Put all of your reasoning inside "
    "<think>...</think>."
)


def reasoner_messages(
    text: str, entity_types: Sequence[str], relation_types: Sequence[str], graph_json: str
) -> list[dict[str, str]]:
    """The reasoner's prompt: the task as the student sees it, plus the answer to explain."""
    return [
        {"role": "system", "content": REASONER_SYSTEM_PROMPT},
        {"role": "user", "content": f"{user_prompt(text, entity_types, relation_types)}\nAnswer: {graph_json}"},
    ]
