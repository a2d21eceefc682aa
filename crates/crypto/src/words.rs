//! The 256 words of pairing codes: short, common, easy to say and to type.

pub const WORDS: [&str; 256] = [
    "acorn", "adobe", "alpha", "amber", "anchor", "apple", "apron", "arrow", "aspen", "atlas",
    "autumn", "badge", "bagel", "bamboo", "banjo", "basil", "beacon", "berry", "birch", "bison",
    "blanket", "blossom", "bonfire", "breeze", "brick", "bridge", "brook", "bubble", "butter",
    "cabin", "cactus", "camel", "candle", "canoe", "canyon", "carrot", "castle", "cedar", "cello",
    "cherry", "chess", "cider", "cinema", "citrus", "clover", "cobalt", "cocoa", "comet", "coral",
    "cotton", "cradle", "crane", "crayon", "cricket", "crystal", "cupcake", "dahlia", "daisy",
    "delta", "denim", "desert", "dolphin", "dragon", "drum", "dune", "eagle", "echo", "ember",
    "emerald", "falcon", "fable", "feather", "fern", "fiddle", "fig", "flame", "flute", "forest",
    "fossil", "fox", "galaxy", "garden", "garnet", "gazelle", "ginger", "glacier", "globe",
    "granite", "grape", "guitar", "hammock", "harbor", "harvest", "hazel", "heron", "hickory",
    "honey", "horizon", "iceberg", "igloo", "indigo", "iris", "island", "ivory", "jade", "jasmine",
    "jelly", "jigsaw", "juniper", "kayak", "kettle", "kiwi", "koala", "lagoon", "lantern", "lava",
    "lemon", "lilac", "lily", "linen", "lotus", "lunar", "magnet", "mango", "maple", "marble",
    "meadow", "melon", "meteor", "mint", "mitten", "mocha", "moss", "muffin", "nectar", "nickel",
    "nova", "nutmeg", "oasis", "ocean", "olive", "onyx", "opal", "orbit", "orchid", "otter", "owl",
    "paddle", "panda", "papaya", "parrot", "peach", "pebble", "pepper", "piano", "pigeon", "pine",
    "pixel", "planet", "plum", "pocket", "polar", "poppy", "prism", "pumpkin", "quartz", "quill",
    "quilt", "rabbit", "radar", "rainbow", "raven", "reef", "ribbon", "river", "robin", "rocket",
    "rose", "ruby", "saddle", "saffron", "sage", "salmon", "sandal", "sapphire", "satin", "scarf",
    "shell", "sierra", "silver", "sketch", "sparrow", "spruce", "squash", "star", "stone", "sugar",
    "summit", "sunset", "swan", "tango", "teapot", "thistle", "thunder", "tiger", "timber",
    "topaz", "tulip", "tundra", "turtle", "twig", "umber", "valley", "velvet", "violet", "violin",
    "walnut", "walrus", "wave", "willow", "window", "winter", "wren", "yarrow", "yeti", "zebra",
    "zenith", "zephyr", "zinc", "zucchini", "almond", "bluebell", "cobble", "dewdrop", "elm",
    "firefly", "gravel", "hedge", "inkwell", "jetty", "kelp", "lark", "marigold", "nimbus", "oak",
    "puffin", "quokka", "raisin", "seagull", "tofu", "urchin", "vapor", "wombat", "yodel", "zest",
    "basin",
];

#[cfg(test)]
mod tests {
    use super::WORDS;
    use std::collections::BTreeSet;

    #[test]
    fn words_are_unique_and_plain() {
        let set: BTreeSet<_> = WORDS.iter().collect();
        assert_eq!(set.len(), WORDS.len());
        assert!(WORDS
            .iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase())));
    }
}
