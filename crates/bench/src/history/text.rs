//! What the simulated partners write: plausible sentences picked from small
//! lists, so items have the sizes and the variety real ones have. Nothing here
//! is meant to be read closely.

use super::rng::Rng;

const JOURNAL: &[&str] = &[
    "Work was long today and I came home with nothing left.",
    "I noticed I snapped at you over the dishes, and it was not about the dishes.",
    "We laughed at dinner for the first time this week; I want more evenings like that.",
    "I keep thinking about what you said on the walk, about feeling alone in the planning.",
    "My sister called and it stirred up old things I have not told you about yet.",
    "I slept badly and everything felt heavier than it was.",
    "I am proud of how we handled the conversation about money.",
    "I felt unheard in the meeting and carried it into the evening.",
    "The kids were wonderful and exhausting in equal measure.",
    "I want to plan a day that is only ours, with no errands in it.",
    "When you texted at lunch it changed the whole afternoon.",
    "I am worried about your father and I do not know how to bring it up.",
    "I went for a run and finally had a quiet head.",
    "Something about Sunday evenings makes me anxious, and I want to understand it.",
    "I noticed I wait for you to notice instead of asking for what I need.",
    "We did the budget together and it was easier than I feared.",
    "I miss the way we used to cook together on Fridays.",
    "Today I tried to listen without fixing. It was harder than it sounds.",
    "A friend asked how we are doing and I realised I had a good answer.",
    "I am tired of being the one who remembers every appointment.",
    "The garden finally has tomatoes and I wanted to tell someone.",
    "I read the chapter on repair attempts and recognised us in it.",
    "I felt close to you when you held my hand at the doctor's.",
    "I am nervous about the trip and I think it shows as irritation.",
    "Small thing, but the coffee you left for me this morning mattered.",
    "I want to say sorry properly for last Tuesday, not just move on.",
    "I had a hard call with my manager and I need to talk it through.",
    "We should decide about the holidays before it decides for us.",
    "I noticed how patient you were with my mother today.",
    "I do not know why I am sad today; it is just there.",
    "I finished the book and cried at the ending, which surprised me.",
    "I want us to argue less about how and more about what we want.",
];

const PRIVATE: &[&str] = &[
    "Just for me: I am more hurt about the birthday than I let on.",
    "Note to self: ask about the test results on Thursday.",
    "Private: I think I need to talk to someone about work.",
    "Remember: the anniversary gift is hidden in the blue box.",
    "I am not ready to share this yet, but I have been thinking about moving.",
    "Draft of what I want to say tomorrow, before I soften it.",
];

const HIGHS: &[&str] = &[
    "a long walk at lunch",
    "finished the report early",
    "dinner with friends",
    "the kids' school play",
    "a good swim",
    "your message in the afternoon",
    "sunshine on the balcony",
    "a call with my brother",
    "a quiet morning coffee",
    "the new recipe worked",
];

const LOWS: &[&str] = &[
    "a tense meeting",
    "traffic on the way home",
    "a headache all afternoon",
    "the argument about the car",
    "too many emails",
    "bad news from the landlord",
    "missed the train",
    "felt lonely at lunch",
    "the bill from the dentist",
    "could not focus",
];

const APPRECIATIONS: &[&str] = &[
    "the coffee you made me",
    "your patience this week",
    "how you listened last night",
    "you picking up the groceries without being asked",
    "the way you made my mother feel welcome",
    "your laugh at dinner",
    "you noticing I was tired and taking over bedtime",
    "the note in my bag",
    "you standing up for me at the party",
    "the way you handled the plumber",
    "how calm you stayed when I was not",
    "you remembering the thing I mentioned once",
];

const REFLECTIONS: &[&str] = &[
    "What I hear is that the day drained you and you needed quiet more than talk. Did I get that right?",
    "It sounds like you felt alone with it, and you wanted me to notice without being asked. Is that it?",
    "I hear that you are worried, and that the worry is more about us than about the money. Right?",
    "What I take from it is that you felt proud and wanted me to see it. Did I get that?",
    "It sounds like you felt dismissed in that meeting and carried it home. Is that close?",
    "I hear that you miss our time together and that the errands have crowded it out. Did I get that right?",
];

const CORRECTIONS: &[&str] = &[
    "Not quite: it was less about being alone and more about being taken for granted.",
    "Close, but I was not worried, I was angry, and I did not want to be.",
    "Partly. The missing piece is that I was scared, not tired.",
    "Not really: I did not need you to notice, I needed you to ask.",
    "Almost. It was about my father more than about work.",
];

const ANSWERS: &[&str] = &[
    "I think you felt cornered, because I kept bringing up the past instead of the thing in front of us.",
    "You think the week is too full; you feel stretched; you say it is fine; you do three things at once.",
    "Frustrated, hurt, and a little ashamed. I needed to be heard before being answered.",
    "Best: Saturday morning in bed with coffee. Hardest: Wednesday, when nothing went right.",
    "When you laughed at my terrible joke in front of everyone.",
    "I would like us to have one evening a week with no screens.",
    "A walk, and you not trying to fix it.",
    "That I finally finished the course, even though nobody asked.",
];

const MARK_NOTES: &[&str] = &[
    "yes, exactly",
    "closer than I expected",
    "not quite, but I see why you thought so",
    "spot on",
    "you read me better than I read myself",
];

const TIMEOUTS: &[&str] = &[
    "I need a break; I'm coming back",
    "I am too flooded to talk well right now",
    "give me twenty minutes, I want to get this right",
];

/// A journal entry: usually a few sentences, now and then a long one.
pub fn journal(rng: &mut Rng) -> String {
    let sentences = if rng.chance(0.05) {
        20 + rng.below(30)
    } else {
        1 + rng.below(5)
    };
    (0..sentences)
        .map(|_| *rng.pick(JOURNAL))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn private_note(rng: &mut Rng) -> String {
    let mut t = rng.pick(PRIVATE).to_string();
    if rng.chance(0.5) {
        t.push(' ');
        t.push_str(rng.pick::<&str>(JOURNAL));
    }
    t
}

pub fn edited(rng: &mut Rng, before: &str) -> String {
    format!("{before} (Later: {})", rng.pick(JOURNAL))
}

pub fn high(rng: &mut Rng) -> String {
    rng.pick(HIGHS).to_string()
}

pub fn low(rng: &mut Rng) -> String {
    rng.pick(LOWS).to_string()
}

pub fn appreciation(rng: &mut Rng) -> String {
    rng.pick(APPRECIATIONS).to_string()
}

pub fn reflection(rng: &mut Rng) -> String {
    rng.pick(REFLECTIONS).to_string()
}

pub fn correction(rng: &mut Rng) -> String {
    rng.pick(CORRECTIONS).to_string()
}

pub fn answer(rng: &mut Rng) -> String {
    let mut t = rng.pick(ANSWERS).to_string();
    if rng.chance(0.3) {
        t.push(' ');
        t.push_str(rng.pick::<&str>(JOURNAL));
    }
    t
}

pub fn mark_note(rng: &mut Rng) -> String {
    rng.pick(MARK_NOTES).to_string()
}

pub fn timeout(rng: &mut Rng) -> String {
    rng.pick(TIMEOUTS).to_string()
}
