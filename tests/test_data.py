"""Data: every bad input is one clear error naming the file/key/rows, exit 2, nothing written; sampling; cache."""
import gzip

import numpy as np

from common.data import load_splits, tokenize_splits
from common.errors import UserError
from common.schema import DataCfg

from conftest import VOCAB, read_reviews, run_main, tiny_args, tree, write_csv


def _bad_dir(tmp_path, train_rows, test_rows=None, columns=("sentences", "labels")):
    d = tmp_path / "data"
    write_csv(d / "train.csv", train_rows, columns)
    write_csv(d / "test.csv", test_rows if test_rows is not None else read_reviews("test", 20), columns)
    return d


def _refused(tmp_path, data_dir, capsys, *extra) -> str:
    out = tmp_path / "results"
    rc, _, err = run_main("part1", tiny_args("part1", data_dir, out, *extra), capsys)
    assert rc == 2, err
    assert err.startswith("error") and "Traceback" not in err
    assert tree(out) == []
    return err


def test_missing_data_dir(tmp_path, capsys):
    err = _refused(tmp_path, tmp_path / "nowhere", capsys)
    assert "data.dir" in err and "nowhere" in err and "make data" in err


def test_missing_test_file(tmp_path, capsys):
    d = tmp_path / "data"
    write_csv(d / "train.csv", read_reviews("train", 30))
    err = _refused(tmp_path, d, capsys)
    assert "test.csv" in err


def test_unreadable_file(tmp_path, capsys):
    d = _bad_dir(tmp_path, read_reviews("train", 30))
    (d / "test.csv").unlink()
    (d / "test.csv.gz").write_bytes(b"this is not gzip")
    err = _refused(tmp_path, d, capsys)
    assert "test.csv.gz" in err and "cannot read" in err


def test_missing_columns(tmp_path, capsys):
    rows = [{"text": r["sentences"], "label": r["labels"]} for r in read_reviews("train", 30)]
    d = _bad_dir(tmp_path, rows, columns=("text", "label"))
    err = _refused(tmp_path, d, capsys)
    assert "data.text_column" in err and "'sentences'" in err and "['text', 'label']" in err
    assert "data.label_column" in err


def test_a_header_that_names_a_column_twice_is_refused(tmp_path, capsys):
    d = tmp_path / "data"
    rows = read_reviews("train", 30)
    with open(d.mkdir(parents=True) or d / "train.csv", "w", encoding="utf-8") as f:
        f.write("sentences,labels,sentences\n")  # pandas would read the second as "sentences.1", silently
        for r in rows:
            text = r["sentences"].replace('"', '""')
            f.write(f'"{text}",{r["labels"]},"other text"\n')
    write_csv(d / "test.csv", read_reviews("test", 20))
    err = _refused(tmp_path, d, capsys)
    assert "train.csv" in err and "['sentences'] more than once" in err


def test_an_empty_seed_list_is_refused(tmp_path, tiny_data, capsys):
    err = _refused(tmp_path, tiny_data, capsys, "--set", "train.seeds=[]")
    assert "--set train.seeds: train.seeds: an empty list runs nothing" in err


def test_configured_column_names_work(tmp_path):
    rows = [{"review": r["sentences"], "y": r["labels"]} for r in read_reviews("train", 30)]
    d = tmp_path / "data"
    write_csv(d / "train.csv", rows, ("review", "y"))
    write_csv(d / "test.csv", [{"review": r["sentences"], "y": r["labels"]} for r in read_reviews("test", 5)],
              ("review", "y"))
    s = load_splits(DataCfg(dir=str(d), text_column="review", label_column="y", val_samples=4))
    assert len(s.train.text) == 56 and len(s.test.text) == 10


def test_labels_outside_0_1_name_values_and_rows(tmp_path, capsys):
    rows = read_reviews("train", 30)
    rows[3]["labels"], rows[7]["labels"] = "2", "pos"
    err = _refused(tmp_path, _bad_dir(tmp_path, rows), capsys)
    assert "labels must be 0 or 1" in err and "'2'" in err and "'pos'" in err and "rows 5, 9" in err


