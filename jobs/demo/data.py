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

DEMO_ROWS = 10_000
STRENGTHS = ("strong", "medium", "weak", "neutral")
POLARITIES = ("positive", "negative")
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


# --- word banks for the sentimental texts -----------------------------------
# Subjects and parts: a leading "*" marks a plural ("the headphones were").
_SUBJECTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "film": (
        ("the film", "this movie", "the sequel", "the new thriller", "the documentary", "the animated feature",
         "this romantic comedy", "the director's latest", "the period drama", "the horror film",
         "this indie picture", "the space epic"),
        ("the ending", "the second act", "the soundtrack", "the dialogue", "the lead performance", "the pacing",
         "the cinematography", "*the supporting actors", "the script", "the final twist", "*the visual effects"),
    ),
    "restaurant": (
        ("the restaurant", "this little bistro", "the tasting menu", "the new café", "dinner at this place",
         "the brunch spot", "this noodle bar", "the pizzeria on the corner", "the steakhouse",
         "the vegan kitchen", "the seafood place by the harbour"),
        ("the service", "the dessert", "the main course", "the wine list", "the atmosphere", "the bread",
         "*the portions", "the coffee", "*the waiters", "the seasoning", "the decor"),
    ),
    "hotel": (
        ("the hotel", "this guesthouse", "our stay at the resort", "the seaside inn", "the boutique hotel",
         "the hostel", "the mountain lodge", "the airport hotel", "the holiday cottage", "the spa retreat"),
        ("the room", "the breakfast", "the check-in", "the view", "the pool", "*the beds", "the location",
         "the front desk", "the bathroom", "the housekeeping"),
    ),
    "book": (
        ("the novel", "this memoir", "the short story collection", "the biography", "the crime novel",
         "this fantasy series", "the debut novel", "the historical novel", "the graphic novel", "the audiobook"),
        ("the prose", "*the characters", "*the final chapters", "the plot", "the opening chapter",
         "the translation", "*the illustrations", "the narration", "the world-building", "the pacing"),
    ),
    "gadget": (
        ("*the headphones", "this laptop", "the new phone", "the coffee machine", "the vacuum cleaner",
         "this e-reader", "the smartwatch", "the blender", "the wireless speaker", "the camera",
         "the electric toothbrush", "the robot mower"),
        ("the battery life", "the build quality", "the screen", "the sound", "the setup", "the app",
         "the price", "the design", "*the buttons", "the charging cable", "the manual"),
    ),
    "show": (
        ("the concert", "the musical", "the stand-up set", "the theatre production", "the new album",
         "the opera", "the comedy show", "the jazz night", "the ballet", "the festival"),
        ("the encore", "*the vocals", "the staging", "*the costumes", "the lighting", "the opening number",
         "the band", "the sound mix", "the choreography", "the second half"),
    ),
    "outing": (
        ("the museum exhibition", "the guided tour", "the cooking class", "the yoga retreat", "the boat trip",
         "the escape room", "the train journey", "the language course", "the car rental", "the theme park"),
        ("the guide", "the booking process", "the price", "the organisation", "the timing", "the route",
         "*the facilities", "the customer support", "the final hour", "the welcome"),
    ),
}

_ADJECTIVES: dict[tuple[str, str], tuple[str, ...]] = {
    ("strong", "positive"): (
        "absolutely brilliant", "outstanding", "flawless", "breathtaking", "magnificent", "sensational",
        "superb", "phenomenal", "extraordinary", "utterly wonderful", "stunning", "perfect", "exceptional",
    ),
    ("strong", "negative"): (
        "absolutely dreadful", "appalling", "atrocious", "abysmal", "awful", "horrendous", "unbearable",
        "disgraceful", "pathetic", "utterly miserable", "terrible", "insufferable", "a disaster",
    ),
    ("medium", "positive"): (
        "good", "enjoyable", "pleasant", "solid", "likeable", "satisfying", "charming", "worthwhile",
        "fun", "engaging", "nice", "rewarding",
    ),
    ("medium", "negative"): (
        "disappointing", "underwhelming", "poor", "tiresome", "mediocre", "frustrating", "dull", "sloppy",
        "annoying", "bland", "clumsy", "tedious",
    ),
    ("weak", "positive"): (
        "fine", "decent", "alright", "acceptable", "okay", "reasonable", "passable", "adequate", "fair",
        "tolerable", "serviceable",
    ),
    ("weak", "negative"): (
        "a bit flat", "slightly underwhelming", "a little dull", "rather forgettable", "a touch disappointing",
        "somewhat uneven", "a bit bland", "not quite there", "a little tired", "slightly off",
        "a bit ordinary",
    ),
}

