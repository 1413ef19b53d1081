"""Read a submission's own code (never run it) for what the instructor should look at.

Two kinds of finding, both *flags* for a person to review, never a change of score:
* **tampering**: code that reaches for the machinery around the answers (IPython hooks and input
  transformers, builtins, other modules' attributes, the interpreter's frames, the grader's
  session, processes and signals). Honest answers to these labs never need any of it.
* **forbidden**: the built-in routine a lab asks students to write themselves, as the lab's
  ``POLICY["forbidden"]`` says (a regex over dotted names as the code writes them: ``F.conv2d``,
  ``torch.nn.init.kaiming_normal_``; see :func:`grading.labs.policy`). The labs' own checks catch
  this at run time too (``courselib.labcheck.Forbidden``); this reading cannot be switched off
  from inside the kernel.

Obfuscated code (names assembled from strings) can evade any reading of source, which is why
this only flags: the scores come from the trusted replay (grading/trusted.py).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import nbformat

from . import labs, nbcells

# name or attribute -> why it is suspicious
TAMPERING = {
    "get_ipython": "uses IPython's shell (hooks, input transformers, cell execution)",
    "input_transformers_cleanup": "rewrites the source of later cells",
    "input_transformers_post": "rewrites the source of later cells",
    "input_transformer_manager": "rewrites the source of later cells",
    "register": "registers a hook",
    "events": "uses IPython's events (pre/post cell hooks)",
    "builtins": "changes Python's builtins",
    "__builtins__": "changes Python's builtins",
    "modules": "reaches into sys.modules",
    "_getframe": "inspects the caller's frames",
    "f_back": "inspects the caller's frames",
    "f_globals": "inspects the caller's frames",
    "f_locals": "inspects the caller's frames",
    "gc": "walks the garbage collector's objects",
    "get_objects": "walks the garbage collector's objects",
    "ctypes": "uses ctypes (raw memory)",
    "__code__": "rewrites function code",
    "__globals__": "reaches into another function's globals",
    "__class__": "changes an object's class",
    "__torch_function__": "overrides how torch functions treat its objects",
    "__torch_dispatch__": "overrides how torch functions treat its objects",
    "checks": "touches the grader's session (checks)",
    "checking": "touches the grader's session (courselib.checking)",
    "_REPLAY": "touches the grader's session (courselib.checking)",
    "kill": "sends signals to processes",
    "killpg": "sends signals to processes",
    "_exit": "ends the interpreter",
    "exit": "ends the interpreter",
    "signal": "changes signal handling",
    "setrecursionlimit": "changes the interpreter's limits",
    "system": "runs shell commands",
    "subprocess": "runs other programs",
    "socket": "opens network connections",
    "fork": "starts processes",
    "settrace": "traces the interpreter",
    "setprofile": "traces the interpreter",
}
LYING_METHODS = {"__eq__", "__ne__", "__bool__", "__lt__", "__le__", "__gt__", "__ge__", "__float__",
                 "__index__", "__int__", "__abs__", "__len__", "__instancecheck__"}

@dataclass(frozen=True)
class Finding:
    cell: str      # the answer cell's grade_id, or "cell <n>" for a cell the student added
    kind: str      # "tampering", "forbidden", "syntax"
    detail: str

    def __str__(self) -> str:
        return f"{self.cell}: {self.kind}: {self.detail}"


def student_code(submitted: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(label, code) of every code cell the student wrote or changed: the answer cells and any
    cell whose code is not one of the source notebook's cells (test cells excepted: nbgrader
    replaces them with the instructor's version before running the notebook)."""
    given = {nbcells.strip_markers(c.source).strip() for c in source.cells if c.cell_type == "code"}
    out = []
    for i, cell in enumerate(submitted.cells):
        if cell.cell_type != "code":
            continue
        gid = nbcells.nbmeta(cell).get("grade_id")
        if nbcells.is_test(cell):  # nbgrader puts the instructor's version back before running it
            continue
        if nbcells.is_answer(cell) or cell.source.strip() not in given:
            out.append((gid or f"cell {i + 1}", cell.source))
    return out


def _strip_magics(code: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())


def scan(submitted: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[Finding]:
    """Everything worth a look in the student's own code, at most one finding per (cell, reason);
    ``source`` is the instructor's notebook of the lab (its cells and its ``POLICY``)."""
    findings: dict[tuple[str, str, str], Finding] = {}
    pattern = labs.policy(source).get("forbidden")
    forbidden = re.compile(pattern) if pattern else None
    for label, code in student_code(submitted, source):
        body = nbcells.strip_markers(code)
        try:
            tree = ast.parse(_strip_magics(body))
        except SyntaxError as e:
            findings[(label, "syntax", "")] = Finding(label, "syntax", f"does not parse (line {e.lineno}): {e.msg}")
            continue
        rule = forbidden
        for node in ast.walk(tree):
            names, dotted = [], []
            if isinstance(node, ast.Name):
                names.append(node.id)
            elif isinstance(node, ast.Attribute):
                names.append(node.attr)
                dotted.append(ast.unparse(node))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names += [a.name.split(".")[0] for a in node.names]
                module = getattr(node, "module", None)
                if module:
                    names.append(module.split(".")[0])
                dotted += [f"{module}.{a.name}" if module else a.name for a in node.names]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in LYING_METHODS:
                findings[(label, "tampering", node.name)] = Finding(
                    label, "tampering", f"defines {node.name}: an object that can answer comparisons as it likes")
            for name in names:
                if name in TAMPERING:
                    findings[(label, "tampering", TAMPERING[name])] = Finding(
                        label, "tampering", f"{TAMPERING[name]} ({name})")
            for name in dotted:
                if rule is not None and rule.search(name):
                    findings[(label, "forbidden", name)] = Finding(
                        label, "forbidden", f"uses {name}, a built-in routine the lab asks you to write yourself")
    return list(findings.values())
