"""Twenty Questions: guess a hidden word by asking yes/no questions.

The reference game of ArCHer (Zhou et al. 2024). A word is hidden; each turn the agent asks
one yes/no question and a rule-based oracle answers ``"Yes."``, ``"No."`` or
``"Invalid Question."`` from a small word/attribute table (:data:`WORDS`). The episode is
won when the answer is ``Yes.`` to a question that names the word (``"Is it a dog?"``).

Observation: ``"Questions:\\n"`` followed by one line ``"<question> <answer>\\n"`` per past
turn (the question as asked, whitespace collapsed, cut at :data:`MAX_QUESTION_CHARS`).
Reward: -1 per turn, 0 on the winning turn; terminated on a win, truncated after
``max_turns`` (20) turns, so the return lies in ``[-20, 0]``. ``info["success"]`` is True on
a win and ``info["invalid_action"]`` on an ``Invalid Question.``.

Question grammar (case-insensitive, whitespace collapsed, the trailing ``?`` optional):

- ``Is it [a|an] <word>?`` -- a guess, e.g. ``Is it a dog?``. ``<word>`` is any word of
  the full table (:data:`WORDS`); a guess outside the active word list is simply ``No.``.
- ``Is it [a|an] <category>?`` -- e.g. ``Is it an animal?``, ``Is it food?``; categories
  are :data:`CATEGORIES`.
- ``Is it <attribute>?`` / ``Does it <attribute>?`` / ``Can it <attribute>?`` -- for the
  attributes of :data:`ATTRIBUTES`, each with its own verb: ``Is it made of metal?``,
  ``Does it have wheels?``, ``Can it fly?``.

Anything else (free text, an empty string, an unknown word, category or attribute, or an
attribute with the wrong verb) is answered ``Invalid Question.`` and still costs -1.

Word lists: ``"subset"`` (default: the reference 10 words), ``"classic"`` (30 words) and
``"full"`` (157 words in 17 categories, :mod:`~agentrl.envs.twenty_questions_words`). The
subset and classic games use the 25 classic questions (:data:`QUESTIONS`; with the 10
guesses that is 35 distinct actions, small enough for a tiny LM); the full game uses all
63 (:data:`ALL_QUESTIONS`). Every word has a unique answer signature over its questions.

Oracles: ``oracle="table"`` (default) answers from the table; ``oracle="lm"`` lets any HF
causal LM answer ``Yes.``/``No.`` (:class:`~agentrl.envs.lm_oracle.LMOracle`), as in the
reference, which used a fine-tuned T5. Guesses are still judged by the rules (so success
is exact), and a question that is empty after sanitising is ``Invalid Question.``.
Deviation from the reference: the default oracle is an exact table rather than an LLM, so
the game is deterministic and cheap.

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: the answer (``"No."``; a reminder of the accepted forms after ``Invalid Question.``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agentrl.envs.base import PRINTABLE, TextEnv
from agentrl.envs.lm_oracle import LMOracle, make_oracle
from agentrl.envs.twenty_questions_words import EXTRA_ATTRIBUTES, EXTRA_CATEGORIES, parse_rows

YES, NO, INVALID = "Yes.", "No.", "Invalid Question."
ANSWERS = (YES, NO, INVALID)
HEADER = "Questions:\n"
MAX_QUESTION_CHARS = 100
"""Questions are echoed into the observation cut at this length (keeps it in its space)."""

# Attribute -> the verb that asks about it ("Is it made of metal?"). The classic 14; the
# full table adds :data:`~agentrl.envs.twenty_questions_words.EXTRA_ATTRIBUTES`.
CLASSIC_ATTRIBUTES: dict[str, str] = {
    "alive": "is",
    "edible": "is",
    "made of metal": "is",
    "made of wood": "is",
    "bigger than a breadbox": "is",
    "used indoors": "is",
    "used for writing": "is",
    "electronic": "is",
    "soft": "is",
    "sharp": "is",
    "have wheels": "does",
    "have legs": "does",
    "make sound": "does",
    "fly": "can",
}

CLASSIC_CATEGORIES: tuple[str, ...] = (
    "animal",
    "food",
    "fruit",
    "vehicle",
    "clothing",
    "furniture",
    "electronic device",
    "musical instrument",
    "tool",
    "sports equipment",
    "office supply",
)
# Mass nouns read better without an article ("Is it food?"); both forms are accepted.
_MASS_NOUNS = frozenset({"food", "clothing", "furniture", "sports equipment", "jewelry"})
CATEGORIES: tuple[str, ...] = CLASSIC_CATEGORIES + EXTRA_CATEGORIES
"""All 17 categories (the classic 11, then the extra 6)."""
ATTRIBUTES: dict[str, str] = {**CLASSIC_ATTRIBUTES, **EXTRA_ATTRIBUTES}
"""Every attribute -> its verb (the classic 14, then the extra ones)."""

# The classic 30 words: word -> (categories, classic attributes that are true).
# fmt: off
CLASSIC_WORDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    w: (frozenset(c), frozenset(a))
    for w, c, a in [
        # animals
        ("dog", {"animal"}, {"alive", "bigger than a breadbox", "have legs", "make sound"}),
        ("bird", {"animal"}, {"alive", "have legs", "make sound", "fly"}),
        ("fish", {"animal"}, {"alive", "edible"}),
        # food
        ("banana", {"food", "fruit"}, {"edible", "soft"}),
        ("apple", {"food", "fruit"}, {"edible"}),
        ("bread", {"food"}, {"edible", "soft"}),
        ("carrot", {"food"}, {"edible"}),
        # vehicles
        ("truck", {"vehicle"}, {"made of metal", "bigger than a breadbox", "have wheels", "make sound"}),
        ("bicycle", {"vehicle"}, {"made of metal", "bigger than a breadbox", "have wheels"}),
        ("airplane", {"vehicle"}, {"made of metal", "bigger than a breadbox", "have wheels", "make sound", "fly"}),
        ("boat", {"vehicle"}, {"bigger than a breadbox", "make sound"}),
        # clothing
        ("pants", {"clothing"}, {"soft"}),
        ("shoe", {"clothing"}, set()),
        # furniture
        ("chair", {"furniture"}, {"made of wood", "bigger than a breadbox", "used indoors", "have legs"}),
        ("bed", {"furniture"}, {"bigger than a breadbox", "used indoors", "soft", "have legs"}),
        ("bookshelf", {"furniture"}, {"made of wood", "bigger than a breadbox", "used indoors"}),
        # electronic devices
        ("computer", {"electronic device"}, {"electronic", "used indoors"}),
        ("phone", {"electronic device"}, {"electronic", "make sound"}),
        ("television", {"electronic device"}, {"electronic", "used indoors", "bigger than a breadbox", "make sound"}),
        # musical instruments
        ("piano", {"musical instrument"}, {"made of wood", "bigger than a breadbox", "used indoors", "have legs", "make sound"}),
        ("guitar", {"musical instrument"}, {"made of wood", "make sound"}),
        ("drum", {"musical instrument"}, {"make sound"}),
        # tools
        ("scissors", {"tool", "office supply"}, {"made of metal", "sharp"}),
        ("hammer", {"tool"}, {"made of metal"}),
        ("knife", {"tool"}, {"made of metal", "sharp"}),
        # sports equipment
        ("football", {"sports equipment"}, set()),
        ("skateboard", {"sports equipment"}, {"made of wood", "have wheels"}),
        # office supplies
        ("pen", {"office supply"}, {"used for writing"}),
        ("pencil", {"office supply"}, {"used for writing", "made of wood"}),
        ("stapler", {"office supply"}, {"made of metal", "used indoors"}),
    ]
}
# fmt: on


def _merge_tables() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    # Classic words keep their classic answers; the full table only adds the new facts.
    full = parse_rows()
    extra_cats, extra_attrs = frozenset(EXTRA_CATEGORIES), frozenset(EXTRA_ATTRIBUTES)
    for word, (cats, attrs) in CLASSIC_WORDS.items():
        new_cats, new_attrs = full.get(word, (frozenset(), frozenset()))
        full[word] = (cats | (new_cats & extra_cats), attrs | (new_attrs & extra_attrs))
    return full


WORDS: dict[str, tuple[frozenset[str], frozenset[str]]] = _merge_tables()
"""word -> (categories, attributes that are true) for all 157 words; every other attribute
is false."""

SUBSET: tuple[str, ...] = (
    "football", "dog", "banana", "truck", "pants",
    "computer", "piano", "chair", "pen", "scissors",
)  # fmt: skip
"""The 10-word subset of the reference env: the default task distribution."""

FULL: tuple[str, ...] = tuple(WORDS)
"""Every word of the table (``word_list="full"``): 157 words in 17 categories."""

CLASSIC: tuple[str, ...] = tuple(CLASSIC_WORDS)
"""The 30 classic words (``word_list="classic"``), told apart by :data:`QUESTIONS` alone."""


@dataclass(frozen=True)
class Question:
    """A parsed question.

    Attributes:
        kind: ``"guess"``, ``"category"``, ``"attribute"`` (or ``"free"``: a question
            only the LM oracle answers).
        key: the word, category or attribute asked about.
    """

    kind: str
    key: str


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def question_text(q: Question) -> str:
    """The canonical English form of a question, e.g. ``"Is it an animal?"``."""
    if q.kind == "attribute":
        return f"{ATTRIBUTES[q.key].capitalize()} it {q.key}?"
    if q.kind == "category" and q.key in _MASS_NOUNS:
        return f"Is it {q.key}?"
    return f"Is it {_article(q.key)} {q.key}?"


QUESTIONS: tuple[str, ...] = tuple(
    [question_text(Question("category", c)) for c in CLASSIC_CATEGORIES]
    + [question_text(Question("attribute", a)) for a in CLASSIC_ATTRIBUTES]
)
"""The 25 classic non-guess questions (categories, then attributes): enough for the
classic words, and the action set of the subset game."""

ALL_QUESTIONS: tuple[str, ...] = tuple(
    [question_text(Question("category", c)) for c in CATEGORIES]
    + [question_text(Question("attribute", a)) for a in ATTRIBUTES]
)
"""Every canonical non-guess question (17 categories, 46 attributes), for the full table."""


def questions_for(words: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The non-guess questions of a word list: :data:`QUESTIONS` when every word is a
    classic word (so the subset game keeps its 35 actions), else :data:`ALL_QUESTIONS`."""
    return QUESTIONS if set(words) <= set(CLASSIC_WORDS) else ALL_QUESTIONS


