"""Generate the student versions and autograders of the assignments, and grade submissions.

One command for a teacher (run from the repository root, in the environment of
``requirements.txt``)::

    python -m assignments.grade generate                 # student notebooks + autograders
    python -m assignments.grade grade SUBMISSIONS/       # grade every .ipynb under a folder
    python -m assignments.grade selfcheck                # solutions, blanks, wrong submissions
    python -m assignments.grade selfcheck --here         # the same in one process (fast)

Everything is written under ``_build/assignments/`` (git-ignored; ``--out`` to change):

- ``<name>/student/<name>.ipynb``: the notebook to hand out (solutions stripped, public tests);
- ``<name>/autograder/<name>-autograder.zip``: otter-grader's autograder (public and hidden
  tests, the hidden checks module); ``<name>/autograder/<name>.ipynb``: the solved notebook;
- ``grades/grades.csv``: one row per submission (score per question, total, possible, error);
  ``grades/feedback/<submission>.txt``: every test case's result and message.

Grading runs ``otter run`` (otter-grader's grading without containers) once per submission in
a subprocess, ``--jobs`` at a time: each submission's notebook is executed top to bottom in a
fresh Jupyter kernel, then the public and hidden tests run against its variables. A submission
names its assignment in its metadata (``otter.assignment_name``, written by ``generate``); a
notebook without it is reported, not graded. ``selfcheck --here`` grades the kit's own notebooks
in this process instead (:func:`grade_here`): otter's test files without a kernel per notebook.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "assignments"
DEFAULT_OUT = ROOT / "_build" / "assignments"
#: The helpers shared by the hidden checks, shipped in every autograder (``autograder_files``).
SUPPORT = KIT / "checks_support.py"
#: Seconds one submission may take (the notebook and its tests) before it scores 0.
GRADE_TIMEOUT = 600


@dataclass(frozen=True)
class Assignment:
    """One assignment: ``assignments/<name>/<name>.ipynb`` and its wrong submissions."""

    name: str

    @property
    def folder(self) -> Path:
        return KIT / self.name

    @property
    def master(self) -> Path:
        return self.folder / f"{self.name}.ipynb"

    def wrong(self) -> list[WrongSubmission]:
        """The deliberately wrong submissions of ``wrong/*.yaml``, sorted by name."""
        return [WrongSubmission.load(p) for p in sorted((self.folder / "wrong").glob("*.yaml"))]


@dataclass(frozen=True)
class WrongSubmission:
    """A solution with a known mistake: text replacements in the solved notebook's code cells.

    ``expect_failed`` names the test functions that must fail (and no other may).
    """

    name: str
    description: str
    replace: list[dict[str, str]]
    expect_failed: list[str]

    @classmethod
    def load(cls, path: Path) -> WrongSubmission:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls(path.stem, spec["description"], spec["replace"], spec["expect_failed"])

    def apply(self, solved: Path, dest: Path) -> Path:
        """Write the solved notebook ``solved`` with the replacements applied to ``dest``."""
        nb = nbformat.read(solved, as_version=4)
        for rep in self.replace:
            hits = [c for c in nb.cells if c.cell_type == "code" and rep["old"] in c.source]
            count = sum(c.source.count(rep["old"]) for c in hits)
            if count != 1:
                raise ValueError(f"wrong submission {self.name!r}: {rep['old']!r} occurs {count} "
                                 f"times in the code cells of {solved.name} (needs exactly 1); "
                                 "update the replacement after editing the master notebook.")
            hits[0].source = hits[0].source.replace(rep["old"], rep["new"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        return dest


def assignments(names: Sequence[str] | None = None) -> list[Assignment]:
    """The assignments of the kit (folders ``aN_*`` with a master notebook), or those named."""
    found = sorted(p.name for p in KIT.glob("a[0-9]*_*") if (p / f"{p.name}.ipynb").is_file())
    if not names:
        return [Assignment(n) for n in found]
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise SystemExit(f"unknown assignment(s) {', '.join(unknown)}; the kit has "
                         f"{', '.join(found)}.")
    return [Assignment(n) for n in names]


@dataclass(frozen=True)
class Generated:
    """Paths written by :func:`generate` for one assignment."""

    student: Path
    solved: Path
    autograder: Path


def _env() -> dict[str, str]:
    """The environment of otter and its kernels: this checkout first on ``sys.path``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["MPLBACKEND"] = "Agg"  # figures are not graded; no display needed
    env["JUPYTER_PREFER_ENV_PATH"] = "1"  # the kernel "python3" of this interpreter
    return env


def stage_master(assignment: Assignment, stage: Path) -> Path:
    """Copy the master notebook, its checks and :data:`SUPPORT` into ``stage`` (replaced).

    otter ships only files beside (or below) the master notebook in the autograder
    (``autograder_files``); the helpers that the hidden checks of all assignments share live
    once, in ``assignments/checks_support.py``, and join each master here.
    """
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for path in [assignment.master, *sorted(assignment.folder.glob("*.py")), SUPPORT]:
        shutil.copy2(path, stage / path.name)
    return stage


def generate(assignment: Assignment, out: Path = DEFAULT_OUT) -> Generated:
    """Run ``otter assign`` on the master notebook; returns the student/solved/zip paths.

    The master is staged with the shared checks module (:func:`stage_master`). The output
    folder ``out/<name>`` is replaced. The autograder zip, which otter names with a time stamp,
    is renamed ``<name>-autograder.zip``.
    """
    dest = out / assignment.name
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = stage_master(assignment, out / "_stage" / assignment.name)
    run = subprocess.run(
        [sys.executable, "-m", "otter", "assign", "--no-run-tests", "--no-pdfs",
         assignment.master.name, str(dest.resolve())],
        cwd=stage, env=_env(), capture_output=True, text=True)
    shutil.rmtree(stage)
    with contextlib.suppress(OSError):  # other stages may still be there
        stage.parent.rmdir()
    zips = sorted((dest / "autograder").glob("*.zip"))
    if run.returncode != 0 or len(zips) != 1:
        raise RuntimeError(f"otter assign failed for {assignment.name} (exit {run.returncode}):"
                           f"\n{run.stdout}\n{run.stderr}")
    autograder = zips[0].rename(dest / "autograder" / f"{assignment.name}-autograder.zip")
    return Generated(dest / "student" / f"{assignment.name}.ipynb",
                     dest / "autograder" / f"{assignment.name}.ipynb", autograder)


def generate_all(names: Sequence[str] | None = None, out: Path = DEFAULT_OUT
                 ) -> dict[str, Generated]:
    return {a.name: generate(a, out) for a in assignments(names)}


# ---------------------------------------------------------------------------------- grading
@dataclass
class Result:
    """The grade of one submission: per test case, per question and in total."""

    submission: str
    assignment: str
    score: float = 0.0
    possible: float = 0.0
    questions: dict[str, dict[str, float]] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    def failed(self) -> list[str]:
        """Names of the test functions that failed."""
        return [c["name"] for c in self.cases if not c["passed"]]

    def feedback(self) -> str:
        lines = [f"{self.submission} ({self.assignment}): {self.score:g} / {self.possible:g}"]
        if self.error:
            lines.append(f"ERROR: {self.error}")
        for c in self.cases:
            status = "passed" if c["passed"] else "FAILED"
            kind = "hidden" if c["hidden"] else "public"
            lines.append(f"\n[{c['question']}] {c['name']} ({kind}, {c['points']:g} points): "
                         f"{status}")
            if not c["passed"]:
                if c.get("failure_message"):
                    lines.append(f"  {c['failure_message']}")
                lines.append("  " + c["message"].replace("\n", "\n  "))
        return "\n".join(lines) + "\n"


def _test_names(autograder: Path) -> dict[str, list[str]]:
    """Question -> names of its test functions in file order (otter numbers them instead)."""
    names = {}
    with zipfile.ZipFile(autograder) as z:
        for member in z.namelist():
            match = re.fullmatch(r"tests/(\w+)\.py", member)
            if match:
                source = z.read(member).decode("utf-8")
                names[match.group(1)] = re.findall(r"^def (\w+)\(", source, flags=re.M)
    return names


def _collect(test_files: dict[str, Any], names: dict[str, list[str]]
             ) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Per test case and per question results of otter's test files (question -> file)."""
    cases, questions = [], {}
    for question, test_file in sorted(test_files.items()):
        fn_names = names.get(question, [])
        score = 0.0
        for k, res in enumerate(test_file.test_case_results):
            tc = res.test_case
            points = float(tc.points or 0)
            score += points if res.passed else 0.0
            cases.append({"question": question,
                          "name": fn_names[k] if k < len(fn_names) else tc.name,
                          "points": points, "hidden": bool(tc.hidden),
                          "passed": bool(res.passed), "message": res.message or "",
                          "failure_message": tc.failure_message or ""})
        questions[question] = {"score": score, "possible": float(test_file.possible)}
    return cases, questions


def _grade_in_process(autograder: Path, notebook: Path, out_json: Path) -> None:
    """Grade one notebook with ``otter.run`` and write the per-test-case results as JSON."""
    from otter.run import main as otter_run

    results = otter_run(str(notebook), autograder=str(autograder), output_dir=None,
                        no_logo=True)
    cases, questions = _collect(results.results, _test_names(autograder))
    error = results._catastrophic_error
    out_json.write_text(json.dumps({
        "score": sum(q["score"] for q in questions.values()),
        "possible": sum(q["possible"] for q in questions.values()),
        "otter_total": float(results.total), "questions": questions, "cases": cases,
        "error": "" if error is None else repr(error)}, indent=1), encoding="utf-8")


#: Code cells that :func:`grade_here` does not run: otter's own cells (its grader object and
#: ``grader.check`` calls; the public tests run after the notebook anyway).
_OTTER_CELL = re.compile(r"^\s*(import otter\b|grader\s*=\s*otter\.|grader\.check)", re.M)


def grade_here(submission: str, assignment: str, notebook: Path, autograder: Path) -> Result:
    """Grade ``notebook`` in this process, with otter's tests but without a kernel.

    The self-check's fast path (``selfcheck --here``): the notebook's code cells run in one
    namespace, except otter's own cells and those tagged ``otter_ignore`` (as ``otter run``
    skips them); an exception in a cell is recorded and the next cell runs (otter ignores
    errors too). Then the autograder's test files (public and hidden, otter's
    ``ExceptionTestFile``) run against that namespace, with the autograder's support files on
    ``sys.path``. Only for trusted notebooks (the masters and their variants): a student's code
    would share this process; grade submissions with :func:`grade_one`.
    """
    import io
    import tempfile

    from otter.test_files import ExceptionTestFile

    start = time.perf_counter()
    result = Result(submission, assignment)
    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(autograder) as z:
            z.extractall(tmp)
        files, cwd = Path(tmp) / "files", os.getcwd()
        sys.path.insert(0, str(files))
        env: dict[str, Any] = {"__name__": "__main__"}
        try:
            os.chdir(files)
            with contextlib.redirect_stdout(io.StringIO()):
                for cell in nb.cells:
                    if (cell.cell_type != "code" or _OTTER_CELL.search(cell.source)
                            or "otter_ignore" in cell.metadata.get("tags", [])
                            or cell.metadata.get("otter", {}).get("ignore", False)):
                        continue
                    try:
                        exec(compile(cell.source, f"<{notebook.name} cell>", "exec"), env)
                    except Exception:  # graded on, as otter does (a blank raises)
                        pass
                tests = {}
                for path in sorted((Path(tmp) / "tests").glob("*.py")):
                    tests[path.stem] = ExceptionTestFile.from_file(str(path))
                    tests[path.stem].run(env)
        finally:
            os.chdir(cwd)
            sys.path.remove(str(files))
        result.cases, result.questions = _collect(tests, _test_names(autograder))
    result.score = sum(q["score"] for q in result.questions.values())
    result.possible = sum(q["possible"] for q in result.questions.values())
    result.seconds = time.perf_counter() - start
    return result


def grade_one(submission: str, assignment: str, notebook: Path, autograder: Path,
              work: Path) -> Result:
    """Grade ``notebook`` in a subprocess (its own kernel, its output kept out of ours)."""
    work.mkdir(parents=True, exist_ok=True)
    out_json = work / (re.sub(r"[^\w.-]+", "_", submission) + ".json")
    out_json.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "assignments.grade", "_one", str(autograder), str(notebook),
             str(out_json)],
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=GRADE_TIMEOUT)
        failure = "" if run.returncode == 0 else (run.stderr or run.stdout)[-2000:]
    except subprocess.TimeoutExpired:
        failure = f"grading took more than {GRADE_TIMEOUT} s"
    result = Result(submission, assignment, seconds=time.perf_counter() - start)
    if out_json.is_file():
        data = json.loads(out_json.read_text(encoding="utf-8"))
        result.score, result.possible = data["score"], data["possible"]
        result.questions, result.cases, result.error = (data["questions"], data["cases"],
                                                        data["error"])
    else:
        result.error = failure or "the grader wrote no results"
    return result


def assignment_of(notebook: Path) -> str | None:
    """The assignment a notebook belongs to (``metadata.otter.assignment_name``)."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # not a readable notebook: reported as ungradable
        return None
    return nb.metadata.get("otter", {}).get("assignment_name")


def grade_notebooks(items: Sequence[tuple[str, Path]], out: Path = DEFAULT_OUT, jobs: int = 2,
                    generated: dict[str, Generated] | None = None, here: bool = False
                    ) -> list[Result]:
    """Grade ``(submission id, notebook)`` pairs, ``jobs`` at a time, in the given order.

    Generates the autograders that ``generated`` does not hold yet (or that are missing).
    ``here``: grade in this process, one after the other (:func:`grade_here`; trusted
    notebooks only).
    """
    generated = dict(generated or {})
    known = {a.name for a in assignments()}
    tasks: list[tuple[str, str, Path] | Result] = []
    for submission, notebook in items:
        name = assignment_of(notebook)
        if name not in known:
            tasks.append(Result(submission, str(name), error=(
                f"{notebook} names no known assignment in its metadata (otter.assignment_name "
                f"= {name!r}; known: {', '.join(sorted(known))}): hand out the notebooks of "
                "`python -m assignments.grade generate`")))
            continue
        if name not in generated or not generated[name].autograder.is_file():
            generated[name] = generate(Assignment(name), out)
        tasks.append((submission, name, notebook))
    work = out / "grades" / "json"

    def run(task: tuple[str, str, Path] | Result) -> Result:
        if isinstance(task, Result):
            return task
        submission, name, notebook = task
        if here:
            return grade_here(submission, name, notebook, generated[name].autograder)
        return grade_one(submission, name, notebook, generated[name].autograder, work)

    if here:
        return [run(task) for task in tasks]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(run, tasks))


def write_report(results: Sequence[Result], out: Path) -> Path:
    """``out/grades/grades.csv`` and one feedback file per submission; returns the CSV path."""
    import pandas as pd

    folder = out / "grades"
    (folder / "feedback").mkdir(parents=True, exist_ok=True)
    rows = []
    for r in results:
        row: dict[str, Any] = {"submission": r.submission, "assignment": r.assignment}
        row.update({q: v["score"] for q, v in sorted(r.questions.items())})
        row.update({"score": r.score, "possible": r.possible, "seconds": round(r.seconds, 1),
                    "error": r.error.splitlines()[0] if r.error else ""})
        rows.append(row)
        name = re.sub(r"[^\w.-]+", "_", r.submission) + ".txt"
        (folder / "feedback" / name).write_text(r.feedback(), encoding="utf-8")
    csv = folder / "grades.csv"
    tmp = csv.with_suffix(".csv.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    os.replace(tmp, csv)
    return csv


def grade_folder(submissions: Path, out: Path = DEFAULT_OUT, jobs: int = 2) -> list[Result]:
    """Grade every ``*.ipynb`` under ``submissions`` (ids: paths relative to it)."""
    notebooks = sorted(p for p in submissions.rglob("*.ipynb")
                       if ".ipynb_checkpoints" not in p.parts)
    if not notebooks:
        raise SystemExit(f"no .ipynb file under {submissions}")
    return grade_notebooks([(p.relative_to(submissions).as_posix(), p) for p in notebooks],
                           out, jobs)


# ---------------------------------------------------------------------------------- selfcheck
@dataclass
class Expected:
    """What the self-check expects of one graded notebook."""

    kind: str  # "solution", "blank" or "wrong"
    assignment: str
    wrong: WrongSubmission | None = None


def selfcheck_submissions(names: Sequence[str] | None = None, out: Path = DEFAULT_OUT
                          ) -> tuple[list[tuple[str, Path]], dict[str, Expected],
                                     dict[str, Generated]]:
    """Generate, then write the solved, blank and wrong notebooks of every assignment."""
    generated = generate_all(names, out)
    items, expected = [], {}
    folder = out / "selfcheck"
    for a in assignments(names):
        gen = generated[a.name]
        for kind, path in (("solution", gen.solved), ("blank", gen.student)):
            sid = f"{a.name}/{kind}"
            items.append((sid, path))
            expected[sid] = Expected(kind, a.name)
        for wrong in a.wrong():
            sid = f"{a.name}/wrong-{wrong.name}"
            items.append((sid, wrong.apply(gen.solved, folder / a.name / f"{wrong.name}.ipynb")))
            expected[sid] = Expected("wrong", a.name, wrong)
    return items, expected, generated


def check_expectation(result: Result, expected: Expected) -> str:
    """An empty string when ``result`` is what the self-check expects, else the problem."""
    if result.error:
        return f"grading error: {result.error.splitlines()[0]}"
    if result.possible <= 0:
        return "no points possible: no test ran"
    if expected.kind == "solution" and result.score != result.possible:
        return f"the solution scores {result.score:g} / {result.possible:g}: {result.failed()}"
    if expected.kind == "blank" and result.score != 0:
        passed = [c["name"] for c in result.cases if c["passed"] and c["points"] > 0]
        return f"the blank notebook scores {result.score:g}: {passed} pass"
    if expected.kind == "wrong":
        assert expected.wrong is not None
        want = set(expected.wrong.expect_failed)
        got = set(result.failed())
        lost = sum(c["points"] for c in result.cases if not c["passed"])
        want_lost = sum(c["points"] for c in result.cases if c["name"] in want)
        unknown = want - {c["name"] for c in result.cases}
        if unknown:
            return f"expect_failed names unknown tests {sorted(unknown)}"
        if got != want or lost != want_lost:
            return (f"failed {sorted(got)} (lost {lost:g} points), expected exactly "
                    f"{sorted(want)} (lose {want_lost:g})")
    return ""


def selfcheck(names: Sequence[str] | None = None, out: Path = DEFAULT_OUT, jobs: int = 2,
              here: bool = False) -> tuple[list[Result], list[str]]:
    """Grade solutions, blanks and wrong submissions; returns results and problems.

    ``here``: the fast path, every notebook graded in this process (:func:`grade_here`).
    """
    items, expected, generated = selfcheck_submissions(names, out)
    results = grade_notebooks(items, out, jobs, generated, here)
    problems = []
    for r in results:
        problem = check_expectation(r, expected[r.submission])
        if problem:
            problems.append(f"{r.submission}: {problem}")
    return results, problems


def score_table(results: Sequence[Result]) -> str:
    """A Markdown table: submission, score, possible, failed tests."""
    lines = ["| submission | score | failed tests |", "|---|---:|---|"]
    for r in results:
        failed = ", ".join(r.failed()) or ("(error)" if r.error else "-")
        lines.append(f"| {r.submission} | {r.score:g} / {r.possible:g} | {failed} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assignments.grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("generate", "student versions and autograders"),
                       ("grade", "grade every .ipynb under a folder"),
                       ("selfcheck", "grade the solutions, blank and wrong submissions")):
        p = sub.add_parser(name, help=text)
        if name == "grade":
            p.add_argument("submissions", type=Path, help="folder of submitted notebooks")
        else:
            p.add_argument("names", nargs="*", help="assignments (default: all)")
        p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                       help="output folder (default: _build/assignments)")
        if name != "generate":
            p.add_argument("--jobs", type=int, default=2, help="submissions graded at once")
        if name == "selfcheck":
            p.add_argument("--here", action="store_true",
                           help="fast: grade in this process, without a kernel per notebook")
    one = sub.add_parser("_one")  # internal: one submission, in its own process
    one.add_argument("autograder", type=Path)
    one.add_argument("notebook", type=Path)
    one.add_argument("out_json", type=Path)
    args = parser.parse_args(argv)

    if args.command == "_one":
        _grade_in_process(args.autograder, args.notebook, args.out_json)
        return 0
    start = time.perf_counter()
    if args.command == "generate":
        for name, gen in generate_all(args.names, args.out).items():
            print(f"{name}: hand out {gen.student}; grade with {gen.autograder}")
        return 0
    if args.command == "grade":
        results = grade_folder(args.submissions, args.out, args.jobs)
        problems: list[str] = []
    else:
        results, problems = selfcheck(args.names, args.out, args.jobs, args.here)
    csv = write_report(results, args.out)
    print(score_table(results))
    print(f"\n{len(results)} submission(s) graded in {time.perf_counter() - start:.0f} s; "
          f"grades in {csv}, feedback in {csv.parent / 'feedback'}")
    for problem in problems:
        print(f"SELFCHECK PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
