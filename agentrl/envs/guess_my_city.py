"""Guess My City: find a hidden city by asking free-text questions.

After LMRL-Gym's *Guess My City*. A city of :data:`CITIES` (40 cities, 6 continents) is
hidden; each turn the agent asks a question in free text and an oracle answers in a short
sentence without naming the city. The episode is won when the question names the city
(``"Is it Paris?"``, ``"is the city lima"``: any text that contains the city's name).

Rule-based oracle (:func:`answer`), by the first rule that applies:

1. The question names a city: ``"Yes! It is <City>."`` (win) or ``"No, it is not <City>."``.
2. It names a country (``"Is it in Japan?"``) or else a continent: ``"Yes."`` / ``"No."``.
3. Keywords: ``continent`` -> the continent; ``country`` -> the country; ``capital`` ->
   whether it is a capital; ``coast``/``sea``/``ocean``/``beach``/``port`` -> coastal or
   inland; ``population``/``how many``/``people live``/``big``/``large`` -> the population
   in millions; ``language``/``speak`` -> the main language; ``hemisphere``/``north``/
   ``south`` -> the hemisphere; ``famous``/``known for`` -> what it is known for.
4. Anything else: ``"I can't answer that."`` -- an invalid action.

Observation: ``"Guess my city. Ask questions; name the city to win.\\n"`` then, per past
turn, ``"Q: <question>\\n"`` and ``"A: <answer>\\n"`` (questions sanitised to one printable
line of at most 100 characters). Reward: -1 per turn, 0 on the winning turn (as Twenty
Questions); an invalid question also costs -1 and sets ``info["invalid_action"]``.
Truncated after ``max_turns`` (20). ``oracle="lm"`` lets an HF causal LM write the answers
(guesses are still judged by rule 1).

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: the oracle's answer (a reminder of the topics after ``I can't answer that.``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agentrl.envs.base import PRINTABLE, TextEnv
from agentrl.envs.lm_oracle import LMOracle, make_oracle

HEADER = "Guess my city. Ask questions; name the city to win.\n"
CANT = "I can't answer that."
MAX_QUESTION_CHARS = 100


@dataclass(frozen=True)
class City:
    """The facts the oracle knows about a city."""

    name: str
    country: str
    continent: str
    population: float  # millions, metro area, rounded
    capital: bool
    coastal: bool
    language: str
    known_for: str

    @property
    def hemisphere(self) -> str:
        return (
            "southern"
            if self.continent in ("South America", "Oceania")
            or self.name
            in (
                "Cape Town",
                "Nairobi",
            )
            else "northern"
        )


# fmt: off
CITIES: tuple[City, ...] = tuple(City(*row) for row in [
    ("Paris", "France", "Europe", 11, True, False, "French", "art and fashion"),
    ("London", "the United Kingdom", "Europe", 9, True, False, "English", "its history"),
    ("Berlin", "Germany", "Europe", 4, True, False, "German", "its history"),
    ("Madrid", "Spain", "Europe", 7, True, False, "Spanish", "art and football"),
    ("Barcelona", "Spain", "Europe", 5, False, True, "Catalan", "architecture and beaches"),
    ("Rome", "Italy", "Europe", 4, True, False, "Italian", "ancient ruins"),
    ("Venice", "Italy", "Europe", 0.3, False, True, "Italian", "canals"),
    ("Amsterdam", "the Netherlands", "Europe", 1, True, True, "Dutch", "canals"),
    ("Moscow", "Russia", "Europe", 12, True, False, "Russian", "its history"),
    ("Istanbul", "Turkey", "Europe", 15, False, True, "Turkish", "its history"),
    ("Athens", "Greece", "Europe", 3, True, True, "Greek", "ancient ruins"),
    ("Lisbon", "Portugal", "Europe", 3, True, True, "Portuguese", "its hills and trams"),
    ("Tokyo", "Japan", "Asia", 37, True, True, "Japanese", "technology and food"),
    ("Kyoto", "Japan", "Asia", 1.5, False, False, "Japanese", "temples"),
    ("Beijing", "China", "Asia", 21, True, False, "Chinese", "its history"),
    ("Shanghai", "China", "Asia", 26, False, True, "Chinese", "its skyline"),
    ("Mumbai", "India", "Asia", 20, False, True, "Marathi", "films"),
    ("Delhi", "India", "Asia", 30, True, False, "Hindi", "its history"),
    ("Bangkok", "Thailand", "Asia", 10, True, True, "Thai", "temples and food"),
    ("Singapore", "Singapore", "Asia", 6, True, True, "English", "its skyline"),
    ("Seoul", "South Korea", "Asia", 10, True, False, "Korean", "technology and food"),
    ("Dubai", "the United Arab Emirates", "Asia", 3, False, True, "Arabic", "its skyline"),
    ("Cairo", "Egypt", "Africa", 20, True, False, "Arabic", "ancient ruins"),
    ("Nairobi", "Kenya", "Africa", 4, True, False, "Swahili", "wildlife"),
    ("Lagos", "Nigeria", "Africa", 15, False, True, "English", "music and markets"),
    ("Cape Town", "South Africa", "Africa", 4, False, True, "English", "mountains and beaches"),
    ("Marrakesh", "Morocco", "Africa", 1, False, False, "Arabic", "markets"),
    ("New York", "the United States", "North America", 8, False, True, "English", "its skyline"),
    ("Los Angeles", "the United States", "North America", 4, False, True, "English", "films"),
    ("Chicago", "the United States", "North America", 3, False, False, "English", "architecture"),
    ("Washington", "the United States", "North America", 0.7, True, False, "English", "politics"),
    ("Toronto", "Canada", "North America", 3, False, False, "English", "its tower"),
    ("Mexico City", "Mexico", "North America", 9, True, False, "Spanish", "food and history"),
    ("Havana", "Cuba", "North America", 2, True, True, "Spanish", "music and old cars"),
    ("Rio de Janeiro", "Brazil", "South America", 7, False, True, "Portuguese", "carnival and beaches"),
    ("Buenos Aires", "Argentina", "South America", 3, True, True, "Spanish", "tango"),
    ("Lima", "Peru", "South America", 10, True, True, "Spanish", "food"),
    ("Sydney", "Australia", "Oceania", 5, False, True, "English", "its opera house"),
    ("Melbourne", "Australia", "Oceania", 5, False, True, "English", "coffee and sport"),
    ("Auckland", "New Zealand", "Oceania", 2, False, True, "English", "volcanoes and sailing"),
])
# fmt: on

BY_NAME: dict[str, City] = {c.name.lower(): c for c in CITIES}
CONTINENTS: tuple[str, ...] = tuple(dict.fromkeys(c.continent for c in CITIES))
COUNTRIES: tuple[str, ...] = tuple(dict.fromkeys(c.country for c in CITIES))


def _bare(country: str) -> str:
    return country.removeprefix("the ")


# Country names as matched in questions, longest first (so "South Africa" wins over "Africa").
_COUNTRY_KEYS = sorted(
    [(_bare(c).lower(), c) for c in COUNTRIES]
    + [
        ("usa", "the United States"),
        ("uk", "the United Kingdom"),
        ("england", "the United Kingdom"),
    ],
    key=lambda kv: -len(kv[0]),
)
_CITY_KEYS = sorted(BY_NAME, key=len, reverse=True)


def _mentions(text: str, key: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(key)}(?![a-z])", text) is not None


def sanitize(text: str) -> str:
    """The question as echoed in the observation: printable, one line, at most 100 chars."""
    text = "".join(ch for ch in text if ch in PRINTABLE)
    return " ".join(text.split())[:MAX_QUESTION_CHARS]


def guessed_city(question: str) -> City | None:
    """The city a question names (the longest name found), if any."""
    q = " ".join(question.lower().split())
    return next((BY_NAME[k] for k in _CITY_KEYS if _mentions(q, k)), None)


def _population(city: City) -> str:
    if city.population < 1:
        return "Fewer than a million people live there."
    return f"About {round(city.population)} million people live there."


@lru_cache(maxsize=65536)
def answer(city: City, question: str) -> str:
    """The rule-based oracle's answer to ``question`` about ``city`` (module docstring)."""
    q = " ".join(question.lower().split())
    named = guessed_city(q)
    if named is not None:
        return f"Yes! It is {city.name}." if named == city else f"No, it is not {named.name}."
    country = next((c for k, c in _COUNTRY_KEYS if _mentions(q, k)), None)
    if country is not None:
        return "Yes." if city.country == country else "No."
    continent = next((c for c in CONTINENTS if _mentions(q, c.lower())), None)
    if continent is not None:
        return "Yes." if city.continent == continent else "No."
    rules: list[tuple[tuple[str, ...], str]] = [
        (("continent",), f"It is in {city.continent}."),
        (("country",), f"It is in {city.country}."),
        (
            ("capital",),
            "Yes, it is a capital city." if city.capital else "No, it is not a capital city.",
        ),
        (
            ("coast", "sea", "ocean", "beach", "port"),
            "Yes, it is on the coast." if city.coastal else "No, it is inland.",
        ),
        (("population", "how many", "people live", "big", "large"), _population(city)),
        (("language", "speak"), f"People there mostly speak {city.language}."),
        (("hemisphere", "north", "south"), f"It is in the {city.hemisphere} hemisphere."),
        (("famous", "known for"), f"It is known for {city.known_for}."),
    ]
    for keys, reply in rules:
        if any(_mentions(q, k) if " " not in k else k in q for k in keys):
            return reply
    return CANT


