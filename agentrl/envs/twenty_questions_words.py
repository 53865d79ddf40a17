"""The full Twenty Questions table: 157 words in 17 categories.

The reference env (ArCHer, LMRL-Gym) hides one of 157 words from 17 categories and lets an
LLM answer. Here the answers come from this exact table instead, so the game stays
deterministic: :data:`EXTRA_CATEGORIES` and :data:`EXTRA_ATTRIBUTES` extend the classic
questions of :mod:`agentrl.envs.twenty_questions`, and :data:`ROWS` gives, for every word,
the categories and the attributes that are true (every other attribute is false). The 30
classic words keep their classic answers; their rows here only add the new facts.

Rows are ``"word: category, category; code code ..."`` with the two-letter codes of
:data:`CODES`. ``tests/test_envs.py`` checks that every word has its own answer signature.
"""

from __future__ import annotations

EXTRA_CATEGORIES: tuple[str, ...] = (
    "vegetable", "kitchen item", "toy", "plant", "building", "jewelry",
)  # fmt: skip

EXTRA_ATTRIBUTES: dict[str, str] = {
    "made of plastic": "is",
    "made of fabric": "is",
    "made of glass": "is",
    "round": "is",
    "red": "is",
    "yellow": "is",
    "green": "is",
    "sweet": "is",
    "used outdoors": "is",
    "dangerous": "is",
    "worn on the body": "is",
    "usually cooked": "is",
    "expensive": "is",
    "fragile": "is",
    "liquid": "is",
    "played by blowing": "is",
    "kept as a pet": "is",
    "have fur": "does",
    "live in water": "does",
    "grow on trees": "does",
    "have a screen": "does",
    "have strings": "does",
    "have an engine": "does",
    "have buttons": "does",
    "have drawers": "does",
    "carry passengers": "does",
    "swim": "can",
    "be held in one hand": "can",
    "be ridden": "can",
    "be sat on": "can",
    "fit in a pocket": "can",
    "be lived in": "can",
}
"""New attribute -> the verb that asks about it (``"Can it swim?"``)."""

CODES: dict[str, str] = {
    # classic attributes
    "al": "alive", "ed": "edible", "me": "made of metal", "wo": "made of wood",
    "bb": "bigger than a breadbox", "in": "used indoors", "wr": "used for writing",
    "el": "electronic", "so": "soft", "sh": "sharp", "wh": "have wheels", "le": "have legs",
    "sn": "make sound", "fl": "fly",
    # new attributes
    "pl": "made of plastic", "fa": "made of fabric", "gl": "made of glass", "ro": "round",
    "re": "red", "ye": "yellow", "gr": "green", "sw": "sweet", "ou": "used outdoors",
    "da": "dangerous", "wn": "worn on the body", "ck": "usually cooked", "ex": "expensive",
    "fr": "fragile", "lq": "liquid", "bl": "played by blowing", "pe": "kept as a pet",
    "fu": "have fur", "wa": "live in water", "tr": "grow on trees", "sc": "have a screen",
    "st": "have strings", "en": "have an engine", "bu": "have buttons", "dr": "have drawers",
    "ca": "carry passengers", "sm": "swim", "hh": "be held in one hand", "ri": "be ridden",
    "si": "be sat on", "po": "fit in a pocket", "li": "be lived in",
}  # fmt: skip

# fmt: off
ROWS: tuple[str, ...] = (
    # animals (16)
    "dog: animal; al bb le sn fu sm pe",
    "bird: animal; al le sn fl pe",
    "fish: animal; al ed wa sm pe",
    "horse: animal; al bb le sn fu ri ou",
    "cow: animal; al bb le sn fu ou",
    "lion: animal; al bb le sn fu da ye",
    "tiger: animal; al bb le sn fu da sm",
    "elephant: animal; al bb le sn ri sm",
    "snake: animal; al da sm",
    "frog: animal; al le sn sm wa gr",
    "rabbit: animal; al le fu so pe",
    "bee: animal; al fl sn da ye",
    "shark: animal; al bb wa sm da",
    "whale: animal; al bb wa sm sn",
    "duck: animal; al le sn fl sm",
    "monkey: animal; al le sn fu",
    # fruits (10)
    "banana: food, fruit; ed so ye sw tr hh",
    "apple: food, fruit; ed re ro sw tr hh",
    "orange: food, fruit; ed ro sw tr hh",
    "grape: food, fruit; ed ro sw gr hh so",
    "strawberry: food, fruit; ed re sw so hh",
    "watermelon: food, fruit; ed gr ro sw bb",
    "lemon: food, fruit; ed ye tr hh",
    "pineapple: food, fruit; ed sw ye",
    "cherry: food, fruit; ed re ro sw tr hh so po",
    "peach: food, fruit; ed sw tr hh so ro fu",
    # vegetables (8)
    "carrot: food, vegetable; ed hh",
    "potato: food, vegetable; ed ck hh",
    "tomato: food, vegetable; ed re ro so hh",
    "onion: food, vegetable; ed ro hh",
    "broccoli: food, vegetable; ed gr ck hh",
    "corn: food, vegetable; ed ye ck",
    "lettuce: food, vegetable; ed gr so",
    "cucumber: food, vegetable; ed gr hh",
    # other food (9)
    "bread: food; ed so ck",
    "cheese: food; ed ye",
    "pizza: food; ed ck ro",
    "egg: food; ed ck hh fr",
    "cake: food; ed sw so ck",
    "rice: food; ed ck",
    "soup: food; ed ck lq",
    "chocolate: food; ed sw hh",
    "sandwich: food; ed hh so",
    # vehicles (11)
    "truck: vehicle; me bb wh sn en ou",
    "bicycle: vehicle; me bb wh ri ou",
    "airplane: vehicle; me bb wh sn fl en ca ex",
    "boat: vehicle; bb sn en ou ca",
    "car: vehicle; me bb wh sn en ou ca",
    "bus: vehicle; me bb wh sn en ou ca ye",
    "train: vehicle; me bb wh sn en ca",
    "motorcycle: vehicle; me bb wh sn en ri ou",
    "helicopter: vehicle; me bb sn fl en ca",
    "rocket: vehicle; me bb sn fl en da ex",
    "tractor: vehicle; me bb wh sn en ou gr",
    # clothing (9)
    "pants: clothing; so wn fa",
    "shoe: clothing; wn ou",
    "shirt: clothing; so wn fa bu",
    "hat: clothing; wn fa ou",
    "sock: clothing; so wn fa hh",
    "jacket: clothing; so wn fa bu ou",
    "dress: clothing; so wn fa ex",
    "glove: clothing; so wn fa hh ou",
    "scarf: clothing; so wn fa ou",
    # furniture (10)
    "chair: furniture; wo bb in le si",
    "bed: furniture; bb in so le si",
    "bookshelf: furniture; wo bb in",
    "table: furniture; wo bb in le",
    "sofa: furniture; bb in so le si fa",
    "desk: furniture; wo bb in le dr",
    "lamp: furniture; in el",
    "wardrobe: furniture; wo bb in dr",
    "stool: furniture; wo in le si",
    "mirror: furniture; in gl fr",
    # electronic devices (9)
    "computer: electronic device; el in sc bu ex",
    "phone: electronic device; el sn sc hh po",
    "television: electronic device; el in bb sn sc",
    "camera: electronic device; el bu hh ex",
    "radio: electronic device; el sn bu",
    "headphones: electronic device; el sn wn",
    "tablet: electronic device; el sc hh",
    "printer: electronic device; el in bu",
    "calculator: electronic device; el bu hh pl",
    # musical instruments (9)
    "piano: musical instrument; wo bb in le sn st ex",
    "guitar: musical instrument; wo sn st",
    "drum: musical instrument; sn ro",
    "violin: musical instrument; wo sn st hh",
    "flute: musical instrument; me sn bl hh",
    "trumpet: musical instrument; me sn bl ye",
    "harp: musical instrument; wo sn st bb",
    "saxophone: musical instrument; me sn bl ye bu",
    "harmonica: musical instrument; me sn bl hh po",
    # tools (9; scissors are also an office supply, the knife also a kitchen item)
    "scissors: tool, office supply; me sh hh",
    "hammer: tool; me hh da",
    "knife: tool, kitchen item; me sh hh da",
    "screwdriver: tool; me hh pl",
    "saw: tool; me sh da",
    "shovel: tool; me wo ou",
    "wrench: tool; me hh",
    "drill: tool; me el sn da pl",
    "axe: tool; me wo sh da ou",
    # sports equipment (9)
    "football: sports equipment; ou",
    "skateboard: sports equipment; wo wh ri ou",
    "basketball: sports equipment; ro",
    "baseball bat: sports equipment; wo hh",
    "golf club: sports equipment; me hh ou ex",
    "tennis racket: sports equipment; st hh",
    "ski: sports equipment; ou wo",
    "helmet: sports equipment; wn pl",
    "surfboard: sports equipment; bb ou ri pl",
    # office supplies (7, and scissors)
    "pen: office supply; wr hh po pl",
    "pencil: office supply; wr wo hh po",
    "stapler: office supply; me in hh",
    "paper clip: office supply; me hh po",
    "notebook: office supply; in hh",
    "eraser: office supply; hh po so",
    "ruler: office supply; hh pl",
    # kitchen items (9, and the knife)
    "spoon: kitchen item; me hh in",
    "fork: kitchen item; me hh in sh",
    "plate: kitchen item; in ro fr",
    "cup: kitchen item; in hh",
    "pot: kitchen item; me in",
    "kettle: kitchen item; me in sn",
    "refrigerator: kitchen item; el in bb ex",
    "microwave: kitchen item; el in bu bb",
    "toaster: kitchen item; el in me",
    # toys (9)
    "doll: toy; pl in hh",
    "kite: toy; fl ou fa",
    "teddy bear: toy; so fa fu in",
    "yo-yo: toy; ro hh pl",
    "puzzle: toy; in",
    "balloon: toy; ro fl fr",
    "marble: toy; ro gl po hh",
    "robot: toy; me el",
    "rocking horse: toy; wo ri in",
    # plants (9)
    "tree: plant; al wo bb ou gr",
    "rose: plant; al re sh",
    "sunflower: plant; al ye ou",
    "cactus: plant; al gr sh ou",
    "grass: plant; al gr ou so",
    "tulip: plant; al re",
    "fern: plant; al gr",
    "bamboo: plant; al gr wo bb ou ed",
    "ivy: plant; al gr ou",
    # buildings (8)
    "house: building; bb li wo",
    "castle: building; bb li ex",
    "school: building; bb",
    "hospital: building; bb ex",
    "church: building; bb sn",
    "lighthouse: building; bb ro",
    "barn: building; bb wo re",
    "skyscraper: building; bb gl ex me",
    # jewelry (6)
    "ring: jewelry; me wn ro po ex",
    "necklace: jewelry; me wn ex",
    "bracelet: jewelry; me wn ro",
    "earring: jewelry; me wn po",
    "watch: jewelry; me wn el",
    "crown: jewelry; me wn ex ye",
)
# fmt: on


def parse_rows(rows: tuple[str, ...] = ROWS) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """``word -> (categories, true attributes)`` from :data:`ROWS` (codes expanded)."""
    table = {}
    for row in rows:
        word, _, rest = row.partition(":")
        cats, _, codes = rest.partition(";")
        categories = frozenset(c.strip() for c in cats.split(",") if c.strip())
        attributes = frozenset(CODES[code] for code in codes.split())
        if word.strip() in table:
            raise ValueError(f"duplicate word {word.strip()!r} in the Twenty Questions table")
        table[word.strip()] = (categories, attributes)
    return table