def guess_text(word: str) -> str:
    """The canonical guess for ``word``, e.g. ``"Is it a dog?"``."""
    return question_text(Question("guess", word))


def valid_questions(words: tuple[str, ...] | list[str] = SUBSET) -> list[str]:
    """Every canonical question for a word list: :func:`questions_for` plus one guess per word."""
    return list(questions_for(words)) + [guess_text(w) for w in words]


_IS_IT = re.compile(r"^is it (?:(?:a|an) )?(.+)$")
_VERB_IT = re.compile(r"^(is|does|can) it (.+)$")


def normalize(text: str) -> str:
    """Lower-case, collapse whitespace, drop trailing ``?``/spaces."""
    return " ".join(text.lower().split()).rstrip("? ").strip()


def parse_question(text: str) -> Question | None:
    """Parse a question of the grammar in the module docstring; ``None`` when invalid."""
    s = normalize(text)
    m = _IS_IT.match(s)
    if m:
        noun = m.group(1)
        if noun in WORDS:
            return Question("guess", noun)
        if noun in CATEGORIES:
            return Question("category", noun)
    m = _VERB_IT.match(s)
    if m and ATTRIBUTES.get(m.group(2)) == m.group(1):
        return Question("attribute", m.group(2))
    return None


def holds(word: str, q: Question) -> bool:
    """Whether the true answer to ``q`` about ``word`` is yes."""
    categories, attributes = WORDS[word]
    if q.kind == "guess":
        return q.key == word
    if q.kind == "category":
        return q.key in categories
    return q.key in attributes


