"""The import graph of a copy of the `pipeline` package, read from its source (nothing is imported),
and the rules of pipeline.LAYERS checked against it."""
from __future__ import annotations

import ast
from pathlib import Path


def module_name(package_root: Path, path: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(package_root: Path, path: Path) -> set[str]:
    """Every module `path` imports, wherever the import statement stands (in a function too),
    relative imports resolved; `from a import b` counts as a.b when a.b is a module of ours."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(package_root, path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]                      # the package the module is in
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph(package_root: Path) -> dict[str, set[str]]:
    """module -> the modules of this package it imports (only those that exist)."""
    paths = {module_name(package_root, p): p for p in package_root.rglob("*.py")}
    return {mod: {m for m in imports_of(package_root, p) if m in paths and m != mod}
            | ({"stages"} if any(m == "stages" or m.startswith("stages.") for m in imports_of(package_root, p))
               else set())
            for mod, p in paths.items()}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(package_root: Path, layers: tuple[str, ...]) -> list[str]:
    """Every import that points up the list of layers, into `stages`, or closes a cycle; every
    top-level module or unlisted subpackage. Empty when the layout holds."""
    problems = []
    top = package_root.name
    for entry in sorted(package_root.iterdir()):
        if entry.name in ("__init__.py", "__pycache__"):
            continue
        if entry.is_dir() and (entry / "__init__.py").exists():
            if entry.name not in layers:
                problems.append(f"{top}/{entry.name}/ is not in {top}.LAYERS")
        elif entry.suffix == ".py" or entry.is_dir():
            problems.append(f"{top}/{entry.name}: the top level holds only __init__.py and subpackages")
    g = graph(package_root)
    rank = {name: i for i, name in enumerate(layers)}
    for mod, deps in sorted(g.items()):
        # `from pipeline.train import trainer` imports the package too: name only the module
        deps = {d for d in deps if not any(o.startswith(d + ".") for o in deps)}
        for dep in sorted(deps):
            if dep == "stages":
                problems.append(f"{mod} imports stages: pipeline never imports the stages")
                continue
            a, b = layer_of(mod), layer_of(dep)
            if a is None:                      # the package's own __init__ imports nothing of ours
                problems.append(f"{mod} imports {dep}")
            elif b is not None and a in rank and b in rank and rank[b] > rank[a]:
                problems.append(f"{mod} imports {dep}: {b} comes after {a} in {top}.LAYERS")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(g)]
    return problems


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules that import each other (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group) + [sorted(group)[0]])

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def closure(g: dict[str, set[str]], start: set[str]) -> set[str]:
    """The modules `start` needs, directly or not."""
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m in seen or m not in g:
            continue
        seen.add(m)
        todo.extend(g[m])
    return seen
