"""The coursework kit (assignments/): structure, generation, and the graded self-check.

The fast tests check every master notebook, its hidden checks and its wrong submissions, and run
``otter assign`` on one assignment. The self-check (solutions full marks, blanks zero, every
wrong submission loses exactly the points of its tests) executes 20 notebooks in fresh kernels:
it runs only with ``METAREC_GRADING_TESTS=1`` (about 3-10 minutes on 2 cores).
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


def test_generate_strips_solutions_and_hidden_tests(tmp_path):
    gen = grade.generate(grade.Assignment("a1_tasks"), tmp_path)
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
def test_selfcheck_scores(tmp_path):
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

