"""`AnyText`, the observation and action space: any string up to a length, and the shared-memory
support that lets Gymnasium's async vector env carry it between processes.

Each env of a vector env gets one slot of shared memory: an 8-byte length, then the text as
UTF-8. Gymnasium reads a space's shared memory once, when the vector env starts, so
`read_from_shared_memory` returns a live view (`SharedTexts`) that decodes the current texts
whenever it is read or copied.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils.shared_memory import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

_PRINTABLE = "".join(chr(c) for c in range(32, 127)) + "\n"
_LENGTH = 8  # bytes of each slot's length header


class AnyText(spaces.Text):
    """A text space holding any string up to `max_length`; samples printable ASCII."""

    def __init__(self, max_length: int, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(max_length, min_length=0, charset=_PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AnyText) and other.max_length == self.max_length

    @property
    def slot_bytes(self) -> int:
        """Bytes of shared memory one text needs: its length, then at most 4 bytes a char."""
        return _LENGTH + 4 * self.max_length


class SharedTexts(Sequence[str]):
    """The texts in a block of shared memory, decoded when read; a copy is a plain tuple."""

    def __init__(self, space: AnyText, memory: Any, n: int) -> None:
        self.space, self.memory, self.n = space, memory, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        if not -self.n <= index < self.n:
            raise IndexError(index)
        view = memoryview(self.memory).cast("B")
        start = (index % self.n) * self.space.slot_bytes
        size = int.from_bytes(view[start : start + _LENGTH], "little")
        return bytes(view[start + _LENGTH : start + _LENGTH + size]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(self.n))

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: Any) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


@create_shared_memory.register(AnyText)
def _create(space: AnyText, n: int = 1, ctx: Any = multiprocessing) -> Any:
    return ctx.RawArray("B", n * space.slot_bytes)


@read_from_shared_memory.register(AnyText)
def _read(space: AnyText, memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(space, memory, n)


@write_to_shared_memory.register(AnyText)
def _write(space: AnyText, index: int, value: str, memory: Any) -> None:
    data = value.encode("utf-8")
    if len(data) > space.slot_bytes - _LENGTH:
        raise ValueError(f"a text of {len(data)} bytes does not fit {space}")
    view = memoryview(memory).cast("B")
    start = index * space.slot_bytes
    view[start : start + _LENGTH] = len(data).to_bytes(_LENGTH, "little")
    view[start + _LENGTH : start + _LENGTH + len(data)] = data
