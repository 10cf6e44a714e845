"""The pages that state the book's answer in prose (intro, FAQ) agree with verdict.json.

The notebooks assert their sentences against the file when they run; these two Markdown pages do
not run, so their claims are checked here.
"""

from __future__ import annotations

from pathlib import Path

from metarec.experiments.answer import load_answer

BOOK = Path(__file__).resolve().parents[2] / "book"
ANSWER = load_answer(BOOK / "results" / "verdict.json")


def test_intro_and_faq_show_the_generated_answer():
    for page in ("intro.md", "faq.md"):
        assert "```{include} results/answer.md" in (BOOK / page).read_text(), page
    intro = (BOOK / "intro.md").read_text()
    # The answer is on the first screen: before the first section heading.
    assert intro.index("results/answer.md") < intro.index("\n## ")


def test_prose_claims_match_the_answer():
    # intro: "no better and no worse ... in every scenario and for new users with 1 to 20
    # ratings"; FAQ: "it does not show at any support size from 1 to 20 ratings".
    assert {row["label"] for row in ANSWER["scenarios"].values()} == {"ties"}
    support = {int(k): v["label"] for k, v in ANSWER["support"].items()}
    assert sorted(support) == [1, 2, 3, 5, 10, 20] and set(support.values()) == {"ties"}
    # intro and FAQ: a model retrained on everyone's ratings beats both on new items ("about
    # 0.1 MAE").
    for scenario in ("item_cold", "user_item_cold"):
        ref = ANSWER["references"][scenario]
        assert 0.08 < min(ref["best_meta"], ref["best_conventional"]) - ref["reference"] < 0.12
