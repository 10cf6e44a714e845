"""The coursework kit (assignments/): structure, generation, and the graded self-check.

The self-check (solutions full marks, blanks zero, every wrong submission loses exactly the
points of its tests) runs by default on its fast path, ``selfcheck --here``: ``otter assign`` on
the four masters, then the 20 notebooks graded in this process with otter's test files (about 35
CPU-seconds). The same self-check through ``otter run``, a fresh kernel per notebook as a teacher
grades, runs with ``METAREC_GRADING_TESTS=1`` (about 2 CPU-minutes).
"""

from __future__ import annotations

import os
import re
import zipfile

import nbformat
import pytest

from assignments import grade

NAMES = [a.name for a in grade.assignments()]


def test_four_assignments_with_checks_and_three_wrong_submissions():
    assert NAMES == ["a1_tasks", "a2_maml", "a3_reptile_metasgd", "a4_comparison"]
    for a in grade.assignments():
        assert (a.folder / f"{a.name[:2]}_checks.py").is_file()
        assert len(a.wrong()) == 3


@pytest.mark.parametrize("name", NAMES)
def test_wrong_submissions_apply_once_and_name_real_tests(name, tmp_path):
    a = grade.Assignment(name)
    source = a.master.read_text(encoding="utf-8")
    tests = set(re.findall(r"def (test_\w+)\(", source))
    for wrong in a.wrong():
        out = wrong.apply(a.master, tmp_path / f"{wrong.name}.ipynb")
        assert nbformat.read(out, as_version=4).cells
        assert set(wrong.expect_failed) <= tests, wrong.name


@pytest.fixture(scope="module")
def selfcheck_here(tmp_path_factory):
    """``selfcheck --here`` of the whole kit: (results, problems, output folder)."""
    out = tmp_path_factory.mktemp("kit")
    results, problems = grade.selfcheck(out=out, here=True)
    return results, problems, out


def test_selfcheck_scores_fast_path(selfcheck_here):
    results, problems, _ = selfcheck_here
    assert len(results) == 20
    assert not problems, problems
    kinds = [r.submission.split("/")[1] for r in results]
    assert kinds.count("solution") == kinds.count("blank") == 4
    assert sum(k.startswith("wrong-") for k in kinds) == 12


def test_generate_strips_solutions_and_hidden_tests(selfcheck_here):
    tmp_path = selfcheck_here[2]
    gen = grade.Generated(tmp_path / "a1_tasks" / "student" / "a1_tasks.ipynb",
                          tmp_path / "a1_tasks" / "autograder" / "a1_tasks.ipynb",
                          tmp_path / "a1_tasks" / "autograder" / "a1_tasks-autograder.zip")
    student = gen.student.read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in student and "rng.choice(users" not in student
    assert "a1_checks" not in student  # hidden tests stay in the autograder
    names = grade._test_names(gen.autograder)
    assert "test_no_query_leakage" in names["q2"]
    assert grade.assignment_of(gen.student) == "a1_tasks"
    with zipfile.ZipFile(gen.autograder) as z:  # the checks and the helpers they share
        assert {"files/a1_checks.py", "files/checks_support.py"} <= set(z.namelist())
    assert not (tmp_path / "_stage").exists()


def test_check_expectation_rules():
    case = {"name": "t", "points": 2.0, "passed": False, "hidden": True, "message": "",
            "question": "q1"}
    ok = {**case, "name": "u", "passed": True}
    r = grade.Result("s", "a1_tasks", 1.0, 3.0, cases=[case, ok])
    wrong = grade.WrongSubmission("w", "", [], ["t"])
    assert grade.check_expectation(r, grade.Expected("wrong", "a1_tasks", wrong)) == ""
    assert grade.check_expectation(r, grade.Expected("solution", "a1_tasks"))
    assert grade.check_expectation(r, grade.Expected("blank", "a1_tasks"))


@pytest.mark.skipif(os.environ.get("METAREC_GRADING_TESTS") != "1",
                    reason="grades 20 notebooks (minutes): set METAREC_GRADING_TESTS=1")
def test_selfcheck_scores_with_otter_run(tmp_path):
    results, problems = grade.selfcheck(out=tmp_path, jobs=2)
    assert len(results) == 20
    assert not problems, problems


def test_eager_references_equal_the_package_meta_gradients():
    """The hidden checks' eager references (no tf.function) give meta_gradients' numbers."""
    import numpy as np

    from assignments import checks_support as shared
    from metarec.meta import MAML, MetaSGD, Reptile

    rng = np.random.default_rng(0)
    model, batch = shared.sine_model(0), shared.sine_batch(rng, 2, k=4)
    for cls, kwargs in ((MAML, {}), (MAML, {"first_order": True}), (Reptile, {}),
                        (MetaSGD, {})):
        loss, grads, _ = shared.reference_gradients(
            cls(model, inner_lr=0.01, inner_steps=2, vectorize=False, **kwargs), batch)
        want_loss, want = cls(model, inner_lr=0.01, inner_steps=2, **kwargs
                              ).meta_gradients(batch)
        assert abs(loss - float(want_loss)) <= 1e-12 * max(1.0, abs(loss)), cls.__name__
        assert shared.close(grads, [np.asarray(g) for g in want], 1e-12), cls.__name__

