"""What a recipe may be read from: which files, how much YAML, which overrides.

Recipes come from people t2g does not fully trust: the author of a file a recipe
`extends`, whoever passes `--set`, a caller of a Prefect deployment. The rules here hold
before a value reaches the schema (t2g.config):

- a recipe is a `.yaml`/`.yml` regular file (its real path too, through symlinks); any
  other file is refused before it is opened, so no error can echo its lines;
- every YAML value (a file, or one `--set` value) is bounded as PyYAML would build it:
  nesting at most MAX_DEPTH and at most MAX_NODES values once aliases are expanded, and
  no value containing itself. PyYAML shares an aliased value instead of copying it, so an
  anchor bomb loads in kilobytes and explodes only when something walks it (the stage key,
  hours into a run); the budget is counted on the composed node graph, memoised per node,
  before anything is built;
- error messages quote at most a short excerpt (`shown`), never a line of the file;
- a deployment's `config` stays inside its recipe folders (`check_recipe_path`) and its
  overrides leave endpoints, credentials and code-running fields alone
  (`check_deployment_overrides`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file and the field to change."""


# A recipe is a few KB; anything near this is the wrong file (or a device that never ends).
MAX_RECIPE_BYTES = 1 << 20
# Nesting of any YAML value, in a file or a --set value. The deepest recipe field is four
# levels down; PyYAML recurses a few frames per level, and a 600-deep list overflows the stack.
MAX_DEPTH = 64
# YAML values (mappings, lists, scalars) in one file or one --set value once aliases are
# expanded: tiny.yaml holds 186.
MAX_NODES = 100_000
MAX_OVERRIDE_KEYS = 16  # dotted keys in one --set
RECIPE_SUFFIXES = (".yaml", ".yml")
# Kernel trees: their files pass for regular files (/proc/self/environ does) and hold secrets.
SYSTEM_TREES = ("/proc", "/sys", "/dev")