QUESTIONS: tuple[str, ...] = (
    "Which continent is it on?",
    "Which country is it in?",
    "Is it a capital city?",
    "Is it on the coast?",
    "How many people live there?",
    "What language do people speak there?",
    "Which hemisphere is it in?",
    "What is it famous for?",
    *(f"Is it in {c}?" for c in CONTINENTS),
    *(f"Is it in {c}?" for c in COUNTRIES),
)
"""Canonical non-guess questions (the scripted policies' vocabulary)."""


def guess_text(city: City) -> str:
    """The canonical guess, ``"Is it Paris?"``."""
    return f"Is it {city.name}?"


def parse_observation(observation: str) -> list[tuple[str, str]]:
    """``[(question, answer), ...]`` from an observation (the inverse of rendering)."""
    pairs, question = [], None
    for line in observation.splitlines()[1:]:
        if line.startswith("Q: "):
            question = line[3:]
        elif line.startswith("A: ") and question is not None:
            pairs.append((question, line[3:]))
            question = None
    return pairs


TOPICS = (
    "which continent or country it is in, whether it is in a given country or continent "
    '("Is it in Japan?", "Is it in Europe?"), whether it is a capital, whether it is on the '
    "coast, how many people live there, what language people speak there, which hemisphere "
    "it is in, and what it is famous for"
)
"""What the rule-based oracle answers, in words (for the instructions)."""


