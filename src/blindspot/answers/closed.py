"""Readers of closed-form answers: multiple choice, yes/no and counts.

Each reader looks at one *scope* (see :mod:`blindspot.answers.reading`) and returns the answer it states, or
says that the scope names several different answers (``AMBIGUOUS``), or that it names none (``None``).

Multiple choice, in order:

- a scope that is only a letter, in any case: "b", "(C)", "**B**", "B.";
- a response that *opens* with a label ("B. a dog", "b) ...", "(C)", "A, because...", "C because A is wrong",
  "D - the bus", "B\\n...") states that label, whatever options it mentions later, unless it is a copied list of
  options (two or more lines that open with different labels) or a second label follows at once ("A, B", "A or C",
  "B/C"): those name no answer;
- a label anywhere else: "(B)", "option B", "choice b", a capital letter standing alone ("I'd say C because"),
  or a lowercase letter right after a lead-in ("it's b", "go with c"). "A" and "I" followed by a lowercase word
  are an article and a pronoun, never labels. Labels after "not", "rather than" and "instead of" are set aside.
  One distinct label is the answer; several are ambiguous;
- else the text of exactly one option, as whole words (the longest where one option's text contains another's;
  digits and number words are the same: option "3" is answered by "three");
- **letter against text.** When a response opens with a label and then the text of a *different* option
  ("B. red" where B is "blue" and A is "red"), the label wins: the prompt asks for the label, and option texts are
  often paraphrased. The conflict is not silent: ``hedged`` is set.

Yes/no: a bare "Y" or "N"; a leading yes/no word (English, French, Spanish, German, Chinese, Russian), the common
phrases ("I think so", "I don't think so", "probably not", "of course"), the only polarity word present, else a
negated statement ("There is no dog.", "There isn't a dog.") is no; statements are judged on their main clause
("There is a dog, but it isn't brown" is yes), and a statement that repeats the question's words without negation
("There is a dog in the image." to "Is there a dog in the image?") is yes. A bare "No," followed by a refusal ("No,
I can't see the image") is a refusal, not an answer.

Counts: the number in the format the prompt asked for (``{N}``) wins; else the first number in the scope, in
digits or words up to one hundred ("twenty-one"); else "none", "no <noun>", "zero" or "nothing" is 0.
"""

from __future__ import annotations

import re
from typing import Final

from blindspot.answers.reading import is_refusal
from blindspot.contracts.answers import LETTERS, format_number, number_word_value, parse_number

AMBIGUOUS: Final = "\0ambiguous"
"""A scope that names two or more different answers."""

# ------------------------------------------------------------------------------------------------ multiple choice

_ONLY_LETTER = re.compile(r"^\W*\(?([A-Za-z])\)?\W*$")
_OPENING_LABEL = re.compile(
    r"^[\s>*\-]*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Za-z])(?=[.:)\],/]|\s*$|\s*[-–—]\s|\s*\n|"
    r"\s+(?:because|since|as|or|and|&)\b))"
)
_SECOND_LABEL = re.compile(
    r"^\s*(?:[,/&]|\b(?i:or|and)\b)\s*(?:\b(?i:or|and)\b)?\s*[(\[]?([A-Za-z])(?![A-Za-z'])(?!\s+[a-z])"
)
"""A label right after an opening one: "A, B", "A or C", "A/B", "(A) and (D)" name two answers ("D, a bird" does
not: an article)."""
_LINE_LABEL = re.compile(r"^[\s>*\-]*\(?([A-Za-z])[.:)\]]\s*\S", re.M)
_BRACKETED = re.compile(r"[(\[]([A-Za-z])[)\]]")
_KEYWORD = re.compile(r"\b(?:option|choice|letter|answer)\s*[:#]?\s*\(?([A-Za-z])\)?(?![A-Za-z'])", re.I)
_CAPITAL = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")
_LEAD_IN_LOWER = re.compile(
    r"(?:\b(?i:it'?s|it is|is|be|with|choose|pick|select|say|definitely|probably|likely|maybe|go for)|[:=])"
    r"\s+\(?([a-z])\)?(?=\s*$|[.,;!)\n])"
)
_JOINERS = re.compile(
    r"\s+(?:or|and|nor|is|was|seems|looks|appears|because|since|as|would|could|might|must|should|fits|matches|"
    r"then|best|instead)\b"
)
_SET_ASIDE = re.compile(r"(?:\bnot|n't|\brather than|\binstead of|\bexcept|\bthan)\s+(?:option\s+)?\(?$", re.I)


