"""Raw config strings → typed values, checked against their `Setting` record; every problem is
collected (never raised one at a time) so the user sees them all in one `ConfigError`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from components.config.settings import MAX_VALUE, NAMESPACE, PAIR_FORM, SETTINGS_BY_KEY, Setting

ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# Words that reach nginx or systemd unquoted: no quoting makes other characters safe there, so
# they are refused. No leading '-' or '~' (systemd reads a leading '-' as "ignore failure" /
# "optional"), no '%' specifiers, no '$'.
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9/][A-Za-z0-9._~/:@+=,-]{0,254}$")
PLAIN_FORM = ("at most 255 letters, digits and . _ ~ / : @ + = , -, not starting with - or ~")


class ConfigError(pulumi.RunError):
    """Every configuration problem at once; a RunError so Pulumi prints it without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} configuration problem(s):\n{lines}")


def shown(value: Any) -> str:
    """A value as a message quotes it: repr, cut to 80 characters."""
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def plain_word_problem(value: str, key: str, expected: str) -> str | None:
    """Why `value` cannot reach nginx/systemd unquoted as `key`, or None when it can."""
    if _PLAIN_WORD.match(value):
        return None
    return f"{NAMESPACE}:{key} = {shown(value)}: expected {expected} ({PLAIN_FORM})"


class Reader:
    """Reads each key by its record: a bad value is recorded as a problem and the record's
    default (a bad shaped string: the value itself) is returned, so parsing goes on."""

    def __init__(self, raw: Mapping[str, str | None]):
        self.raw = raw
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def bad(self, key: str, value: Any, expected: str) -> None:
        full = f"{NAMESPACE}:{key}" if ":" not in key else key
        setting = SETTINGS_BY_KEY.get(key)
        quoted = "(value hidden)" if setting and setting.secret else shown(value)
        self.problem(f"{full} = {quoted}: expected {expected}")

    def _raw(self, setting: Setting) -> str | None:
        return self.raw.get(setting.full_key)

    def text(self, key: str) -> str:
        """A string setting: trimmed, then checked against its choices or shape."""
        st = SETTINGS_BY_KEY[key]
        raw = self._raw(st)
        value = st.default if raw is None else raw
        if len(value) > MAX_VALUE:
            self.bad(key, value, f"at most {MAX_VALUE} characters")
            return st.default
        value = value.strip()
        if st.choices:
            if value not in st.choices:
                self.bad(key, value, st.expected)
                return st.default
        elif st.valid and not (st.empty_ok and value == ""):
            if not st.valid(value):
                self.bad(key, value, st.expected)
            elif st.plain and (problem := plain_word_problem(value, key, st.form)):
                self.problem(problem)
        return value

    def number(self, key: str) -> int:
        st = SETTINGS_BY_KEY[key]
        raw = self._raw(st)
        if raw is None:
            return st.default
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value is None or not st.allows(value):
            self.bad(key, raw, st.expected)
            return st.default
        return value

    def flag(self, key: str) -> bool:
        st = SETTINGS_BY_KEY[key]
        raw = self._raw(st)
        if raw is None:
            return st.default
        lowered = raw.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        self.bad(key, raw, "true or false")
        return st.default

    def items(self, key: str) -> list[str]:
        """An array setting: a JSON list of strings, each trimmed."""
        st = SETTINGS_BY_KEY[key]
        raw = self._raw(st)
        if raw is None:
            return list(st.default)
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.bad(key, raw, "a list of strings, e.g. ['a', 'b'] in the stack file")
            return []
        return [v.strip() for v in value]

    def pairs(self, key: str, check_value: Callable[[str], bool], expected: str) -> dict[str, str]:
        """KEY=value list → dict; keys must be env-var names and unique."""
        out: dict[str, str] = {}
        for item in self.items(key):
            name, sep, value = item.partition("=")
            if not sep or not ENV_KEY.match(name):
                self.bad(key, item, f"{PAIR_FORM} ({expected})")
            elif name in out:
                self.bad(key, item, f"each KEY once; {name} is given twice")
            elif not check_value(value):
                self.bad(key, item, expected)
            else:
                out[name] = value
        return out
