"""Bring committed result files up to the current format, changing no result and no run identity.

  python -m common.migrate [--output-dir results]

Picks written before `selection` was kept hold only a setup hash, which a change of machine or of a speed kernel
breaks: each gets the selection it was made for, rebuilt from the record of the sweep run it picked. Records and
picks written before paths were kept portable name the data files, the output folder and the script by absolute
paths of the machine that made them: each becomes the path as it reads from the project folder (`../shared/...`,
`results`, `python -m common.sweep`). Run identities are hashes of neither, so none changes.

One identity change, made on purpose: a run whose config names the value of a runtime setting (the budget
profile's `dropout_kernel: fast`) is the same computation as one whose `auto` resolved to it, and now has the same
identity (records.RUNTIME_WORDS). Such records are renamed to it, with every file and reference that names them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

from common import records
from common.env import PACKAGES
from common.picks import load_picks, picks_path, selection
from common.process import exit_process


def add_selections(output_dir: str) -> list:
    """Picks given their `selection`, from the sweep record of the picked rate; returns their names."""
    picks, done = load_picks(output_dir), []
    sweep = str(records.sweep_dir(output_dir))
    for name, pick in picks.items():
        if "selection" in pick:
            continue
        run_id = next((sc["run_id"] for sc in pick.get("scores", []) if sc["learning_rate"] == pick["learning_rate"]),
                      None)
        try:
            rec = json.loads(records.record_path(sweep, run_id).read_text()) if run_id else None
        except (OSError, ValueError):
            rec = None
        if rec is None:
            print(f"[migrate] {name}: no readable sweep record of its pick; left as it is")
            continue
        pick["selection"] = selection(rec["config"], rec["data"]["fingerprints"], rec.get("runtime") or {})
        done.append(name)
    if done:
        records.write_json(picks_path(output_dir), picks)
    return done


# Absolute paths of the checkouts that made the committed files -> the same path from the project folder.
PORTABLE = [
    (re.compile(r"python3? /\S+?/((?:common|bench|part\w+))/(\w+)\.py"), r"python -m \1.\2"),
    (re.compile(r"/(?:work|tmp|home|root)/[^/\s\"]+/\.\./shared/"), "../shared/"),
    (re.compile(r"/work/shared/"), "../shared/"),
    (re.compile(r"/(?:work|tmp|home|root)/[^/\s\"]+/results\b"), "results"),
]


def portable(value):
    """Every string in a record with the machine's absolute paths made relative (PORTABLE)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str):
        for pattern, repl in PORTABLE:
            value = pattern.sub(repl, value)
    return value


def relative_paths(output_dir: str) -> list:
    """Run records, sweep records and picks.json rewritten with portable paths; returns the files changed."""
    out = Path(output_dir)
    changed = []
    for path in sorted([*records.runs_dir(output_dir).glob("*.json"),
                        *records.runs_dir(str(records.sweep_dir(output_dir))).glob("*.json"), picks_path(output_dir)]):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            print(f"[migrate] {path}: not readable, left as it is")
            continue
        new = portable(doc)
        if new != doc:
            assert new.get("identity") == doc.get("identity")  # identities hash neither paths nor commands
            records.write_json(path, new)
            changed.append(str(path.relative_to(out)))
    return changed


def _identity(doc: dict, rule_words: bool) -> str:
    """A record's identity recomputed from what it holds, by today's rule or (rule_words=False) by the rule before
    RUNTIME_WORDS, which hashed the config's words as written."""
    env = doc.get("env", {})
    versions = {"python": env.get("python"), **{k: env.get(k) for k in PACKAGES}}
    runtime = doc.get("runtime")
    if rule_words:
        return records.run_identity(doc["config"], doc["data"].get("fingerprints"), versions, runtime)
    blob = json.dumps({"config": records.identity_config(doc["config"]), "data": doc["data"].get("fingerprints"),
                       "versions": versions, "runtime": runtime or {}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def reidentify(output_dir: str) -> dict:
    """old run id -> new, for records whose identity changes under RUNTIME_WORDS; renames their files and rewrites
    every CSV, record and picks file that names them. A record is renamed only when the old rule reproduces its
    stored identity (proof that it is read right); the rest are left alone."""
    out = Path(output_dir)
    renames = {}
    for path in sorted(out.glob("**/runs/*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not doc.get("runtime") or "identity" not in doc or doc["identity"] != _identity(doc, False):
            continue
        new = _identity(doc, True)
        if new != doc["identity"]:
            renames[doc["run_id"]] = doc["run_id"].replace(doc["identity"], new)
    if not renames:
        return renames
    pattern = re.compile("|".join(map(re.escape, renames)))
    for path in sorted([*out.glob("**/*.json"), *out.glob("**/*.csv")]):
        text = path.read_text()
        if pattern.search(text):
            records.write_atomic(path, pattern.sub(lambda m: renames[m.group(0)], text).encode())
    for path in sorted(out.glob("**/*")):
        for old, new in renames.items():
            if old in path.name and path.exists():
                path.rename(path.with_name(path.name.replace(old, new)))
    for new_id in renames.values():  # each renamed record's own identity field
        for path in out.glob(f"**/runs/{new_id}.json"):
            doc = json.loads(path.read_text())
            doc["identity"] = new_id.rsplit("-", 1)[1]
            records.write_json(path, doc)
    return renames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.migrate", description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", default="results")
    a = ap.parse_args(argv)
    done = add_selections(a.output_dir)
    print(f"[migrate] {len(done)} pick(s) given their selection: {', '.join(done) or 'none needed'}")
    changed = relative_paths(a.output_dir)
    print(f"[migrate] {len(changed)} record(s) with portable paths")
    renamed = reidentify(a.output_dir)
    print(f"[migrate] {len(renamed)} run(s) renamed to the identity of the runtime they ran with"
          + "".join(f"\n  {old} -> {new}" for old, new in renamed.items()))
    return 0


if __name__ == "__main__":
    exit_process(main())
