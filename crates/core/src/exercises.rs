//! The blind exercises: titles and the built-in prompts, in our own words.

use crate::item::ExerciseKind;

pub fn title(kind: ExerciseKind) -> &'static str {
    match kind {
        ExerciseKind::PerspectiveSwap => "perspective swap",
        ExerciseKind::EmpathyMap => "empathy map",
        ExerciseKind::EmotionNaming => "emotion naming",
        ExerciseKind::HighLow => "high and low of the week",
        ExerciseKind::Question => "question of the day",
        ExerciseKind::StateOfTheUnion => "state of the union",
    }
}

/// The prompt used when none is given.
pub fn default_prompt(kind: ExerciseKind, day_index: usize) -> String {
    match kind {
        ExerciseKind::PerspectiveSwap => "Think of our last disagreement. Write what you believe the other felt, and why — in their shoes, not yours.".into(),
        ExerciseKind::EmpathyMap => "About the other this week: what do they think, what do they feel, what do they say, what do they do? One line each.".into(),
        ExerciseKind::EmotionNaming => "Name three emotions you felt during our last conflict, and one word for what you needed.".into(),
        ExerciseKind::HighLow => "Your best moment this week, and your hardest one.".into(),
        ExerciseKind::Question => QUESTIONS[day_index % QUESTIONS.len()].into(),
        ExerciseKind::StateOfTheUnion => "Looking back on this month together: what did you appreciate about the other, what weighed on you (said as your own feeling, not a verdict), and what is one thing you would like the two of you to do differently next month?".into(),
    }
}

/// Open questions: one a day, in turn.
pub const QUESTIONS: &[&str] = &[
    "What made you smile today, even a little?",
    "What are you quietly bracing for this week?",
    "When did you last feel really understood by me?",
    "What is something small I do that matters to you more than I know?",
    "What would make tomorrow ten percent easier for you?",
    "Which worry have you not said out loud yet?",
    "What did you need this week that you did not ask for?",
    "What are you proud of that nobody noticed?",
    "Where would you go with me if we had one free day?",
    "What is one thing you would like us to do differently next month?",
    "What helps you most when you are overwhelmed?",
    "What memory of us do you return to most often?",
];
