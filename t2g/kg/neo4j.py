"""CSV files in the layout `neo4j-admin database import full` reads, and the command that loads them.

The folder holds:
  nodes.csv          nodeId:ID,name,type,aliases:string[],mentionCount:long,docCount:long,:LABEL
  relationships.csv  :START_ID,:END_ID,:TYPE,edgeId,type,count:long,confidence:double
  import.sh          the import command (run it with the DBMS stopped; the database must not exist)
  README.txt         what the files are and the rules below

Rules (see the Neo4j Operations Manual, "Full import"):
- Every node has the labels `Entity` and its type as a label; every relationship has its type as
  relationship type. The original strings stay as the `type` property, because a label or a
  relationship type is a sanitised form of it (`label_for`, `relationship_type_for`):
  label = the type's ASCII letters/digits words in PascalCase ("work of art" -> WorkOfArt), a
  leading digit prefixed with "T", none at all -> "Unknown"; relationship type = the words in
  UPPER_SNAKE_CASE ("leader of" -> LEADER_OF), a leading digit prefixed with "R_", none -> RELATED_TO.
  Both match Cypher's unquoted identifiers, so no backticks are needed in queries.
- Quoting is RFC 4180 (Python's csv: a field with a comma, a quote or a line break is quoted and
  its quotes doubled), which is what neo4j-admin reads by default (`--quote='"'`, no legacy
  backslash quoting). When some value holds a line break the command adds
  `--multiline-fields=true` (the manual warns it slows the import, so only then).
- Arrays (aliases, and the :LABEL column) are joined with one character that occurs in no alias:
  the first of | ; U+001F U+001E U+001D U+001C that is free (if none is, U+001C, removed
  from the aliases: a file separator means nothing in a name); the command passes it as
  `--array-delimiter=U+XXXX`. Empty aliases are left out (an empty array element cannot be told
  from no element). A null confidence is an empty field: the relationship has no such property.
- Node ids are unique and every relationship's endpoints are node ids: the writer refuses
  otherwise, naming the offending ids (neo4j-admin would fail or drop rows far later).
"""

from __future__ import annotations

import csv
import re
import shlex
import unicodedata
from pathlib import Path

import pyarrow as pa

NODE_HEADER = ["nodeId:ID", "name", "type", "aliases:string[]", "mentionCount:long", "docCount:long", ":LABEL"]
RELATIONSHIP_HEADER = [":START_ID", ":END_ID", ":TYPE", "edgeId", "type", "count:long", "confidence:double"]
ENTITY_LABEL = "Entity"
ARRAY_DELIMITERS = ("|", ";", "\x1f", "\x1e", "\x1d", "\x1c")
_WORDS = re.compile(r"[A-Za-z0-9]+")
_DATABASE_NAME = re.compile(r"[a-z][a-z0-9.-]{2,62}")


def _words(text: str) -> list[str]:
    # Accents folded first so "Société" keeps its letters ("Societe") instead of splitting on é.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _WORDS.findall(ascii_text)


def label_for(type_: str) -> str:
    """A node type as a Neo4j label: PascalCase ASCII words, never starting with a digit."""
    label = "".join(w[:1].upper() + w[1:] for w in _words(type_)) or "Unknown"
    return "T" + label if label[0].isdigit() else label


def relationship_type_for(type_: str) -> str:
    """A relation type as a Neo4j relationship type: UPPER_SNAKE_CASE, never starting with a digit."""
    rel = "_".join(w.upper() for w in _words(type_)) or "RELATED_TO"
    return "R_" + rel if rel[0].isdigit() else rel


def array_delimiter(aliases: list[list[str]]) -> str:
    """The first candidate delimiter that occurs in no alias; the last one if all occur (the
    writer then removes it from the aliases)."""
    used = {c for names in aliases for name in names for c in name}
    # A text is kept as stored (`t2g graph --input`), so one document can spell all of them
    # in aliases; refusing then lost the whole export for the sake of a separator character.
    return next((c for c in ARRAY_DELIMITERS if c not in used), ARRAY_DELIMITERS[-1])


def check_graph(nodes: pa.Table, edges: pa.Table) -> None:
    """Unique node and edge ids, and every edge endpoint a node id; else a ValueError naming them."""
    for table, column, what in ((nodes, "node_id", "nodes"), (edges, "edge_id", "edges")):
        ids = table.column(column).to_pylist()
        if any(not i for i in ids):
            raise ValueError(f"{what} table has an empty {column}: every row needs an id")
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dupes = sorted({i for i in ids if i in seen or seen.add(i)})
            raise ValueError(f"{what} table repeats {column} {dupes[:5]}: ids must be unique")
    known = set(nodes.column("node_id").to_pylist())
    dangling = sorted(
        {n for n in edges.column("head").to_pylist() + edges.column("tail").to_pylist() if n not in known}
    )
    if dangling:
        raise ValueError(
            f"edges name node(s) {dangling[:5]} absent from the nodes table "
            f"({len(dangling)} in all): export nodes and edges of the same graph"
        )


