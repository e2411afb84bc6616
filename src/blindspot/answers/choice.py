"""Reading multiple-choice answers: which option label a scope commits to.

In order:

- a scope that is only a letter, in any case: "b", "(C)", "**B**", "B.";
- a copied list of options (two or more lines that open with different labels, or labels with their own option
  texts) names no answer;
- a response that *opens* with a label ("B. a dog", "b) ...", "(C)", "A, because...", "C because A is wrong",
  "D - the bus", "B\\n...") states that label, whatever options it mentions later, unless a second label follows at
  once ("A, B", "A or C", "B/C": two named labels, no answer, unless the rest rules one out), or the opening label
  heads a list ("A, B and D can be ruled out");
- labels anywhere else ("(B)", "option B", a capital letter standing alone, a lowercase letter after a lead-in such
  as "it's b") are read with their **stance**, from the words around them in their clause (a list of labels, "A,
  B and D", shares one stance):

  - *ruled out*: "not A", "rules out A, B and C", "neither A nor B", "A and B are wrong", "D is unlikely", "A, C
    and D don't match";
  - *possible*: "possibly A", "either A or C", "it could also be D", "C is also possible", "a horse (C) cannot be
    ruled out", "D isn't impossible", "or maybe A";
  - *committed*: "C is correct", "D is right", "C does", "(C) fits better", "leaving C", "left with B", "definitely
    B", "it's C";
  - *asked about*: a label in a question ("or is it C?");
  - else *named*.

  One committed label is the answer; else one named label; else one possible label (hedged). Several committed, or
  several named, or several possible are ``AMBIGUOUS``; labels that are only asked about are ``DOUBT``. An answer
  beside a second option mentioned as possible ("B, though C is also possible") is that answer, hedged;
- a two-option comparison answered in words (:mod:`blindspot.answers.comparison`): "the chair is farther away, so
  the lamp is closer" to "Which is closer?" is the lamp;
- else the text of exactly one option, as whole words (the longest where one option's text contains another's;
  digits and number words are the same: option "3" is answered by "three"), not right after "not" or "than"; where
  several options are named, the one after the response's last "so", "therefore" or "which means".

**Letter against text.** When a response opens with a label and then the text of a *different* option ("B. red"
where B is "blue" and A is "red"), the label wins: the prompt asks for the label, and option texts are often
paraphrased. The conflict is not silent: ``hedged`` is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from blindspot.answers.comparison import read_comparison
from blindspot.answers.reading import AMBIGUOUS, DOUBT
from blindspot.answers.words import ARTICLES, words
from blindspot.contracts.answers import LETTERS

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
    r"then|best|instead|does|do|are|can|cannot|isn't|aren't|don't|doesn't)\b"
)

# ------------------------------------------------------------------------------------------------ stance

_CLAUSE_END = re.compile(r"[.!?;]+(?=\s|$)|\n|\s[—–]\s|,?\s+\b(?:but|however|although|though|whereas|while)\b")
_LIST_GAP = re.compile(r"^\s*(?:\([^()\n]{1,40}\)\s*)?(?:,\s*(?:and|or|nor)?|/|&|\band\b|\bor\b|\bnor\b)\s*"
                       r"(?:options?\s+)?$", re.I)  # fmt: skip
"""What separates the labels of one list: "A, B and D", "A (red), C (green) and D", "A or B", "neither A nor B"."""
_AFTER_FILLER = r"^[\s)\]]*(?:\([^()\n]{1,40}\))?\s*"
_POSSIBLE_AFTER = re.compile(
    _AFTER_FILLER + r"(?:(?:is|are|seems?|looks?|would be)\s+)?(?:also\s+)?"
    r"(?:possible|plausible|a possibility|not impossible|an? (?:alternative|option too)|still possible"
    r"|(?:a )?close second|(?:the )?runner[- ]up"
    r"|(?:is|are)n't out of the question|not out of the question|(?:also|too) (?:acceptable|valid|reasonable|"
    r"defensible|plausible|possible)|(?:would|could|might) (?:also )?be (?:acceptable|valid|reasonable|defensible)"
    r"|(?:could|might|may)\s+(?:also\s+)?(?:be|fit|work|apply|match|argued|possibly)\b"
    r"|(?:can ?not|can't|could not|couldn't)\s+be\s+(?:completely |entirely |fully |totally )?"
    r"(?:ruled out|excluded|eliminated|dismissed)"
    r"|(?:is|are)n't\s+impossible|(?:is|are) not impossible)",
    re.I,
)
_POSSIBLE_BEFORE = re.compile(
    r"(?:\bpossibly|\bmaybe|\bperhaps|\beither|\balternatively|\bor even"
    r"|\b(?:could|might|may)\s+(?:also\s+|possibly\s+)?be)"
    r"\s*(?:(?:options?|choices?)\s+)?[(\[]?\s*$",
    re.I,
)
_OUT_BEFORE = re.compile(
    r"(?:\bnot|n't|\bneither|\bnor|\brather than|\binstead of|\bexcept(?: for)?|\bother than|\bthan|\brules? out"
    r"|\b(?:don'?t|do not|doesn'?t) (?:think|believe) (?:it'?s|it is|that'?s)"
    r"|\bruling out|\bruled out|\beliminat(?:e|es|ing)|\bexclud(?:e|es|ing)|\bcannot|\bwithout)"
    r"(?:\s+(?:be|been))?\s*(?:(?:options?|choices?|the|either)\s+)?[(\[]?\s*$",
    re.I,
)
_OUT_AFTER = re.compile(
    _AFTER_FILLER + r"(?:(?:is|are|was|were|seems?|appears?|looks?)\s+)?"
    r"(?:(?:also|clearly|obviously|definitely|both|all|certainly|plainly)\s+)*"
    r"(?:not\b|n't\b|wrong|incorrect|false|unlikely|ruled out|eliminated|excluded|inconsistent|impossible|"
    r"out\b|irrelevant|implausible)"
    r"|" + _AFTER_FILLER + r"(?:can|could|should|must|may|will)\s+(?:(?:also|all|both|safely)\s+)*"
    r"(?:be\s+)?(?:ruled out|eliminated|excluded|discarded|dismissed)"
    r"|" + _AFTER_FILLER + r"(?:(?:also|all|both)\s+)?(?:don't|do not|doesn't|does not|didn't|did not|cannot|can't|"
    r"fail|fails|aren't|isn't|wasn't|weren't)\b",
    re.I,
)
_COMMITTED_AFTER = re.compile(
    _AFTER_FILLER + r"(?:(?:is|are|seems?|looks?)\s+)?"
    r"(?:(?:definitely|clearly|obviously|certainly|indeed)\s+)?"
    r"(?:correct|right|true|the (?:correct|right|best|most likely|only|final|most plausible)\b|the answer\b"
    r"|(?:the )?(?:most|more) likely|my (?:final |best )?(?:answer|guess|choice|pick)"
    r"|(?:fits|matches|works) (?:best|better)|does\b|it is\b)",
    re.I,
)
_COMMITTED_BEFORE = re.compile(
    r"(?:\bit'?s|\bit is|\bhas to be|\bmust be|\bshould be|\bis|\bleaving(?: only)?|\bleft with|\bgo(?:ing)? with"
    r"|\blean(?:ing)? towards?|\bchoose|\bpick|\bselect|\bdefinitely|\bcertainly|\bclearly|\bsurely"
    r"|\bmost likely|\bprobably|\bonly|\bso|\btherefore|\bthus|\bhence|\bleaves|\bgives|\bmakes? it)"
    r"\s*[,:]?\s*(?:(?:options?|choices?|answer)\s+)?[(\[]?\s*$",
    re.I,
)
_INHERIT_BEFORE = re.compile(r"(?:\bso|\bas|\bneither|\bnor)\s+(?:is|are|does|do|could|might)\s*[(\[]?\s*$", re.I)
""""..., and so is C", "as is C": the stance of the label before."""

COMMITTED, NAMED, POSSIBLE, OUT, ASKED = "committed", "named", "possible", "out", "asked"


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    letter: str


@dataclass(frozen=True)
class Stances:
    """Each label a text mentions, by its stance."""

    by_letter: dict[str, set[str]]

    def letters(self, stance: str) -> set[str]:
        return {letter for letter, stances in self.by_letter.items() if stance in stances}

    def decide(self) -> str | None:
        """The one label the text commits to (module docstring), AMBIGUOUS, DOUBT or None."""
        committed = self.letters(COMMITTED)
        ruled_out = self.letters(OUT) - committed
        named = self.letters(NAMED) - ruled_out - committed
        possible = self.letters(POSSIBLE) - ruled_out - committed - named
        for group in (committed, named, possible):
            if group:
                return group.pop() if len(group) == 1 else AMBIGUOUS
        return DOUBT if self.letters(ASKED) - ruled_out else None

    def possible_besides(self, answer: str) -> bool:
        """Another label is mentioned as possible: the answer is hedged."""
        return bool(self.letters(POSSIBLE) - {answer} - (self.letters(OUT) - self.letters(POSSIBLE)))


def mentions(text: str, valid: set[str]) -> list[Mention]:
    """Every label a text mentions where it could stand as an answer, in order of position."""
    found: dict[int, Mention] = {}
    for pattern in (_BRACKETED, _KEYWORD, _LEAD_IN_LOWER):
        for m in pattern.finditer(text):
            found.setdefault(m.start(1), Mention(m.start(1), m.end(), m.group(1).upper()))
    for m in _CAPITAL.finditer(text):
        letter, rest = m.group(1), text[m.end() :]
        if letter in "AI" and re.match(r"\s+[a-z]", rest) and not re.match(_JOINERS, rest):
            continue  # the article "A", the pronoun "I" (but "A or B", "A is correct" name a label)
        found.setdefault(m.start(1), Mention(m.start(1), m.end(), letter))
    return sorted((m for m in found.values() if m.letter in valid), key=lambda m: m.start)


def _clause_bounds(text: str, position: int) -> tuple[int, int]:
    start, end = 0, len(text)
    for m in _CLAUSE_END.finditer(text):
        if m.end() <= position:
            start = m.end()
        elif m.start() >= position:
            end = m.start()
            break
    return start, end


def _groups(text: str, found: list[Mention]) -> list[list[Mention]]:
    """Labels of one list ("A, B and D") in one group; a list never crosses a clause."""
    groups: list[list[Mention]] = []
    for mention in found:
        if groups and _LIST_GAP.match(text[groups[-1][-1].end : mention.start]) and \
                _clause_bounds(text, mention.start)[0] <= groups[-1][-1].start:  # fmt: skip
            groups[-1].append(mention)
        else:
            groups.append([mention])
    return groups


_LAST_WORD = re.compile(r"[\w'-]+[\s,]*$")


def _befores(before: str, bracketed: bool) -> list[str]:
    """The text before a label; for a bracketed label that tags the words before it ("not a cat (A)"), also that
    text without its last one to four words, where the stance cue stands."""
    out = [before]
    if bracketed:
        core = before.rstrip()[:-1] if before.rstrip().endswith(("(", "[")) else before
        for _ in range(4):
            stripped = _LAST_WORD.sub("", core)
            if stripped == core:
                break
            core = stripped
            out.append(core)
    return out


_OR_LIST = re.compile(r"\bor\b", re.I)


def _group_stance(text: str, group: list[Mention], previous: str | None, previous_end: int) -> str:
    start, end = _clause_bounds(text, group[0].start)
    before = text[max(start, previous_end) : group[0].start]
    bracketed = group[0].start > 0 and text[group[0].start - 1] in "(["
    befores = _befores(before, bracketed and bool(re.search(r"[\w'-]\s*[(\[]$", before)))
    after = text[group[-1].end : end]
    if previous is not None and _INHERIT_BEFORE.search(before):
        return previous
    if text[end : end + 1] == "?" or text[group[-1].end : end].rstrip().endswith("?"):
        return ASKED
    if _POSSIBLE_AFTER.match(after) or any(_POSSIBLE_BEFORE.search(b) for b in befores):
        return POSSIBLE
    if _OUT_AFTER.match(after) or any(_OUT_BEFORE.search(b) for b in befores):
        return OUT
    if _COMMITTED_AFTER.match(after) or any(_COMMITTED_BEFORE.search(b) for b in befores):
        inner = text[group[0].start : group[-1].end]
        return POSSIBLE if len(group) > 1 and _OR_LIST.search(inner) else COMMITTED  # "it must be B or C"
    return NAMED


def label_stances(text: str, valid: set[str]) -> tuple[Stances, list[list[Mention]]]:
    groups = _groups(text, mentions(text, valid))
    by_letter: dict[str, set[str]] = {}
    previous, previous_end = None, 0
    for group in groups:
        stance = _group_stance(text, group, previous, previous_end)
        for mention in group:
            by_letter.setdefault(mention.letter, set()).add(stance)
        previous, previous_end = stance, group[-1].end
    return Stances(by_letter), groups


# ------------------------------------------------------------------------------------------------ option texts

_NEGATORS = {"not", "t", "no", "never", "neither", "nor", "than"}
"""Words that set an option's text aside when they precede it ("blue, not red"; "t" is the end of "isn't"; "than
the lamp"), articles between them aside."""
_CONCLUDING = re.compile(r"(?:^|[,;.!?\s])(?:so|therefore|thus|hence|which means|meaning|that means)\b[,:]?\s*", re.I)