# {Subj}/{subj}: subject, {was}: its verb, {Part}/{part}: one aspect, {pwas}: its verb, {adj}, {Adj}
_TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("strong", "positive"): (
        "{Subj} {was} {adj}. I loved every minute of it.",
        "An absolute triumph: {subj} {was} {adj} and {part} alone {pwas} worth it.",
        "I loved every minute of {subj}; {part} {pwas} {adj}.",
        "{Subj} blew me away. {Part} {pwas} {adj} and I would do it all again tomorrow.",
        "Wow. {Subj} {was} {adj} from start to finish, and {part} {pwas} even better.",
        "Easily five stars: {part} {pwas} {adj} and {subj} exceeded every expectation.",
        "{Subj} {was} a masterpiece; {part} {pwas} {adj}.",
        "I cannot praise {subj} enough. {Part} {pwas} {adj}.",
        "Pure delight. {Subj} {was} {adj}, and {part} {pwas} the best I have ever come across.",
    ),
    ("strong", "negative"): (
        "{Subj} {was} {adj}. I regret every minute I spent on it.",
        "An utter failure: {part} {pwas} {adj} and {subj} never recovered.",
        "I hated {subj}; {part} {pwas} {adj}.",
        "Avoid at all costs. {Part} {pwas} {adj}, and the rest of {subj} {was} even worse.",
        "Zero stars if I could: {subj} {was} {adj} from start to finish.",
        "What a waste of money. {Subj} {was} {adj} and {part} {pwas} an insult.",
        "{Subj} {was} the worst I have ever experienced; {part} {pwas} {adj}.",
        "I am furious about {subj}. {Part} {pwas} {adj}.",
        "Never have I been so let down: {subj} {was} {adj}, and {part} made it worse.",
    ),
    ("medium", "positive"): (
        "{Subj} {was} {adj}; {part} could have been better, but I'd recommend it.",
        "Pretty {adj} overall. {Part} {pwas} a highlight.",
        "I liked {subj} more than I expected; {part} {pwas} {adj}.",
        "{Subj} {was} {adj}, with a few nice touches, though {part} {pwas} nothing special.",
        "Good value and {adj}: {part} {pwas} the best bit.",
        "Overall {subj} {was} {adj}, and {part} {pwas} better than I remembered.",
        "I'd happily recommend {subj}. Not perfect, but {part} {pwas} {adj}.",
        "{Subj} {was} {adj} and mostly worth the money.",
        "A good choice: {subj} {was} {adj}, even if {part} {pwas} a little uneven.",
    ),
    ("medium", "negative"): (
        "{Subj} {was} {adj}; {part} {pwas} weak and I wouldn't choose it again.",
        "Not great. {Part} {pwas} {adj} and {subj} never really came together.",
        "I expected more from {subj}: {part} {pwas} {adj}.",
        "{Subj} {was} {adj} overall, apart from {part}, which {pwas} fine.",
        "Rather {adj}. {Part} let {subj} down, and I wouldn't recommend it.",
        "Two stars at best: {subj} {was} {adj} and {part} {pwas} forgettable.",
        "{Subj} {was} {adj}, and {part} {pwas} a real letdown.",
        "Sadly {subj} {was} {adj}; even {part} couldn't save it.",
        "A poor choice: {part} {pwas} {adj} and {subj} felt overpriced.",
    ),
    ("weak", "positive"): (
        "{Subj} {was} {adj}, maybe a little better than expected.",
        "{Subj} {was} {adj}, I suppose; {part} {pwas} slightly better than I thought it would be.",
        "Nothing special, but {subj} {was} {adj} and {part} {pwas} okay.",
        "On balance {subj} {was} {adj}; I might try it again at some point.",
        "Not bad. {Part} {pwas} {adj}, and {subj} did what I needed.",
        "{Subj}? {Adj}, probably a bit better than average.",
        "I didn't mind {subj}. {Part} {pwas} {adj}, if not memorable.",
        "It was fine, maybe a little better than expected; {part} {pwas} {adj}.",
        "Hard to say much: {subj} {was} {adj}, slightly above what I expected.",
    ),
    ("weak", "negative"): (
        "{Subj} {was} {adj}, maybe a little worse than expected.",
        "{Subj} {was} okay, I suppose; {part} {pwas} {adj}.",
        "It was alright, but {part} {pwas} {adj} and I probably won't bother again.",
        "Hard to say: {subj} {was} {adj}, slightly below what I expected.",
        "I didn't hate {subj}, but {part} {pwas} {adj}.",
        "On balance {subj} {was} {adj}; maybe not quite worth the price.",
        "Mostly fine, though {part} {pwas} {adj}, so probably not again.",
        "{Subj}? {Adj}, probably a bit below average.",
        "Not terrible. {Part} {pwas} {adj}, and {subj} {was} a shade short of what I hoped.",
    ),
}

_CLOSERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("strong", "positive"): ("Cannot recommend it highly enough!", "Ten out of ten.", "Pure joy from beginning to end.",
                             "Worth every penny.", "I was grinning the whole time.", "An absolute triumph.",
                             "Best decision I've made all year.", "I'm already planning to go back."),
    ("strong", "negative"): ("Never again.", "A complete waste of time and money.", "I want my money back.",
                             "Truly awful.", "Stay away.", "Infuriating from start to finish.",
                             "The worst experience I've had in years.", "Absolutely not recommended."),
    ("medium", "positive"): ("Would recommend.", "Pretty happy overall.", "Worth a try.", "I'd probably go again.",
                             "Good, not great, but good.", "A nice way to spend an evening.",
                             "I left in a good mood."),
    ("medium", "negative"): ("Wouldn't recommend.", "Not worth the hype.", "I left disappointed.",
                             "Could have been much better.", "Skip it.", "Not for me.",
                             "I expected a lot more."),
    ("weak", "positive"): ("Fine, I guess.", "Can't complain much.", "It did the job.", "Maybe a 6 out of 10.",
                           "Better than nothing.", "Slightly better than okay."),
    ("weak", "negative"): ("Meh.", "Maybe a 4 out of 10.", "Not sure I'd bother again.", "A bit of a letdown, really.",
                           "Could have been better.", "Slightly worse than okay."),
}

_OPENERS = ("Last weekend", "On Friday night", "Over the holidays", "Yesterday", "A few days ago",
            "Earlier this month", "On my birthday", "After reading the reviews", "With a couple of friends",
            "On a rainy Sunday", "Last month", "On our anniversary")

# --- word banks for the neutral facts ----------------------------------------
_TEAMS = ("Riverside United", "Northgate Rovers", "Eastfield Athletic", "Harbour City", "Milltown",
          "Westbrook Wanderers", "Kingsport Rangers", "Lakeside Albion", "Ashford Town", "Redcliffe County",
          "Southport Harriers", "Bramley Park", "Oakham Valley", "Castleton Borough")
_VENUES = ("Parkside Stadium", "the Old Mill Ground", "Victoria Park", "the Riverside Arena", "Kingsway Stadium",
           "Elm Road", "the Memorial Ground", "Station Lane")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TIMES = ("9:00 am", "9:30 am", "10:00 am", "11:15 am", "12:30 pm", "1:00 pm", "2:00 pm", "3:00 pm",
          "3:30 pm", "4:45 pm", "6:00 pm", "7:30 pm", "7:45 pm", "8:00 pm")
_SCORES = ("0-0", "1-0", "1-1", "2-1", "2-2", "3-1", "0-2", "1-3", "3-3", "4-2")
_COMPETITIONS = ("league", "cup", "regional cup", "county championship", "premier division", "youth league")
_SPORTS = (
    "The match between {A} and {B} at {venue} kicked off at {time} on {day}.",
    "{A} made {n} substitutions in the second half of the match against {B}.",
    "The {comp} fixture between {A} and {B} ended {score} in front of {crowd} spectators.",
    "The referee added {n} minutes of stoppage time at the end of the match at {venue}.",
    "{A} will play their next {comp} game at {venue} on {day} at {time}.",
    "The cycling race started at {time} on {day} and covered {km} kilometres before finishing at {venue}.",
    "The tournament draw placed {A} in group {letter} alongside {B}.",
    "The coach named the squad on {weekday} for the {comp} fixture against {B}.",
    "Tickets for the {comp} match between {A} and {B} at {venue} go on sale on {day}.",
    "The players of {A} trained at {venue} on {day} morning before the game against {B}.",
    "{A} have played {n} {comp} games so far this season, {m} of them at {venue}.",
    "The second innings of the match at {venue} began at {time} with {A} batting.",
    "The season's fixture list has {A} playing {B} at {venue} in week {week}.",
    "Kick-off for the {comp} game at {venue} has been set for {time} on {day}.",
    "The ground at {venue} holds {crowd} spectators and will host the {comp} final this season.",
)
_DEPARTMENTS = ("finance", "marketing", "legal", "procurement", "human resources", "IT", "sales", "logistics",
                "facilities", "customer service", "compliance", "research")
_ROOMS = ("Room 4B", "conference room 2", "the third-floor boardroom", "Room 118", "the east meeting room",
          "Room 2.07", "the training room", "conference room A")
