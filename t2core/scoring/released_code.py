"""The released program assembly (kind `code`), ported: the program an output stands for.

Sources: SakanaAI/self-adaptive-llms@03a41aed1cfc57276e72ad5a42845a04b356db1e,
evaluation/fishfarm/fishfarm/tasks/evalplus/ (cited below as `<file>:LINES`), with evalplus
@1895d2f6aa8895044a7cf69defc24bd57695e885 (requirements.txt:17) for the datasets' prompts.
- generation.py:53-59: the completion is cut at its first ```` ``` ````;
- task.py:44-45: MBPP completions are sanitised, HumanEval ones are not;
- sanitization.py:158-171: MBPP's program is sanitize_code((prompt + "\\n" + completion).strip());
- evaluation.py:126-130: HumanEval's program is prompt + completion, nothing between.
The sanitiser is fishfarm's own copy of evalplus's early regex sanitiser (sanitization.py:17-115),
not evalplus's later tree-sitter one: it needs only `re` and `ast.parse` (which parses, never runs,
the text). Nothing here runs model text; the sandbox judges the program against t2's tests.

One adaptation, for outputs not made under the released prompt: the released prompt prefilled the
assistant turn with "```python" (MBPP) or "```python\\n" + the stub (HumanEval) (data.py:54,68-69),
so the model's text began inside the code block. t2's prompt does not prefill, so the model writes
its own opening fence: where the output opens a block (`completion_of`), the text before it and the
fence line are dropped before the released cut. An output with no fence, or whose first fence closes
a continued body, is cut as the released code cuts it.

Defects kept on purpose:
- code after the first ``` is lost (a second block, or a test block, is never seen);
- HumanEval: no sanitising, so an answer that restates the stub follows the prompt's stub (the
  later `def` wins) and prose before a fence-less answer is a syntax error;
- MBPP: only top-level `def <entry_point>(` functions with a '    return ' in their first body
  survive, so a function without that text (no `return`, or a body indented by 1-3 spaces or a
  tab with no deeper `return`) is dropped entirely; the test precedes the 3-to-4-space fix. It
  drops 444 of the 974 MBPP reference solutions (written so; most models indent by 4).
  Unindented lines after it (module-level code) are cut but for `def`, `import` and `from` lines,
  and so is everything from an unindented line starting with '\"\"\"', 'if' or 'print' on;
  3-space indents get a 4th space.
"""

from __future__ import annotations

import ast
import builtins
import re

from t2core.scoring.base import CodeItem, register_judge

SOURCE = ("SakanaAI/self-adaptive-llms@03a41aed evaluation/fishfarm/fishfarm/tasks/evalplus/"
          "generation.py:53-59, task.py:44-45, sanitization.py:17-115,158-171, evaluation.py:126-130; "
          "evalplus@1895d2f tools/mbpp/init_plus.py:37-49,170, tools/humaneval/fix_v018.py:10-15")

_FIRST_FENCE = re.compile(r"```([^\n`]*)\n")


def syntax_check(code: str, verbose: bool = False) -> bool:
    """sanitization.py:17-24: does `ast.parse` accept it. RecursionError is also taken as 'no'
    (the released code would raise on it and stop sanitising the whole file)."""
    try:
        ast.parse(code)
        return True
    except (SyntaxError, MemoryError, RecursionError):
        return False


def remove_unindented_lines(code: str, protect_before: str, execeptions: list[str],
                            trim_tails: list[str]) -> str:
    """sanitization.py:27-50, verbatim: after the first line starting with `protect_before`, drop
    unindented lines (but `execeptions`) and everything from a line starting with a `trim_tails`."""
    lines = code.splitlines()
    cut_idx = []
    cut_enabled = False
    for i, line in enumerate(lines):
        if not cut_enabled and line.startswith(protect_before):
            cut_enabled = True
            continue
        if line.strip() == "":
            continue
        if any(line.startswith(e) for e in execeptions):
            continue

        lspace = len(line) - len(line.lstrip())
        if lspace == 0:
            cut_idx.append(i)

        if any(line.rstrip().startswith(t) for t in trim_tails):
            cut_idx.extend(list(range(i, len(lines))))
            break

    return "\n".join([line for i, line in enumerate(lines) if i not in cut_idx])


def to_four_space_indents(old_code: str) -> str:
    """sanitization.py:53-60, verbatim: a line indented by exactly 3 spaces gets a 4th."""
    new_code = ""
    for line in old_code.splitlines():
        lspace = len(line) - len(line.lstrip())
        if lspace == 3:
            new_code += " "
        new_code += line + "\n"
    return new_code


