#!/usr/bin/python3
"""Dump OpenStack Placement's request schemas to JSON, for golden tests.

Usage: dump_placement_schemas.py PLACEMENT_GIT_DIR [TAG]

It extracts placement/schemas/*.py and placement/db/constants.py at TAG
(default 8.0.0) from the git directory into a scratch package, imports
them, and writes testdata/placement/<module>.json holding every
upper-case dict or list of the module, in the module's own key order.
The upstream code is only executed here, never copied into unisched.
"""
import importlib
import json
import os
import subprocess
import sys
import tempfile

MODULES = ["common", "aggregate", "allocation", "allocation_candidate",
           "inventory", "reshaper", "resource_class", "resource_provider",
           "trait", "usage"]


def show(gitdir, tag, path):
    return subprocess.check_output(
        ["git", "--git-dir", gitdir, "show", "%s:%s" % (tag, path)])


def main():
    gitdir = sys.argv[1]
    tag = sys.argv[2] if len(sys.argv) > 2 else "8.0.0"
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "placement")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("placement", "placement/db", "placement/schemas"):
            os.makedirs(os.path.join(tmp, sub))
            open(os.path.join(tmp, sub, "__init__.py"), "w").close()
        files = ["placement/db/constants.py"] + [
            "placement/schemas/%s.py" % m for m in MODULES]
        for f in files:
            with open(os.path.join(tmp, f), "wb") as fh:
                fh.write(show(gitdir, tag, f))
        sys.path.insert(0, tmp)
        for m in MODULES:
            mod = importlib.import_module("placement.schemas." + m)
            found = {k: v for k, v in vars(mod).items()
                     if k.isupper() and isinstance(v, (dict, list))}
            if not found:
                continue
            with open(os.path.join(out, m + ".json"), "w") as fh:
                json.dump(found, fh, indent=2)
                fh.write("\n")


if __name__ == "__main__":
    main()