def test_empty_review_text_names_rows(tmp_path, capsys):
    rows = read_reviews("train", 30)
    rows[0]["sentences"] = "   "
    rows[10]["sentences"] = ""
    err = _refused(tmp_path, _bad_dir(tmp_path, rows), capsys)
    assert "empty or missing review text" in err and "rows 2, 12" in err


def test_file_too_small_for_validation_split(tmp_path, capsys):
    err = _refused(tmp_path, _bad_dir(tmp_path, read_reviews("train", 30)), capsys, "--set", "data.val_samples=100")
    assert "data.val_samples" in err and "too small" in err


def test_file_too_small_for_subsample(tmp_path, capsys):
    err = _refused(tmp_path, _bad_dir(tmp_path, read_reviews("train", 30)), capsys, "--set", "data.test_samples=500")
    assert "data.test_samples" in err and "test.csv" in err


def test_sampling_is_balanced_stratified_disjoint_and_deterministic(tiny_data):
    cfg = DataCfg(dir=str(tiny_data), train_samples=20, val_samples=10, test_samples=12)
    a, b = load_splits(cfg), load_splits(cfg)
    assert np.bincount(a.train.label).tolist() == [10, 10]
    assert np.bincount(a.val.label).tolist() == [5, 5] and np.bincount(a.test.label).tolist() == [6, 6]
    assert not set(a.train.row) & set(a.val.row)
    assert a.train.row.tolist() == b.train.row.tolist() and a.test.row.tolist() == b.test.row.tolist()
    c = load_splits(DataCfg(dir=str(tiny_data), train_samples=20, val_samples=10, test_samples=12, seed=7))
    assert c.train.row.tolist() != a.train.row.tolist()


def test_gzip_csv_is_read(tmp_path):
    d = tmp_path / "gz"
    d.mkdir()
    for split, n in (("train", 10), ("test", 4)):
        plain = write_csv(tmp_path / f"{split}.csv", read_reviews(split, n))
        with gzip.open(d / f"{split}.csv.gz", "wb") as f:
            f.write(plain.read_bytes())
    s = load_splits(DataCfg(dir=str(d), val_samples=2))
    assert len(s.train.text) == 18 and len(s.test.text) == 8


def test_tokenization_is_cached(tiny_data, tmp_path):
    from transformers import BertTokenizerFast

    cfg = DataCfg(dir=str(tiny_data), max_length=32, val_samples=4, cache_dir=str(tmp_path / "cache"))
    splits = load_splits(cfg)
    first = tokenize_splits(splits, BertTokenizerFast(vocab_file=str(VOCAB)), cfg)
    second = tokenize_splits(splits, BertTokenizerFast(vocab_file=str(VOCAB)), cfg)
    assert not first["cache_hit"] and second["cache_hit"]
    assert first["train"]["input_ids"] == second["train"]["input_ids"]
    assert max(first["train"]["length"]) <= 32
    other = DataCfg(dir=str(tiny_data), max_length=16, val_samples=4, cache_dir=str(tmp_path / "cache"))
    assert not tokenize_splits(load_splits(other), BertTokenizerFast(vocab_file=str(VOCAB)), other)["cache_hit"]


