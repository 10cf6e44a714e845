"""Coursework kit: graded assignments built on the book and the package (otter-grader).

Each ``aN_*/`` folder holds one master notebook (``aN_*.ipynb``: the solutions between
``# BEGIN SOLUTION`` / ``# END SOLUTION``, public and hidden tests), the hidden checks that only
the autograder ships (``aN_checks.py``) and deliberately wrong submissions (``wrong/*.yaml``) that
the kit's own tests grade. ``python -m assignments.grade`` generates the student versions and
autograders and grades a folder of submissions; see the book's appendix page *Teaching with the
book* (``book/teaching.md``).
"""
