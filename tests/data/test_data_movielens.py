"""MovieLens parsing: the real ml-100k files, ml-1m fixtures, malformed rows."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from metarec.data import (
    DataError,
    cold_start_split,
    get_data_dir,
    load_movielens,
    load_movielens_folder,
    read_movielens,
)
from metarec.data.movielens import ML1M_OCCUPATIONS, age_to_code

# ------------------------------------------------------------------------------- real ml-100k


def test_ml100k_sizes(ml100k):
    assert (ml100k.n_users, ml100k.n_items, ml100k.n_ratings) == (943, 1682, 100000)
    assert ml100k.ratings["user_id"].nunique() == 943
    assert ml100k.ratings["item_id"].nunique() == 1682
    assert ml100k.genres[:3] == ["unknown", "Action", "Adventure"] and len(ml100k.genres) == 19


def test_ml100k_dtypes_follow_the_contract(ml100k):
    r, u, i = ml100k.ratings, ml100k.users, ml100k.items
    assert [str(r[c].dtype) for c in r.columns] == ["int64", "int64", "float32", "int64"]
    assert list(u.columns) == ["user_id", "gender", "age", "occupation", "zip_prefix"]
    assert list(i.columns) == ["item_id", "title", "year", *ml100k.genres]
    assert str(i["year"].dtype) == "Int64"
    assert all(i[g].dtype == np.int8 for g in ml100k.genres)
    assert list(u.index) == list(range(943))
    assert set(u["gender"]) == {"M", "F"}
    assert set(u["age"]) <= {1, 18, 25, 35, 45, 50, 56}
    assert r["rating"].between(1, 5).all()


def test_ml100k_spot_values(ml100k):
    toy = ml100k.items.set_index("item_id").loc[1]
    assert toy["title"] == "Toy Story (1995)"
    assert toy["year"] == 1995
    assert [g for g in ml100k.genres if toy[g] == 1] == ["Animation", "Children's", "Comedy"]
    # u.user line 1: "1|24|M|technician|85711" -> age bucket 18, zip prefix "8"
    user1 = ml100k.users.set_index("user_id").loc[1]
    assert (user1["gender"], user1["age"], user1["occupation"], user1["zip_prefix"]) == (
        "M", 18, "technician", "8")
    # u.data line 1: "196\t242\t3\t881250949"
    row = ml100k.ratings[(ml100k.ratings.user_id == 196) & (ml100k.ratings.item_id == 242)]
    assert row["rating"].tolist() == [3.0] and row["timestamp"].tolist() == [881250949]
    # item 267 has no release date -> unknown year
    assert pd.isna(ml100k.items.set_index("item_id").loc[267, "year"])
    assert ml100k.items["year"].isna().sum() == 1
    # ratings are sorted by user then time
    assert ml100k.ratings["user_id"].is_monotonic_increasing


def test_ml100k_latin1_titles(ml100k):
    titles = ml100k.items.set_index("item_id")["title"]
    assert titles[543] == "Misérables, Les (1995)"
    assert titles[1633] == "Á köldum klaka (Cold Fever) (1994)"
    assert not titles.str.contains("\ufffd").any()  # no replacement characters
    assert titles.map(lambda t: any(ord(c) > 127 for c in t)).sum() >= 9


def test_ml100k_about_a_fifth_of_items_are_from_1997_on(ml100k):
    is_new = (ml100k.items["year"] >= 1997).fillna(False)
    assert is_new.sum() == 351  # 286 from 1997 + 65 from 1998
    assert 0.18 < is_new.sum() / ml100k.n_items < 0.22


def test_ml100k_stats(ml100k):
    stats = ml100k.stats()
    assert stats["rating_counts"] == {1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201}
    assert stats["ratings_per_user"]["min"] == 20
    assert stats["ratings_per_user"]["max"] == 737
    assert stats["sparsity"] == pytest.approx(1 - 100000 / (943 * 1682))
    assert stats["melu_users"] == 582


def test_age_buckets_match_ml1m_codes():
    ages = [1, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 90]
    assert age_to_code(ages).tolist() == [1, 1, 18, 18, 25, 25, 35, 35, 45, 45, 50, 50, 56, 56]


# ------------------------------------------------------------------------- ml-100k fixtures


def test_ml100k_fixture_parsing(tmp_path, mlfix):
    ds = read_movielens("ml-100k", mlfix.write(tmp_path, "ml-100k"))
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (4, 4, 7)
    users = ds.users.set_index("user_id")
    assert users["age"].tolist() == [18, 50, 1, 56]
    assert users.loc[3, "zip_prefix"] == "T"
    items = ds.items.set_index("item_id")
    assert items.loc[2, "title"] == "Misérables, Les (1995)"
    assert pd.isna(items.loc[3, "year"]) and items.loc[4, "year"] == 1997
    assert items.loc[4, ["Drama", "Sci-Fi"]].tolist() == [1, 1]
    assert items.loc[4, ds.genres].sum() == 2


# ----------------------------------------------------------------------------- ml-1m fixtures


def test_ml1m_fixture_parsing(tmp_path, mlfix):
    ds = read_movielens("ml-1m", mlfix.write(tmp_path, "ml-1m"))
    assert ds.name == "ml-1m"
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (3, 4, 5)
    assert len(ds.genres) == 18 and "unknown" not in ds.genres
    users = ds.users.set_index("user_id")
    assert users.loc[1].tolist() == ["F", 1, "K-12 student", "4"]
    assert users.loc[2, "occupation"] == "self-employed"
    assert users.loc[3, "occupation"] == "scientist"
    assert users.loc[2, "age"] == 56
    items = ds.items.set_index("item_id")
    assert items.loc[2, "title"] == "Misérables, Les (1995)"
    assert items["year"].tolist() == [1995, 1995, 1995, 1997]
    toy = items.loc[1]
    assert [g for g in ds.genres if toy[g]] == ["Animation", "Children's", "Comedy"]
    assert ds.ratings["rating"].dtype == np.float32
    assert ds.ratings.iloc[0].tolist() == [1, 1, 5.0, 978300760]


def test_ml1m_occupation_names_follow_the_readme():
    assert len(ML1M_OCCUPATIONS) == 21
    assert ML1M_OCCUPATIONS[0] == "other or not specified"
    assert ML1M_OCCUPATIONS[4] == "college/grad student"
    assert ML1M_OCCUPATIONS[12] == "programmer"
    assert ML1M_OCCUPATIONS[20] == "writer"


def test_ml1m_through_load_movielens(tmp_path, mlfix, fixture_registry):
    mlfix.write(tmp_path, "ml-1m")
    fixture_registry("ml-1m")
    ds = load_movielens("ml-1m", data_dir=tmp_path, download=False)
    assert ds.n_ratings == 5 and ds.users["occupation"].tolist()[0] == "K-12 student"


# ----------------------------------------------------------------------------- malformed rows


def _corrupt(mlfix, name, fname, line_no, new_line):
    files = dict(mlfix.files[name])
    lines = files[fname].decode("latin-1").split("\n")
    lines[line_no - 1] = new_line
    files[fname] = "\n".join(lines).encode("latin-1")
    return files


@pytest.mark.parametrize(
    "name, fname, line_no, bad, reason",
    [
        ("ml-100k", "u.data", 3, "2\t1\tfour\t881250951", "rating must be an integer"),
        ("ml-100k", "u.data", 2, "1\t2\t3", "expected 4 fields"),
        ("ml-100k", "u.data", 4, "2\t4\t2\t881250952\t7", "expected 4 fields"),
        ("ml-100k", "u.data", 5, "3\t3\t9\t881250953", "rating must be 1..5"),
        ("ml-100k", "u.data", 6, "4\t99\t5\t881250954", "item id 99 is not listed in"),
        ("ml-100k", "u.data", 2, "", "expected 4 fields"),
        ("ml-100k", "u.user", 2, "2|53|X|other|94043", "gender must be M or F"),
        ("ml-100k", "u.user", 3, "3|17|M|astronaut|T8H1N", "not listed in u.occupation"),
        ("ml-100k", "u.item", 4, "4|Contact (1997)|July 1997||http://x|" + "|".join("0" * 19),
         "release date"),
        ("ml-100k", "u.item", 1, "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join("2" * 19),
         "genre flags"),
        ("ml-1m", "ratings.dat", 2, "1::3::3", "expected 4 fields"),
        ("ml-1m", "ratings.dat", 4, "2::4::x::978300275", "rating must be an integer"),
        ("ml-1m", "users.dat", 2, "2::M::57::16::70072", "age must be one of the codes"),
        ("ml-1m", "users.dat", 3, "3::M::25::21::55117", "occupation must be a code"),
        ("ml-1m", "movies.dat", 3, "3::Grumpier Old Men (1995)::Comedy|Romantic", "unknown genre"),
    ],
)
def test_malformed_row_names_file_line_and_text(tmp_path, mlfix, name, fname, line_no, bad,
                                                reason):
    folder = mlfix.write(tmp_path, name, _corrupt(mlfix, name, fname, line_no, bad))
    with pytest.raises(DataError) as info:
        read_movielens(name, folder)
    message = str(info.value)
    assert f"{folder / fname}, line {line_no}:" in message
    assert repr(bad) in message
    assert reason in message
    assert "python -m metarec data download" in message


def test_malformed_row_through_load_movielens(tmp_path, mlfix, fixture_registry):
    files = _corrupt(mlfix, "ml-100k", "u.data", 7, "3\t1\t4\tyesterday")
    mlfix.write(tmp_path, "ml-100k", files)
    fixture_registry("ml-100k", files)  # checksums match the corrupted files: parser must catch
    with pytest.raises(DataError, match=r"u\.data, line 7: '3\\t1\\t4\\tyesterday'"):
        load_movielens("ml-100k", data_dir=tmp_path, download=False)


def test_missing_file_in_folder(tmp_path, mlfix):
    folder = mlfix.write(tmp_path, "ml-100k")
    (folder / "u.user").unlink()
    with pytest.raises(DataError, match="u.user is missing"):
        read_movielens("ml-100k", folder)


# ------------------------------------------------------------------------------ custom copies


def _partial_ml100k(dest):
    """A copy of the real ml-100k without the ratings of the even user ids (half the users)."""
    folder = dest / "my-ml-100k"
    shutil.copytree(get_data_dir() / "ml-100k", folder)
    lines = (folder / "u.data").read_bytes().splitlines(keepends=True)
    (folder / "u.data").write_bytes(b"".join(
        line for line in lines if int(line.split(b"\t", 1)[0]) % 2 == 1))
    return folder


def test_partial_ml100k_copy_loads_with_a_warning(ml100k, tmp_path):
    folder = _partial_ml100k(tmp_path)
    with pytest.warns(UserWarning, match="not comparable with the official") as record:
        ds = load_movielens_folder(folder)  # format detected from u.data
    assert str(folder) in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller
    assert (ds.name, ds.custom, ds.source) == ("ml-100k", True, str(folder))
    expected = ml100k.ratings[ml100k.ratings["user_id"] % 2 == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(ds.ratings, expected)
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (943, 1682, len(expected))
    assert ds.ratings["user_id"].nunique() == 472
    assert "custom copy of" in repr(ds)
    assert not ml100k.custom and ml100k.source is None
    # The format's default new-item year applies, no surprise.
    assert cold_start_split(ds).new_item_year == 1997


def test_ml1m_format_folder_loads_as_custom(tmp_path, mlfix):
    folder = mlfix.write(tmp_path, "ml-1m")
    with pytest.warns(UserWarning, match=r"custom ml-1m copy without checksum verification"):
        ds = load_movielens_folder(folder)
    assert (ds.name, ds.custom) == ("ml-1m", True)
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (3, 4, 5)
    pd.testing.assert_frame_equal(ds.ratings, read_movielens("ml-1m", folder).ratings)
    assert cold_start_split(ds, warm_query=0).new_item_year == 1998
    with pytest.warns(UserWarning):
        assert load_movielens_folder(str(folder), name="ml-1m").n_ratings == 5


def test_read_movielens_stays_silent_and_official(tmp_path, mlfix):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = read_movielens("ml-1m", mlfix.write(tmp_path, "ml-1m"))
    assert not ds.custom


def test_custom_folder_format_errors(tmp_path, mlfix):
    with pytest.raises(DataError, match="is not a folder"):
        load_movielens_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"holds neither u\.data \(ml-100k format\) or "
                                        r"ratings\.dat \(ml-1m format\)"):
        load_movielens_folder(tmp_path)
    both = mlfix.write(tmp_path, "ml-1m")
    (both / "u.data").write_bytes(b"")
    with pytest.raises(DataError, match="pass name='ml-100k' or name='ml-1m'"):
        load_movielens_folder(both)
    with pytest.raises(ValueError, match="Unknown MovieLens format"):
        load_movielens_folder(both, name="ml-20m")
    folder = mlfix.write(tmp_path / "x", "ml-100k")
    (folder / "u.item").unlink()
    with pytest.raises(DataError, match=r"u\.item is missing.*needs all of u\.data, u\.item"):
        load_movielens_folder(folder)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="choose one of"):
        load_movielens("ml-20m")
