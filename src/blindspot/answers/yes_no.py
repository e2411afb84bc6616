"""Reading yes/no answers, including the ones that answer by naming something else or another count.

In order, the first rule that reads the scope decides:

1. the format asked for ("{yes}"), a bare "Y" or "N";
2. a leading yes/no word (English, French, Spanish, German, Chinese, Russian); a bare "No," followed by a refusal
   ("No, I can't see the image") is a refusal, not an answer;
3. **a count asked about** ("Are there two people?", "more than three", "fewer than", "at least", "at most"),
   answered by a number ("There are three people", "Three.", "I count four cars"): the number said of the
   question's noun, else the response's only number, compared with the question's. Two numbers given as
   alternatives ("two or three people") are undecided;
4. **alternatives**: the question's object named beside another as alternatives ("It could be a dog or a cat",
   "either a dog or a fox", "maybe a dog, maybe a wolf") is undecided (unparsed, never yes);
5. **something else named, or denied**: where the response denies something by name ("not a cat", "no hat",
   "isn't brown") and affirms something else, the clause that holds the question's object decides: "Definitely not
   a cat, it's a dog" to "Is there a dog?" is yes, to "Is there a cat?" is no; "He is holding a cane, not an
   umbrella" is no; "There is a dog, but it isn't brown" is yes;
6. the common phrases ("I don't think so", "probably not", "of course", "I think so");
7. **the predicate named** ("Is the animal a dog?" / "Is the car blue?"): a reply that says what the subject is
   ("It's a cat", "This is a bathroom", "The light is green", "Blue.") is yes where it says what the question
   says and no where it names another thing (another colour, for a colour); a reply that describes the subject
   itself ("It's a brown animal") does not decide;
8. a statement of existence or identity ("There is a dog", "It is a dog") without negation, where it names the
   question's object, is yes ("There is a cat" does not answer "Is there a dog?");
9. the only polarity word present; else a negated main clause is no ("There isn't a dog"; statements are judged on
   their main clause: "There is a dog, but it isn't brown" is yes);
10. a statement that repeats most of the question's words without negation is yes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from blindspot.answers.counts import names_two_numbers, stated_numbers
from blindspot.answers.reading import AMBIGUOUS, is_refusal
from blindspot.answers.words import PREPOSITIONS, STOP, content_words, singular, tokens, words
from blindspot.contracts.answers import parse_number

_YES = {"yes", "yeah", "yep", "yup", "yea", "true", "correct", "right", "affirmative", "oui", "sí", "si", "ja", "да",
        "是", "是的", "对", "有"}  # fmt: skip
_NO = {"no", "nope", "nah", "false", "incorrect", "wrong", "negative", "non", "nein", "нет", "否", "不", "不是", "没有",
       "不对"}  # fmt: skip
_YES_PHRASES = re.compile(
    r"^\W*(?:i (?:think|believe|guess) so|of course|certainly|definitely|absolutely|indeed|sure(?:ly)?|it does|"
    r"there(?: is|'s| are)\b(?! no)(?! not)|it is\b(?! not))",
    re.I,
)
_EXISTENCE = re.compile(r"^\W*(?:there(?: is|'s| are)|it is|it's)\b", re.I)
_NO_PHRASES = re.compile(
    r"\b(?:i don'?t (?:think|believe) so|i do not (?:think|believe) so|not really|no way|probably not|likely not|"
    r"definitely not|certainly not|absolutely not|of course not|not at all)\b",
    re.I,
)
_NEGATION = re.compile(r"\b(?:no|not|none|nothing|nobody|neither|nor|never|without)\b|n't\b", re.I)
_MAIN_CLAUSE = re.compile(r"[.;!?\n]|,?\s+(?:but|however|although|though|except)\b", re.I)
"""Where a yes/no statement's main clause ends: an aside after it ("..., but it isn't brown") has no say."""
_CLAUSES = re.compile(r"[.;!?\n,]|\s*[—–]\s*|\s-\s|\s+(?:but|however|although|though|whereas|while|yet)\b", re.I)
_YES_NO_LETTER = re.compile(r"^\W*([YyNn])\W*$")
"""A reply that is only "Y" or "N" (with punctuation): the short form of yes / no."""
_DENIED = re.compile(
    r"(?:\b(?:no|not|without|nor|neither|never|rather than|instead of)|n't)\s+(?:(?:a|an|the|any|single|such|one)\s+)?"
    r"([^\W\d_][\w'-]*)(?:\s+([^\W\d_][\w'-]*))?(?:\s+([^\W\d_][\w'-]*))?",
    re.I,
)
"""What a negation denies by name: "not a cat", "no red car", "isn't brown", "rather than a stop sign"."""
_TRANSPARENT = re.compile(
    r"\b(?:a |an |the )?(?:photo|picture|image|photograph|painting|drawing|scene|view|shot)\s+(?:of|showing)\s+",
    re.I,
)
_COMPARATORS = {
    "more than": ">", "over": ">", "greater than": ">", "above": ">", "at least": ">=", "fewer than": "<",
    "less than": "<", "under": "<", "below": "<", "at most": "<=", "no more than": "<=", "exactly": "==",
}  # fmt: skip
_COMPARATOR = re.compile(r"\b(" + "|".join(sorted(_COMPARATORS, key=len, reverse=True)) + r")\s+$", re.I)
_COLOURS = frozenset(
    "red orange yellow green blue purple violet pink brown black white gray grey silver gold beige tan cyan "
    "magenta maroon navy teal turquoise".split()
)
_COPULA = re.compile(
    r"^\W*(?:it|this|that|these|those|they|he|she|(?:the|this|that|these|those)\s+[\w'-]+(?:\s+[\w'-]+)?)"
    r"\s*(?:'s|'re|\s+is|\s+are|\s+looks like|\s+appears to be|\s+seems to be|\s+is actually)\s+(.+)$",
    re.I,
)
_OPPOSITES = {
    frozenset(pair.split("/"))
    for pair in "open/closed open/shut on/off empty/full wet/dry clean/dirty day/night awake/asleep hot/cold "
    "inside/outside indoor/outdoor indoors/outdoors sunny/cloudy sunny/rainy light/dark new/old young/old "
    "upright/upside-down same/different real/fake male/female".split()
}
"""Adjectives that answer each other: "The door is closed" to "Is the door open?" is no."""
_NOT_A_PREDICATE = frozenset(
    "definitely clearly actually probably likely certainly obviously just only really very quite most maybe "
    "perhaps possibly also".split()
)