def shown(text: str, limit: int = 80) -> str:
    """Operator input as one short line of an error message: escaped (repr) when it is not
    printable, then cut, so that escapes cannot make it long (one character can escape to 10)."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else text[:limit] + "…"


# --- files ----------------------------------------------------------------------------


def recipe_file(path: Path, name: str) -> Path:
    """The real path of recipe `path`, after refusing, unopened, anything that is not a
    .yaml/.yml regular file: a directory, FIFO or device (reading /dev/zero never ends,
    opening a FIFO waits for a writer), a file of another kind (`extends: /etc/shadow`,
    ~/.aws/credentials), a symlink to one, or a file under /proc, /sys or /dev."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise RecipeError(f"{name} does not exist") from None
    except OSError as exc:
        raise RecipeError(f"{name} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(mode):
        raise RecipeError(f"{name} is {_file_kind(mode)}, not a file: name a recipe YAML file")
    real = Path(os.path.realpath(path))
    if path.suffix.lower() not in RECIPE_SUFFIXES:
        raise RecipeError(f"{name} is not a .yaml or .yml file: name a recipe YAML file")
    if real.suffix.lower() not in RECIPE_SUFFIXES:
        raise RecipeError(
            f"{name} is not a .yaml or .yml file (it links to {shown(str(real))}): name a recipe YAML file"
        )
    if any(real.is_relative_to(tree) for tree in SYSTEM_TREES):
        raise RecipeError(
            f"{name} is under {real.parts[1] and '/' + real.parts[1]}, not a recipe: name a recipe YAML file"
        )
    return real


def read_recipe_text(path: Path, name: str) -> str:
    """The text of recipe file `path` (see recipe_file), at most MAX_RECIPE_BYTES."""
    real = recipe_file(path, name)
    try:
        # O_NONBLOCK: were a FIFO swapped in after the stat, opening it still returns at
        # once, and the fstat below refuses it. O_NOFOLLOW: nor a symlink swapped in.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise RecipeError(f"{name} cannot be read: {exc.strerror or type(exc).__name__}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise RecipeError(f"{name} is {_file_kind(mode)}, not a file: name a recipe YAML file")
        raw = f.read(MAX_RECIPE_BYTES + 1)
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(
            f"{name} is larger than {MAX_RECIPE_BYTES >> 20} MiB: a recipe is a few KB of YAML; is it the right file?"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{name} is not UTF-8 text (byte {exc.start})") from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


# --- bounded YAML ---------------------------------------------------------------------


class YamlTooLarge(yaml.YAMLError):
    """A YAML value over the budget once its aliases are expanded (or without end)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """safe_load that refuses values nested deeper than MAX_DEPTH while composing them,
    before PyYAML's own recursion can overflow the stack."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        # PyYAML's scalar constructors fail in their own ways on odd values (`2020-13-01`
        # is a ValueError, `!!timestamp x` an AttributeError): one error kind, with a place.
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:
            problem = f"a value YAML cannot build ({type(exc).__name__}: {exc})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


def load_yaml(text: str, root: str = "") -> Any:
    """The YAML value of `text`, within the budget (check_budget; `root` names the value
    in its errors); every failure is a yaml.YAMLError, YamlTooLarge for the budget."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_budget(node, root)
        return loader.construct_document(node)
    except yaml.YAMLError:
        raise
    except RecursionError:
        raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # what construct_object does not see (collections built later)
        raise yaml.YAMLError(f"a value YAML cannot build ({type(exc).__name__}: {exc})") from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[tuple[yaml.Node, str]]:
    """A node's children with their labels in a dotted path. A merge key (`<<: [*a, *a]`)
    is counted like any other value: PyYAML copies its pairs once per alias, so the count
    follows what flatten_mapping would build."""
    if isinstance(node, yaml.SequenceNode):
        return [(child, str(i)) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out = []
        for key, value in node.value:
            label = shown(key.value, 40) if isinstance(key, yaml.ScalarNode) else "?"
            out += [(key, f"{label} (the key)"), (value, label)]
        return out
    return []


def check_budget(root: yaml.Node, root_label: str = "") -> None:
    """Refuse a composed YAML value that, built and walked, would be larger than
    MAX_NODES values, nested deeper than MAX_DEPTH, or endless (an alias inside its own
    anchor). Each distinct node is visited once (sizes memoised by identity), so an anchor
    bomb is measured in the time it takes to read it. The error names the first field over
    the budget, as a dotted path from `root_label`."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}  # levels from the node down, itself included
    path: list[tuple[int, str]] = []  # the nodes being visited: a chain from the root
    on_path: set[int] = set()
    todo: list[tuple[yaml.Node, str, bool]] = [(root, root_label, False)]

    def where(extra: str | None = None) -> str:
        labels = [label for _, label in path if label] + ([extra] if extra else [])
        dotted = ".".join(labels[:8]) + ("…" if len(labels) > 8 else "")
        return dotted or "the value"

    while todo:
        node, label, finished = todo.pop()
        key = id(node)
        if finished:
            kids = [id(child) for child, _ in _children(node)]
            size[key] = 1 + sum(size[k] for k in kids)
            depth[key] = 1 + max((depth[k] for k in kids), default=0)
            if size[key] > MAX_NODES:
                problem = f"{where()} holds more than {MAX_NODES} values once its aliases are expanded (a recipe holds a few hundred)"
                raise YamlTooLarge(problem + ": write it out without anchors, or shorten it", node.start_mark)
            path.pop()
            on_path.discard(key)
            continue
        if key in on_path:
            raise YamlTooLarge(
                f"{where(label)} contains itself (an alias inside its own anchor), so it never ends", node.start_mark
            )
        if key in size:  # met before through another alias: its measures stand
            if len(path) + depth[key] > MAX_DEPTH:
                raise YamlTooLarge(
                    f"{where(label)} is nested deeper than {MAX_DEPTH} levels through its aliases", node.start_mark
                )
            continue
        if len(path) + 1 > MAX_DEPTH:
            raise YamlTooLarge(
                f"{where(label)} is nested deeper than {MAX_DEPTH} levels through its aliases", node.start_mark
            )
        path.append((key, label))
        on_path.add(key)
        todo.append((node, label, True))
        todo += [(child, child_label, False) for child, child_label in reversed(_children(node))]


# Quoted text in PyYAML's messages is the file's own; kept only when it is YAML's: a token
# name such as '<block end>' or one punctuation character such as ':'.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_YAMLS_OWN = re.compile(r"""'(?:<[\w ]+>|[^\w\s])'""")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what went wrong, never the text there: PyYAML's own message quotes the
    offending line, which for a file that is no recipe prints its contents."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):
        where, problem = f"character {exc.position + 1}: ", exc.reason
    else:
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    if not isinstance(exc, YamlTooLarge):  # its text is ours, its labels already shortened
        problem = _QUOTED.sub(lambda m: m[0] if _YAMLS_OWN.fullmatch(m[0]) else "…", problem)
    return where + problem.splitlines()[0][:300]


def yaml_error(name: str, exc: yaml.YAMLError) -> RecipeError:
    """One line for `name` (a file, or `override FIELD: value`) that failed to load."""
    verdict = "is too large" if isinstance(exc, YamlTooLarge) else "is not valid YAML"
    return RecipeError(f"{name} {verdict}: {yaml_problem(exc)}")


# --- overrides ------------------------------------------------------------------------


def parse_override(item: str) -> tuple[list[str], Any]:
    """`section.key=value` as its dotted keys and its YAML value (bounded like a file).
    apply_override and check_deployment_overrides both read overrides through this, so
    the check sees exactly what would be applied."""
    dotted, sep, raw = item.partition("=")
    if not sep or not dotted.strip():
        raise RecipeError(f"override {shown(item)} must look like section.key=value")
    keys = dotted.strip().split(".")
    if len(keys) > MAX_OVERRIDE_KEYS:
        raise RecipeError(
            f"override {shown(dotted)}: {len(keys)} dotted keys, no recipe field is deeper than {MAX_OVERRIDE_KEYS}"
        )
    field = shown(".".join(keys))
    try:
        return keys, load_yaml(raw, root=field)
    except yaml.YAMLError as exc:
        raise yaml_error(f"override {field}: value", exc) from None


# What a deployment run's overrides may not change, unless the deployment allows it:
# patterns over the dotted field path (`*` spans dots; a list index is a segment), with why.
DEPLOYMENT_GUARDED: tuple[tuple[str, str], ...] = (
    ("store", "where every artifact is read and written"),
    ("llm_cache", "where LLM answers are read and written"),
    ("*.base_url", "the server the model key is sent to"),
    ("*.api_key_env", "which of the worker's variables is sent as the model key"),
    ("*.api_key_block", "which of the worker's Secret blocks is sent as the model key"),
    ("orchestration.address", "the Dask or Ray cluster the worker sends its tasks to and takes results from"),
    ("*.trust_remote_code", "it runs the model repository's own code on the worker"),
    ("*.trainer", "free-form trl fields reach hubs, vLLM servers and model_init_kwargs"),
    ("*.launch", "the accelerate command line the worker runs"),
    ("*.work_dir", "a folder the worker writes checkpoints to and deletes them from"),
    ("collect.sources.*.path", "a file or folder the worker reads"),
    ("collect.sources.*.dataset", "a dataset path or hub name the worker reads"),
    ("collect.sources.*.data_files", "files the worker reads"),
    # a graph recipe's documents come from the same source kinds
    ("corpus.sources.*.path", "a file or folder the worker reads"),
    ("corpus.sources.*.dataset", "a dataset path or hub name the worker reads"),
    ("corpus.sources.*.data_files", "files the worker reads"),
    ("evaluate.benchmarks", "files the worker reads"),
)


def _leaves(path: list[str], value: Any) -> Iterator[list[str]]:
    """The dotted paths an override sets: its own, or each leaf inside a mapping or list
    it sets whole (`extract={base_url: ...}` sets extract.base_url)."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves([*path, str(key)], inner)
    elif isinstance(value, list) and value:
        for i, inner in enumerate(value):
            yield from _leaves([*path, str(i)], inner)
    else:
        yield path


def _first_match(path: list[str], patterns: Any) -> Any:
    # Each prefix of the path: a guarded field is guarded with everything inside it.
    for n in range(1, len(path) + 1):
        dotted = ".".join(path[:n])
        for entry in patterns:
            pattern = entry[0] if isinstance(entry, tuple) else entry
            if fnmatchcase(dotted, pattern.casefold()):
                return entry
    return None


def check_deployment_overrides(overrides: list[str], allow: frozenset[str] = frozenset()) -> None:
    """Refuse, with RecipeError, a deployment run's override that sets an endpoint, a
    credential or a code-running field (DEPLOYMENT_GUARDED), directly or inside a mapping
    or list it sets whole, unless a pattern in `allow` names it (`extract.base_url`,
    `collect.sources.*.path`; `*` spans dots). A section set whole puts the guarded fields
    it leaves out back to their defaults, which are the project's, never the caller's.
    Malformed overrides fail here as they would in load_recipe."""
    allowed = [pattern.casefold() for pattern in allow]
    for item in overrides:
        keys, value = parse_override(item)
        for leaf in _leaves([k.strip().casefold() for k in keys], value):
            guard = _first_match(leaf, DEPLOYMENT_GUARDED)
            if guard and not _first_match(leaf, allowed):
                raise RecipeError(
                    f"override {shown('.'.join(leaf))}: {guard[0]} may not be overridden by a deployment run ({guard[1]}); "
                    "change the recipe under the deployment's recipe folder, or allow the field in the deployment"
                )


def check_recipe_path(path: str | Path, roots: list[Path]) -> Path:
    """The real path of a deployment's `config` parameter, refusing anything outside the
    folders `roots` (the project's configs/ or folders the deployment declares; relative
    paths from the working directory, symlinks followed before the check) or not a
    .yaml/.yml regular file. A recipe inside may still `extends` one outside: those are
    the project's own files, reviewed like code."""
    text = str(path)
    if not text.strip():
        raise RecipeError("config names no recipe: give the path of a .yaml file under the deployment's recipe folder")
    if not roots:
        raise RecipeError("the deployment names no folder its config may come from: declare one (e.g. configs/)")
    name = f"config {shown(text)}"
    real = Path(os.path.realpath(text))
    folders = [Path(os.path.realpath(root)) for root in roots]
    if not any(real.is_relative_to(folder) for folder in folders):
        listed = ", ".join(shown(str(f), 60) for f in folders[:4])
        raise RecipeError(f"{name} is outside the recipe folders ({listed}): name a recipe under one of them")
    recipe_file(Path(text), name)
    return real
