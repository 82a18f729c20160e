"""`python -m t2g` is the `t2g` command: the installed console script, looked up by name
(its run and stack commands live in flows/, which t2g/ never imports directly)."""

from importlib.metadata import entry_points

(script,) = entry_points(group="console_scripts", name="t2g")
script.load()()
