"""The README and docs/ against what they describe: links, make targets and variables, config keys, line lengths."""
import re
import subprocess

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Environment variables the docs name beside the Makefile's own (read by the code, not by make).
ENV_VARS = {"RAY_ADDRESS", "RAY_NUM_CPUS", "IMDB_PEFT_CPUS_PER_TASK", "TOKENIZERS_PARALLELISM", "CUDA_VISIBLE_DEVICES"}


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _makefile():
    text = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split())
    variables = set(re.findall(r"^([A-Z_]+) \?=", text, re.M))
    return phony, variables


def test_every_link_in_the_readme_and_docs_resolves():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and file.suffix == ".md":
                headings = {_anchor(h) for h in re.findall(r"^#+ (.*)$", file.read_text(), re.M)}
                if anchor not in headings:
                    broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_each_doc_is_linked_once_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert readme.count(f"](docs/{doc.name})") == 1, doc.name


def test_readme_make_targets_and_variables_match_the_makefile():
    readme = (ROOT / "README.md").read_text()
    phony, variables = _makefile()
    named = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", readme))
    assert named <= phony, named - phony  # every target the README names exists
    assert phony <= named, phony - named  # and every target is in the README
    shown = set(re.findall(r"\b([A-Z][A-Z_]{2,})=", readme)) | set(re.findall(r"`([A-Z][A-Z_]{2,})`", readme))
    assert variables <= shown, variables - shown  # every variable is explained
    unknown = {v for v in shown - variables - ENV_VARS if not v.startswith(("HF_", "SLURM"))}
    assert not unknown, unknown


def test_every_set_key_shown_exists_in_the_schema():
    from common.schema import key_docs

    keys = {k for k, *_ in key_docs()}
    shown = {k for doc in DOCS for k in re.findall(r"--set[ =\"']+([a-z_]+(?:\.[a-z_0-9]+)+)=", doc.read_text())}
    assert shown and shown <= keys, shown - keys


def test_readme_lines_fit():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    long = [f"{i}: {len(line)}" for i, line in enumerate(lines, 1) if len(line) > 120]
    assert not long, long


# Words about how the project was made rather than what it is, and names of the reproduced study that read as a
# random seed's. Checked in every text file of the tree: code, docs, configs, scripts, results' reports.
BUILD_WORDS = re.compile(r"\blent\b|\bsessions?\b|device machine|development machines?|issue #?\d+|\bworkplace\b|"
                         r"run\(command=|carry=|\bcarried folders?\b|\.devdata|\.devmodel|farm-studio|\bCEO\b", re.I)
SEED_AS_REFERENCE = re.compile(r"\bseed[ -](report|settings?|recipe|study|models?|figures?)\b|\bthe seed's\b", re.I)


def _tree_texts():
    """(path, text) of every text file the project holds: git's files, or the folder's without git."""
    try:
        names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    for name in names:
        path = ROOT / name
        if path.suffix in (".npz", ".png", ".gz", ".safetensors") or not path.is_file():
            continue
        try:
            yield name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def test_the_tree_says_nothing_of_how_the_project_was_built_and_names_the_reference_one_way():
    build, seed = [], []
    for name, text in _tree_texts():
        if name == "tests/test_docs.py":
            continue
        text = text.replace('scope="session"', "")  # pytest's fixture scope
        for i, line in enumerate(text.splitlines(), 1):
            if BUILD_WORDS.search(line):
                build.append(f"{name}:{i}: {line.strip()[:100]}")
            if SEED_AS_REFERENCE.search(line):
                seed.append(f"{name}:{i}: {line.strip()[:100]}")
    assert not build, "\n".join(build[:30])
    assert not seed, "\n".join(seed[:30])


def test_the_committed_summary_reads_at_a_glance():
    """study/summary.md: at most 150 lines, its Findings whole within the first 40."""
    from conftest import ROOT

    lines = (ROOT / "study" / "summary.md").read_text().splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("## ")]
    start = lines.index("## Findings")
    end = next(i for i in heads if i > start)
    assert len(lines) <= 150 and end <= 40, (len(lines), start, end)


def test_the_summary_quotes_its_notes_from_docs_and_they_hold_the_code_s_numbers():
    from common import stats
    from common.report.markdown import how_to_read

    notes = (ROOT / "docs" / "results.md").read_text().split("<!-- summary notes -->\n")[1] \
        .split("<!-- end of summary notes -->")[0]
    quoted = "\n".join(how_to_read(ROOT / "study"))
    assert notes.strip() and notes.strip() in quoted  # the summary's notes are the docs' text, said once there
    assert f"at least {stats.COLLAPSE_SHARE:.0%} one class" in notes  # the share the code flags a collapse at
    assert "(../docs/results.md#reading-the-report)" in quoted  # the other notes, one click away


def test_the_committed_study_report_is_what_the_code_makes_of_its_records(tmp_path):
    """study/'s summary, other runs and CSVs regenerate unchanged from its records: a change to the report's wording
    or numbers shows here until `python -m common.report --output-dir study` is run and committed."""
    import shutil

    from common.report import write_summary

    copy = tmp_path / "study"
    for name in ("runs", "sweep", "plots"):  # not last_command.json: the copy is no user's folder
        shutil.copytree(ROOT / "study" / name, copy / name)
    write_summary(str(copy))  # the plots' inputs are unchanged, so none is drawn again

    def normal(path):  # the docs link and the generated-by line name the folder the report was written in (and
        # wrap around it): compared as words
        text = re.sub(r"\]\([./\w-]*?docs/results\.md", "](docs/results.md", " ".join(path.read_text().split()))
        return re.sub(r"Generated by `[^`]*` at \S+", "Generated by", text)

    for name in ("summary.md", "other_runs.md", "part1.csv", "part2.csv", "part3.csv", "sweep/part3.csv"):
        assert normal(copy / name) == normal(ROOT / "study" / name), name
