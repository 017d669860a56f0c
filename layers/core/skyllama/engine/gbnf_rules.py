"""GBNF building blocks in pure Python: bounded repetitions, and a JSON schema ``pattern``.

Part of the port of llama.cpp's ``json_schema_to_grammar.py`` (MIT; see ``engine/schema_gbnf.py``
for the attribution): ``_build_repetition``, and ``SchemaConverter._visit_pattern`` with
``dotall`` and ``raw_pattern`` off, as llama-cpp-python calls it. Unsupported: lookarounds
and non-greedy modifiers. ``{m,n}`` quantifiers become sub-rules; ``engine.grammar`` bounds
their counts before this runs.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby

DOT = "[^\\x0A\\x0D]"
NON_LITERAL_SET = set("|.()[]{}*+?")
ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS = set("[]()|{}*+?")
# Regex escapes GBNF has no literal for: classes, and the characters they stand for in a class.
CLASS_ESCAPES = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " \\t\\n\\r\\x0B\\x0C"}
NEGATED_CLASS_ESCAPES = {"D": CLASS_ESCAPES["d"], "W": CLASS_ESCAPES["w"], "S": CLASS_ESCAPES["s"]}
CLASS_LETTERS = (*CLASS_ESCAPES, *NEGATED_CLASS_ESCAPES)
GBNF_ESCAPES = set("tnr")  # what llama.cpp's grammar parser reads after a backslash, besides \\ \" \[ \] \x \u
HEX_ESCAPES = {"x": 2, "u": 4}
AddRule = Callable[[str, str], str]
Piece = tuple[str, bool]  # a GBNF fragment, and whether it is a literal (to merge neighbours)


def build_repetition(item: str, min_items: int, max_items: int | None, separator: str | None = None,
                     item_is_literal: bool = False) -> str:
    """``item`` repeated ``min_items`` to ``max_items`` times (``None`` = unbounded)."""
    if not separator:
        if min_items == 0 and max_items == 1:
            return f"{item}?"
        if min_items == 1 and max_items is None:
            return f"{item}+"
    result = ""
    if min_items > 0:
        if item_is_literal and separator is None:
            result = '"' + (item[1:-1] * min_items) + '"'
        else:
            result = (f" {separator} " if separator else " ").join([item] * min_items)

    def optional(up_to_n: int, prefix_with_sep: bool = False) -> str:
        # n=4, no sep: '(a (a (a (a)?)?)?)?'; sep=',' and prefix: '("," a ("," a ...)?)?'
        content = f"{separator} {item}" if prefix_with_sep and separator else item
        if up_to_n == 0:
            return ""
        if up_to_n == 1:
            return f"({content})?"
        if separator and not prefix_with_sep:
            return f"({content} {optional(up_to_n - 1, prefix_with_sep=True)})?"
        return (f"({content} " * up_to_n).rstrip() + (")?" * up_to_n)

    if min_items > 0 and max_items != min_items:
        result += " "
    if max_items is not None:
        result += optional(max_items - min_items, prefix_with_sep=min_items > 0)
    else:
        operator = f"({separator + ' ' if separator else ''}{item})"
        if min_items == 0 and separator:
            result = f"({item} {operator}*)?"
        else:
            result += f"{operator}*"
    return result


def _to_rule(piece: Piece) -> str:
    text, is_literal = piece
    return '"' + text + '"' if is_literal else text


def _hex(char: str) -> str:
    return f"\\x{ord(char):02X}" if ord(char) < 0x100 else f"\\u{ord(char):04X}"


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """GBNF for the regex escape at ``pattern[i]`` (a backslash), and how many characters it took.

    Upstream copies most escapes as they are, and llama.cpp's grammar parser refuses ``\\d``,
    ``\\.`` or ``\\/``: a NULL grammar that crashed the engine. Here ``\\d``/``\\w``/``\\s`` become
    character classes, escaped punctuation the character itself, and anything else is a 400.
    """
    if i + 1 >= len(pattern):
        raise ValueError(f"Trailing backslash in /{pattern}/")
    char = pattern[i + 1]
    if char in CLASS_ESCAPES:
        return (CLASS_ESCAPES[char] if in_class else f"[{CLASS_ESCAPES[char]}]"), 2
    if char in NEGATED_CLASS_ESCAPES and not in_class:
        return f"[^{NEGATED_CLASS_ESCAPES[char]}]", 2
    if char in GBNF_ESCAPES:
        return "\\" + char, 2
    if char in HEX_ESCAPES:
        digits = pattern[i + 2: i + 2 + HEX_ESCAPES[char]]
        if len(digits) != HEX_ESCAPES[char] or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise ValueError(f"Invalid escape \\{char}{digits} in /{pattern}/")
        return "\\" + char + digits, 2 + len(digits)
    if char.isalnum() or char.isspace():
        raise ValueError(f"Unsupported escape \\{char} in /{pattern}/")
    if in_class:
        return _hex(char), 2
    return ('\\' + char if char in '"\\' else char), 2


def _quantifier(braces: str, pattern: str) -> tuple[int, int | None]:
    nums = [s.strip() for s in braces[1:-1].split(",")]
    try:
        if len(nums) == 1:
            return int(nums[0]), int(nums[0])
        if len(nums) != 2:
            raise ValueError
        return (int(nums[0]) if nums[0] else 0), (int(nums[1]) if nums[1] else None)
    except ValueError:
        raise ValueError(f"Invalid quantifier {braces} in /{pattern}/") from None


def pattern_rule(add_rule: AddRule, pattern: str, name: str) -> str:
    """Add the rule for a JSON string matching ``pattern`` (``^...$``); returns its name."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError('Pattern must start with "^" and end with "$"')
    pattern = pattern[1:-1]
    length = len(pattern)
    sub_rule_ids: dict[str, str] = {}
    i = 0

    def transform() -> Piece:
        """Parse one sequence from index ``i`` (advancing it) up to a closing ``)`` or the end."""
        nonlocal i
        start = i
        seq: list[Piece] = []

        def join_seq() -> Piece:
            merged: list[Piece] = []
            for is_literal, group in groupby(seq, lambda x: x[1]):
                if is_literal:
                    merged.append(("".join(x[0] for x in group), True))
                else:
                    merged.extend(group)
            if len(merged) == 1:
                return merged[0]
            return " ".join(_to_rule(x) for x in seq), False

        while i < length:
            c = pattern[i]
            if c == ".":
                seq.append((add_rule("dot", DOT), False))
                i += 1
            elif c == "(":
                i += 1
                if i < length and pattern[i] == "?":
                    raise ValueError(f'Unsupported pattern syntax "{pattern[i]}" at index {i} of /{pattern}/')
                seq.append((f"({_to_rule(transform())})", False))
            elif c == ")":
                i += 1
                if not (start > 0 and pattern[start - 1] == "("):
                    raise ValueError(f"Unbalanced parentheses in /{pattern}/")
                return join_seq()
            elif c == "[":
                brackets = c
                i += 1
                while i < length and pattern[i] != "]":
                    if pattern[i] == "\\":
                        text, step = _escape(pattern, i, in_class=True)
                    else:
                        text, step = pattern[i], 1
                    brackets += text
                    i += step
                if i >= length:
                    raise ValueError(f"Unbalanced square brackets in /{pattern}/")
                seq.append((brackets + "]", False))
                i += 1
            elif c == "|":
                seq.append(("|", False))
                i += 1
            elif c in ("*", "+", "?"):
                if not seq or (not seq[-1][1] and seq[-1][0].endswith(("*", "+", "?"))):
                    raise ValueError(f"Nothing to repeat (or a lazy quantifier) at index {i} of /{pattern}/")
                seq[-1] = (_to_rule(seq[-1]) + c, False)
                i += 1
            elif c == "{":
                end = pattern.find("}", i)
                if end < 0:
                    raise ValueError(f"Unbalanced curly brackets in /{pattern}/")
                braces = pattern[i: end + 1]
                i = end + 1
                min_times, max_times = _quantifier(braces, pattern)
                if not seq:
                    raise ValueError(f"Nothing to repeat before {braces} in /{pattern}/")
                sub, sub_is_literal = seq[-1]
                if not sub_is_literal:
                    rule_id = sub_rule_ids.get(sub)
                    if rule_id is None:
                        rule_id = add_rule(f"{name}-{len(sub_rule_ids) + 1}", sub)
                        sub_rule_ids[sub] = rule_id
                    sub = rule_id
                seq[-1] = (build_repetition(f'"{sub}"' if sub_is_literal else sub, min_times, max_times,
                                            item_is_literal=sub_is_literal), False)
            elif c == "\\" and pattern[i + 1: i + 2] in CLASS_LETTERS:
                seq.append((_escape(pattern, i, in_class=False)[0], False))
                i += 2
            else:
                literal = ""
                while i < length:
                    if pattern[i] == "\\":
                        following = pattern[i + 1: i + 2]
                        if following in CLASS_LETTERS:
                            break
                        text, step = _escape(pattern, i, in_class=False)
                        if literal and pattern[i + step: i + step + 1] in ("*", "+", "?", "{"):
                            break  # the quantifier applies to this character alone
                        literal += following if following in ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS else text
                        i += step
                    elif pattern[i] == '"':
                        literal += '\\"'
                        i += 1
                    elif pattern[i] not in NON_LITERAL_SET and (
                            i == length - 1 or literal == "" or pattern[i + 1] == "."
                            or pattern[i + 1] not in NON_LITERAL_SET):
                        literal += pattern[i]
                        i += 1
                    else:
                        break
                if literal:
                    seq.append((literal, True))
                else:  # a lone character the loop above cannot take (e.g. "]" or "}")
                    raise ValueError(f"Unsupported pattern syntax at index {i} of /{pattern}/")
        return join_seq()

    return add_rule(name, '"\\"" ' + _to_rule(transform()) + ' "\\"" space')
