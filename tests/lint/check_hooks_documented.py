"""Lint: every hook in preload/hooks.def is named in the README's table of interposed entry points.

Usage: check_hooks_documented.py HOOKS_DEF README
"""

import re
import sys

with open(sys.argv[1]) as f:
    hooks = re.findall(r"^MT_HOOK(?:_OPTIONAL|_NOT_MUSL)?\([^,]+,\s*(\w+),", f.read(), re.M)
with open(sys.argv[2]) as f:
    readme = f.read()
section = readme.split("## Interposed entry points", 1)[-1].split("\n## ", 1)[0]
missing = [name for name in hooks if f"`{name}`" not in section]
if missing:
    print(f"hooks missing from the README's 'Interposed entry points': {missing}")
    sys.exit(1)
print(f"{len(hooks)} hooks documented")
