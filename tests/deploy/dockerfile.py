"""A Dockerfile read into stages of instructions: enough to check what the image promises.

Comments and blank lines are dropped, continuation lines joined; each instruction is its
keyword (upper case) and its arguments as written. Parser directives and heredocs are not used
by the project's Dockerfile and are not understood.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def words(self) -> list[str]:
        """The arguments as a list: JSON form (``["a", "b"]``) or shell words."""
        text = self.args.strip()
        if text.startswith("["):
            words = json.loads(text)
            assert isinstance(words, list)
            return [str(w) for w in words]
        return shlex.split(text)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment inside a continued instruction is skipped too, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, args = whole.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def stages(path: Path) -> list[Stage]:
    """The build stages of ``path``, in order; the last one is the image."""
    out: list[Stage] = []
    for instruction in instructions(path.read_text()):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            out.append(Stage(words[0], name))
        else:
            assert out, f"{instruction.keyword} before the first FROM"
            out[-1].instructions.append(instruction)
    return out


def key_values(instruction: Instruction) -> dict[str, str]:
    """``LABEL``/``ENV`` pairs: ``a=1 b="two words"``."""
    pairs = {}
    for word in shlex.split(instruction.args):
        key, sep, value = word.partition("=")
        assert sep, f"{instruction.keyword} {instruction.args!r}: {word!r} is not KEY=VALUE"
        pairs[key] = value
    return pairs
