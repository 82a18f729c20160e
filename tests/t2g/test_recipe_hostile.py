"""Recipes written, extended or overridden by someone hostile (issue 25, items 5 and 6, and
the deployment's rules for its parameters): only .yaml files are read, nothing of another
file is echoed, every YAML value is bounded once its aliases are expanded, `api_key_env`
names only a model server's key, and a deployment's `config` and `--set` overrides cannot
redirect the worker's credentials or endpoints.

The module is imported as `config` (not `from t2g.config import ...`) so each test fails on
its own when the behaviour it holds is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g import config
from t2g.config import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
DEADLINE_S = 120  # a hang guard for the child processes, not a timing assertion


def no_secret(message: str) -> bool:
    return not any(SECRET[i : i + 8] in message for i in range(len(SECRET) - 7))


# --- a recipe is a .yaml/.yml regular file ------------------------------------------


def _credentials(tmp_path: Path) -> Path:
    # A file that is YAML but no recipe: today every key would come back as "unknown".
    path = tmp_path / "credentials"
    path.write_text(f"aws_secret_access_key_{SECRET}: x\nother_{SECRET}: y\n")
    return path


def _link_to_credentials(tmp_path: Path) -> Path:
    link = tmp_path / "innocent.yaml"
    link.symlink_to(_credentials(tmp_path))
    return link


@pytest.mark.parametrize(
    "target",
    [_credentials, _link_to_credentials, lambda tmp: Path("/etc/passwd"), lambda tmp: Path("/proc/self/environ")],
    ids=["no-suffix", "symlink-to-non-yaml", "etc-passwd", "proc-environ"],
)
def test_only_yaml_files_are_read_as_recipes(tmp_path, target, monkeypatch):
    monkeypatch.setenv("T2G_TEST_SECRET", SECRET)  # so /proc/self/environ holds it
    path = target(tmp_path)
    variant = tmp_path / "variant.yaml"
    variant.write_text(f"extends: {path}\n")
    for recipe in (variant, path):
        with pytest.raises(RecipeError) as err:
            load_recipe(recipe)
        message = str(err.value)
        assert "is not a .yaml or .yml file" in message and len(message.splitlines()) == 1, message
        assert no_secret(message) and "root:" not in message, message


def test_a_symlink_to_a_yaml_file_is_still_a_recipe(tmp_path):
    (tmp_path / "link.yaml").symlink_to(TINY)
    assert load_recipe(tmp_path / "link.yaml").name == "tiny"
    (tmp_path / "short.yml").write_text(f"extends: {TINY}\nname: short\n")
    assert load_recipe(tmp_path / "short.yml").name == "short"


def test_errors_quote_a_bounded_excerpt_of_a_yaml_file(tmp_path):
    many = tmp_path / "many.yaml"
    many.write_text(f"extends: {TINY}\n" + "".join(f"k{i}_{'x' * 500}: 1\n" for i in range(300)))
    with pytest.raises(RecipeError) as err:
        load_recipe(many)
    message = str(err.value)
    lines = message.splitlines()
    assert len(message) < 4000 and len(lines) <= config.MAX_ERRORS_SHOWN + 2, (len(message), len(lines))
    assert all(len(line) <= 300 for line in lines)
    assert lines[-1].strip() == f"… and {300 - config.MAX_ERRORS_SHOWN} more"


# --- bounded YAML: a node budget after alias expansion ------------------------------


def billion_laughs(levels: int, width: int = 9, indent: str = "") -> str:
    """`levels` anchors, each a list of `width` aliases of the one before: width**levels
    values once expanded, a few hundred bytes written."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def run_child(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`code` in a child with 1 GiB of address space, so a regression fails the test
    instead of swapping the machine."""
    import resource

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=DEADLINE_S, preexec_fn=limit_memory)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {DEADLINE_S} s")


# Peak RSS of the child before and after load_recipe, in MiB (ru_maxrss is KiB on Linux).
MEASURED_LOAD = """
import resource, sys
from t2g.config import RecipeError, load_recipe
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = peak()
try:
    load_recipe(sys.argv[1], overrides=sys.argv[2:])
    print("loaded")
except RecipeError as exc:
    print(exc)
