"""Applies the README's "How to add a new resource" steps to a copy of the project.

Each step is an HTML comment followed by a fenced code block:

    <!-- guide: new PATH -->
    <!-- guide: in PATH, after the line "PREFIX" -->
    <!-- guide: in PATH, before the line "PREFIX" -->
    <!-- guide: in PATH, replace the line "PREFIX" -->
    <!-- guide: in PATH, import into the line "PREFIX" -->
    <!-- guide: in PATH, at the end -->

"import into" adds the block's names to a ``from … import a, b`` line (or to its
parenthesised list, one name a line), in order, as a reader adds one: the other names
the line holds (another resource's) stay.

A line matches when it starts with PREFIX, and exactly one line must match: a guide
whose anchors drifted from the code fails loudly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STEP = re.compile(r"<!-- guide: (?P<spec>.+?) -->\s*\n```[a-z]*\n(?P<code>.*?)\n```", re.S)
NEW = re.compile(r"new (?P<path>\S+)")
EDIT = re.compile(
    r"in (?P<path>\S+), (?:(?P<where>after|before|replace|import into) the line"
    r' "(?P<anchor>.+)"|at the end)'
)


@dataclass(frozen=True)
class Step:
    spec: str
    code: str

    def apply(self, root: Path) -> None:
        if found := NEW.fullmatch(self.spec):
            target = root / found["path"]
            if target.exists():
                raise AssertionError(f"guide step {self.spec!r}: the file already exists")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.code + "\n")
            return
        found = EDIT.fullmatch(self.spec)
        if found is None:
            raise AssertionError(f"guide step {self.spec!r} is not understood")
        target = root / found["path"]
        lines = target.read_text().splitlines()
        if found["where"] is None:
            lines.extend(self.code.splitlines())
        else:
            hits = [i for i, line in enumerate(lines) if line.startswith(found["anchor"])]
            if len(hits) != 1:
                raise AssertionError(
                    f"guide step {self.spec!r}: {len(hits)} lines match, expected exactly 1"
                )
            at = hits[0]
            new = self.code.splitlines()
            if found["where"] == "after":
                lines[at + 1 : at + 1] = new
            elif found["where"] == "before":
                lines[at:at] = new
            elif found["where"] == "import into":
                head, names = lines[at].split(" import ", 1)
                end = at
                if names == "(":  # a parenthesised list, one name a line
                    end = lines.index(")", at)
                    names = ", ".join(line.strip().rstrip(",") for line in lines[at + 1 : end])
                merged = sorted({*names.split(", "), *self.code.split()})
                if end == at:
                    lines[at] = f"{head} import {', '.join(merged)}"
                else:
                    lines[at + 1 : end] = [f"    {name}," for name in merged]
            else:
                lines[at : at + 1] = new
        target.write_text("\n".join(lines) + "\n")


def steps(readme: str) -> list[Step]:
    return [Step(m["spec"].strip(), m["code"]) for m in STEP.finditer(readme)]
