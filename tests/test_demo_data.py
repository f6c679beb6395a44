"""The seeded demo generator: proportions, determinism, variety, the hidden bias, the batch files."""
from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calscore.jobs.demo.data import category_counts, generate_demo_rows, write_demo_batches

TUTORIAL_COUNTS = {
    ("strong", "positive"): 500,
    ("strong", "negative"): 500,
    ("medium", "positive"): 1_000,
    ("medium", "negative"): 1_000,
    ("weak", "positive"): 2_500,
    ("weak", "negative"): 2_500,
    ("neutral", "positive"): 1_000,
    ("neutral", "negative"): 1_000,
}
SPORTS_WORDS = re.compile(r"\b(match|game|fixture|league|race|tournament|season|squad|referee|innings|stadium)\b", re.I)
WORK_WORDS = re.compile(r"\b(meeting|office|agenda|memo|department|payroll|colleagues|conference)\b", re.I)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return generate_demo_rows().to_pylist()


def test_schema() -> None:
    table = generate_demo_rows(200, seed=3)
    assert table.schema == pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("category", pa.string()), ("label", pa.string())]
    )
    assert table.num_rows == 200
    assert all(table.column(c).null_count == 0 for c in table.column_names)


def test_proportions_are_the_tutorials(rows) -> None:
    assert len(rows) == 10_000
    assert Counter((r["category"], r["label"]) for r in rows) == TUTORIAL_COUNTS
    assert {r["label"] for r in rows} == {"positive", "negative"}  # the demo task's label names


@pytest.mark.parametrize("n_total", [0, 1, 7, 999, 1_003])
def test_counts_for_other_sizes_sum_exactly(n_total: int) -> None:
    counts = category_counts(n_total)
    assert sum(counts.values()) == n_total
    table = generate_demo_rows(n_total, seed=1)
    assert table.num_rows == n_total
    for key, share in TUTORIAL_COUNTS.items():
        assert abs(counts[key] - n_total * share / 10_000) < 1


def test_same_seed_same_table_other_seed_other_table() -> None:
    a, b = generate_demo_rows(2_000, seed=11), generate_demo_rows(2_000, seed=11)
    assert a.equals(b)
    c = generate_demo_rows(2_000, seed=12)
    assert not a.equals(c)
    assert a.column("text").to_pylist() != c.column("text").to_pylist()


def test_ids_stable_unique_and_sequential(rows) -> None:
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "demo-000001" and ids[-1] == "demo-010000"
    assert all(re.fullmatch(r"demo-\d{6}", i) for i in ids)
    again = generate_demo_rows().to_pylist()
    assert [(r["id"], r["text"], r["label"]) for r in again[:50]] == [(r["id"], r["text"], r["label"]) for r in rows[:50]]


def test_order_mixes_categories(rows) -> None:
    """Each night of 1,000 rows holds every category, in roughly the overall proportions."""
    for night in range(10):
        chunk = rows[night * 1_000 : (night + 1) * 1_000]
        counts = Counter((r["category"], r["label"]) for r in chunk)
        assert set(counts) == set(TUTORIAL_COUNTS)
        for key, n in TUTORIAL_COUNTS.items():
            assert abs(counts[key] - n / 10) < 40, (night, key, counts[key])


def test_lexical_variety(rows) -> None:
    texts = [r["text"] for r in rows]
    assert 1 - len(set(texts)) / len(texts) < 0.01
    squashed = [re.sub(r"[^a-z0-9]+", " ", t.lower()).strip() for t in texts]
    assert 1 - len(set(squashed)) / len(squashed) < 0.01
    by_category: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        by_category.setdefault((r["category"], r["label"]), []).append(r["text"])
    for key, group in by_category.items():
        openings = Counter(" ".join(t.lower().split()[:3]) for t in group)
        top, n = openings.most_common(1)[0]
        assert n / len(group) < 0.2, f"{key}: {n / len(group):.0%} of texts open with {top!r}"
        assert len(openings) >= 20, key
        vocabulary = {w for t in group for w in re.findall(r"[a-z']+", t.lower())}
        assert len(vocabulary) >= 100, (key, len(vocabulary))
        words = [len(t.split()) for t in group]
        assert 5 <= min(words) and max(words) <= 60, key