print(f"rss-delta-mib {peak() - before:.1f}")
"""


def test_an_anchor_bomb_in_a_free_form_field_fails_at_load_in_bounded_memory(tmp_path):
    # 9**9 = 387 million values once expanded: PyYAML shares the aliased lists, so the file
    # loads in a few MB, and the stage key (json of the section) later needs gigabytes.
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"extends: {TINY}\nsft:\n  trainer:\n    model_init_kwargs:\n" + billion_laughs(9, indent="      "))
    done = run_child(MEASURED_LOAD, str(bomb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.splitlines()
    assert out[0].startswith(f"recipe {bomb} is too large: line ") and "sft.trainer.model_init_kwargs.l" in out[0], out
    assert f"more than {config.MAX_NODES} values once its aliases are expanded" in out[0], out
    assert len(out) == 2 and float(out[1].split()[1]) < 64, out  # the 4.3 GB of the issue, now a few MB


def test_an_anchor_bomb_in_an_override_fails_naming_the_field(tmp_path):
    value = "{" + billion_laughs(9).strip().replace("\n", ", ") + "}"
    done = run_child(MEASURED_LOAD, str(TINY), f"sft.trainer.model_init_kwargs={value}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.splitlines()
    assert out[0].startswith("override sft.trainer.model_init_kwargs: value is too large: line 1, column "), out
    assert "model_init_kwargs.l" in out[0] and "once its aliases are expanded" in out[0], out
    assert float(out[1].split()[1]) < 64, out


def test_a_merge_key_bomb_fails_before_pyyaml_builds_it(tmp_path):
    # `<<: [*m, *m]` doubles the merged key list at each level: PyYAML's flatten_mapping
    # copies it before any mapping exists, so the check must come before construction.
    lines = ["m0: &m0 {a: 1}"] + [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}" for i in range(1, 40)]
    bomb = tmp_path / "merge.yaml"
    bomb.write_text(
        f"extends: {TINY}\nsft:\n  trainer:\n    model_init_kwargs:\n" + "".join(f"      {x}\n" for x in lines)
    )
    done = run_child(MEASURED_LOAD, str(bomb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.splitlines()
    assert "is too large" in out[0] and "sft.trainer.model_init_kwargs.m" in out[0], out


def test_a_value_that_contains_itself_is_refused_at_load(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"extends: {TINY}\nsft:\n  trainer:\n    model_init_kwargs: &a {{x: *a}}\n")
    with pytest.raises(RecipeError, match=r"line 4, column \d+: sft.trainer.model_init_kwargs.x contains itself"):
        load_recipe(loop)
    with pytest.raises(RecipeError, match="override sft.trainer: value is too large: .*contains itself"):
        load_recipe(TINY, overrides=["sft.trainer=&a [*a]"])


def test_aliases_cannot_nest_a_value_deeper_than_the_bound(tmp_path):
    # Each anchor is 40 levels deep, within MAX_DEPTH as written; through the aliases the
    # last one is 400 deep, and json or pydantic would recurse that far.
    anchors = "".join(
        f"      d{i}: &d{i} " + "[" * 40 + (f"*d{i - 1}" if i else "1") + "]" * 40 + "\n" for i in range(10)
    )
    deep = tmp_path / "deep.yaml"
    deep.write_text(f"extends: {TINY}\nsft:\n  trainer:\n    model_init_kwargs:\n" + anchors)
    with pytest.raises(
        RecipeError,
        match=rf"sft.trainer.model_init_kwargs.d\d[.0]*…? is nested deeper than {config.MAX_DEPTH} levels through its aliases",
    ):
        load_recipe(deep)


def test_the_budget_leaves_room_for_real_recipes(tmp_path):
    from t2g.kg.config import load_recipe as load_any_recipe  # graph sections too (tiny-graph.yaml)

    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_any_recipe(path)
    # A shared anchor in a real recipe: a long type list named once and used twice.
    types = "[" + ", ".join(f"t{i}" for i in range(500)) + "]"
    variant = tmp_path / "types.yaml"
    variant.write_text(f"extends: {TINY}\nextract: {{entity_types: &t {types}, relation_types: *t}}\n")
    recipe = load_recipe(variant)
    assert len(recipe.extract.relation_types) == 500


# --- api_key_env names a model server's key -----------------------------------------


def sections_with(field: str) -> list[str]:
    return sorted(name for name, f in config.Recipe.model_fields.items()
                  if isinstance(f.annotation, type) and field in getattr(f.annotation, "model_fields", {}))  # fmt: skip


def test_every_section_with_a_key_variable_is_checked():
    assert sections_with("api_key_env") == ["extract", "reason", "sample"]
    for section in sections_with("api_key_env"):
        with pytest.raises(RecipeError, match=rf"{section}.api_key_env: .*AWS_SECRET_ACCESS_KEY"):
            load_recipe(TINY, overrides=[f"{section}.api_key_env=AWS_SECRET_ACCESS_KEY"])
        assert (
            getattr(load_recipe(TINY, overrides=[f"{section}.api_key_env=TEACHER_API_KEY"]), section).api_key_env
            == "TEACHER_API_KEY"
        )


@pytest.mark.parametrize(
    "url, said",
    [
        ("https://bob:s3cr3t@llm.example/v1", "holds credentials"),
        ("https://bob@llm.example/v1", "holds credentials"),
        ("http://bob:s3cr3t@llm.example:port/v1", "holds credentials"),
        ("http://llm.example:port/v1", "is not a URL"),
        ("http://[::1/v1", "is not a URL"),
        ("llm.example:8000/v1", "write http"),
        ("file:///etc/passwd", "write http"),
    ],
)
def test_a_base_url_is_an_http_url_without_credentials(url, said):
    """`user:pass@` in base_url would be written into every manifest (the section is the
    key's and the manifest's record) and into the backend's repr; a malformed URL failed
    only at the first request, in httpx, with a traceback. Both fail at load, naming the
    field, and the credential is never echoed."""
    for section in sections_with("base_url"):
        with pytest.raises(RecipeError, match=rf"{section}.base_url: .*{said}") as caught:
            load_recipe(TINY, overrides=[f"{section}.base_url={url}"])
        assert "s3cr3t" not in str(caught.value)
    fine = load_recipe(TINY, overrides=["extract.base_url=http://127.0.0.1:8000/v1"])
    assert fine.extract.base_url == "http://127.0.0.1:8000/v1"


TINY_DATA = {"name": "t", "collect": {"sources": [{"name": "s", "kind": "toyworld", "split": "train"}]}}
server_keys = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,30}_API_KEY\Z")
denied = st.deferred(lambda: st.sampled_from(sorted(config.CREDENTIAL_PREFIXES)))


@settings(max_examples=200, deadline=None)
@given(server_keys)
def test_model_server_key_names_are_accepted(name):
    if name.startswith(tuple(config.CREDENTIAL_PREFIXES)):
        return
    assert config.ExtractConfig(api_key_env=name).api_key_env == name


@settings(max_examples=200, deadline=None)
@given(denied, st.from_regex(r"\A[A-Z0-9_]{0,20}_API_KEY\Z"))
def test_store_and_orchestrator_credentials_are_refused(prefix, rest):
    with pytest.raises(ValueError, match="api_key_env"):
        config.ExtractConfig(api_key_env=prefix + rest)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_other_name_is_refused_naming_the_field(name):
    if re.fullmatch(r"[A-Z][A-Z0-9_]*_API_KEY", name) and not name.startswith(tuple(config.CREDENTIAL_PREFIXES)):
        return
    with pytest.raises(RecipeError) as err:
        config.validate_recipe({**TINY_DATA, "reason": {"api_key_env": name}})
    message = str(err.value)
    assert "reason.api_key_env:" in message and len(message) < 600


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING",
                                  "HF_TOKEN", "MINIO_ROOT_PASSWORD", "GOOGLE_API_KEY", "AZURE_STORAGE_KEY", "PGPASSWORD",
                                  "HOME", "openai_api_key", "T2G_STACK_API_KEY", ""])  # fmt: skip
def test_named_credentials_are_refused(name):
    with pytest.raises(ValueError, match="api_key_env"):
        config.ExtractConfig(api_key_env=name)


# --- what a deployment's caller may change ------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        "extract.base_url=http://evil.example/v1",
        "extract.api_key_env=TEACHER_API_KEY",
        "reason.api_key_block=aws-credentials",
        "sample.base_url=http://evil.example",
        "store=s3://attacker/x",
        "llm_cache=file:///tmp/x",
        "orchestration.address=tcp://evil.example:8786",
        "sft.trust_remote_code=true",
        "sft.trainer.model_init_kwargs={trust_remote_code: true}",
        "grpo.trainer={vllm_server_host: evil.example}",
        "grpo.launch.extra_args=[--main_process_ip, 1.2.3.4]",
        "sft.work_dir=/home/user/.ssh",
        "collect.sources.0.path=/home/user/.aws/credentials",
        "corpus.sources.0.path=/etc",
        "corpus.sources.1.data_files=[/home/user/.netrc]",
        "corpus={sources: [{kind: text, path: /root}]}",
        "evaluate.benchmarks=[/etc/passwd]",
        # a parent set whole carries the field inside its value
        "extract={backend: openai, base_url: http://evil.example/v1}",
        "rounds=[{sft: {trainer: {push_to_hub: true}}}]",
        " extract . base_url =http://evil.example",
    ],
)
def test_deployment_overrides_cannot_redirect_endpoints_or_credentials(override):
    with pytest.raises(RecipeError, match="may not be overridden by a deployment run") as err:
        config.check_deployment_overrides([override])
    assert len(str(err.value).splitlines()) == 1 and len(str(err.value)) < 400


def test_a_deployment_may_allow_named_fields():
    config.check_deployment_overrides(
        ["extract.base_url=http://teacher:8000/v1"], allow=frozenset({"extract.base_url"})
    )
    config.check_deployment_overrides(
        ["collect.sources.0.path=data/x.jsonl"], allow=frozenset({"collect.sources.*.path"})
    )
    with pytest.raises(RecipeError, match="extract.api_key_env"):
        config.check_deployment_overrides(["extract={base_url: http://t/v1, api_key_env: X_API_KEY}"],
                                          allow=frozenset({"extract.base_url"}))  # fmt: skip
    harmless = ["sft.max_steps=5", "grpo.learning_rate=1e-6", "extract.backend=gold", "evaluate.limit=3", "name=x",
                "sft={max_steps: 2, lora: {r: 8}}", "collect.sources.0.limit=10"]  # fmt: skip
    config.check_deployment_overrides(harmless)


# What a refused override could have changed: for any override the check lets through,
# these fields of the loaded recipe are exactly tiny.yaml's.
GUARDED = ["store", "llm_cache", "orchestration.address", "sft.work_dir", "grpo.work_dir", "evaluate.benchmarks",
           *(f"{s}.{f}" for s in ("extract", "reason", "sample") for f in ("base_url", "api_key_env", "api_key_block")),
           *(f"{s}.{f}" for s in ("sft", "grpo") for f in ("trainer", "launch", "trust_remote_code")),
           "extract.trust_remote_code", "reason.trust_remote_code", "sample.trust_remote_code"]  # fmt: skip


def _field(recipe, dotted: str):
    value = recipe
    for key in dotted.split("."):
        value = getattr(value, key)
    return value


_BASE = None


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["extract", "reason", "sample", "sft", "grpo", "orchestration", "rounds", "evaluate", "teacher"]) |
    st.lists(st.sampled_from(["extract", "reason", "sample", "sft", "grpo", "store", "llm_cache", "orchestration",
                              "base_url", "api_key_env", "api_key_block", "trainer", "launch", "work_dir", "address",
                              "trust_remote_code", "max_steps", "evaluate", "benchmarks", "rounds", "0", " store"]),
             min_size=1, max_size=4).map(".".join),
    st.sampled_from(["http://evil.example", "AWS_SECRET_ACCESS_KEY", "X_API_KEY", "s3://evil/x", "true", "5",
                     "{base_url: http://evil.example}", "{api_key_env: X_API_KEY}", "[{sft: {work_dir: /tmp/x}}]",
                     "{trainer: {push_to_hub: true}}", "{address: tcp://e:1}", "&a {store: s3://e/x}", "null"]),
)  # fmt: skip
def test_an_override_the_check_passes_changes_no_guarded_field(dotted, value):
    global _BASE
    _BASE = _BASE or load_recipe(TINY)
    item = f"{dotted}={value}"
    try:
        config.check_deployment_overrides([item])
    except RecipeError:
        return
    try:
        recipe = load_recipe(TINY, overrides=[item])
    except RecipeError:
        return
    for dotted_field in GUARDED:
        assert _field(recipe, dotted_field) == _field(_BASE, dotted_field), (item, dotted_field)


# --- the deployment's `config` parameter --------------------------------------------


def test_check_recipe_path_keeps_config_inside_its_roots(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    (configs / "sub").mkdir(parents=True)
    (configs / "ok.yaml").write_text("name: ok\n")
    (configs / "sub" / "deeper.yml").write_text("name: deeper\n")
    (tmp_path / "outside.yaml").write_text("name: outside\n")
    (configs / "escape.yaml").symlink_to(tmp_path / "outside.yaml")
    (configs / "shadow.yaml").symlink_to("/etc/shadow")
    (configs / "notes.txt").write_text("x\n")
    (configs / "dir.yaml").mkdir()
    monkeypatch.chdir(tmp_path)
    roots = [Path("configs")]
    assert config.check_recipe_path("configs/ok.yaml", roots) == configs / "ok.yaml"
    assert config.check_recipe_path(str(configs / "sub" / "deeper.yml"), roots) == configs / "sub" / "deeper.yml"
    for bad, why in [
        ("outside.yaml", "outside"),
        ("configs/../outside.yaml", "outside"),
        ("configs/escape.yaml", "outside"),
        ("configs/shadow.yaml", "outside"),
        ("/etc/shadow", "outside"),
        ("/etc/passwd", "outside"),
        ("configs/notes.txt", "not a .yaml or .yml file"),
        ("configs/dir.yaml", "is a directory"),
        ("configs/missing.yaml", "does not exist"),
        ("", "names no recipe"),
    ]:
        with pytest.raises(RecipeError, match=why) as err:
            config.check_recipe_path(bad, roots)
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(RecipeError, match="names no folder"):
        config.check_recipe_path("configs/ok.yaml", [])


def test_the_project_configs_pass_check_recipe_path():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert config.check_recipe_path(path, [REPO / "configs"]) == path