def _set_aside(found: list[str], start: int) -> bool:
    before = [w for w in found[:start] if w not in ARTICLES]
    return bool(before) and before[-1] in _NEGATORS


def option_text_answer(text: str, options: list[str]) -> str | None:
    """The label of the one option whose whole text occurs in ``text`` as words (not right after "not" or "than");
    AMBIGUOUS for several."""
    found_words = words(text)
    found = []
    for index, option in enumerate(options):
        needle = words(option)
        if not needle:
            continue
        for start in range(len(found_words) - len(needle) + 1):
            if found_words[start : start + len(needle)] == needle and not _set_aside(found_words, start):
                found.append((index, " ".join(needle)))
                break
    found = [(i, n) for i, n in found if not any(n != m and f" {n} " in f" {m} " for _, m in found)]
    if not found:
        return None
    return LETTERS[found[0][0]] if len({n for _, n in found}) == 1 else AMBIGUOUS


def concluded_option_text(text: str, options: list[str]) -> str | None:
    """The option named after the last "so" / "therefore" / "which means", where the whole names several."""
    whole = option_text_answer(text, options)
    if whole != AMBIGUOUS:
        return whole
    ends = [m.end() for m in _CONCLUDING.finditer(text)]
    for end in reversed(ends):
        concluded = option_text_answer(text[end:], options)
        if concluded is not None:
            return concluded
    return AMBIGUOUS


