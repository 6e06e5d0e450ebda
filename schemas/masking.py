"""Personal data masked in text meant for people: log lines, exception messages, dead-letter previews.

``mask_text`` hides NIK and KK numbers, however they are written, and dates of birth, and leaves the rest readable.
``mask_words`` also cuts every word to its first letter, for a name or for text that may hold one. ``mask_payload``
is for bytes whose fields are unknown (a dead letter's raw value): it hides every long number and every word.

A NIK or a KK is 16 digits, written whole or in groups joined by spaces, dots, dashes, slashes or underscores, one
or several ("3171 0648 0885 0001", "317106.480885.0001"). Digits are therefore read as chains: digit groups joined
by any run of those separators. A chain of 16 digits or more keeps its first 4 (province and kota, not personal)
and every other digit is starred, the separators kept. Digits that only touch a NIK in the same chain are starred
with it: hiding a number that was not a NIK is the price of never showing one that was. Shorter chains, such as
kelurahan codes (31.71.06.1001), Kafka positions (topic:3@1234) and times, stay readable.

In free text a date of birth looks like any other date, so every date written day-month-year or year-month-day
(31-08-1980, 31/08/1980, 31.08.1980, 1980-08-31, 31 Agustus 1980) keeps only its year, unless a time of day other
than midnight follows it: that is a timestamp, not a birth date.
"""

from __future__ import annotations

import re

VISIBLE_DIGITS = 4  # of a NIK or KK: province and kota
# White space, . _ / and every kind of dash; control characters and U+FFFD (a byte that was not text) separate
# digits in a payload's bytes as a space does.
_SEPARATOR = r"[\s._/\-\u2010-\u2015\u2212\x00-\x1f\x7f\ufffd]"
_DIGIT = re.compile(r"\d")
_ALPHANUMERIC = re.compile(r"[^\W_]")
_LETTERS = re.compile(r"[^\W\d_]+")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def _digit_chains(min_digits: int) -> re.Pattern[str]:
    """Chains of at least ``min_digits`` digits. A match starts at its chain's first digit (the leftmost start that
    can match) and runs to its last (greedy), so the digits kept are the chain's first ones."""
    return re.compile(rf"\d(?:{_SEPARATOR}*\d){{{min_digits - 1},}}")


_IDENTITY_NUMBER = _digit_chains(16)
_LONG_NUMBER = _digit_chains(8)  # in a payload: phone, NISN, account numbers and dates written without separators

_CHAIN_CHARACTERS = re.compile(rf"(?:\d|{_SEPARATOR})*")
SCAN_CHARS = 4096  # how far past its cut mask_payload_start reads to find where a digit chain ends
# Past a chain, enough to read the rest of a date written with its month's name, and the time after it: the
# patterns of _DATE repeat nothing else without a bound.
_CONTEXT_CHARS = 32

_YEAR = r"(?:19|20)\d\d"
_MONTH = (
    r"(?:jan(?:uari|uary)?|feb(?:ruari|ruary)?|mar(?:et|ch)?|apr(?:il)?|mei|may|jun[ei]?|jul[iy]?"
    r"|ag(?:ustus|[ust])|aug(?:ust)?|sep(?:t|tember)?|o[ck]t(?:ober)?|no[pv](?:ember)?|de[sc](?:ember)?)"
)
_DATE = re.compile(
    r"(?<!\d)(?:"
    rf"(?P<year_first>{_YEAR})(?P<sep1>[-/.])\d{{1,2}}(?P=sep1)\d{{1,2}}"
    rf"|\d{{1,2}}(?P<sep2>[-/.])\d{{1,2}}(?P=sep2)(?P<year_last>{_YEAR})"
    rf"|\d{{1,2}}[\s./-]{{0,3}}{_MONTH}(?![^\W\d_])\.?[\s.,/-]{{0,3}}(?P<year_named>{_YEAR})"
    r")(?!\d)(?!(?:T|\s{1,3})(?!00:00)\d{1,2}:\d\d)",
    re.IGNORECASE,
)
_YEAR_GROUPS = ("year_first", "year_last", "year_named")


def mask_identity_numbers(text: str) -> str:
    """Every NIK and KK number in ``text``, however written, with only its first 4 digits left."""
    return _IDENTITY_NUMBER.sub(_keep_first_digits, text)


def mask_text(text: str) -> str:
    """``text`` with every NIK and KK number and every date of birth masked; the rest as it was."""
    if _DIGIT.search(text) is None:  # most words of most log lines: nothing to look for
        return text
    # Numbers first: a date read inside a NIK's groups would star some of its digits and cut the chain in two.
    return _DATE.sub(_keep_year, mask_identity_numbers(text))


def mask_words(text: str) -> str:
    """``mask_text``, and every word cut to its first letter: 'SITI RAHMAWATI' -> 'S*** R********'."""
    return _LETTERS.sub(_initial, mask_text(text))


def mask_payload(text: str) -> str:
    """Text of unknown meaning, such as a payload's bytes: every character but printable ASCII as '.', then
    ``mask_words``, and every chain of 8 digits or more cut to its first 4. What is left is the shape: lengths,
    punctuation, short numbers, the order of the parts."""
    # NIKs first, while every digit is still there (a non-ASCII digit is about to become '.'). Then ASCII only: a
    # binary number's bytes can read as a non-ASCII letter, which would be kept as an initial.
    text = _NOT_PRINTABLE_ASCII.sub(".", mask_text(text))
    return _LETTERS.sub(_initial, _LONG_NUMBER.sub(_keep_first_digits, text))


def mask_payload_start(text: str, length: int) -> str:
    """The first ``length`` characters of ``mask_payload(text)``, masking only as much of ``text`` as decides them
    (a payload can be a megabyte): up to the end of the digit chain at the cut, and a little further. A chain that
    runs on for more than ``SCAN_CHARS`` past the cut is taken to be as long as a NIK, which hides more of it,
    never less."""
    window = length + SCAN_CHARS
    chain_at_cut = _CHAIN_CHARACTERS.match(text, length, window)  # matches always, if only the empty string
    end = chain_at_cut.end() if chain_at_cut else length
    if end == window and len(text) > window:
        return mask_payload(text[:window] + "0" * 16)[:length]
    return mask_payload(text[: end + _CONTEXT_CHARS])[:length]


def star_after_first_digits(text: str) -> str:
    """Every letter and digit after the first 4 digits starred, separators kept: '3171 0648 0885 0001' ->
    '3171 **** **** ****'. For a value known to be an identity or phone number, whatever its length."""
    cut = _end_of_visible_digits(text)
    return text[:cut] + _ALPHANUMERIC.sub("*", text[cut:])


def _keep_first_digits(chain: re.Match[str]) -> str:
    text = chain.group(0)
    cut = _end_of_visible_digits(text)
    return text[:cut] + _DIGIT.sub("*", text[cut:])


def _end_of_visible_digits(text: str) -> int:
    """Where the first 4 digits of ``text`` end; 0 when it has fewer, so that none is shown."""
    seen = 0
    for index, char in enumerate(text):
        seen += char.isdecimal()
        if seen == VISIBLE_DIGITS:
            return index + 1
    return 0


def _keep_year(date: re.Match[str]) -> str:
    year = next(name for name in _YEAR_GROUPS if date.group(name) is not None)
    start, end = date.start(year) - date.start(), date.end(year) - date.start()
    text = date.group(0)
    return _ALPHANUMERIC.sub("*", text[:start]) + text[start:end] + _ALPHANUMERIC.sub("*", text[end:])


def _initial(word: re.Match[str]) -> str:
    return word.group(0)[0] + "*" * (len(word.group(0)) - 1)
