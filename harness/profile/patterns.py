"""User regular expressions, bounded: a profile's rule patterns (and audit's ``--key text:REGEX``) run on RE2.

A pattern comes from the user, the text it is searched over from the service (a page's text, a
file name, a body). Python's ``re`` backtracks, so a pattern with nested quantifiers such as
``(a+)+$`` over a long text never finishes. Here a pattern is compiled by RE2 (``google-re2``),
which never backtracks: a search takes time linear in the text, bounded by three limits:

* ``MAX_TEXT_CHARS``: a pattern is searched over at most the first 1,000,000 characters of a text
  (about 1 MB); the rest is not searched, and a ``$`` means the end of the part searched.
* ``MAX_PROGRAM_SIZE``: a pattern compiles to at most 10,000 RE2 instructions; a bigger one is refused.
  (What a search costs is at most the text's length times this; the worst pattern measured, 6,000
  instructions of repeated ``.*`` groups, took 14 s over 1,000,000 characters.)
* ``MAX_MEMORY``: RE2's memory for a pattern (its program and its matching cache), 8 MiB.

RE2 has no backtracking constructs, so a pattern using one is refused when it is compiled (the
profile is refused at load, exit 4): backreferences (``\\1``, ``(?P=name)``), lookarounds (``(?=``,
``(?!``, ``(?<=``, ``(?<!``), atomic groups, conditionals, possessive repeats (``a++``), ``\\Z``
(write ``\\z`` or ``$``), repeat counts over 1000, ``(?x)``/``(?a)``/``(?u)`` flags, ``(?#...)``
comments, ``\\u``/``\\U``/``\\N`` escapes (write ``\\x{...}``) and ``{,n}`` (write ``{0,n}``).
What else differs from ``re``: ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII only (as with ``re.ASCII``),
and RE2 also accepts ``\\z``, ``\\pL`` and ``[[:alpha:]]``. As in ``re``, ``$`` matches before one
final newline too.

``compile_pattern(text)`` gives a ``Pattern`` (cached) or raises ``PatternError`` (a ``ValueError``,
one line); ``first_group(pattern, text)`` is what a rule extracts: the group named ``key``, else
group 1, else the whole match (None when nothing matched or the group did not take part).
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import re2

__all__ = ["MAX_MEMORY", "MAX_PROGRAM_SIZE", "MAX_TEXT_CHARS", "Pattern", "PatternError", "compile_pattern",
           "first_group"]

MAX_TEXT_CHARS = 1_000_000  # characters of a text a pattern is searched over (the rest is not searched)
MAX_PROGRAM_SIZE = 10_000  # RE2 instructions a pattern may compile to
MAX_MEMORY = 8 << 20  # bytes RE2 may use for one pattern (RE2's own default)


class PatternError(ValueError):
    """A pattern that cannot be used: not a regular expression, or not one the bounded engine runs."""


class Pattern:
    """A compiled, bounded pattern. ``pattern``, ``groups``, ``groupindex`` and ``search`` as in ``re``."""

    __slots__ = ("_compiled", "_end_anchor", "pattern")

    def __init__(self, pattern: str, compiled: Any, end_anchor: bool) -> None:
        self.pattern = pattern
        self._compiled = compiled
        self._end_anchor = end_anchor

    @property
    def groups(self) -> int:
        return int(self._compiled.groups)

    @property
    def groupindex(self) -> dict[str, int]:
        return dict(self._compiled.groupindex)

    def searched(self, text: str) -> str:
        """The part of ``text`` a search looks at: its first MAX_TEXT_CHARS characters (without one final
        newline when the pattern has a ``$``, which in ``re`` matches before it)."""
        part = text[:MAX_TEXT_CHARS]
        if self._end_anchor and part.endswith("\n"):
            part = part[:-1]
        return part

    def search(self, text: str) -> Any:
        """The first match in ``searched(text)`` (an RE2 match: ``group``, ``groups``, ``span``), or None."""
        part = self.searched(text)
        try:
            return self._compiled.search(part)
        except UnicodeEncodeError:  # a lone surrogate (an undecodable file name): one "?" each, same offsets
            return self._compiled.search(part.encode("utf-8", "replace").decode("utf-8"))

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return compile_pattern, (self.pattern,)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


def first_group(pattern: Pattern | str, text: str) -> str | None:
    """What a rule extracts from ``text``: the group named ``key``, else group 1, else the whole match."""
    compiled = pattern if isinstance(pattern, Pattern) else compile_pattern(pattern)
    match = compiled.search(text)
    if match is None:
        return None
    index = compiled.groupindex.get("key", 1) if compiled.groups else 0
    start, end = match.span(index)
    return None if start < 0 else text[start:end]  # from the text itself (a surrogate stays as it was)


@functools.lru_cache(maxsize=512)
def compile_pattern(text: str) -> Pattern:
    """``text`` compiled by RE2 within the bounds above; PatternError (one line) says why it cannot be."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refusal on stderr
    options.max_mem = MAX_MEMORY
    end_anchor, open_repeat = _scan(text)
    try:
        compiled = re2.compile(text, options)
    except re2.error as exc:
        reason = _text(exc)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                re.compile(text)
        except re.error as bad:
            raise PatternError(f"not a regular expression: {bad}") from None
        if "pattern too large" in reason:
            raise PatternError(f"too large (a bounded pattern fits in {MAX_MEMORY >> 20} MiB: {reason})") from None
        raise PatternError(f"not supported (a bounded pattern cannot use {_what(reason)}: {reason})") from None
    if open_repeat:
        raise PatternError(f"not supported (a bounded pattern reads {open_repeat} as literal text: write "
                           f"{{0,{open_repeat[2:]})")
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise PatternError(f"too large (it compiles to {compiled.programsize} steps; a bounded pattern has at most "
                           f"{MAX_PROGRAM_SIZE})")
    return Pattern(text, compiled, end_anchor)


