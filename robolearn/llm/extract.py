"""Pulling policy programs out of LLM replies: fenced code blocks that define ``policy``."""

from __future__ import annotations

import ast
import re

from robolearn.errors import UserError

# ```python ... ``` (also ```py, ```python3 or a bare ```); the closing fence may be missing at the very
# end of a truncated reply, which is then not a complete program and is left to the checker.
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE)
_DEFINES_POLICY = re.compile(r"^def\s+policy\s*\(", re.MULTILINE)


class NoCodeBlockError(UserError):
    """A reply without any fenced code block that defines ``policy``."""


def code_blocks(reply: str) -> list[str]:
    """Every fenced code block in a reply, in order, without the fences."""
    return [block.strip("\n") for block in _FENCE.findall(reply) if block.strip()]


def extract_programs(reply: str) -> list[str]:
    """The code blocks of a reply that define a top-level ``policy``; NoCodeBlockError when there are none."""
    blocks = code_blocks(reply)
    programs = [strip_main_guard(block) + "\n" for block in blocks if _DEFINES_POLICY.search(block)]
    if not programs:
        found = (
            f"{len(blocks)} code block(s), none defining 'def policy(obs)'"
            if blocks
            else "no fenced code block"
        )
        raise NoCodeBlockError(f"the reply has {found}")
    return programs


def strip_main_guard(program: str) -> str:
    """Drop top-level ``if __name__ == "__main__":`` blocks: models add demo harnesses the checker would reject."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return program  # the checker reports it with its line
    lines = program.splitlines()
    for node in reversed(tree.body):
        if isinstance(node, ast.If) and _is_main_guard(node.test) and node.end_lineno is not None:
            del lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(lines).rstrip("\n")


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )
