"""
A value that must never be shown: tokens, keys, passwords.
"""

from __future__ import annotations


class Secret:
    """
    A credential whose C{repr()} and C{str()} never show its value.

    Call L{reveal} at the single place the value must leave the process.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret is not picklable")
