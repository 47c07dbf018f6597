"""How the matcher keys and compares children's names (Latin or Arabic).

    name_similarity(a, b) -> float          how alike two spellings are, 0..1 (the confidence)
    family_similarity(a, b) -> float        the same, with or without a particle (AIT, OU, BEN, ال)
    FirstNames(names).agreement(asked, known) -> AGREE | PART | UNSURE | DIFFER
                                            whether a first name designates the pupil's name
    skeletons(names), blocking_key(family, first)   index keys (tasks/province_register.py)

Similarity is not identity: HASSAN scores 0.83 against حسين and الحسن 0.91 against الحسين, while
some genuine spellings score 0.8 (OMAR / عمر). A pupil's code is given only when the first name
*agrees*, which ``FirstNames`` decides from how the spelling is built rather than how close it
is: consonants in one key, then the vowels between them, where Arabic writes its long vowels
(ا و ي) and Latin spellings write every vowel. docs/decisions/0004-matching-children.md
explains the rules; tests/tasks/test_match_names.py holds their cases.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path

from rapidfuzz.distance import Indel

from schemas.text import clean_text, match_key

# ---- similarity: one key for Latin and Arabic spellings ----------------------------------------

# Arabic letters (after match_key: hamza forms are a bare alef, ta marbuta is ha) → symbols shared
# with Latin spellings. Lower case: consonants; upper case: letters read as vowels.
_ARABIC = {
    "ب": "b",
    "ت": "t",
    "ث": "t",
    "ج": "j",
    "ح": "h",
    "خ": "x",
    "د": "d",
    "ذ": "d",
    "ر": "r",
    "ز": "z",
    "س": "s",
    "ش": "c",
    "ص": "s",
    "ض": "d",
    "ط": "t",
    "ظ": "z",
    "غ": "g",
    "ف": "f",
    "ق": "k",
    "ك": "k",
    "ڭ": "k",
    "گ": "k",
    "ل": "l",
    "م": "m",
    "ن": "n",
    "ه": "h",
    "پ": "b",
    "ڤ": "f",
    "ا": "A",
    "ع": "A",
    "و": "U",
    "ي": "I",
    "ئ": "I",
    "ؤ": "U",
    "ء": "",
}
# Latin spellings of Moroccan names (French conventions): digraphs first.
_LATIN_TOKEN = re.compile(r"dj|kh|gh|ch|sh|th|dh|ph|ck|ou|gu(?=[eiy])|[a-z]")
_SOFT_C = re.compile(r"c(?=[eiy])")
_RH = re.compile(r"(?<=[bdfgjklmnpqstvxz])rh")  # the older French spelling of غ (AMRHAR)
_LATIN = {
    "dj": "j",
    "kh": "x",
    "gh": "g",
    "ch": "c",
    "sh": "c",
    "th": "t",
    "dh": "d",
    "ph": "f",
    "ck": "k",
    "ou": "U",
    "gu": "k",
    "c": "k",
    "g": "k",
    "q": "k",
    "x": "ks",
    "v": "f",
    "p": "b",
    "a": "A",
    "e": "",  # a short vowel French writes and Arabic does not
    "i": "I",
    "y": "I",
    "o": "U",
    "u": "U",
    "w": "U",
}
_ARABIC_LETTER = re.compile("[\u0621-\u064a\u0671-\u06d3]")
_LATIN_ARTICLE = re.compile(r"^(?:e(ch)(?=ch)|e([bdfjklmnrstz])(?=\2)|l(?=[bcdfghjkmnpqrstvxz]))")


def _is_arabic(text: str) -> bool:
    return bool(_ARABIC_LETTER.search(text))


@lru_cache(maxsize=1 << 16)
def _compact(text: str) -> str:
    return re.sub(r"[\s\-'’.]", "", match_key(text))


@lru_cache(maxsize=1 << 16)
def _words(text: str) -> tuple[str, ...]:
    return tuple(match_key(text).split())


def _collapse(symbols: str) -> str:
    """Doubled letters once; the final h of a word of three letters or more (ta marbuta, the
    French final h) dropped."""
    out = re.sub(r"(.)\1+", r"\1", symbols)
    return out[:-1] if out.endswith("h") and len(out) > 2 else out


def _arabic_words(words: list[str], bare: bool) -> str:
    out = []
    for word in words:
        if bare and word.startswith("ال") and len(word) > 3:
            word = word[2:]
        out.append(_collapse("".join(_ARABIC.get(char, "") for char in word)))
    return "".join(out)


def _latin_words(words: list[str], bare: bool, sh: bool = True, x: bool = False) -> str:
    """The spelled key of Latin words; ``sh=False`` reads SH as S + H (ISHAK: إسحاق), ``x=True``
    reads X as خ, the way Amazigh spellings write it (XALID)."""
    out = []
    for word in words:
        if bare:
            if word in ("el", "al", "l") and len(words) > 1:
                continue
            word = _LATIN_ARTICLE.sub(lambda m: m.group(1) or "", word, count=1)
        word = _RH.sub("gh", _SOFT_C.sub("s", word))
        if not sh:
            word = word.replace("sh", "s-h")
        if x:
            word = word.replace("x", "kh")
        tokens = (_LATIN.get(t, t) for t in _LATIN_TOKEN.findall(word))
        out.append(_collapse("".join(tokens)))
    return "".join(out)


@lru_cache(maxsize=1 << 16)
def _forms(text: str) -> tuple[tuple[str, str], ...]:
    """(consonant skeleton, spelled key) of a name, with and without its article."""
    key = match_key(text)
    if _is_arabic(key):
        spelled = set()
        # match_key reads ta marbuta as ha; Latin spellings also write it T (HAYAT).
        keys = {key, match_key(text.replace("ة", "ت"))}
        for variant in keys:
            words = [w for w in re.split(r"[^\u0621-\u064a\u0671-\u06d3]+", variant) if w]
            spelled |= {_arabic_words(words, False), _arabic_words(words, True)}
    else:
        words = [w for w in re.split(r"[^a-z]+", key) if w]
        readings = (True, False) if "sh" in key else (True,)
        xs = (False, True) if "x" in key else (False,)
        spelled = {
            _latin_words(words, bare, sh, x)
            for bare in (False, True)
            for sh in readings
            for x in xs
        }
    forms = {(re.sub(r"(.)\1+", r"\1", re.sub("[AIU]", "", s)), s) for s in spelled if s}
    return tuple(sorted(forms))


# A compound name written in part (FATIMA for FATIMA EZZAHRA, محمد for محمد أمين) keeps this
# share of the similarity of its first word.
COMPOUND_SHARE = 0.9


@lru_cache(maxsize=1 << 18)
def name_similarity(a: str, b: str) -> float:
    """How alike two spellings of a name are, in 0..1 (1: the same after match_key).

    Same script: rapidfuzz's normalised Indel similarity of the match_key forms (spaces and
    hyphens removed). Latin against Arabic (and Latin against Latin, where transliterations
    differ: LAHCEN / EL HASSAN): both are read into one key of consonant classes (ش and CH,
    ق / ك and K / Q / G, ع and vowels...), with and without the article (ال, EL, ESS-), and the
    similarity is the mean of the consonant skeletons' and the spelled keys' similarities.
    A compound name against its first word alone scores ``COMPOUND_SHARE`` of that word's
    similarity."""
    if not a or not b:
        return 0.0
    whole = _similarity(a, b)
    words_a, words_b = _words(a), _words(b)
    if len(words_a) > 1 and len(words_b) == 1 and words_a[0] not in _ARTICLES:
        whole = max(whole, COMPOUND_SHARE * _similarity(words_a[0], b))
    elif len(words_b) > 1 and len(words_a) == 1 and words_b[0] not in _ARTICLES:
        whole = max(whole, COMPOUND_SHARE * _similarity(a, words_b[0]))
    return whole


# First words that are not a name of their own (ABD EL ..., AIT ..., BEN ...).
_ARTICLES = frozenset(
    ("el", "al", "l", "abd", "abdel", "ait", "ben", "bou", "ou", "id", "عبد", "ايت", "بن", "ابن")
)


def _similarity(a: str, b: str) -> float:
    ka, kb = _compact(a), _compact(b)
    if ka == kb:
        return 1.0
    arabic_a, arabic_b = _is_arabic(ka), _is_arabic(kb)
    direct = Indel.normalized_similarity(ka, kb) if arabic_a == arabic_b else 0.0
    if arabic_a and arabic_b:
        return direct
    best = direct
    for skeleton_a, spelled_a in _forms(a):
        for skeleton_b, spelled_b in _forms(b):
            spelled = Indel.normalized_similarity(spelled_a, spelled_b)
            if skeleton_a and skeleton_b:
                score = 0.5 * Indel.normalized_similarity(skeleton_a, skeleton_b) + 0.5 * spelled
            else:
                score = spelled
            best = max(best, score)
    return best


def skeletons(names: Iterable[str | None]) -> set[str]:
    """The consonant skeletons of names (with and without their article)."""
    return {skeleton for name in names if name for skeleton, _ in _forms(name) if skeleton}


@lru_cache(maxsize=1 << 16)
def name_skeletons(name: str) -> frozenset[str]:
    """The consonant skeletons of a name, with and without its article or particle (AIT ALI:
    also ALI's), G read as J too (GAZOULI: الجزولي); remembered. Two spellings of one name
    share one: the matcher looks no further at a candidate whose family name shares none with
    the request's names."""
    found = skeletons([name, *_without_particle(name)])
    return frozenset(found | {s.replace("k", "j") for s in found if "k" in s})


def blocking_key(family: str | None, first: str | None) -> str:
    """A blocking key: the consonant skeletons of family and first name, article dropped."""
    if not family or not first:
        return ""
    forms_family, forms_first = _forms(family), _forms(first)
    if not forms_family or not forms_first:
        return ""
    return f"{min(forms_family)[0]}|{min(forms_first)[0]}"


# ---- family names with or without their particle ----------------------------------------------

# A family name's leading particle, written apart (AIT ALI, أيت علي) or joined (OUBAHA, بنعلي):
# "the people of", "son of", the article. The request and Massar do not always agree on it.
_PARTICLE_WORDS = frozenset(
    ("ait", "ou", "u", "id", "ben", "ibn", "el", "al", "l", "ould", "ايت", "او", "اد", "بن", "ابن")
) | {"ال", "ولد"}
_JOINED_PARTICLE = re.compile(r"^(?:ait|ou|ben|el|ايت|او|بن)(?=\w{3})")
# A family name known only with or without its particle keeps this share of its similarity.
PARTICLE_SHARE = 0.9


@lru_cache(maxsize=1 << 14)
def _without_particle(name: str) -> tuple[str, ...]:
    """The name without its leading particle (written apart or joined), or nothing."""
    key = match_key(name)
    words = [w for w in re.split(r"[\s\-_'’.]+", key) if w]
    out = []
    if len(words) > 1 and words[0] in _PARTICLE_WORDS:
        out.append(" ".join(words[1:]))
    if words:
        joined = _JOINED_PARTICLE.sub("", words[0], count=1)
        if joined != words[0]:
            out.append(" ".join([joined, *words[1:]]))
    return tuple(out)


@lru_cache(maxsize=1 << 18)
def family_similarity(a: str, b: str) -> float:
    """name_similarity of two family names, or ``PARTICLE_SHARE`` of it when they agree only
    once a particle is left out (AIT ALI / ALI, OUBAHA / باها, BEN ALI / علي)."""
    best = name_similarity(a, b)
    if best >= PARTICLE_SHARE or not a or not b:
        return best
    others_a, others_b = _without_particle(a), _without_particle(b)
    if bool(others_a) == bool(others_b):
        return best  # both with a particle, or neither: compared as they are
    # one side without its particle: worth comparing only when the consonants then agree
    bare, whole = (others_a, b) if others_a else (others_b, a)
    wanted = name_skeletons(whole)
    for name in bare:
        if not wanted.isdisjoint(name_skeletons(name)):
            best = max(best, PARTICLE_SHARE * name_similarity(name, whole))
    return best


# ---- first names: does this spelling designate the pupil's name? ------------------------------

AGREE = "agree"  # the same name, as far as spelling can tell
PART = "part"  # one name is the first part of the other's compound (FATIMA / فاطمة الزهراء)
UNSURE = "unsure"  # close, but maybe another name (HOUSSINE for حسن: حسين fits it better)
DIFFER = "differ"  # another name (HASSAN for حسين, ALI for عبد النبي)
AGREEMENTS = (AGREE, PART, UNSURE, DIFFER)

# A reading of a name: its consonant classes (doubled ones once) and, around them, the vowels.
# Arabic vowel symbols: A long a (ا inside a word), I (ي ئ), U (و ؤ), Y a final ي/ى (A or I: typed
# either way), T a final ta marbuta read as a vowel; the hamza's seat at a word's start, which
# Latin writes as its vowel: V for أ آ (a, u), Q for إ (i), H for a bare ا (unknown); W for ع and
# ء inside a word, X for ع starting one (any vowel, seldom none). Latin vowels: A, E, I, O, U
# (OU, W), with Y as I.
Reading = tuple[str, tuple[str, ...]]

_AR_CONSONANT = {k: v for k, v in _ARABIC.items() if v.islower()}
_AR_VOWEL = {"ا": "A", "ى": "Y", "ي": "I", "ئ": "I", "و": "U", "ؤ": "U", "ع": "W", "ء": "W"}
_AR_VOWEL |= {"أ": "V", "آ": "V", "ٱ": "V", "إ": "Q"}
_AR_LETTERS = re.compile("[\u0621-\u064a\u0671-\u06d3]+")
_AR_NOT_CONSONANT = "اأإآٱىيئوؤعءة"
_HARAKAT = re.compile("[\u064b-\u065f\u0670]")

_LATIN_UNIT = re.compile(r"dj|kh|gh|ch|sh|th|dh|ph|ck|ou|oo|gu(?=[eiy])|[a-z]")
_LATIN_CONSONANT = {
    "dj": "j",
    "kh": "x",
    "gh": "g",
    "ch": "c",
    "sh": "c",
    "th": "t",
    "dh": "d",
    "ph": "f",
    "ck": "k",
    "gu": "k",
    "c": "k",
    "g": "k",
    "q": "k",
    "x": "x",
    "v": "f",
    "p": "b",
}
_LATIN_VOWEL = {"a": "A", "e": "E", "i": "I", "y": "I", "o": "O", "oo": "O", "u": "U", "ou": "U"}
_LATIN_VOWEL |= {"w": "U"}
_LATIN_ARTICLE_WORD = re.compile(r"^(?:el|al|l|e(?:ch|[dnrstz]))$")
_LATIN_ATTACHED_ARTICLE = re.compile(
    r"^(?:el(?=[bcdfghjkmnpqrstvxz])|l(?=[bcdfghjkmnpqrstvxz])|e(ch)(?=ch)|e([dnrstz])(?=\2))"
)
_ABBREVIATIONS = {"med": "mohamed", "mhd": "mohamed", "mohd": "mohamed", "moh": "mohamed"}


def _arabic_word_symbols(word: str, ta_as_t: bool, final_h: bool) -> list[str]:
    """Symbols of one Arabic word; ``ta_as_t`` reads a ta marbuta after ا as T (HAYAT),
    ``final_h=False`` drops a final ه / ح as French spellings do (ABDELLA, SALA EDDINE)."""
    symbols = []
    last = len(word) - 1
    for position, char in enumerate(word):
        if char == "ة":
            symbols.append("t" if ta_as_t and position and word[position - 1] == "ا" else "T")
        elif position == 0 and char == "ا":
            symbols.append("H")
        elif position == 0 and char == "ع":
            symbols.append("X")
        elif char in ("ي", "ى") and position == last and position > 0:
            symbols.append("Y")
        elif char in _AR_VOWEL:
            symbols.append(_AR_VOWEL[char])
        elif char in _AR_CONSONANT:
            symbols.append(_AR_CONSONANT[char])
    if not final_h and len(symbols) > 2 and symbols[-1] == "h":
        symbols.pop()
    return symbols


def _arabic_articles(word: str) -> list[str]:
    """The word, and without its article: ال, or a bare ل before a consonant (لحسن)."""
    out = [word]
    if word.startswith("ال") and len(word) > 3 and word[2] not in _AR_NOT_CONSONANT:
        out.append(word[2:])  # not before a vowel: ABDELILAH keeps the L of عبد الإله
    elif word.startswith("ل") and len(word) > 3 and word[1] not in _AR_NOT_CONSONANT:
        out.append(word[1:])
    return out


def _latin_word_readings(word: str) -> list[list[str]]:
    """Symbols of one Latin word: SH as ش and as S + H (ISHAK: إسحاق), a final H after a vowel
    kept and dropped (SARAH, ABDELLAH; Arabic's final ه is read both ways too)."""
    word = _RH.sub("gh", _SOFT_C.sub("s", word))
    if len(word) > 2 and word.endswith("e") and word[-2] not in "aeiouy":
        word = word[:-1]  # a mute final E (HASSANE, AMINE)
    forms = {word}
    if len(word) > 2 and word.endswith("h") and word[-2] in "aeiouy":
        forms.add(word[:-1])
    if word.startswith("j") and word[1:2] in ("a", "e", "i", "o", "u"):
        forms |= {"y" + form[1:] for form in forms}  # JUBA: يوبا, JASMINE: ياسمين
    if "sh" in word:
        forms |= {form.replace("sh", "s-h") for form in forms}
    out = []
    for form in sorted(forms):
        symbols = []
        for unit in _LATIN_UNIT.findall(form):
            if unit in _LATIN_VOWEL:
                symbols.append(_LATIN_VOWEL[unit])
            else:
                symbols.append(_LATIN_CONSONANT.get(unit, unit))
        out.append(symbols)
    return out


def _latin_word_options(words: list[str]) -> list[list[list[str]]]:
    """Per word, its readings: with and without an article (EL HASSAN, LHASSAN, EZZAHRA)."""
    options: list[list[list[str]]] = []
    for index, word in enumerate(words):
        word = _ABBREVIATIONS.get(word, word)
        followed = index + 1 < len(words)
        if _LATIN_ARTICLE_WORD.match(word) and followed:
            kept = [["E", "l"]] if word in ("el", "al", "l") else []
            options.append([[], *kept])
            continue
        readings = _latin_word_readings(word)
        bare = _LATIN_ATTACHED_ARTICLE.sub(lambda m: m.group(1) or m.group(2) or "", word, count=1)
        if bare != word and len(bare) >= 3:
            readings += _latin_word_readings(bare)
        options.append(readings)
    return options


def _reading(symbols: Iterable[str]) -> Reading:
    """Consonants (doubled ones once) and the vowels before, between and after them."""
    consonants: list[str] = []
    slots = [""]
    for symbol in symbols:
        if symbol.isupper():
            slots[-1] += symbol
        elif consonants and consonants[-1] == symbol and not slots[-1]:
            continue  # YOUSSEF, عبد الله
        else:
            consonants.append(symbol)
            slots.append("")
    return "".join(consonants), tuple(slots)


def _combinations(options: list[list[list[str]]]) -> Iterable[list[str]]:
    combos: list[list[str]] = [[]]
    for readings in options:
        combos = [done + reading for done in combos for reading in readings][:64]
    return combos


@lru_cache(maxsize=1 << 16)
def readings(text: str) -> tuple[Reading, ...]:
    """The readings of a name: Arabic with and without each article and with a final ta
    marbuta as a vowel or a T (HAYAT); Latin with and without articles."""
    cleaned = _HARAKAT.sub("", clean_text(text or ""))
    if _is_arabic(cleaned):
        words = _AR_LETTERS.findall(cleaned.replace("ـ", ""))
        out = set()
        for ta_as_t in (False, True):
            options = [
                [
                    _arabic_word_symbols(form, ta_as_t, final_h)
                    for form in _arabic_articles(word)
                    for final_h in (False, True)
                ]
                for word in words
            ]
            out |= {_reading(symbols) for symbols in _combinations(options)}
        return tuple(sorted(out))
    words = [w for w in re.split(r"[^a-z]+", match_key(cleaned)) if w]
    out = {_reading(symbols) for symbols in _combinations(_latin_word_options(words))}
    if any("x" in w for w in words):  # X as K+S (ALEXANDRE) as well as خ
        ks = _latin_word_options([w.replace("x", "ks") for w in words])
        out |= {_reading(symbols) for symbols in _combinations(ks)}
    return tuple(sorted(out))


# Costs of reading a Latin spelling's vowels from the Arabic: 0 as expected, WEAK for a vowel
# French spellings seldom write for a short one (I, OU between two consonants where Arabic has
# no long vowel: HOUSSINE for حسن), SOFT for an unusual but seen spelling (E for ي), HARD for a
# vowel that cannot be there (HASSAN's A where حسين has ي, an I after the last consonant).
WEAK, SOFT, HARD = 0.5, 1.0, 2.0
_ANY = ("A", "E", "I", "O", "U")
_TWO = tuple(v + w for v in ("A", "E", "O") for w in _ANY)  # SAAID, CHAIMAA, SAFAE
_EMIT: dict[str, tuple[tuple[str, float], ...]] = {
    "W": (("", 0.0), *((v, 0.0) for v in _ANY), *((v, 0.0) for v in _TWO)),
    "X": (("", SOFT), *((v, 0.0) for v in _ANY), ("AA", 0.0)),  # OALI is not علي
    "V": (("", WEAK), ("A", 0.0), ("E", WEAK), ("O", 0.0), ("U", 0.0), ("AA", 0.0), ("I", SOFT)),
    "Q": (("", WEAK), ("I", 0.0), ("E", 0.0), ("A", SOFT)),
    "H": (("", WEAK), *((v, 0.0) for v in _ANY)),
    "A": (("A", 0.0), ("AA", 0.0), ("E", SOFT), ("", SOFT)),
    "I": (
        *(("I", 0.0), ("AI", 0.0), ("EI", 0.0), ("II", 0.0), ("EE", 0.0), ("E", SOFT)),
        *(("", SOFT), *((i + v, 0.0) for i in ("I", "AI", "EI") for v in _ANY)),  # TAYEB
    ),
    "U": (
        *(("U", 0.0), ("O", 0.0), ("AU", 0.0), ("AO", 0.0), ("", SOFT)),
        *((u + v, 0.0) for u in ("U", "O") for v in _ANY),
    ),
    "Y": (("I", 0.0), ("A", 0.0), ("E", 0.0), ("AI", 0.0), ("IA", 0.0), ("", WEAK)),
    "T": (("A", 0.0), ("E", 0.0), ("", WEAK)),  # RACHID is not رشيدة
}
# Two letters Latin writes as one vowel: عا in عادل (ADIL), إي in إيمان (IMANE, EMANE).
_EMIT_PAIR: dict[str, tuple[tuple[str, float], ...]] = {
    "XA": (("A", 0.0), ("AA", 0.0)),
    "WA": (("A", 0.0), ("AA", 0.0)),
    "WI": (("I", 0.0), ("E", 0.0)),  # ISMAEL: إسماعيل
    "QI": (("I", 0.0), ("E", 0.0)),
    "HI": (("I", 0.0), ("E", 0.0)),
}
_LONG = frozenset("AIU")


def _extra(vowel: str, where: str, long_vowel: bool) -> float:
    """The cost of a Latin vowel the Arabic letters do not write: a short vowel."""
    if where == "start":
        return SOFT  # Arabic starts with a consonant: IMAD is not معاذ
    if where == "end":  # RACHIDA is not رشيد; a final I or OU is a letter (ي و)
        return WEAK if vowel in ("A", "E", "O") else HARD
    if long_vowel:
        return SOFT
    return WEAK if vowel in ("I", "U") else 0.0


@lru_cache(maxsize=1 << 16)
def _slot_cost(arabic: str, latin: str, where: str) -> float:
    long_vowel = any(symbol in _LONG for symbol in arabic)

    @cache
    def best(i: int, j: int, extra_used: bool) -> float:
        if i == len(arabic) and j == len(latin):
            return 0.0
        found = HARD * (len(latin) - j + len(arabic) - i)
        if j < len(latin) and not extra_used:
            found = min(found, _extra(latin[j], where, long_vowel) + best(i, j + 1, True))
        if j < len(latin) and extra_used:
            found = min(found, HARD + best(i, j + 1, True))
        if i < len(arabic):
            for emitted, cost in _EMIT[arabic[i]]:
                if latin.startswith(emitted, j):
                    found = min(found, cost + best(i + 1, j + len(emitted), extra_used))
            for emitted, cost in _EMIT_PAIR.get(arabic[i : i + 2], ()):
                if latin.startswith(emitted, j):
                    found = min(found, cost + best(i + 2, j + len(emitted), extra_used))
        return found

    return best(0, 0, False)


def _reading_cost(arabic: Reading, latin: Reading) -> float:
    slots_a, slots_l = arabic[1], latin[1]
    last = len(slots_a) - 1
    total = 0.0
    for index, (a, b) in enumerate(zip(slots_a, slots_l, strict=True)):
        if not a and not b:
            continue
        where = "start" if index == 0 and last > 0 else "end" if index == last else "inner"
        total += _slot_cost(a, b, where)
    return total


_NO_FIT = float("inf")


@lru_cache(maxsize=1 << 18)
def fit(asked: str, known: str) -> float:
    """How well the spelling ``asked`` reads as the Arabic name ``known``: 0 exactly, WEAK or
    SOFT per unusual vowel, HARD per impossible one; infinite when the consonants differ.
    Arabic against Arabic: 0 when the same after match_key without alefs, doubled letters,
    hamza and articles; HARD when only the long vowels differ (حسن / حسين)."""
    known_readings = readings(known)
    if _is_arabic(clean_text(asked or "")):
        if _arabic_spelling(asked) & _arabic_spelling(known):
            return 0.0
        same = {c for c, _ in readings(asked)} & {c for c, _ in known_readings}
        return HARD if same else _NO_FIT
    best = _NO_FIT
    for latin in readings(asked):
        for arabic in known_readings:
            if latin[0] == arabic[0]:
                best = min(best, _reading_cost(arabic, latin))
    return best


@lru_cache(maxsize=1 << 14)
def _arabic_spelling(text: str) -> frozenset[str]:
    """Arabic spellings of one name that only typing tells apart: match_key, no spaces, hyphens,
    hamza (ء ئ ؤ as their seat), alef inside a word, doubled letters; with and without ال."""
    key = match_key(text).replace("ئ", "ي").replace("ؤ", "و").replace("ء", "")
    words = _AR_LETTERS.findall(key)
    out = set()
    for bare in (False, True):
        parts = []
        for word in words:
            if bare and word.startswith("ال") and len(word) > 3 and word[2] not in "اويع":
                word = word[2:]
            elif bare and word.startswith("ل") and len(word) > 3 and word[1] not in "اويع":
                word = word[1:]
            parts.append(re.sub(r"(.)\1+", r"\1", word))  # before the alefs go: الله, الإله
        joined = "".join(parts)  # عز الدين, عزالدين
        out.add(joined[:1] + joined[1:].replace("ا", ""))
    return frozenset(out)


def _consonant_similarity(asked: str, known: str) -> float:
    return max(
        (Indel.normalized_similarity(a, b) for a, _ in readings(asked) for b, _ in readings(known)),
        default=0.0,
    )


# A spelling fits a name when it costs at most this; it is another name when it does not fit and
# fits another name of the province, or when the consonants are less alike than this.
FITS = SOFT
CLOSE_CONSONANTS = 0.7


# Common Moroccan first names with their sex: a spelling is read against them as well as against
# the province's own names, so that HAMID is not taken for أحمد where no pupil is named حميد.
COMMON_FIRST_NAMES = Path(__file__).resolve().parent.parent / "schemas" / "reference"
COMMON_FIRST_NAMES = COMMON_FIRST_NAMES / "first_names.csv"


@cache
def common_first_names() -> tuple[tuple[str, str], ...]:
    """(Arabic first name, M or F) of schemas/reference/first_names.csv."""
    lines = COMMON_FIRST_NAMES.read_text(encoding="utf-8").splitlines()[1:]
    return tuple((name, sex) for name, sex in (line.rsplit(",", 1) for line in lines if line))


class FirstNames:
    """The first names a province knows (its pupils' and leavers', in Arabic, with their sex), to
    tell whether a spelling designates a pupil's name or another one: HAMID reads as أحمد with a
    short I, but حميد fits it better, so a pupil named أحمد is not taken for a child named HAMID.
    OUSSAMA fits أسامة and أسماء alike: the request's sex decides, and without one (CMR) neither
    name agrees.

    ``agreement`` is remembered per spelling, name and sex; ``fits`` per spelling."""

    def __init__(self, names: Iterable[tuple[str, str | None]], common: bool = True) -> None:
        self._by_consonants: dict[str, set[str]] = defaultdict(set)
        sexes: dict[str, set[str | None]] = defaultdict(set)
        for name, sex in (*names, *(common_first_names() if common else ())):
            if name and _is_arabic(name):
                sexes[name].add(sex)
        for name in sexes:
            for consonants, _ in readings(name):
                self._by_consonants[consonants].add(name)
        # a name's sex when all its pupils have the same one
        self._sex = {name: next(iter(s)) if len(s) == 1 else None for name, s in sexes.items()}
        self._fits: dict[str, dict[str, float]] = {}
        self._agreements: dict[tuple[str, str, str | None], str] = {}

    def fits(self, asked: str) -> dict[str, float]:
        """The province's names ``asked`` reads as (cost ≤ FITS), with their cost."""
        found = self._fits.get(asked)
        if found is None:
            found = {}
            for consonants, _ in readings(asked):
                for name in self._by_consonants.get(consonants, ()):
                    cost = fit(asked, name)
                    if cost <= FITS:
                        found[name] = min(cost, found.get(name, cost))
            self._fits[asked] = found
        return found

    def agreement(self, asked: str, known: str, sex: str | None = None) -> str:
        """AGREE, PART, UNSURE or DIFFER: does the first name ``asked`` (as the fund wrote it,
        for a child of ``sex`` when the fund says) designate the pupil's first name ``known``
        (Arabic, as Massar holds it)?"""
        key = (asked, known, sex)
        found = self._agreements.get(key)
        if found is None:
            found = self._agreements[key] = self._agreement(asked, known, sex)
        return found

    def _agreement(self, asked: str, known: str, sex: str | None) -> str:
        if not asked or not known:
            return UNSURE
        if not _is_arabic(known):  # a register in Latin letters: similarity alone
            similarity = name_similarity(asked, known)
            return AGREE if similarity >= 0.9 else UNSURE if similarity >= 0.7 else DIFFER
        cost = fit(asked, known)
        if cost == _NO_FIT:  # other consonants: another name, or one written in part
            if _in_part(asked, known):
                return PART
            if _consonant_similarity(asked, known) < CLOSE_CONSONANTS:
                return DIFFER
        mine = _arabic_spelling(known)
        others = {
            name: c
            for name, c in self.fits(asked).items()
            if not (_arabic_spelling(name) & mine)
            and (sex is None or self._sex[name] != _other(sex))
        }
        better = min(others.values(), default=_NO_FIT)
        if cost <= FITS:
            if better < cost:
                # another name reads better: exactly (MAHMOUD: محمود, not محمد), or only better
                # (HOUSSINE: rather حسين than حسن)
                return DIFFER if better == 0.0 else UNSURE
            sexes = {self._sex[name] for name, c in others.items() if c == cost}
            if sexes - {None, self._sex.get(known)}:
                return UNSURE  # OUSSAMA reads أسامة as well as أسماء: only the sex tells
            return AGREE
        # the vowels or a consonant do not fit: another name when the spelling is one
        return DIFFER if better <= FITS else UNSURE


def _other(sex: str) -> str:
    return "F" if sex == "M" else "M"


_SEVERAL_WORDS = re.compile(r"\S[\s\-_]+\S")


def _in_part(asked: str, known: str) -> bool:
    """One of the names is a compound whose first word is the other (FATIMA EZZAHRA / فاطمة,
    محمد / MOHAMED AMINE); ABD, ABDEL... are not a name of their own."""
    if not _SEVERAL_WORDS.search(asked) and not _SEVERAL_WORDS.search(known):
        return False
    words_asked = [w for w in re.split(r"[\s\-_]+", clean_text(asked)) if w]
    words_known = [w for w in re.split(r"[\s\-_]+", clean_text(known)) if w]
    if len(words_asked) > 1 and len(words_known) == 1:
        head, other = words_asked[0], known
    elif len(words_known) > 1 and len(words_asked) == 1:
        head, other = words_known[0], asked
    else:
        return False
    if match_key(head) in _ARTICLES or match_key(head) in ("abdel", "abdal"):
        return False
    if _is_arabic(head) == _is_arabic(other):
        return (
            bool(_arabic_spelling(head) & _arabic_spelling(other))
            if _is_arabic(head)
            else (name_similarity(head, other) >= 0.9)
        )
    latin, arabic = (other, head) if _is_arabic(head) else (head, other)
    return fit(latin, arabic) <= FITS
