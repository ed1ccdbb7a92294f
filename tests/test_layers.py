"""The package's import order: no module imports a layer above its own, and every module imports on its own.

Layers, bottom first (a module may import its own unit and anything below):

    errors, log, io, registry, config      (know nothing of recommendation)
    data → graphs → losses → models → denoise → eval → training → sequential
    → api → experiments, sequential.api → sequential.study → catalog, bench → cli → __main__ → the package

Two places where this reads differently from the pipeline order of the
style guide (data → graphs → models → losses → denoise → train → eval): losses
import nothing of the package and the backbones' default objective is BPR,
so losses sit below models; the trainer calls the evaluator, so eval sits
below training. ``experiments`` runs trials through ``api.train``, so it sits
above api. ``sequential`` is one task's slice: its models and task beside
training, its train/study entry points beside api and experiments.

Edges are read from the source (``from ..x import``, ``import mmdenoise.x``),
module level and inside functions alike; ``EXCEPTIONS`` lists every allowed
upward edge with its reason.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mmdenoise

PACKAGE = Path(mmdenoise.__file__).parent

#: rank of each unit (a top-level module or package, or a named submodule of ``sequential``), bottom first;
#: units on one rank must not import each other
LAYERS: list[tuple[str, ...]] = [
    ("errors",), ("log",), ("io",), ("registry",), ("config",),
    ("data",), ("graphs",), ("losses",), ("models",), ("denoise",), ("eval",), ("training",), ("sequential",),
    ("api",), ("experiments", "sequential.api"), ("sequential.study",), ("catalog", "bench"), ("cli",),
    ("__main__",), ("mmdenoise",),
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}

#: (importing module, imported module) -> why the upward edge is allowed
EXCEPTIONS = {
    ("mmdenoise.config", "mmdenoise.eval.metrics"):
        "inside TrainConfig's checks: metric names are validated against the one metric table "
        "(eval.metrics imports nothing of the package)",
    ("mmdenoise.denoise.guider.denoiser", "mmdenoise.training.step"):
        "GUIDER's teacher pass steps through the trainer's one optimiser step (training.step imports "
        "only errors)",
    ("mmdenoise.eval.pairing", "mmdenoise.training.record"):
        "paired tests read two run folders' per-user results, in the format training.record writes",
    ("mmdenoise.sequential", "mmdenoise.sequential.api"):
        "the package's lazy __getattr__ (on first use, never at import) keeps ``sequential.train_sequential``",
    ("mmdenoise.sequential", "mmdenoise.sequential.study"):
        "the package's lazy __getattr__ (on first use, never at import) keeps ``sequential.sensitivity_study``",
    ("mmdenoise.training.record", "mmdenoise"):
        "inside versions(): the package's __version__ for result.json (set before the package imports anything)",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[str]:
    return sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def unit(module: str) -> str:
    """The layered unit of ``module``: ``sequential.api``/``sequential.study`` or the first name below the package."""
    parts = module.split(".")[1:]
    if not parts:
        return "mmdenoise"
    if parts[0] == "sequential" and len(parts) > 1 and f"sequential.{parts[1]}" in RANK:
        return f"sequential.{parts[1]}"
    return parts[0]


def imported(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere in its source (``from . import x`` names x itself)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "mmdenoise"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mmdenoise":
                continue
            for alias in node.names:  # a submodule named in the import list is the module imported
                sub = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                    (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                found.add(sub if is_module else target)
    return found


def edges() -> list[tuple[str, str]]:
    return sorted((module_name(p), target) for p in PACKAGE.rglob("*.py") for target in imported(p))


def test_every_unit_has_a_layer():
    assert {unit(m) for m in modules()} <= set(RANK), sorted({unit(m) for m in modules()} - set(RANK))


def test_no_module_imports_a_layer_above_its_own():
    upward = [(a, b) for a, b in edges()
              if unit(a) != unit(b) and RANK[unit(b)] >= RANK[unit(a)] and (a, b) not in EXCEPTIONS]
    assert not upward, "upward imports (move the code down, or list the edge in EXCEPTIONS with a reason):\n" + \
        "\n".join(f"  {a} -> {b}" for a, b in upward)


def test_every_exception_is_still_needed():
    found = set(edges())
    assert set(EXCEPTIONS) <= found, sorted(set(EXCEPTIONS) - found)


FIRST_IMPORT = """
import importlib, sys, traceback
import mmdenoise  # the package's __init__ chain: what runs first whatever module is asked for
kept = {name: set(vars(module)) for name, module in sys.modules.items()
        if name == "mmdenoise" or name.startswith("mmdenoise.")}
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if (m == "mmdenoise" or m.startswith("mmdenoise.")) and m not in kept]:
        del sys.modules[loaded]
    for module, names in kept.items():  # the submodule attributes set by the last import go with it
        for attr in set(vars(sys.modules[module])) - names:
            delattr(sys.modules[module], attr)
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "mmdenoise":
            failed.append(f"{name}: {exc!r}")
    except Exception:
        failed.append(f"{name}: {traceback.format_exc(limit=-3)}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each module imported as if first in a fresh interpreter: after the package's own __init__ chain (which
    Python always runs first) and nothing else of the package (third-party modules stay cached). An import
    cycle that only bites in one order fails here, whichever module it starts from. Two interpreters share
    the modules, one per core."""
    names = modules()
    workers = [subprocess.Popen([sys.executable, "-c", FIRST_IMPORT, *names[k::2]], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for k in range(2)]
    outputs = [(w.communicate(timeout=600)[0], w.returncode) for w in workers]
    assert all(code == 0 for _, code in outputs), "\n".join(text for text, _ in outputs)
