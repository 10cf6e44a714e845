"""The verdict document (metarec.experiments.answer) on small constructed results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from metarec.experiments.answer import (
    FORMAT,
    answer_sentence,
    build_answer,
    headline,
    load_answer,
    main,
    render_markdown,
    support_sentence,
)

SEEDS = range(5)
#: True effect (meta minus conventional, MAE) per cell and scenario; 0 where not listed.
EFFECTS = {"mf/reptile": {"user_cold": -0.2},
           "melu/maml": {"user_cold": 0.01},
           "melu/melu": {"user_cold": 0.03, "warm": 0.02}}
CELLS = ["mf/finetune", "mf/reptile", "melu/finetune", "melu/maml", "melu/melu"]


def write_results(folder, *, validation: bool = False) -> str:
    """Constructed fair-grid results under ``folder/fair``; returns the prefix."""
    rng = np.random.default_rng(0)
    users, support = [], []
    for seed in SEEDS:
        for scenario in ("warm", "user_cold"):
            ids = 1000 * seed + np.arange(60)
            base = rng.normal(0.8, 0.2, ids.size)
            for cell in CELLS:
                model, scheme = cell.split("/")
                effect = EFFECTS.get(cell, {}).get(scenario, 0.0)
                users.append(pd.DataFrame({
                    "seed": seed, "cell": cell, "model": model, "scheme": scheme,
                    "scenario": scenario, "user_id": ids,
                    "mae": base + effect + rng.normal(0, 0.01, ids.size)}))
        for size in (1, 5):
            gap = -0.3 if size == 1 else 0.0  # meta-learning pays with one rating only
            for cell, shift in (("mf/finetune", 0.0), ("mf/reptile", gap)):
                support.append({"seed": seed, "cell": cell, "model": cell.split("/")[0],
                                "scheme": cell.split("/")[1], "support_size": size,
                                "mae": 0.9 + shift + rng.normal(0, 0.005)})
    users = pd.concat(users, ignore_index=True)
    prefix = folder / "fair"
    users.to_csv(f"{prefix}.users.csv.gz", index=False)
    pd.DataFrame(support).to_csv(f"{prefix}.support.csv", index=False)
    val_mae = {"mf/finetune": 0.80, "mf/reptile": 0.78, "melu/finetune": 0.82,
               "melu/maml": 0.79, "melu/melu": 0.81}
    configs = {"cells": {c: {"val_mae": v, "n_trials": 32} for c, v in val_mae.items()}}
    (folder / "fair.configs.json").write_text(json.dumps(configs))
    if validation:  # the runs' own validation users prefer melu/maml and melu/finetune
        val = users[users["scenario"] == "user_cold"].assign(scenario="validation",
                                                             split="validation")
        val["mae"] = val["cell"].map({"melu/maml": 0.5, "melu/finetune": 0.6}).fillna(0.9)
        val.to_csv(f"{prefix}.validation.csv.gz", index=False)
    return str(prefix)


def test_answer_labels_floor_and_choice(tmp_path):
    doc = build_answer(write_results(tmp_path))
    assert doc["format"] == FORMAT
    assert doc["best"] == {"meta": "mf/reptile", "conventional": "mf/finetune",
                           "val_meta": 0.78, "val_conventional": 0.80}
    # Provisional floor: |melu/melu - melu/maml| per scenario.
    assert doc["noise_floor"]["user_cold"] == pytest.approx(0.02, abs=0.005)
    assert doc["noise_floor"]["warm"] == pytest.approx(0.02, abs=0.005)
    assert "null control" in doc["noise_floor_source"]
    cold, warm = doc["scenarios"]["user_cold"], doc["scenarios"]["warm"]
    assert cold["label"] == "helps" and cold["diff"] == pytest.approx(-0.2, abs=0.01)
    assert cold["ci_low"] < cold["diff"] < cold["ci_high"] < 0
    assert warm["label"] == "ties"
    # Holm over two scenarios: one rejected, so the adjusted level is 1 - 0.05 / 1.
    assert cold["level"] == pytest.approx(0.95)
    assert doc["null_control"]["user_cold"]["diff"] == pytest.approx(0.02, abs=0.005)
    assert doc["support"]["1"]["label"] == "helps" and doc["support"]["5"]["label"] == "ties"
    # Each meta cell against its own model's conventional cell: mf/reptile helps, melu/maml
    # (+0.01) is within the floor, melu/melu (+0.03) is beyond it.
    assert doc["cells"]["user_cold"] == {"helps": 1, "ties": 1, "hurts": 1}
    assert doc["protocol"]["min_trials_per_cell"] == 32 and doc["protocol"]["n_seeds"] == 5
    assert set(doc["sources"]) == {"users", "configs", "support"}


def test_sentences_state_the_document(tmp_path):
    doc = build_answer(write_results(tmp_path))
    text = headline(doc)
    assert doc["headline"] == text
    assert ("(Matrix factorisation, Reptile) helps on new users and ties on existing users "
            "and items") in text
    sentence = answer_sentence(doc, "user_cold")
    assert sentence.startswith("On new users, Matrix factorisation, Reptile helps against "
                               "Matrix factorisation, Conventional + fine-tune: MAE "
                               "difference -0.2")
    assert support_sentence(doc) == (
        "For new users by the number of ratings they gave, Matrix factorisation, Reptile helps "
        "with 1 rating and ties with 5 ratings against Matrix factorisation, Conventional + "
        "fine-tune.")
    text = render_markdown(doc)
    assert text.startswith("```{admonition}") and text.rstrip().endswith("```")
    assert "| New users | -0.2" in text and support_sentence(doc) in text


def test_validation_rows_decide_the_choice(tmp_path):
    doc = build_answer(write_results(tmp_path, validation=True))
    assert doc["best"]["meta"] == "melu/maml"
    assert doc["best"]["conventional"] == "melu/finetune"
    assert "every seed's own validation users" in doc["protocol"]["choice"]
    assert "validation" in doc["sources"]
    # The sweep holds mf/* only here: its comparison is the best of the swept cells.
    assert doc["support_cells"] == {"meta": "mf/reptile", "conventional": "mf/finetune"}


def test_tuning_noise_study_sets_the_floor(tmp_path):
    prefix = write_results(tmp_path)
    users = pd.read_csv(f"{prefix}.users.csv.gz")
    part = users[users["cell"] == "melu/maml"]
    noise = pd.concat([part.assign(tuner_seed=t, mae=part["mae"] + 0.05 * t) for t in range(3)])
    doc = build_answer(prefix, noise=noise)
    assert doc["noise_floor"] == pytest.approx({"warm": 0.1, "user_cold": 0.1})
    assert "tuning-noise study" in doc["noise_floor_source"]
    # A floor larger than the effect turns "helps" into "ties".
    noise = pd.concat([part.assign(tuner_seed=t, mae=part["mae"] + 0.15 * t)
                       for t in range(3)])
    assert build_answer(prefix, noise=noise)["scenarios"]["user_cold"]["label"] == "ties"


def test_command_line_writes_and_reads_back(tmp_path, capsys):
    prefix = write_results(tmp_path)
    out = tmp_path / "verdict.json"
    assert main([prefix, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "helps on new users" in printed and f"wrote {out}" in printed
    doc = load_answer(out)
    assert doc == json.loads(out.read_text()) and doc["best"]["meta"] == "mf/reptile"
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left behind


def test_bad_input_gives_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "v.json")])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "users" in err and "Traceback" not in err
    assert not (tmp_path / "v.json").exists()
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"format": FORMAT + 1}))
    with pytest.raises(ValueError, match="regenerate"):
        load_answer(stale)
    with pytest.raises(FileNotFoundError, match="metarec.experiments.answer"):
        load_answer(tmp_path / "none.json")
    prefix = write_results(tmp_path)
    users = pd.read_csv(f"{prefix}.users.csv.gz")
    users[~users["cell"].str.startswith("melu/")].to_csv(f"{prefix}.users.csv.gz", index=False)
    with pytest.raises(ValueError, match="null control"):
        build_answer(prefix)


def test_the_books_answer_is_up_to_date():
    """book/results/verdict.json and answer.md are what the stored results give today."""
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "book" / "results"
    stored = load_answer(results / "verdict.json")
    prefix = results / "fair-ml100k"
    noise = Path(f"{prefix}.tuning-noise.csv.gz")
    refs = Path(f"{prefix}.references.users.csv.gz")
    fresh = build_answer(prefix, noise=pd.read_csv(noise) if noise.is_file() else None,
                         references=pd.read_csv(refs) if refs.is_file() else None)
    assert json.loads(json.dumps(fresh)) == stored, (
        "book/results/verdict.json is stale: python -m metarec.experiments.answer "
        "book/results/fair-ml100k --out book/results/verdict.json "
        "--markdown book/results/answer.md")
    assert (results / "answer.md").read_text() == render_markdown(stored)
