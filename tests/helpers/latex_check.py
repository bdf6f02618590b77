"""What would stop pdflatex on a generated LaTeX text."""
from __future__ import annotations

import re
from pathlib import Path
INCLUDED = re.compile(r"\\(?:input|includegraphics)(?:\[[^\]]*\])?\{([^}]*)\}")


def latex_problems(text: str, root: Path, tabular: bool = False) -> list[str]:
    """What would stop pdflatex on `text` (paths relative to `root`): a missing \\input or
    \\includegraphics target, unbalanced braces, an unescaped _ % # (or & outside a tabular),
    a character outside ASCII."""
    problems = [f"missing {path}" for path in INCLUDED.findall(text) if not (root / path).is_file()]
    text = re.sub(r"\\begin\{verbatim\}.*?\\end\{verbatim\}", "", INCLUDED.sub("", text), flags=re.DOTALL)
    text = re.sub(r"\$[^$]*\$", "", text.replace(r"\$", ""))  # math
    depth = 0
    for char in re.sub(r"\\[{}]", "", text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            problems.append("a } closes nothing")
            depth = 0
    problems += ["unbalanced {"] if depth else []
    specials = "_%#" if tabular else "_%#&"
    problems += [f"unescaped {match[0]!r} in {text[max(match.start() - 30, 0):match.end() + 30]!r}"
                 for match in re.finditer(rf"(?<!\\)[{specials}]", text)]
    problems += [f"non-ASCII {char!r}" for char in sorted(set(text)) if ord(char) > 127]
    return problems
