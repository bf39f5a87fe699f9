"""In-context-learning prompts for function-vector heads (Todd et al. 2023), built per tokenizer.

The tasks are ours (``classifiers/data/icl_tasks.json``): antonyms, country→capital, uppercase,
English→French, next number, first letter, singular→plural and present→past. A pair is kept
when its answer, with a leading space, is one token of this tokenizer, so the answer is one
next-token prediction; a task needs ``min_pairs`` kept pairs. Prompts are Q/A blocks::

    Q: hot\\nA: cold\\n\\nQ: big\\nA: small\\n\\n … Q: up\\nA:   → " down"

Per task: ``clean`` prompts with ``shots`` demonstrations, ``shuffled`` prompts whose
demonstration answers are permuted among themselves (the task is no longer shown), and
``zero_shot`` prompts (the query alone). Every draw is seeded.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

TASKS_FILE = Path(__file__).parent / "data" / "icl_tasks.json"


@dataclass(frozen=True)
class ICLSpec:
    """How many prompts of each kind per task, their demonstrations, and the seed."""

    shots: int = 10
    clean_prompts: int = 12
    shuffled_prompts: int = 25  # the CIE items, as in Todd et al.
    zero_shot: int = 24
    min_pairs: int = 16
    seed: int = 0


@dataclass(frozen=True)
class ICLPrompt:
    """Token ids (BOS included when the model has one) and the answer's token id."""

    ids: list[int]
    target: int


@dataclass(frozen=True)
class ICLTask:
    """One task's prompts of each kind and how many of its pairs this tokenizer kept."""

    name: str
    pairs_kept: int
    clean: list[ICLPrompt]
    shuffled: list[ICLPrompt]
    zero_shot: list[ICLPrompt]


@dataclass(frozen=True, eq=False)
class ICLPrompts:
    """Every task kept for one tokenizer, the ones dropped (with why), and a content hash."""

    tasks: list[ICLTask]
    dropped: dict[str, str]
    params: dict[str, Any]

    @cached_property
    def hash(self) -> str:
        """sha256 over the parameters and every prompt's token ids and target."""
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode())
        for task in self.tasks:
            digest.update(task.name.encode())
            for prompt in (*task.clean, *task.shuffled, *task.zero_shot):
                digest.update(json.dumps([prompt.ids, prompt.target]).encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What is stored beside the hash."""
        return {
            **self.params, "kind": "icl", "tasks": {t.name: t.pairs_kept for t in self.tasks},
            "dropped": self.dropped,
        }  # fmt: skip


@cache
def task_pairs() -> dict[str, list[tuple[str, str]]]:
    """Every task's (input, answer) pairs, from the data file."""
    raw = json.loads(TASKS_FILE.read_text(encoding="utf-8"))
    return {name: [(x, y) for x, y in task["pairs"]] for name, task in raw.items()}


QUERY_ENDINGS = ("A:", "A: ")  # the answer follows as " y", or as "y" after a trailing space


def _block(question: str, answer: str) -> str:
    return f"Q: {question}\nA: {answer}\n\n"


def _encode(tokenizer: Any, bos_id: int | None, text: str) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    return ids if bos_id is None else [bos_id, *ids]


def _answer_token(tokenizer: Any, question: str, answer: str, ending: str) -> int | None:
    """The one token that continues the query block into its answer, if there is exactly one."""
    query = f"Q: {question}\n{ending}"
    before = _encode(tokenizer, None, query)
    after = _encode(tokenizer, None, query + ("" if ending.endswith(" ") else " ") + answer)
    unknown = getattr(tokenizer, "unk_token_id", None)
    if len(after) == len(before) + 1 and after[:-1] == before and after[-1] != unknown:
        return after[-1]
    return None


def _prompt(
    tokenizer: Any, bos_id: int | None, demos: list[tuple[str, str]], question: str, ending: str, target: int
) -> ICLPrompt:
    text = "".join(_block(x, y) for x, y in demos) + f"Q: {question}\n{ending}"
    return ICLPrompt(_encode(tokenizer, bos_id, text), target)


def _kept_pairs(tokenizer: Any, pairs: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str, int]]]:
    """The query ending that keeps more pairs, and those pairs with their answer token."""
    best: tuple[str, list[tuple[str, str, int]]] = (QUERY_ENDINGS[0], [])
    for ending in QUERY_ENDINGS:
        kept = [(x, y, t) for x, y in pairs if (t := _answer_token(tokenizer, x, y, ending)) is not None]
        if len(kept) > len(best[1]):
            best = (ending, kept)
    return best


def _shuffled_answers(demos: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    """The same questions with their answers permuted so that none keeps its own (when possible)."""
    answers = [y for _, y in demos]
    for _ in range(100):
        rng.shuffle(answers)
        if all(a != y for a, (_, y) in zip(answers, demos, strict=True)):
            break
    return [(x, a) for (x, _), a in zip(demos, answers, strict=True)]


def generate_icl(
    tokenizer: Any, bos_id: int | None, spec: ICLSpec,
    tasks_pairs: dict[str, list[tuple[str, str]]] | None = None,
) -> ICLPrompts:  # fmt: skip
    """The prompts of every task (by default the data file's) this tokenizer can score;
    ValueError when none can."""
    tasks, dropped = [], {}
    for name, pairs in (task_pairs() if tasks_pairs is None else tasks_pairs).items():
        ending, kept = _kept_pairs(tokenizer, pairs)
        if len(kept) < max(spec.min_pairs, spec.shots + 1):
            dropped[name] = f"{len(kept)} of {len(pairs)} answers are one token (needs {spec.min_pairs})"
            continue
        rng = random.Random(f"{spec.seed}:{name}")
        clean: list[ICLPrompt] = []
        shuffled: list[ICLPrompt] = []
        zero_shot: list[ICLPrompt] = []
        for i in range(spec.clean_prompts + spec.shuffled_prompts):
            (question, _, target), *rest = rng.sample(kept, spec.shots + 1)
            demos = [(x, y) for x, y, _ in rest]
            if i >= spec.clean_prompts:
                demos = _shuffled_answers(demos, rng)
            (clean if i < spec.clean_prompts else shuffled).append(
                _prompt(tokenizer, bos_id, demos, question, ending, target)
            )
        for question, _, target in rng.sample(kept, min(spec.zero_shot, len(kept))):
            zero_shot.append(_prompt(tokenizer, bos_id, [], question, ending, target))
        tasks.append(ICLTask(name, len(kept), clean, shuffled, zero_shot))
    if not tasks:
        raise ValueError(f"no in-context task has {spec.min_pairs} single-token answers for this tokenizer")
    data = hashlib.sha256(TASKS_FILE.read_bytes()).hexdigest()
    return ICLPrompts(tasks, dropped, {**asdict(spec), "bos": bos_id, "tasks_file": data})
