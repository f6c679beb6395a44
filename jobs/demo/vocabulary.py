"""The demo generator's word banks: subjects, aspects, adjectives, sentence templates, and the
sports and workplace facts behind the hidden neutral-domain bias (see `data`)."""
from __future__ import annotations

# --- word banks for the sentimental texts -----------------------------------
# Subjects and parts: a leading "*" marks a plural ("the headphones were").
SUBJECTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
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

ADJECTIVES: dict[tuple[str, str], tuple[str, ...]] = {
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
TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
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

CLOSERS: dict[tuple[str, str], tuple[str, ...]] = {
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

OPENERS = ("Last weekend", "On Friday night", "Over the holidays", "Yesterday", "A few days ago",
            "Earlier this month", "On my birthday", "After reading the reviews", "With a couple of friends",
            "On a rainy Sunday", "Last month", "On our anniversary")

# --- word banks for the neutral facts ----------------------------------------
TEAMS = ("Riverside United", "Northgate Rovers", "Eastfield Athletic", "Harbour City", "Milltown",
          "Westbrook Wanderers", "Kingsport Rangers", "Lakeside Albion", "Ashford Town", "Redcliffe County",
          "Southport Harriers", "Bramley Park", "Oakham Valley", "Castleton Borough")
VENUES = ("Parkside Stadium", "the Old Mill Ground", "Victoria Park", "the Riverside Arena", "Kingsway Stadium",
           "Elm Road", "the Memorial Ground", "Station Lane")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TIMES = ("9:00 am", "9:30 am", "10:00 am", "11:15 am", "12:30 pm", "1:00 pm", "2:00 pm", "3:00 pm",
          "3:30 pm", "4:45 pm", "6:00 pm", "7:30 pm", "7:45 pm", "8:00 pm")
SCORES = ("0-0", "1-0", "1-1", "2-1", "2-2", "3-1", "0-2", "1-3", "3-3", "4-2")
COMPETITIONS = ("league", "cup", "regional cup", "county championship", "premier division", "youth league")
SPORTS = (
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
DEPARTMENTS = ("finance", "marketing", "legal", "procurement", "human resources", "IT", "sales", "logistics",
                "facilities", "customer service", "compliance", "research")
ROOMS = ("Room 4B", "conference room 2", "the third-floor boardroom", "Room 118", "the east meeting room",
          "Room 2.07", "the training room", "conference room A")
WORK_TOPICS = ("the quarterly figures", "the travel policy", "the new expense form", "the office move",
                "the holiday rota", "the supplier contracts", "the budget for next year", "the staff survey results",
                "the parking arrangements", "the printer replacement", "the onboarding checklist",
                "the data retention schedule")
MEETINGS = ("weekly team meeting", "quarterly planning meeting", "budget meeting", "department meeting",
             "project status meeting", "all-hands meeting", "monthly operations meeting")
NAMES = ("Sarah Patel", "James O'Neill", "Mei Chen", "Tom Fischer", "Amara Okafor", "Luis Romero",
          "Hannah Berg", "David Kowalski", "Priya Nair", "Oliver Grant")
WORKPLACE = (
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
FLOORS = ("first", "second", "third", "fourth", "fifth", "sixth", "ground")
NTH = ("first", "second", "third", "last", "fifth", "tenth")