def answer(word: str, question: str) -> str:
    """The oracle: ``"Yes."``, ``"No."`` or ``"Invalid Question."`` for ``question`` about ``word``."""
    q = parse_question(question)
    if q is None:
        return INVALID
    return YES if holds(word, q) else NO


def sanitize(text: str) -> str:
    """The question as echoed in the observation: printable, one line, at most 100 chars."""
    text = "".join(ch for ch in text if ch in PRINTABLE)
    return " ".join(text.split())[:MAX_QUESTION_CHARS]


def parse_observation(observation: str) -> list[tuple[str, str]]:
    """Split an observation into ``(question, answer)`` pairs (the inverse of rendering)."""
    pairs = []
    for line in observation.splitlines()[1:]:
        line = line.strip()
        for ans in ANSWERS:
            if line == ans or line.endswith(" " + ans):
                pairs.append((line[: -len(ans)].strip(), ans))
                break
    return pairs


def resolve_word_list(word_list: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"subset"`` -> :data:`SUBSET`, ``"classic"`` -> :data:`CLASSIC`, ``"full"`` ->
    :data:`FULL`, or a checked list of words."""
    if isinstance(word_list, str):
        named = {"subset": SUBSET, "classic": CLASSIC, "full": FULL}
        if word_list in named:
            return named[word_list]
        raise ValueError(
            f"word_list must be 'subset', 'classic', 'full' or a list of words, got {word_list!r}"
        )
    words = tuple(word_list)
    unknown = [w for w in words if w not in WORDS]
    if unknown or not words:
        raise ValueError(f"unknown words {unknown} (known: {sorted(WORDS)})")
    return words


def _join(items: list[str]) -> str:
    return ", ".join(items)


def instructions(
    words: tuple[str, ...] | list[str], max_turns: int = 20, lm_oracle: bool = False
) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``): the
    possible words, the answers, and the accepted question forms of ``words``' game (the
    categories and attributes of :func:`questions_for`; with the LM oracle, any yes/no
    question)."""
    lines = [
        "Let's play Twenty Questions. I am thinking of a word; it is one of: "
        f"{_join(list(words))}.",
        f"Find it by asking yes/no questions. You have {max_turns} questions and each one "
        "costs a point, so find it with as few as you can. You win when you guess the word: "
        'ask "Is it a <word>?", e.g. "Is it a dog?".',
    ]
    if lm_oracle:
        lines += [
            'I answer "Yes." or "No.". Any yes/no question in plain English is allowed, e.g. '
            '"Is it an animal?" or "Is it bigger than a car?".',
        ]
    else:
        classic = questions_for(words) is QUESTIONS
        cats = CLASSIC_CATEGORIES if classic else CATEGORIES
        attrs = CLASSIC_ATTRIBUTES if classic else ATTRIBUTES
        by_verb = {v: [a for a, verb in attrs.items() if verb == v] for v in ("is", "does", "can")}
        cat_texts = [question_text(Question("category", c))[len("Is it ") : -1] for c in cats]
        lines += [
            'I answer "Yes.", "No." or "Invalid Question.". I understand only these forms:',
            "- Is it a <word>? (a guess)",
            f"- Is it <category>? with one of: {_join(cat_texts)}",
            f"- Is it <attribute>? with one of: {_join(by_verb['is'])}",
            f"- Does it <attribute>? with one of: {_join(by_verb['does'])}",
            f"- Can it <attribute>? with one of: {_join(by_verb['can'])}",
            'Any other question is answered "Invalid Question." and still costs a point.',
        ]
    lines.append("Reply with exactly one question on a single line.")
    return "\n".join(lines)


INVALID_REMINDER = (
    'Ask one question in an accepted form, e.g. "Is it an animal?", "Does it have legs?", '
    '"Can it fly?" or a guess such as "Is it a dog?".'
)


class TwentyQuestionsEnv(TextEnv):
    """Twenty Questions with a rule-based oracle (see the module docstring for the rules).

    Args:
        word_list: ``"subset"`` (the reference 10 words, default), ``"classic"`` (30),
            ``"full"`` (all 157 words of :data:`WORDS`) or an explicit list; the task
            distribution is uniform over it.
        max_turns: turn limit (20).
        oracle: ``"table"`` (exact answers) or ``"lm"`` (an HF causal LM answers).
        oracle_model: for ``oracle="lm"``: a model path/id, a loaded ``PreTrainedModel``
            or an :class:`~agentrl.envs.lm_oracle.LMOracle`.
        oracle_tokenizer: the tokenizer when ``oracle_model`` is a loaded model.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the observation).

    Task spec: ``{"word": "dog"}`` (any word of :data:`WORDS`).
    """

    max_turns = 20

    def __init__(
        self,
        word_list: str | list[str] | tuple[str, ...] = "subset",
        max_turns: int = 20,
        render_mode: str | None = None,
        oracle: str = "table",
        oracle_model: Any = None,
        oracle_tokenizer: Any = None,
    ):
        super().__init__(render_mode=render_mode)
        self.words = resolve_word_list(word_list)
        if oracle not in ("table", "lm"):
            raise ValueError(f"oracle must be 'table' or 'lm', got {oracle!r}")
        self.lm: LMOracle | None = None
        if oracle == "lm":
            self.lm = make_oracle(oracle_model, oracle_tokenizer)
        self.max_turns = max_turns
        self.word = ""
        self._lines: list[str] = []

    def sample_task(self) -> dict[str, Any]:
        """A uniformly random word of the word list, ``{"word": ...}``."""
        return {"word": self.words[int(self.np_random.integers(len(self.words)))]}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        word = task.get("word")
        if word not in WORDS:
            raise ValueError(
                f"task word {word!r} is not in the table; known words: {sorted(WORDS)}"
            )
        self.word = word
        self._lines = []
        return HEADER, {
            "instructions": instructions(self.words, self.max_turns, self.lm is not None)
        }

    def _answer(self, action: str) -> tuple[Question | None, str]:
        q = parse_question(action)
        if self.lm is None or (q is not None and q.kind == "guess"):
            return q, INVALID if q is None else (YES if holds(self.word, q) else NO)
        text = sanitize(action)
        if not text:
            return None, INVALID
        prompt = f"The hidden word is {self.word}. Question: {text} Answer (Yes or No):"
        yes = self.lm.choose(prompt, (" Yes", " No")) == 0
        # a free-text question the LM answered counts as valid
        return q or Question("free", text), YES if yes else NO

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        q, ans = self._answer(action)
        won = q is not None and q.kind == "guess" and ans == YES
        self._lines.append(f"{sanitize(action)} {ans}\n")
        info = {"success": won, "invalid_action": q is None, "answer": ans}
        info["message"] = self._message(ans, won)
        return HEADER + "".join(self._lines), (0.0 if won else -1.0), won, info

    def _message(self, ans: str, won: bool) -> str:
        """``info["message"]``: the answer, with a reminder of the forms after an invalid
        question and a closing sentence at the end of the episode."""
        if won:
            n = self._turn
            return f"{ans} You found it: the word is {self.word}, in {n} question{'s' * (n > 1)}."
        parts = [ans]
        if ans == INVALID:
            parts.append(
                'Ask one yes/no question in plain English, or a guess such as "Is it a dog?".'
                if self.lm is not None
                else INVALID_REMINDER
            )
        if self._turn >= self.max_turns:
            parts.append("That was your last question.")
        return " ".join(parts)
