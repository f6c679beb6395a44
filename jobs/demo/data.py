"""The demo's own data: a seeded generator of labeled review-like texts.

Eight categories, strength x polarity, in the proportions of the
'Classification with Confidence' tutorial's dataset (per 10,000 rows):

    strong  500 positive +   500 negative   obviously sentimental
    medium 1000 positive + 1,000 negative   clearly but mildly sentimental
    weak   2500 positive + 2,500 negative   barely ("fine, maybe a little better than expected")
    neutral 1000 positive + 1,000 negative  factual statements with no sentiment at all

The neutral rows carry a hidden domain bias: sports-flavoured facts are labeled
positive, workplace-flavoured facts negative. A model cannot read that from the
text, so its confidence there should be low; a calibrator fitted per segment
can only learn it from labels.

The `category` column holds the strength only (strong / medium / weak /
neutral), so the batch files stay label-free: the label lives in the separate
labels file. Texts are composed from templates x subjects x parts x adjectives
x optional openers and closers, and drawn without exact repeats.

Randomness uses only `random.Random.random()`, whose sequence Python keeps
stable across versions, so a seed gives the same rows everywhere.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from calscore.jobs.demo import vocabulary as words

DEMO_ROWS = 10_000
# rows per 10,000 for each (strength, label)
PROPORTIONS: dict[tuple[str, str], int] = {
    ("strong", "positive"): 500,
    ("strong", "negative"): 500,
    ("medium", "positive"): 1_000,
    ("medium", "negative"): 1_000,
    ("weak", "positive"): 2_500,
    ("weak", "negative"): 2_500,
    ("neutral", "positive"): 1_000,
    ("neutral", "negative"): 1_000,
}
# the hidden bias: which domain of neutral fact carries which label
NEUTRAL_DOMAIN = {"positive": "sports", "negative": "workplace"}

BATCH_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("category", pa.string())])
LABEL_SCHEMA = pa.schema([("id", pa.string()), ("label", pa.string())])
ROW_SCHEMA = pa.schema([*BATCH_SCHEMA, ("label", pa.string())])


class _Rng:
    """Choices built on random() alone (its sequence is stable across Python versions)."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def index(self, n: int) -> int:
        return min(int(self._r.random() * n), n - 1)

    def pick(self, seq: Sequence):
        return seq[self.index(len(seq))]

    def chance(self, p: float) -> bool:
        return self._r.random() < p

    def shuffle(self, items: list) -> None:
        for i in range(len(items) - 1, 0, -1):  # Fisher-Yates
            j = self.index(i + 1)
            items[i], items[j] = items[j], items[i]


def _noun(entry: str) -> tuple[str, bool]:
    """'*the buttons' -> ('the buttons', plural=True)."""
    return (entry[1:], True) if entry.startswith("*") else (entry, False)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _sentimental(rng: _Rng, strength: str, label: str) -> str:
    domain = rng.pick(tuple(words.SUBJECTS))
    subjects, parts = words.SUBJECTS[domain]
    subj, subj_plural = _noun(rng.pick(subjects))
    part, part_plural = _noun(rng.pick(parts))
    adj = rng.pick(words.ADJECTIVES[strength, label])
    template = rng.pick(words.TEMPLATES[strength, label])
    text = template.format(
        subj=subj, Subj=_cap(subj), was="were" if subj_plural else "was",
        part=part, Part=_cap(part), pwas="were" if part_plural else "was",
        adj=adj, Adj=_cap(adj),
    )
    if rng.chance(0.3) and (template.startswith("{Subj} {was}") or template.startswith("I ")):
        first = text if text.startswith("I ") else text[:1].lower() + text[1:]
        text = f"{rng.pick(words.OPENERS)}, {first}"
    if rng.chance(0.45):
        text = f"{text} {rng.pick(words.CLOSERS[strength, label])}"
    return text