def _text(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    return (reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)).replace("\n", " ")


_WHAT = [  # RE2's refusal -> what the pattern used that a bounded engine cannot run
    (r"invalid escape sequence: \\[1-9]|invalid perl operator: \(\?P[=>]?$", "backreferences"),
    (r"invalid perl operator: \(\?<?[=!]", "lookarounds"),
    (r"invalid perl operator: \(\?>", "atomic groups"),
    (r"invalid perl operator: \(\?\(", "conditionals"),
    (r"bad repetition operator: .\+", "possessive repeats (a++)"),
    (r"invalid escape sequence: \\Z", r"\Z (write \z, or $)"),
    (r"invalid repetition size", "repeat counts over 1000"),
    (r"invalid perl operator: \(\?#", "(?#...) comments"),
    (r"invalid perl operator: \(\?", "this flag (RE2 has i, m, s and U)"),
    (r"invalid escape sequence: \\[uUN]", r"\u, \U or \N escapes (write \x{...})"),
]


def _what(reason: str) -> str:
    for pattern, what in _WHAT:
        if re.search(pattern, reason):
            return what
    return "backreferences or lookarounds"


def _scan(text: str) -> tuple[bool, str | None]:
    """Whether the pattern has a ``$`` (outside a character class), and a ``{,n}`` in it (RE2 reads it as text)."""
    end_anchor, open_repeat = False, None
    i, n, in_class, class_start = 0, len(text), False, 0
    while i < n:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            if char == "[" and text.startswith(":", i + 1) and (close := text.find(":]", i + 2)) != -1:
                i = close + 2
                continue
            if char == "]" and i > class_start:
                in_class = False
            i += 1
            continue
        if char == "[":
            in_class = True
            i += 2 if text.startswith("^", i + 1) else 1
            class_start = i  # a "]" right here is a literal
            continue
        if char == "$":
            end_anchor = True
        elif char == "{" and open_repeat is None and (found := re.match(r"\{,(\d+)\}", text[i:i + 12])):
            open_repeat = found.group(0)
        i += 1
    return end_anchor, open_repeat
