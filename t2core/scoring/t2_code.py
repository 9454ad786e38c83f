"""t2's program builder (kind `code`): the program an output stands for, judged in the sandbox.

The code is the output's first fenced block that defines a function (else the longest block,
else the whole output). A HumanEval answer either continues the stub's body (the prompt goes
first) or restates the function: then everything the prompt defines besides the target — its
imports and its helper functions (HumanEval/10 `is_palindrome`, /32 `poly`, /38 `encode_cyclic`,
/50 `encode_shift`) — goes first, so the answer can call them, and the answer's own definitions
come after and win. MBPP's test imports (`setup`) go before either.
"""

from __future__ import annotations

import ast
import re

from t2core.scoring.base import CodeItem, register_judge


def extract_code(text: str) -> str:
    blocks = re.findall(r"```(?:[Pp]ython3?|py)?[ \t]*\n(.*?)```", text, flags=re.DOTALL)
    if blocks:
        return max(blocks, key=lambda b: ("def " in b, len(b)))
    m = re.search(r"```(?:[Pp]ython3?|py)?[ \t]*\n(.*)$", text, flags=re.DOTALL)  # unterminated fence
    return (m.group(1) if m else text).strip("\n")


def prompt_context(prefix: str, entry_point: str) -> str:
    """The prompt without the target function's stub: imports, constants, helper functions."""
    try:
        tree = ast.parse(prefix)
    except SyntaxError:
        return "\n".join(ln for ln in prefix.splitlines() if ln.startswith(("import ", "from ")))
    lines = prefix.splitlines()
    keep = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        keep.append("\n".join(lines[start - 1: node.end_lineno]))
    return "\n\n".join(keep)


def build_program(output: str, item: CodeItem) -> str:
    code = extract_code(output)
    if item.prefix and item.entry_point:
        if not re.search(rf"\bdef\s+{re.escape(item.entry_point)}\s*\(", code):
            code = item.prefix + code  # a completion of the stub's body
        else:
            code = "\n\n".join(x for x in (prompt_context(item.prefix, item.entry_point), code) if x)
    return "\n\n".join(x for x in (item.setup, code) if x)


register_judge("t2", "code", build_program, source="t2core/scoring/t2_code.py")
