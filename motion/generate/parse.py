"""Text -> a list of motion requests ("walk forward 3 steps, turn left, then wave").

The grammar is deliberately small and strict: clauses are separated by punctuation or by
"then" / "and" / "next" / "finally"; each clause needs one motion verb and may carry modifiers
(direction, hand, speed adverb, and quantities such as "3 steps", "90 degrees", "twice",
"for 2 seconds", "2 meters"). A word it does not know is an error that names the word and lists
what it knows, rather than a guess.
"""

from __future__ import annotations

import dataclasses
import re

from motion.errors import UserError

# (primitive, style, words); VERBS maps each word to (primitive, style)
VERB_GROUPS = [
    ("idle", "", "idle stand stands standing stay stays wait waits waiting pause pauses rest rests breathe"),
    ("walk", "", "walk walks walking walked go goes going stroll strolls strolling"),
    ("walk", "march", "march marches marching"),
    ("run", "", "run runs running ran"),
    ("run", "jog", "jog jogs jogging"),
    ("run", "sprint", "sprint sprints sprinting"),
    ("jump", "", "jump jumps jumping jumped hop hops hopping leap leaps leaping"),
    ("turn", "", "turn turns turning turned rotate rotates rotating"),
    ("turn", "spin", "spin spins spinning"),
    ("wave", "", "wave waves waving waved"),
    ("squat", "", "squat squats squatting crouch crouches crouching"),
    ("dance", "", "dance dances dancing danced groove grooves"),
    ("boxing", "", "box boxes boxing boxed punch punches punching spar spars sparring shadowbox fight fights"),
]
VERBS = {w: (kind, style) for kind, style, words in VERB_GROUPS for w in words.split()}
SHOWN = ("idle (stand, wait), walk (stroll, march), run (jog, sprint), jump (hop, leap), turn (rotate, spin), "
         "wave, squat (crouch), dance, boxing (box, punch, fight)")
PRIMITIVES = ("idle", "walk", "run", "jump", "turn", "wave", "squat", "dance", "boxing")

DIRECTIONS = {"forward": "forward", "forwards": "forward", "ahead": "forward", "straight": "forward",
              "backward": "backward", "backwards": "backward", "back": "backward",
              "left": "left", "right": "right", "around": "around"}
SPEEDS = {"slowly": 0.8, "slow": 0.8, "gently": 0.8, "quickly": 1.2, "fast": 1.2, "briskly": 1.15}
UNITS = {"step": "steps", "steps": "steps", "stride": "steps", "strides": "steps",
         "second": "seconds", "seconds": "seconds", "sec": "seconds", "secs": "seconds", "s": "seconds",
         "degree": "degrees", "degrees": "degrees", "deg": "degrees", "°": "degrees",
         "time": "times", "times": "times", "rep": "times", "reps": "times",
         "meter": "meters", "meters": "meters", "metre": "meters", "metres": "meters", "m": "meters"}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
                "forty": 40, "sixty": 60, "ninety": 90, "a": 1, "an": 1}
COUNT_WORDS = {"once": 1, "twice": 2, "thrice": 3}
SEPARATORS = {"then", "and", "next", "finally", "afterwards", "later"}
FILLER = set("a an the his her their my its with hand arm arms hands fist fists to of for by in on at "
             "place spot up down person man woman someone somebody he she they it character guy girl "
             "boy again after that direction still hello goodbye bye hi".split())
# which quantities each primitive accepts
ACCEPTS = {"idle": {"seconds"}, "walk": {"steps", "seconds", "meters"}, "run": {"steps", "seconds", "meters"},
           "jump": {"times", "seconds"}, "turn": {"degrees", "seconds"}, "wave": {"times", "seconds"},
           "squat": {"times", "seconds"}, "dance": {"seconds"}, "boxing": {"times", "seconds"}}
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|°|[,;.!?]")


@dataclasses.dataclass
class Request:
    """One clause of the text: a primitive and what the user said about it."""

    kind: str
    text: str
    style: str = ""
    direction: str = ""
    speed: float = 1.0
    quantities: dict = dataclasses.field(default_factory=dict)  # unit -> number the user gave


def known_words() -> str:
    """The vocabulary, for error messages."""
    return (f"known motions: {SHOWN}; modifiers: forward/backward, left/right, around, slowly/quickly, "
            f"N steps|seconds|degrees|times|meters, once/twice, 'for N seconds'")


def parse(text: str) -> list[Request]:
    """Split ``text`` into clauses and map each to a Request; UserError('text', ...) on failure.
    A clause of filler words only ("jump up and down") belongs to the clause before it."""
    tokens = _TOKEN.findall(text.lower().replace("-", " "))
    clauses, current = [], []
    for tok in tokens:
        if tok in SEPARATORS or tok in ",;.!?":
            if current:
                clauses.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        clauses.append(current)
    merged = []
    for words in clauses:
        if merged and all(w in FILLER for w in words):
            merged[-1] = merged[-1] + words
        else:
            merged.append(words)
    if not merged:
        raise UserError("text", f"no motion described; {known_words()}")
    return [_clause(c) for c in merged]


def _clause(words: list[str]) -> Request:
    text = " ".join(words)
    verbs = [w for w in words if w in VERBS]
    if not verbs:
        unknown = next((w for w in words if not _is_modifier(w)), words[0])
        raise UserError("text", f"cannot map {unknown!r} (in {text!r}) to a motion; {known_words()}")
    kind, style = VERBS[verbs[0]]
    req = Request(kind=kind, text=text, style=style)
    pending = None  # a number waiting for its unit
    for i, w in enumerate(words):
        if w in VERBS:
            if VERBS[w][0] != kind:
                raise UserError("text", f"{text!r} names two motions ({verbs[0]!r} and {w!r}); "
                                        f"separate them with ',' or 'then'")
            continue
        number = _number(w)
        if number is not None and (w not in ("a", "an") or _next_is_unit(words, i)):
            pending = number
        elif w in UNITS:
            unit = UNITS[w]
            _add_quantity(req, unit, 1.0 if pending is None else pending, w)
            pending = None
        elif w in COUNT_WORDS:
            _add_quantity(req, "times", COUNT_WORDS[w], w)
        elif w in DIRECTIONS:
            req.direction = DIRECTIONS[w] if not req.direction or w in ("left", "right") else req.direction
        elif w in SPEEDS:
            req.speed = SPEEDS[w]
        elif w not in FILLER:
            raise UserError("text", f"cannot understand {w!r} in {text!r}; {known_words()}")
    if pending is not None:
        default = {"turn": "degrees", "walk": "steps", "run": "steps"}.get(kind, "times")
        _add_quantity(req, default, pending, str(pending))
    _check_direction(req)
    return req


def _number(w: str) -> float | None:
    if w[0].isdigit():
        return float(w)
    return NUMBER_WORDS.get(w)


def _next_is_unit(words: list[str], i: int) -> bool:
    return i + 1 < len(words) and words[i + 1] in UNITS


def _is_modifier(w: str) -> bool:
    return (w in DIRECTIONS or w in SPEEDS or w in UNITS or w in FILLER or w in COUNT_WORDS
            or _number(w) is not None)


def _add_quantity(req: Request, unit: str, value: float, word: str) -> None:
    if unit not in ACCEPTS[req.kind]:
        raise UserError("text", f"{word!r} does not apply to {req.kind} (in {req.text!r}); "
                                f"{req.kind} takes {', '.join(sorted(ACCEPTS[req.kind]))}")
    if value <= 0 and unit != "degrees":
        raise UserError("text", f"{unit} must be positive in {req.text!r}")
    req.quantities[unit] = float(value)


def _check_direction(req: Request) -> None:
    allowed = {"walk": {"forward", "backward"}, "run": {"forward"}, "jump": {"forward"},
               "turn": {"left", "right", "around"}, "wave": {"left", "right"}, "boxing": {"left", "right"},
               "idle": set(), "squat": set(), "dance": set()}[req.kind]
    if req.direction and req.direction not in allowed:
        raise UserError("text", f"{req.kind} cannot go {req.direction!r} (in {req.text!r}); "
                                f"it takes: {', '.join(sorted(allowed)) or 'no direction'}")