def _words(text: str) -> list[str]:
    """Lower-case words, numbers in one spelling (digits), plurals folded: "Twenty-one cats" -> ["21", "cat"]."""
    tokens = re.findall(r"[a-z0-9]+(?:[.,][0-9]+)?", text.casefold().replace("-", " "))
    out: list[str] = []
    i = 0
    while i < len(tokens):
        pair = " ".join(tokens[i : i + 2])
        if i + 1 < len(tokens) and number_word_value(pair) is not None:
            out.append(str(number_word_value(pair)))
            i += 2
            continue
        value = number_word_value(tokens[i])
        if value is None and re.fullmatch(r"[0-9]+(?:[.,][0-9]+)?", tokens[i]):
            number = parse_number(tokens[i])
            value = int(number) if number is not None and number.is_integer() else None
        out.append(str(value) if value is not None else _singular(tokens[i]))
        i += 1
    return out


def _singular(word: str) -> str:
    """A light plural fold, applied to the response and the options alike ("grapes" matches option "grape")."""
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


_NEGATORS = {"not", "t", "no", "never", "neither", "nor", "than"}
"""Words that set an option's text aside when they precede it ("blue, not red"; "t" is the end of "isn't")."""


def option_text_answer(text: str, options: list[str]) -> str | None:
    """The label of the one option whose whole text occurs in ``text`` as words (not right after "not");
    AMBIGUOUS for several."""
    words = _words(text)
    found = []
    for index, option in enumerate(options):
        needle = _words(option)
        if not needle:
            continue
        for start in range(len(words) - len(needle) + 1):
            if words[start : start + len(needle)] == needle and (start == 0 or words[start - 1] not in _NEGATORS):
                found.append((index, " ".join(needle)))
                break
    found = [(i, n) for i, n in found if not any(n != m and f" {n} " in f" {m} " for _, m in found)]
    if not found:
        return None
    return LETTERS[found[0][0]] if len({n for _, n in found}) == 1 else AMBIGUOUS


def _labels_anywhere(text: str, valid: set[str]) -> set[str]:
    labels: list[tuple[int, str]] = []
    for pattern in (_BRACKETED, _KEYWORD, _LEAD_IN_LOWER):
        labels += [(m.start(1), m.group(1).upper()) for m in pattern.finditer(text)]
    for m in _CAPITAL.finditer(text):
        letter, rest = m.group(1), text[m.end() :]
        if letter in "AI" and re.match(r"\s+[a-z]", rest) and not re.match(_JOINERS, rest):
            continue  # the article "A", the pronoun "I" (but "A or B", "A is correct" name a label)
        labels.append((m.start(1), letter))
    return {letter for start, letter in labels if letter in valid and not _SET_ASIDE.search(text[:start])}


def _labelled_options(text: str, options: list[str]) -> set[str]:
    """Labels that appear together with their own option text ("(A) red", "B: blue"): a copied list has several."""
    found = set()
    for index, option in enumerate(options):
        label = LETTERS[index]
        pattern = rf"(?<![A-Za-z])[(\[]?{label}[)\].:]?\s*{re.escape(option)}(?![A-Za-z])"
        if re.search(pattern, text, re.I):
            found.add(label)
    return found


def read_choice(text: str, options: list[str]) -> tuple[str | None, bool]:
    """(the label a scope states or None or AMBIGUOUS, whether a label contradicts the option text after it)."""
    valid = set(LETTERS[: len(options)])
    stripped = text.strip()
    if not stripped:
        return None, False
    only = _ONLY_LETTER.match(stripped)
    if only and only.group(1).upper() in valid:
        return only.group(1).upper(), False
    listed = {m.group(1).upper() for m in _LINE_LABEL.finditer(stripped)} & valid
    if len(listed) >= 2 or len(_labelled_options(stripped, options)) >= 2:
        return AMBIGUOUS, False  # a copied list of options names no answer
    opening = _OPENING_LABEL.match(stripped)
    if opening:
        letter = next(g for g in opening.groups() if g).upper()
        if letter in valid:
            rest = stripped[opening.end() :].lstrip(")]")
            second = _SECOND_LABEL.match(rest)
            if second and second.group(1).upper() in valid and second.group(1).upper() != letter:
                return AMBIGUOUS, False
            by_text = option_text_answer(rest.split("\n")[0], options)
            return letter, by_text not in (None, AMBIGUOUS, letter)
    labels = _labels_anywhere(stripped, valid)
    if len(labels) == 1:
        return labels.pop(), False
    if len(labels) > 1:
        return AMBIGUOUS, False
    return option_text_answer(stripped, options), False


# ------------------------------------------------------------------------------------------------ yes / no

_YES = {"yes", "yeah", "yep", "yup", "yea", "true", "correct", "right", "affirmative", "oui", "sí", "si", "ja", "да",
        "是", "是的", "对", "有"}  # fmt: skip
_NO = {"no", "nope", "nah", "false", "incorrect", "wrong", "negative", "non", "nein", "нет", "否", "不", "不是", "没有",
       "不对"}  # fmt: skip