def instructions(cities: tuple[City, ...], max_turns: int = 20, lm_oracle: bool = False) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    names = ", ".join(c.name for c in cities)
    lines = [
        f"Let's play Guess My City. I am thinking of a city; it is one of: {names}.",
        f"Find it by asking me questions. You have {max_turns} questions and each one costs a "
        "point. I answer in a short sentence without naming the city. You win when your "
        'question names the right city, e.g. "Is it Paris?" (a question that names a city is '
        "a guess of that city).",
    ]
    if lm_oracle:
        lines.append("You may ask any question about the city.")
    else:
        lines.append(
            f"I can answer questions about: {TOPICS}. To anything else I say "
            f'"{CANT}", which still costs a point.'
        )
    lines.append("Reply with exactly one question on a single line.")
    return "\n".join(lines)


class GuessMyCityEnv(TextEnv):
    """Guess a hidden city by free-text questions (rules in the module docstring).

    Args:
        max_turns: turn limit (20).
        cities: restrict the task distribution to these city names (default: all 40).
        oracle: ``"rules"`` (default) or ``"lm"``.
        oracle_model, oracle_tokenizer: the LM for ``oracle="lm"`` (see
            :func:`~agentrl.envs.lm_oracle.make_oracle`).
        render_mode: ``None`` or ``"ansi"``.

    Task spec: ``{"city": "Paris"}``.
    """

    max_turns = 20

    def __init__(
        self,
        max_turns: int = 20,
        cities: list[str] | tuple[str, ...] | None = None,
        oracle: str = "rules",
        oracle_model: Any = None,
        oracle_tokenizer: Any = None,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        self.max_turns = max_turns
        names = [c.name for c in CITIES] if cities is None else list(cities)
        unknown = [n for n in names if n.lower() not in BY_NAME]
        if unknown or not names:
            raise ValueError(f"unknown cities {unknown}; known: {[c.name for c in CITIES]}")
        self.cities = tuple(BY_NAME[n.lower()] for n in names)
        if oracle not in ("rules", "lm"):
            raise ValueError(f"oracle must be 'rules' or 'lm', got {oracle!r}")
        self.lm: LMOracle | None = (
            make_oracle(oracle_model, oracle_tokenizer) if oracle == "lm" else None
        )
        self.city = self.cities[0]
        self._obs = HEADER

    def sample_task(self) -> dict[str, Any]:
        """A uniformly random city, ``{"city": name}``."""
        return {"city": self.cities[int(self.np_random.integers(len(self.cities)))].name}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = str(task.get("city", "")).lower()
        if name not in BY_NAME:
            raise ValueError(
                f"task city {task.get('city')!r} is unknown; known: {[c.name for c in CITIES]}"
            )
        self.city = BY_NAME[name]
        self._obs = HEADER
        return self._obs, {
            "instructions": instructions(self.cities, self.max_turns, self.lm is not None)
        }

    def _reply(self, question: str) -> str:
        if self.lm is None or guessed_city(question) is not None or not question:
            return answer(self.city, question)
        prompt = (
            f"The hidden city is {self.city.name}, {_bare(self.city.country)}. Answer the "
            f"question in one short sentence without naming the city.\nQuestion: {question}\nAnswer:"
        )
        return sanitize(self.lm.generate(prompt)) or "I don't know."

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        question = sanitize(action)
        reply = sanitize(self._reply(question))
        won = guessed_city(question) == self.city
        invalid = reply == CANT
        self._obs += f"Q: {question}\nA: {reply}\n"
        info = {"success": won, "invalid_action": invalid, "answer": reply}
        info["message"] = self._message(reply, won, invalid)
        return self._obs, (0.0 if won else -1.0), won, info

    def _message(self, reply: str, won: bool, invalid: bool) -> str:
        """``info["message"]``: the answer, with a reminder after an unanswerable question
        and a closing sentence at the end of the episode."""
        n = self._turn
        if won:
            return f"{reply} You found it in {n} question{'s' * (n > 1)}."
        parts = [reply]
        if invalid:
            parts.append(
                "Ask about its continent, country, capital, coast, population, language, "
                "hemisphere or what it is famous for, or name a city to guess it."
            )
        if n >= self.max_turns:
            parts.append("That was your last question.")
        return " ".join(parts)