def _neutral_fact(rng: _Rng, domain: str) -> str:
    if domain == "sports":
        a = rng.pick(words.TEAMS)
        b = rng.pick([t for t in words.TEAMS if t != a])
        return rng.pick(words.SPORTS).format(
            A=a, B=b, venue=rng.pick(words.VENUES), time=rng.pick(words.TIMES), day=rng.pick(words.DAYS),
            weekday=rng.pick(words.DAYS), n=2 + rng.index(5), m=1 + rng.index(6), score=rng.pick(words.SCORES),
            comp=rng.pick(words.COMPETITIONS), crowd=f"{4 + rng.index(40)},{rng.index(10)}00",
            km=40 + rng.index(160), letter="ABCDEFGH"[rng.index(8)], week=1 + rng.index(38),
        )
    t1 = rng.index(len(words.TIMES) - 1)
    topics = list(words.WORK_TOPICS)
    topic = topics.pop(rng.index(len(topics)))
    return rng.pick(words.WORKPLACE).format(
        meeting=rng.pick(words.MEETINGS), room=rng.pick(words.ROOMS), day=rng.pick(words.DAYS), time=words.TIMES[t1],
        time2=words.TIMES[t1 + 1 + rng.index(len(words.TIMES) - t1 - 1)], dept=rng.pick(words.DEPARTMENTS), topic=topic,
        topic2=rng.pick(topics), floor=rng.pick(words.FLOORS), name=rng.pick(words.NAMES), nth=rng.pick(words.NTH),
        n=15 * (2 + rng.index(7)),
    )


def _neutral(rng: _Rng, label: str) -> str:
    domain = NEUTRAL_DOMAIN[label]
    text = _neutral_fact(rng, domain)
    if rng.chance(0.4):
        second = _neutral_fact(rng, domain)
        if second != text:
            text = f"{text} {second}"
    return text


def category_counts(n_total: int) -> dict[tuple[str, str], int]:
    """Rows per (strength, label) for n_total rows: the tutorial's proportions, largest remainder."""
    if n_total < 0:
        raise ValueError(f"n_total must be >= 0, got {n_total}")
    whole = sum(PROPORTIONS.values())
    exact = {k: n_total * v / whole for k, v in PROPORTIONS.items()}
    counts = {k: int(x) for k, x in exact.items()}
    short = n_total - sum(counts.values())
    for k in sorted(exact, key=lambda k: -(exact[k] - counts[k]))[:short]:
        counts[k] += 1
    return counts


def generate_demo_rows(n_total: int = DEMO_ROWS, seed: int = 7) -> pa.Table:
    """The demo rows (id, text, category, label), shuffled with the seed; ids follow the shuffled order.

    `category` is the strength (strong / medium / weak / neutral); with `label`
    it gives the tutorial's eight categories.
    """
    rng = _Rng(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str, str]] = []
    for (strength, label), count in category_counts(n_total).items():
        for _ in range(count):
            for _attempt in range(50):  # draw again on an exact repeat
                text = _neutral(rng, label) if strength == "neutral" else _sentimental(rng, strength, label)
                if text not in seen:
                    break
            seen.add(text)
            rows.append((text, strength, label))
    rng.shuffle(rows)
    return pa.table(
        {
            "id": [f"demo-{i:06d}" for i in range(1, len(rows) + 1)],
            "text": [r[0] for r in rows],
            "category": [r[1] for r in rows],
            "label": [r[2] for r in rows],
        },
        schema=ROW_SCHEMA,
    )


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write atomically, and leave an identical existing file untouched (same bytes, same mtime)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        pq.write_table(table, tmp, compression="zstd")
        if path.is_file() and path.read_bytes() == tmp.read_bytes():
            return
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_demo_batches(
    batches_dir: Path,
    labels_path: Path,
    *,
    rows_per_batch: int = 1_000,
    n_batches: int | None = None,
    seed: int = 7,
) -> list[Path]:
    """Write the demo rows as nightly batches night-001.parquet, ... (id, text, category) and their labels apart.

    The rows are always the 10,000 demo rows of `seed`, cut into nights of
    `rows_per_batch` in id order; `n_batches` keeps only the first nights (the
    labels file then holds only their rows). Re-running with the same
    arguments writes the same content to the same files and duplicates nothing.
    """
    if rows_per_batch < 1:
        raise ValueError(f"rows_per_batch must be >= 1, got {rows_per_batch}")
    available = -(-DEMO_ROWS // rows_per_batch)
    if n_batches is None:
        n_batches = available
    if not 1 <= n_batches <= available:
        raise ValueError(
            f"n_batches must be between 1 and {available} ({DEMO_ROWS:,} demo rows in nights of {rows_per_batch:,}),"
            f" got {n_batches}"
        )
    rows = generate_demo_rows(DEMO_ROWS, seed=seed)
    batches_dir, labels_path = Path(batches_dir), Path(labels_path)
    written = []
    for night in range(n_batches):
        part = rows.slice(night * rows_per_batch, rows_per_batch)
        path = batches_dir / f"night-{night + 1:03d}.parquet"
        _write_parquet(part.select(BATCH_SCHEMA.names), path)
        written.append(path)
    kept = rows.slice(0, min(n_batches * rows_per_batch, DEMO_ROWS))
    _write_parquet(kept.select(LABEL_SCHEMA.names), labels_path)
    return written