def _labelled_options(text: str, options: list[str]) -> set[str]:
    """Labels that appear together with their own option text ("(A) red", "B: blue"): a copied list has several."""
    found = set()
    for index, option in enumerate(options):
        label = LETTERS[index]
        pattern = rf"(?<![A-Za-z])[(\[]?{label}[)\].:]?\s*{re.escape(option)}(?![A-Za-z])"
        if re.search(pattern, text, re.I):
            found.add(label)
    return found


# ------------------------------------------------------------------------------------------------ the reader


@dataclass(frozen=True)
class ChoiceReading:
    """What one scope states: a label (or None, AMBIGUOUS, DOUBT), and whether its label and text disagree."""

    answer: str | None
    conflict: bool = False


def _only_named(text: str, valid: set[str]) -> set[str]:
    """Labels mentioned with no stance ("(A) red (B) blue"): as a copied list of options names them."""
    stances = label_stances(text, valid)[0]
    return {letter for letter, found in stances.by_letter.items() if found == {NAMED}}


def _opening(stripped: str, options: list[str], valid: set[str]) -> ChoiceReading | None:
    """A response that opens with a label states it (module docstring); None where the rule does not apply."""
    opening = _OPENING_LABEL.match(stripped)
    if not opening:
        return None
    letter = next(g for g in opening.groups() if g).upper()
    if letter not in valid:
        return None
    rest = stripped[opening.end() :].lstrip(")]")
    second = _SECOND_LABEL.match(rest)
    if second and second.group(1).upper() in valid and second.group(1).upper() != letter:
        return None  # "A or B. B is wrong ... A.": two labels at once, read by stance (alone they name no answer)
    groups = label_stances(stripped, valid)[1]
    first = groups[0] if groups else []
    if len(first) > 1 and first[0].start <= opening.end():
        return None  # "A, B and D can be ruled out, leaving C": a list, read by stance
    by_text = option_text_answer(rest.split("\n")[0], options)
    return ChoiceReading(letter, by_text not in (None, AMBIGUOUS, letter))