def write_neo4j_csv(nodes: pa.Table, edges: pa.Table, folder: str | Path, *, database: str = "neo4j") -> str:
    """Write the import folder (see module doc); returns the neo4j-admin command that loads it."""
    if not _DATABASE_NAME.fullmatch(database):
        raise ValueError(f"database name {database!r}: Neo4j wants 3-63 of a-z, 0-9, '.', '-', starting with a letter")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    check_graph(nodes, edges)
    delim = array_delimiter(nodes.column("aliases").to_pylist())
    multiline = False

    def _cell(value: str) -> str:
        nonlocal multiline
        multiline = multiline or "\n" in value or "\r" in value
        return value

    # Each file is written beside its final name and renamed, so a rewrite (incremental update)
    # never leaves a half-written file where neo4j-admin would read it.
    with open(folder / "nodes.csv.part", "w", encoding="utf-8", newline="") as f:
        # The default "\r\n" terminator on purpose: Python's csv quotes a field only for the
        # terminator's characters, so with "\n" a lone "\r" went out unquoted and split the row.
        out = csv.writer(f)
        out.writerow(NODE_HEADER)
        for batch in nodes.to_batches():
            for r in batch.to_pylist():
                cleaned = (a.replace(delim, "") for a in r["aliases"] or [])  # a no-op unless none was free
                aliases = delim.join(_cell(a) for a in cleaned if a)
                out.writerow(
                    [
                        r["node_id"],
                        _cell(r["name"]),
                        _cell(r["type"]),
                        aliases,
                        r["mention_count"],
                        r["doc_count"],
                        f"{ENTITY_LABEL}{delim}{label_for(r['type'])}",
                    ]
                )
    with open(folder / "relationships.csv.part", "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(RELATIONSHIP_HEADER)
        for batch in edges.to_batches():
            for r in batch.to_pylist():
                confidence = "" if r["confidence"] is None else repr(float(r["confidence"]))
                out.writerow(
                    [
                        r["head"],
                        r["tail"],
                        relationship_type_for(r["type"]),
                        r["edge_id"],
                        _cell(r["type"]),
                        r["count"],
                        confidence,
                    ]
                )
    for name in ("nodes.csv", "relationships.csv"):
        (folder / f"{name}.part").replace(folder / name)
    options = [
        "--nodes=nodes.csv",
        "--relationships=relationships.csv",
        f"--array-delimiter=U+{ord(delim):04X}",
        "--id-type=string",
    ]
    if multiline:
        options.append("--multiline-fields=true")
    _write_script(folder, database, options)
    here = folder.resolve()
    absolute = [
        o.replace("=nodes.csv", f"={here / 'nodes.csv'}").replace(
            "=relationships.csv", f"={here / 'relationships.csv'}"
        )
        for o in options
    ]
    return shlex.join(["neo4j-admin", "database", "import", "full", database, *absolute])


def _write_script(folder: Path, database: str, options: list[str]) -> None:
    command = shlex.join(["database", "import", "full", database, *options])
    script_args = shlex.join(options)
    (folder / "import.sh").write_text(
        "#!/bin/sh\n"
        "# Load this folder into a new Neo4j database: stop the DBMS first; the database must not exist.\n"
        "# NEO4J_ADMIN names the neo4j-admin binary (default: the one on PATH); $1 overrides the database.\n"
        "set -e\n"
        'cd "$(dirname "$0")"\n'
        f'exec "${{NEO4J_ADMIN:-neo4j-admin}}" database import full "${{1:-{database}}}" {script_args}\n',
        encoding="utf-8",
    )
    (folder / "import.sh").chmod(0o755)
    (folder / "README.txt").write_text(
        "Neo4j bulk-import files written by t2g (the corpus graph).\n\n"
        "  nodes.csv          " + ",".join(NODE_HEADER) + "\n"
        "  relationships.csv  " + ",".join(RELATIONSHIP_HEADER) + "\n\n"
        "Import into a new database (DBMS stopped, database absent), from this folder:\n\n"
        f"  neo4j-admin {command}\n\n"
        "or run ./import.sh [database]. Then, in Cypher: CREATE DATABASE <name> (if not `neo4j`), and e.g.\n"
        "  MATCH (a:Entity {name: 'Angela Merkel'})-[r]-(b) RETURN type(r), r.type, b.name\n\n"
        "Labels: Entity plus the node type in PascalCase ASCII (leading digit -> 'T' prefix, none -> Unknown);\n"
        "relationship types: UPPER_SNAKE_CASE ASCII (leading digit -> 'R_', none -> RELATED_TO). The original\n"
        "strings are the `type` properties. Arrays are split on the --array-delimiter character.\n",
        encoding="utf-8",
    )