# ------------------------------------------------------------------------------------------------ the question


@dataclass(frozen=True)
class Target:
    """What a yes/no question asks about: its object's head noun and the words before it ("a stop sign")."""

    head: str
    modifiers: frozenset[str]

    @property
    def words(self) -> frozenset[str]:
        return self.modifiers | {self.head}


def question_target(question: str) -> Target | None:
    """The question's object, before any place phrase: "Is there a clock on the wall?" -> clock; "Is the man
    holding an umbrella?" -> umbrella; "Is there a stop sign?" -> stop sign."""
    found = tokens(_TRANSPARENT.sub(" ", question))
    for index, word in enumerate(found[1:], start=1):
        if word in PREPOSITIONS:
            found = found[:index]
            break
    articles = [i for i, w in enumerate(found) if w in ("a", "an", "the", "any", "some") and i >= 1]
    phrase = found[articles[-1] + 1 :] if articles else found[1:]
    content = [singular(w) for w in phrase if w not in STOP and not w.isdigit() and parse_number(w) is None]
    if not content:
        return None
    return Target(content[-1], frozenset(content[:-1]))


_PLACE_BEFORE = re.compile(r"\b(?:in|on|at|since|from|of|by|during|until|to|before|after|between|year)\s+$", re.I)
"""A number after these is a date or a place ("in 2020"), not a count."""


def _asked_count(question: str) -> tuple[str, float] | None:
    """(comparison, number) of a question that asks about a count: "Are there two people?" -> ("==", 2)."""
    for match, value in stated_numbers(question):
        comparator = _COMPARATOR.search(question[: match.start()])
        if comparator is None and _PLACE_BEFORE.search(question[: match.start()]):
            continue
        return (_COMPARATORS[comparator.group(1).lower()] if comparator else "=="), value
    return None