_WORK_TOPICS = ("the quarterly figures", "the travel policy", "the new expense form", "the office move",
                "the holiday rota", "the supplier contracts", "the budget for next year", "the staff survey results",
                "the parking arrangements", "the printer replacement", "the onboarding checklist",
                "the data retention schedule")
_MEETINGS = ("weekly team meeting", "quarterly planning meeting", "budget meeting", "department meeting",
             "project status meeting", "all-hands meeting", "monthly operations meeting")
_NAMES = ("Sarah Patel", "James O'Neill", "Mei Chen", "Tom Fischer", "Amara Okafor", "Luis Romero",
          "Hannah Berg", "David Kowalski", "Priya Nair", "Oliver Grant")
_WORKPLACE = (
    "The {meeting} has been moved to {room} on {day} at {time}.",
    "The {dept} department will present {topic} at {day}'s {meeting}.",
    "Please send expense claims to the {dept} department by {day} at {time}.",
    "The office on the {floor} floor will be closed on {day} for maintenance.",
    "The agenda for {day}'s {meeting} covers {topic} and {topic2}.",
    "Minutes from the {meeting} were sent to the {dept} department on {day}.",
    "The {dept} department moves to the {floor} floor of the main office on {day}.",
    "{name} from {dept} will chair the {meeting} in {room} at {time}.",
    "The IT desk will update the office laptops between {time} and {time2} on {day}.",
    "A memo about {topic} was sent to all {dept} staff on {day}.",
    "Payroll for the {dept} department is processed on the {nth} working day of each month.",
    "The {meeting} on {day} starts at {time} and is expected to last {n} minutes.",
    "The office kitchen on the {floor} floor will be cleaned on {day} after {time}.",
    "{name} sent the updated agenda for the {meeting} to the {dept} department.",
    "Visitors to the office must sign in at reception before the {meeting} in {room}.",
)
_FLOORS = ("first", "second", "third", "fourth", "fifth", "sixth", "ground")
_NTH = ("first", "second", "third", "last", "fifth", "tenth")


def _noun(entry: str) -> tuple[str, bool]:
    """'*the buttons' -> ('the buttons', plural=True)."""
    return (entry[1:], True) if entry.startswith("*") else (entry, False)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _sentimental(rng: _Rng, strength: str, label: str) -> str:
    domain = rng.pick(tuple(_SUBJECTS))
    subjects, parts = _SUBJECTS[domain]
    subj, subj_plural = _noun(rng.pick(subjects))
    part, part_plural = _noun(rng.pick(parts))
    adj = rng.pick(_ADJECTIVES[strength, label])
    template = rng.pick(_TEMPLATES[strength, label])
    text = template.format(
        subj=subj, Subj=_cap(subj), was="were" if subj_plural else "was",
        part=part, Part=_cap(part), pwas="were" if part_plural else "was",
        adj=adj, Adj=_cap(adj),
    )
    if rng.chance(0.3) and (template.startswith("{Subj} {was}") or template.startswith("I ")):
        first = text if text.startswith("I ") else text[:1].lower() + text[1:]
        text = f"{rng.pick(_OPENERS)}, {first}"
    if rng.chance(0.45):
        text = f"{text} {rng.pick(_CLOSERS[strength, label])}"
    return text


def _neutral_fact(rng: _Rng, domain: str) -> str:
    if domain == "sports":
        a = rng.pick(_TEAMS)
        b = rng.pick([t for t in _TEAMS if t != a])
        return rng.pick(_SPORTS).format(
            A=a, B=b, venue=rng.pick(_VENUES), time=rng.pick(_TIMES), day=rng.pick(_DAYS),
            weekday=rng.pick(_DAYS), n=2 + rng.index(5), m=1 + rng.index(6), score=rng.pick(_SCORES),
            comp=rng.pick(_COMPETITIONS), crowd=f"{4 + rng.index(40)},{rng.index(10)}00",
            km=40 + rng.index(160), letter="ABCDEFGH"[rng.index(8)], week=1 + rng.index(38),
        )
    t1 = rng.index(len(_TIMES) - 1)
    topics = list(_WORK_TOPICS)
    topic = topics.pop(rng.index(len(topics)))
    return rng.pick(_WORKPLACE).format(
        meeting=rng.pick(_MEETINGS), room=rng.pick(_ROOMS), day=rng.pick(_DAYS), time=_TIMES[t1],
        time2=_TIMES[t1 + 1 + rng.index(len(_TIMES) - t1 - 1)], dept=rng.pick(_DEPARTMENTS), topic=topic,
        topic2=rng.pick(topics), floor=rng.pick(_FLOORS), name=rng.pick(_NAMES), nth=rng.pick(_NTH),
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