def sanitize_code(old_code: str, entry_point: str, rm_prefix_lines: str | None = None,
                  eofs: list | None = None) -> str:
    """sanitization.py:63-115, verbatim (the entry point goes into a regex unescaped, as released).

    The chunk of a ``` split holding `def <entry_point>`; of it, the `def <entry_point>(` bodies
    whose text before any later '\\ndef' holds '    return '; unindented lines after them cut;
    what came before the first such def kept; other top-level functions kept if they parse."""
    new_code = old_code
    if rm_prefix_lines is not None:
        new_code = "\n".join([line for line in old_code.splitlines() if not line.startswith(rm_prefix_lines)])

    new_code = "\n" + new_code
    def_left = "def " + entry_point

    new_code = new_code.replace("\n```python\n", "\n```\n")
    for chunk in new_code.split("\n```\n"):
        if def_left in chunk:
            new_code = chunk
            break

    chunks = [chunk for chunk in re.split(rf"{def_left}\s*\(", new_code)]
    bodies = [chunk for chunk in chunks[1:] if "    return " in chunk.split("\ndef")[0]]
    def_left = def_left + "("
    new_code = def_left + def_left.join(bodies) if len(bodies) > 0 else ""
    new_code = to_four_space_indents(new_code)

    for eof in eofs or []:
        new_code = new_code.split(eof)[0]

    new_code = remove_unindented_lines(
        new_code,
        protect_before=def_left,
        execeptions=["def ", "import ", "from "],
        trim_tails=['"""', "if", "print"],
    )
    new_code = chunks[0] + new_code

    parts = new_code.split("\ndef ")
    includes = [parts[0]]
    for fn in new_code.split("\ndef ")[1:]:
        if (
            fn.strip().startswith(entry_point + " ")
            or fn.strip().startswith(entry_point + "(")
            or syntax_check("\ndef " + fn)
        ):
            includes.append(fn)
    new_code = "\ndef ".join(includes)
    return new_code.strip()


def completion_of(output: str) -> str:
    """The released completion (generation.py:53-59: up to the first ```), after dropping an
    opening fence the model wrote itself where the released prompt had prefilled one.

    The output's first fence line opens a block (and it and the text before it go) when it names a
    language ('```python'), when nothing but whitespace precedes it, or when another fence follows
    it and no indented line precedes it (prose, not a continued body). Otherwise it is the closing
    fence of a continuation, as in the released setting, and the cut happens there."""
    m = _FIRST_FENCE.search(output)
    if m:
        before = output[: m.start()]
        tagged, at_start = bool(m.group(1).strip()), not before.strip()
        paired = "```" in output[m.end():]
        indented = any(ln[:1].isspace() and ln.strip() for ln in before.splitlines())
        if tagged or at_start or (paired and not indented):
            output = output[m.end():]
    index = output.find("```")
    return output[:index] if index != -1 else output


def humaneval_plus_prompt(prompt: str, entry_point: str) -> str:
    """HumanEval+ v0.1.9's prompt (evalplus@1895d2f data/humaneval.py:14): the original one but for
    tools/humaneval/fix_v018.py:10-15, which moves HumanEval/115's `import math` to the top."""
    if entry_point == "max_fill":  # HumanEval/115
        return "import math\n" + prompt.replace("    import math\n", "")
    if entry_point == "minSubArraySum":  # HumanEval/114
        return prompt.replace("import math\n", "")
    return prompt


def mbpp_plus_prompt(text: str, first_test: str) -> str:
    """MBPP+ v0.1.0's prompt (evalplus@1895d2f tools/mbpp/init_plus.py:170): the task text and its
    first assert in a docstring."""
    return f'"""\n{text}\n{first_test}\n"""\n'


def mbpp_entry_point(reference: str, first_test: str) -> str:
    """MBPP+'s entry point (tools/mbpp/init_plus.py:37-49): of the functions the reference solution
    defines, alphabetically, the first whose name occurs in the first assert. Read here with
    `ast` from t2's reference (evalplus imported its own copy); failing that, the first non-builtin
    function the assert calls; failing that '' (then `def ` matches no entry point)."""
    try:
        defined = sorted({n.name for n in ast.parse(reference).body if isinstance(n, ast.FunctionDef)})
    except (SyntaxError, ValueError):
        defined = []
    hits = [name for name in defined if name in first_test]
    if hits:
        return hits[0]
    try:
        calls = [n.func.id for n in ast.walk(ast.parse(first_test.strip()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    except (SyntaxError, ValueError):
        return ""
    return next((c for c in calls if not hasattr(builtins, c)), "")


def build_released_program(output: str, item: CodeItem) -> str:
    """The program the released evaluation runs for `output` on `item`: HumanEval (an item with a
    stub `prefix` and an `entry_point`) prompt + completion (evaluation.py:126-130); MBPP the
    sanitised prompt + "\\n" + completion (sanitization.py:158-171, task.py:44-45)."""
    completion = completion_of(output)
    if item.prefix and item.entry_point:
        return humaneval_plus_prompt(item.prefix, item.entry_point) + completion
    tests = getattr(item, "tests", "") or ""
    first_test = tests.strip().split("\n")[0] if tests.strip() else ""
    entry_point = item.entry_point or mbpp_entry_point(getattr(item, "solution", "") or "", first_test)
    old_code = (mbpp_plus_prompt(item.prompt, first_test) + "\n" + completion).strip()
    return sanitize_code(old_code=old_code, entry_point=entry_point).strip()


register_judge("released", "code", build_released_program, source=SOURCE)