def _predicate(question: str) -> tuple[list[str], set[str], bool] | None:
    """(the predicate's words, the subject's words, whether the predicate is a noun) of "Is the animal a dog?" /
    "Is the car blue?" / "Is this a kitchen?"; None for other questions (existence, place, action)."""
    found = tokens(_TRANSPARENT.sub(" ", question))
    if len(found) < 3 or found[0] not in ("is", "are") or found[1] not in ("this", "that", "it", "these", "those",
                                                                          "the"):  # fmt: skip
        return None
    if any(w in PREPOSITIONS or (w.endswith("ing") and len(w) > 4) for w in found[2:]):
        return None
    articles = [i for i, w in enumerate(found) if w in ("a", "an", "the") and i >= 2]
    if articles:
        predicate, subject = found[articles[-1] + 1 :], found[1 : articles[-1]]
    elif found[1] in ("this", "that", "it", "these", "those"):
        predicate, subject = found[2:], []
    else:
        predicate, subject = found[-1:], found[2:-1]
    return [singular(w) for w in predicate], {singular(w) for w in subject if w not in STOP}, bool(articles)


# ------------------------------------------------------------------------------------------------ rules


def _count_reply(text: str, question: str, target: Target | None) -> str | None:
    asked = _asked_count(question)
    if asked is None:
        return None
    comparison, wanted = asked
    stated = list(stated_numbers(text))
    if not stated or _NEGATION.search(text):
        return None
    if any(names_two_numbers(text, m, v) for m, v in stated):
        return AMBIGUOUS  # "two or three people"
    said_of_target = [(m, v) for m, v in stated if target and target.head in words(text[m.end() : m.end() + 40])[:2]]
    if said_of_target:
        value = said_of_target[0][1]
    elif len({v for _, v in stated}) == 1:
        value = stated[0][1]
    else:
        return None
    holds = {">": value > wanted, ">=": value >= wanted, "<": value < wanted, "<=": value <= wanted,
             "==": value == wanted}[comparison]  # fmt: skip
    return "yes" if holds else "no"


_OR = re.compile(
    r"\b(?:either\s+)?(?:(?:a|an|the)\s+)?([^\W\d_][\w'-]*)\s*,?\s+or\s+(?:(?:a|an|the|maybe|perhaps|possibly)\s+)*"
    r"([^\W\d_][\w'-]*)",
    re.I,
)
_MAYBE_MAYBE = re.compile(
    r"\b(?:maybe|perhaps|possibly)\s+(?:(?:a|an|the)\s+)?([^\W\d_][\w'-]*)\s*[,;]?\s+(?:or\s+)?"
    r"(?:maybe|perhaps|possibly)\s+(?:(?:a|an|the)\s+)?([^\W\d_][\w'-]*)",
    re.I,
)


def _alternatives(text: str, target: Target | None) -> bool:
    """The question's object named beside another as alternatives ("a dog or a cat")."""
    if target is None:
        return False
    head = target.head
    for pattern in (_OR, _MAYBE_MAYBE):
        for m in pattern.finditer(text):
            pair = [singular(w.casefold()) for w in m.groups()]
            if head in pair and any(w != head and w not in STOP and w not in ("not", "no") for w in pair):
                return True
    return False


def _denied_words(clause: str) -> set[str]:
    found: set[str] = set()
    for m in _DENIED.finditer(clause):
        found |= {singular(w.casefold()) for w in m.groups() if w and w.casefold() not in STOP}
    return found


def _contrast(text: str, target: Target | None) -> str | None:
    """Something denied by name and something affirmed: the clause that holds the question's object decides. The
    object is denied where its noun is, or where only its asked quality is ("it isn't red" to "a red car")."""
    if target is None:
        return None
    target_denied = target_affirmed = other_denied = False
    for clause in _CLAUSES.split(text):
        if not clause or not clause.strip():
            continue
        denied = _denied_words(clause)
        if target.head in denied or (denied and denied <= target.modifiers):
            target_denied = True
        elif denied:
            other_denied = True
        elif not _NEGATION.search(clause) and target.words <= set(words(clause)):
            target_affirmed = True
    if target_denied:
        return AMBIGUOUS if target_affirmed else "no"
    return "yes" if other_denied and target_affirmed else None