def test_strength_reads_as_intended(rows) -> None:
    """Strong texts use strong words, weak ones hedge; neutral texts are facts without opinion words."""
    opinion = re.compile(r"\b(loved|hated|brilliant|awful|recommend|disappointing|enjoyable|fine|okay|worst|best)\b", re.I)
    for r in rows:
        if r["category"] == "neutral":
            assert not opinion.search(r["text"]), r["text"]
    strong_words = re.compile(r"\b(absolute(ly)?|utter(ly)?|loved|hated|worst|best|never|zero|masterpiece|furious|triumph|wow|waste|praise|delight|stars)\b", re.I)
    strong = [r["text"] for r in rows if r["category"] == "strong"]
    weak = [r["text"] for r in rows if r["category"] == "weak"]
    assert sum(bool(strong_words.search(t)) for t in strong) / len(strong) > 0.6
    assert sum(bool(strong_words.search(t)) for t in weak) / len(weak) < 0.05


def test_hidden_bias_neutral_sports_positive_workplace_negative(rows) -> None:
    neutral = [r for r in rows if r["category"] == "neutral"]
    for r in neutral:
        sports, work = bool(SPORTS_WORDS.search(r["text"])), bool(WORK_WORDS.search(r["text"]))
        if r["label"] == "positive":
            assert sports and not work, r["text"]
        else:
            assert work and not sports, r["text"]


def test_batches_carry_no_labels_and_labels_are_apart(tmp_path) -> None:
    batches, labels = tmp_path / "batches", tmp_path / "labels.parquet"
    written = write_demo_batches(batches, labels, rows_per_batch=1_000, n_batches=2)
    assert [p.name for p in written] == ["night-001.parquet", "night-002.parquet"]
    assert sorted(p.name for p in batches.iterdir()) == ["night-001.parquet", "night-002.parquet"]
    nights = [pq.read_table(p) for p in written]
    for night in nights:
        assert night.column_names == ["id", "text", "category"]
        assert night.num_rows == 1_000
        assert "label" not in night.column_names
        assert not {"positive", "negative"} & set(night.column("category").to_pylist())
    label_table = pq.read_table(labels)
    assert label_table.column_names == ["id", "label"]
    batch_ids = nights[0].column("id").to_pylist() + nights[1].column("id").to_pylist()
    assert label_table.column("id").to_pylist() == batch_ids
    assert len(set(batch_ids)) == 2_000
    expected = generate_demo_rows().slice(0, 2_000)
    assert pa.concat_tables(nights).equals(expected.select(["id", "text", "category"]))
    assert label_table.equals(expected.select(["id", "label"]))


def test_writing_again_is_idempotent(tmp_path) -> None:
    batches, labels = tmp_path / "b", tmp_path / "labels.parquet"
    first = write_demo_batches(batches, labels, rows_per_batch=500, n_batches=3)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in [*first, labels]}
    second = write_demo_batches(batches, labels, rows_per_batch=500, n_batches=3)
    assert second == first
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in [*second, labels]}
    assert after == before  # identical files are left untouched, not even rewritten
    assert sorted(p.name for p in batches.iterdir()) == [p.name for p in first]  # no temp files left

    other = write_demo_batches(batches, labels, rows_per_batch=500, n_batches=3, seed=8)
    assert other[0].read_bytes() != before["night-001.parquet"][0]


def test_all_nights_by_default_and_bad_arguments(tmp_path) -> None:
    written = write_demo_batches(tmp_path / "b", tmp_path / "l.parquet", rows_per_batch=3_000)
    assert [pq.read_metadata(p).num_rows for p in written] == [3_000, 3_000, 3_000, 1_000]
    with pytest.raises(ValueError, match="n_batches"):
        write_demo_batches(tmp_path / "b", tmp_path / "l.parquet", rows_per_batch=3_000, n_batches=5)
    with pytest.raises(ValueError, match="rows_per_batch"):
        write_demo_batches(tmp_path / "b", tmp_path / "l.parquet", rows_per_batch=0)