_YES_PHRASES = re.compile(
    r"^\W*(?:i (?:think|believe|guess) so|of course|certainly|definitely|absolutely|indeed|sure(?:ly)?|it does|"
    r"there(?: is|'s| are)\b(?! no)(?! not)|it is\b(?! not))",
    re.I,
)
_NO_PHRASES = re.compile(
    r"\b(?:i don'?t (?:think|believe) so|i do not (?:think|believe) so|not really|no way|probably not|likely not|"
    r"definitely not|certainly not|absolutely not|of course not|not at all)\b",
    re.I,
)
_NEGATION = re.compile(r"\b(?:no|not|none|nothing|nobody|neither|nor|never|without)\b|n't\b", re.I)
_STOP = set(
    "a an the is are was were be been there this that these those it its of in on at to for with by from and or "
    "image picture photo shown visible any some do does did can could would should has have had what which who how "
    "you your i me my".split()
)
_MAIN_CLAUSE = re.compile(r"[.;!?\n]|,?\s+(?:but|however|although|though|except)\b", re.I)
"""Where a yes/no statement's main clause ends: an aside after it ("..., but it isn't brown") has no say."""
_YES_NO_LETTER = re.compile(r"^\W*([YyNn])\W*$")
"""A reply that is only "Y" or "N" (with punctuation): the short form of yes / no."""
_POLAR_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _polar_words(text: str) -> list[str]:
    return [w.casefold() for w in _POLAR_TOKEN.findall(text)]


def read_yes_no(text: str, question: str = "") -> str | None:
    """``yes``, ``no``, None or AMBIGUOUS for one scope."""
    stripped = text.strip().lstrip(":-—,. ")
    if not stripped:
        return None
    braced = re.search(r"\{\s*(yes|no)\s*\}", stripped, re.I)
    if braced:
        return braced.group(1).lower()
    letter = _YES_NO_LETTER.match(stripped)
    if letter:
        return "yes" if letter.group(1).lower() == "y" else "no"
    first_clause = re.split(r"[,.;:!?\n，。]", stripped, maxsplit=1)
    head = _polar_words(first_clause[0])
    if head and len(head) <= 2 and head[0] in _YES | _NO:
        rest = first_clause[1] if len(first_clause) > 1 else ""
        if head[0] in _NO and rest.strip() and is_refusal(rest) and not re.search(r"\bthere (?:is|are) no\b", rest):
            return None  # "No, I can't see the image": a refusal, not an answer
        return "yes" if head[0] in _YES else "no"
    for chinese, answer in (("不是", "no"), ("没有", "no"), ("是", "yes"), ("有", "yes")):
        if stripped.startswith(chinese):
            return answer
    main = _MAIN_CLAUSE.split(stripped, maxsplit=1)[0]
    if _NO_PHRASES.search(main):
        return "no"
    if _YES_PHRASES.match(main) and not _NEGATION.search(main):
        return "yes"  # "There is a dog, but it isn't brown": the statement, not the aside
    words = _polar_words(stripped)
    has_yes = any(w in {"yes", "yeah", "yep"} for w in words)
    has_no = any(w in {"no", "nope"} for w in words)
    if has_yes and has_no:
        return AMBIGUOUS
    if has_yes:
        return "yes"
    if _NEGATION.search(main):
        return "no"
    content = {w for w in _polar_words(question) if w not in _STOP and len(w) > 2}
    said = set(_polar_words(main))
    if content and len(content & said) / len(content) >= 0.6:
        return "yes"
    return None


# ------------------------------------------------------------------------------------------------ counts

_NUMBER = re.compile(
    r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])"
    r"|\b(?:(?:a |one )?hundred|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
    r"(?:[-\s](?:one|two|three|four|five|six|seven|"
    r"eight|nine))?|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen)\b",
    re.I,
)
_BRACES = re.compile(r"\{\s*([^{}]{1,40}?)\s*\}")
_ZERO = re.compile(r"\b(?:none|nothing|zero|no\s+[a-z]+|not any)\b", re.I)


def braced_number(text: str) -> str | None:
    """The number in the last ``{...}`` of a response (the format VLMBias asks for), if any."""
    for inner in reversed(_BRACES.findall(text)):
        value = parse_number(inner)
        if value is None:
            match = _NUMBER.search(inner)
            value = parse_number(match.group()) if match else None
        if value is not None:
            return format_number(value)
    return None


_ALTERNATIVE = re.compile(r"\s*(?:or|to|-|–)\s*", re.I)
"""What joins two numbers given as alternatives or a range: "5 or 6", "5 to 6", "5-6"."""


def read_count(text: str) -> str | None:
    """The first number of a scope (digits or words), else 0 for "none"/"no <noun>"; None where neither. A first
    number given with an alternative or as a range ("5 or 6", "5-6") names two answers: ``AMBIGUOUS``."""
    match = _NUMBER.search(text)
    if match:
        value = parse_number(match.group())
        if value is not None:
            joiner = _ALTERNATIVE.match(text, match.end())
            other = _NUMBER.match(text, joiner.end()) if joiner else None
            if other and parse_number(other.group()) not in (None, value):
                return AMBIGUOUS
            return format_number(value)
    if _ZERO.search(text):
        return "0"
    return None