def _predicate_reply(main: str, question: str) -> str | None:
    """What the subject is said to be, against what the question says it is (rule 7)."""
    asked = _predicate(question)
    if asked is None or _NEGATION.search(main):
        return None
    predicate, subject, noun = asked
    copula = _COPULA.match(main)
    said = copula.group(1) if copula else main if len(tokens(main)) <= 3 else None
    if said is None or not predicate:
        return None
    stated = [singular(w) for w in tokens(said) if w not in STOP and w not in _NOT_A_PREDICATE]
    if not stated or len(stated) > 4:
        return None
    if set(predicate) <= set(stated):
        return "yes"
    if not noun:  # an adjective: only a colour for a colour, or its opposite, answers it
        if predicate[-1] in _COLOURS:
            return "no" if any(w in _COLOURS for w in stated) else None
        return "no" if any(frozenset((predicate[-1], w)) in _OPPOSITES for w in stated) else None
    head, modifiers = stated[-1], set(stated[:-1])
    if head == predicate[-1]:  # "a yield sign" for "a stop sign": another kind of the same thing
        asked_modifiers = set(predicate[:-1])
        return "no" if asked_modifiers and modifiers and not modifiers & (asked_modifiers | _COLOURS) else None
    if head in subject:
        return None  # "It's a brown animal": the subject described, not named
    return "no" if len(stated) <= 3 else None


def _leading_word(stripped: str) -> str | None:
    first_clause = re.split(r"[,.;:!?\n，。]", stripped, maxsplit=1)
    head = tokens(first_clause[0])
    if head and len(head) <= 2 and head[0] in _YES | _NO:
        rest = first_clause[1] if len(first_clause) > 1 else ""
        if head[0] in _NO and rest.strip() and is_refusal(rest) and not re.search(r"\bthere (?:is|are) no\b", rest):
            return AMBIGUOUS  # "No, I can't see the image": a refusal, not an answer
        return "yes" if head[0] in _YES else "no"
    for chinese, answer in (("不是", "no"), ("没有", "no"), ("是", "yes"), ("有", "yes")):
        if stripped.startswith(chinese):
            return answer
    return None


def read_yes_no(text: str, question: str = "") -> str | None:
    """``yes``, ``no``, None or AMBIGUOUS for one scope (module docstring)."""
    stripped = text.strip().lstrip(":-—,. ")
    if not stripped:
        return None
    braced = re.search(r"\{\s*(yes|no)\s*\}", stripped, re.I)
    if braced:
        return braced.group(1).lower()
    letter = _YES_NO_LETTER.match(stripped)
    if letter:
        return "yes" if letter.group(1).lower() == "y" else "no"
    leading = _leading_word(stripped)
    if leading is not None:
        return None if leading == AMBIGUOUS else leading
    target = question_target(question) if " or " not in question.casefold() else None
    main = _MAIN_CLAUSE.split(stripped, maxsplit=1)[0]
    for rule in (
        lambda: _count_reply(stripped, question, target),
        lambda: AMBIGUOUS if _alternatives(stripped, target) else None,
        lambda: _contrast(stripped, target),
        lambda: "no" if _NO_PHRASES.search(main) else None,
        lambda: _predicate_reply(main, question),
    ):
        answer = rule()
        if answer is not None:
            return answer
    return _statement(stripped, main, question, target)


def _statement(stripped: str, main: str, question: str, target: Target | None) -> str | None:
    """Rules 8-10: a statement of existence, the only polarity word, a negated main clause, repeated words."""
    said = set(words(main))
    names_another = _EXISTENCE.match(main) and target is not None and not target.words <= said
    if _YES_PHRASES.match(main) and not _NEGATION.search(main) and not names_another:
        return "yes"  # "There is a dog, but it isn't brown": the statement, not the aside
    found = tokens(stripped)
    has_yes = any(w in {"yes", "yeah", "yep"} for w in found)
    has_no = any(w in {"no", "nope"} for w in found)
    if has_yes and has_no:
        return AMBIGUOUS
    if has_yes:
        return "yes"
    if _NEGATION.search(main):
        return "no"
    content = content_words(question)
    if content and len(content & said) / len(content) >= 0.6:
        return "yes"
    return None