def read_choice(text: str, options: list[str], question: str = "") -> ChoiceReading:
    """What one scope states (module docstring)."""
    valid = set(LETTERS[: len(options)])
    stripped = text.strip()
    if not stripped:
        return ChoiceReading(None)
    only = _ONLY_LETTER.match(stripped)
    if only and only.group(1).upper() in valid:
        return ChoiceReading(only.group(1).upper())
    listed = {m.group(1).upper() for m in _LINE_LABEL.finditer(stripped)} & valid
    if len(listed) >= 2 or len(_labelled_options(stripped, options) & _only_named(stripped, valid)) >= 2:
        return ChoiceReading(AMBIGUOUS)  # a copied list of options names no answer
    opened = _opening(stripped, options, valid)
    if opened is not None:
        return opened
    decided = label_stances(stripped, valid)[0].decide()
    if decided is not None:
        return ChoiceReading(decided)
    compared = read_comparison(stripped, options, question)
    if compared is not None:
        return ChoiceReading(compared)
    return ChoiceReading(concluded_option_text(stripped, options))


def possible_besides(text: str, options: list[str], answer: str) -> bool:
    """The response mentions an option other than its answer as possible ("B, though C is also possible")."""
    stances, _ = label_stances(text, set(LETTERS[: len(options)]))
    return stances.possible_besides(answer)


def doubted_after(text: str, options: list[str], answer: str) -> bool:
    """The response ends by asking about another option after its answer ("B. Hmm, or maybe C?"): undecided."""
    valid = set(LETTERS[: len(options)])
    groups = label_stances(text, valid)[1]
    last_answer = max((m.start for g in groups for m in g if m.letter == answer), default=-1)
    previous, previous_end = None, 0
    for group in groups:
        stance = _group_stance(text, group, previous, previous_end)
        if stance == ASKED and group[0].start > last_answer and any(m.letter != answer for m in group):
            return True
        previous, previous_end = stance, group[-1].end
    return False
