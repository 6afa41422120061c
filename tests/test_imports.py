"""The package's shape, read from its source: imports flow one way (core <- models <-
pipelines <- the public API), with no cycle, no ibvae import hidden inside a function, no
private name used across modules, and no module grown past ~350 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ibvae"
MAX_LINES = 360

# Rank of each module: a module may import modules of its own rank or lower, never higher.
CORE = {"errors", "files", "idx", "resample", "kl", "config", "config_sections", "flags",
        "interrupts",
        "evaluations", "data", "runs", "callbacks",
        "distribute", "figures", "layers", "training"}
MODELS = {"vae.config", "vae.nets", "vae.prior_space", "vae.model",
          "classifier.config", "classifier.cluttered", "classifier.occluded", "classifier.data",
          "classifier.models"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def scan(package: Path) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


MODULES = scan(PACKAGE)


def rank(module: str) -> int:
    rel = module.removeprefix("ibvae").removeprefix(".")
    if rel == "" or rel in ("vae", "classifier"):
        return 3  # package __init__: the public API, re-exports only
    if rel.split(".")[0] in CORE:
        return 0
    return 1 if rel in MODELS else 2


def resolve(node: ast.AST, module: str, is_package: bool, modules: dict) -> list[str]:
    """The ibvae modules an import statement refers to."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "ibvae"]
    base = node.module or ""
    if node.level:
        parent = module.split(".")
        parent = parent if is_package else parent[:-1]
        parent = parent[: len(parent) - (node.level - 1)]
        base = ".".join(parent + ([base] if base else []))
    if base.split(".")[0] != "ibvae":
        return []
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.append(sub if sub in modules else base)
    return found


def imports(module: str, modules: dict = MODULES) -> list[tuple[str, int, bool, ast.AST]]:
    """``(target, line, inside_a_function, node)`` for every ibvae import of ``module``."""
    path = modules[module]
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in resolve(node, module, path.name == "__init__.py", modules):
                found.append((target, node.lineno, in_function, node))
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def graph(modules: dict) -> dict[str, list[str]]:
    """Module-level ibvae imports: who imports whom."""
    return {m: sorted({t for t, _, f, _ in imports(m, modules) if not f and t != m})
            for m in modules}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in graph.get(m, []):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in graph:
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


GRAPH = graph(MODULES)


def test_the_graph_sees_the_package():
    assert {"ibvae.kl", "ibvae.layers.noise", "ibvae.vae.model", "ibvae.vae.train",
            "ibvae.classifier.models"} <= set(MODULES)
    assert "ibvae.kl" in GRAPH["ibvae.layers.noise"]
    assert "ibvae.vae.model" in GRAPH["ibvae.vae.train"]


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_find_a_planted_cycle_and_a_hidden_import(tmp_path):
    fake = tmp_path / "ibvae"
    (fake / "sub").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "sub" / "__init__.py").write_text("")
    (fake / "a.py").write_text("from ibvae.sub import b\n")
    (fake / "sub" / "b.py").write_text("from .. import c\n")
    (fake / "c.py").write_text("import ibvae.a\n\ndef f():\n    from ibvae import a\n")
    (fake / "d.py").write_text("from ibvae import c as cc\nfrom ibvae.a import _x\ncc._y\n")
    modules = scan(fake)
    assert find_cycle(graph(modules)) == ["ibvae.a", "ibvae.sub.b", "ibvae.c", "ibvae.a"]
    hidden = [(m, line) for m in modules for _, line, inside, _ in imports(m, modules) if inside]
    assert hidden == [("ibvae.c", 4)]
    assert private_crossings(modules) == ["ibvae.d:2 imports _x from ibvae.a",
                                          "ibvae.d:3 uses cc._y"]


def test_no_ibvae_import_inside_a_function():
    hidden = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
              for m in MODULES for t, line, in_function, _ in imports(m) if in_function]
    assert not hidden, "move these imports to the top of the module:\n" + "\n".join(hidden)


def test_imports_flow_one_way():
    upward = [f"{m} (rank {rank(m)}) imports {t} (rank {rank(t)})"
              for m, targets in GRAPH.items() for t in targets if rank(t) > rank(m)]
    assert not upward, "\n".join(upward)


def private_crossings(modules: dict) -> list[str]:
    """Uses of another module's private name: ``from m import _x`` or ``m._x``."""
    crossing: set[str] = set()
    for m, path in modules.items():
        found = imports(m, modules)
        for target, line, _, node in found:
            for alias in getattr(node, "names", []) if isinstance(node, ast.ImportFrom) else []:
                if alias.name.startswith("_") and not alias.name.startswith("__") and target != m:
                    crossing.add(f"{m}:{line} imports {alias.name} from {target}")
        aliases = {a.asname or a.name.split(".")[-1] for target, _, _, node in found
                   for a in node.names if target in modules and target.endswith(a.name)}
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                crossing.add(f"{m}:{node.lineno} uses {node.value.id}.{node.attr}")
    return sorted(crossing)


def test_no_private_name_crosses_a_module():
    crossing = private_crossings(MODULES)
    assert not crossing, "make these public (and document them):\n" + "\n".join(crossing)


def test_no_module_over_the_size_limit():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (> {MAX_LINES} lines): {long}"
