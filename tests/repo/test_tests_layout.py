"""The tests mirror the layers: each test module sits in the folder of what it exercises
(tests/t2g, whose subfolders are t2g's subpackages, tests/tasks, tests/flows, tests/faults,
tests/bench, tests/repo), the fakes, servers and builders in tests/support where nothing is
collected, and every folder is a package, so two test_x.py in two folders never collide."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOMES = {"t2g", "tasks", "flows", "faults", "bench", "repo", "support"}


def misplaced(repo: Path) -> list[str]:
    """What is out of place under repo/tests, one line each (a folder once, not per file)."""
    tests = repo / "tests"
    found = set()
    for path in tests.rglob("*.py"):
        rel = path.relative_to(tests)
        folder = f"tests/{rel.parent}/"
        if "__pycache__" in rel.parts:
            continue
        if len(rel.parts) == 1:
            if rel.name not in ("__init__.py", "conftest.py"):
                found.add(f"tests/{rel}: a module at the top; put it in one of {sorted(HOMES)}")
            continue
        if rel.parts[0] not in HOMES:
            found.add(f"tests/{rel.parts[0]}/: not a layer folder ({sorted(HOMES)})")
        elif rel.parts[0] == "support" and rel.name.startswith("test_"):
            found.add(f"tests/{rel}: tests/support/ holds no tests (it is never collected)")
        elif (
            rel.parts[0] == "t2g" and len(rel.parts) > 2 and not (repo / "t2g" / rel.parts[1] / "__init__.py").exists()
        ):
            found.add(f"tests/t2g/{rel.parts[1]}/: mirrors no t2g/{rel.parts[1]}/ package")
        if not (path.parent / "__init__.py").exists():
            found.add(f"{folder}: no __init__.py (its modules would be imported by bare name, which can collide)")
    return sorted(found)


def test_every_test_module_sits_in_the_folder_of_its_layer():
    assert misplaced(REPO) == []


def test_each_misplacement_is_named(tmp_path):
    for rel in ["tests/__init__.py", "tests/conftest.py", "tests/t2g/__init__.py", "tests/support/__init__.py",
                "tests/test_top.py", "tests/misc/__init__.py", "tests/misc/test_x.py", "tests/support/test_fake.py",
                "tests/t2g/nowhere/__init__.py", "tests/t2g/nowhere/test_y.py", "tests/flows/test_z.py",
                "t2g/kg/__init__.py", "tests/t2g/kg/__init__.py", "tests/t2g/kg/test_fine.py"]:  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert misplaced(tmp_path) == [
        "tests/flows/: no __init__.py (its modules would be imported by bare name, which can collide)",
        "tests/misc/: not a layer folder (['bench', 'faults', 'flows', 'repo', 'support', 't2g', 'tasks'])",
        "tests/support/test_fake.py: tests/support/ holds no tests (it is never collected)",
        "tests/t2g/nowhere/: mirrors no t2g/nowhere/ package",
        "tests/test_top.py: a module at the top; put it in one of "
        "['bench', 'faults', 'flows', 'repo', 'support', 't2g', 'tasks']",
    ]