def test_make_data_offline_says_how_to_point_at_local_csvs(monkeypatch, capsys):
    from common import data

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert data.main(["--out", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err
    assert "DATA_DIR" in err and "offline" in err


def test_user_error_collects_many():
    e = UserError(["a", "b"])
    assert e.problems == ["a", "b"] and "2 problems" in e.render()


def test_fetch_decision_present_absent_online_absent_offline(tmp_path, monkeypatch):
    from common import data

    monkeypatch.chdir(tmp_path)
    online, offline = (lambda: True), (lambda: False)
    assert data.fetch_decision("data/imdb", online) == "fetch"  # the default folder, absent, hub reachable
    assert data.fetch_decision("data/imdb", offline) == "missing"  # offline: the clear error, as before
    assert data.fetch_decision("elsewhere/imdb", online) == "missing"  # a folder the user named: never guessed
    (tmp_path / "data" / "imdb").mkdir(parents=True)
    assert data.fetch_decision("data/imdb", online) == "present"
    assert data.fetch_decision(str(tmp_path / "data" / "imdb"), offline) == "present"


def test_first_run_online_fetches_the_default_data_dir_then_reads_it(tmp_path, monkeypatch):
    from common import data

    monkeypatch.chdir(tmp_path)
    fetched = []

    def fake_fetch(out_dir):  # what `make data` writes, from local reviews instead of the hub
        fetched.append(out_dir)
        write_csv(tmp_path / out_dir / "train.csv", read_reviews("train", 30))
        write_csv(tmp_path / out_dir / "test.csv", read_reviews("test", 20))
        return [tmp_path / out_dir / "train.csv", tmp_path / out_dir / "test.csv"]

    monkeypatch.setattr(data, "write_hub_imdb", fake_fetch)
    monkeypatch.setattr(data, "hub_reachable", lambda timeout=3.0: True)
    splits = load_splits(DataCfg(val_samples=4, train_samples=10, test_samples=10))
    assert fetched == ["data/imdb"] and len(splits.train.text) == 10
    load_splits(DataCfg(val_samples=4, train_samples=10, test_samples=10))
    assert fetched == ["data/imdb"]  # present now: fetched once
    monkeypatch.setattr(data, "hub_reachable", lambda timeout=3.0: False)
    try:
        load_splits(DataCfg(dir="data/other"))
    except UserError as e:
        assert "data.dir" in str(e) and "make data" in str(e)
    else:
        raise AssertionError("a missing folder the user named must be refused")


def test_more_training_reviews_test_on_the_same_reviews_when_asked(tiny_data):
    """The test sample is drawn after the training sample, so a larger training sample moves it; with
    data.test_drawn_as_train_samples the larger setup tests on the smaller one's reviews (profile `data`: the
    study's 5,000), and its validation reviews are the same in both."""
    small = load_splits(DataCfg(dir=str(tiny_data), val_samples=10, train_samples=10, test_samples=20))
    large = load_splits(DataCfg(dir=str(tiny_data), val_samples=10, train_samples=50, test_samples=20))
    paired = load_splits(DataCfg(dir=str(tiny_data), val_samples=10, train_samples=50, test_samples=20,
                                 test_drawn_as_train_samples=10))
    assert list(large.test.row) != list(small.test.row)  # what the setting is for
    assert list(paired.test.row) == list(small.test.row) and list(paired.val.row) == list(small.val.row)
    assert list(paired.train.row) == list(large.train.row)  # the training sample itself is the larger one
    assert set(small.train.row) <= set(large.train.row)


def test_a_profile_runs_only_its_methods_and_a_wrong_list_is_refused(tiny_data, tmp_path, capsys):
    from common.config import profile_methods

    from conftest import TINY

    prof = tmp_path / "few.yaml"
    prof.write_text(f"extends: {TINY['part1']}\nonly_methods: [lora]\n")
    assert profile_methods(str(prof)) == ["lora"] and profile_methods("study") is None
    rc, out, _ = run_main("part1", tiny_args("part1", tiny_data, tmp_path / "res", "--dry-run", profile=prof), capsys)
    assert rc == 0 and "runs only lora" in out and '"run_id": "part1-lora-' in out and "part1-full-" not in out
    prof.write_text(f"extends: {TINY['part1']}\nonly_methods: [lora, qlora]\n")
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, tmp_path / "res", "--dry-run", profile=prof), capsys)
    assert rc == 2 and f"{prof}: only_methods: unknown method(s) ['qlora']" in err
    assert not (tmp_path / "res").exists()
