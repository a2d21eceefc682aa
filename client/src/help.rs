//! The top-level help, with the commands grouped by what a person does. clap
//! lists subcommands in one flat list, so the groups are written into the
//! help template; a test checks that every command is in exactly one group.

use clap::{Command, CommandFactory};

use crate::args::Cli;

/// Every command, by what a person does with it.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "Every day",
        &[
            "today", "checkin", "journal", "sync", "feed", "status", "watch", "remind",
        ],
    ),
    (
        "Practices together",
        &[
            "ask",
            "answer",
            "mark",
            "reflect",
            "confirm",
            "correct",
            "timeout",
            "resume",
            "appreciate",
            "gratitude",
            "challenge",
            "coach",
            "feelings",
        ],
    ),
    (
        "History",
        &[
            "show", "edit", "delete", "withdraw", "export", "import", "stats", "report",
        ],
    ),
    (
        "Devices and pairing",
        &[
            "pair", "device", "recovery", "verify", "unlock", "lock", "leave",
        ],
    ),
    ("Setup", &["init", "config", "completions", "demo", "help"]),
];

/// The command line's grammar with the grouped help: what `main` parses with.
pub fn command() -> Command {
    let cmd = Cli::command();
    let template = template(&cmd);
    cmd.help_template(template)
}

fn template(cmd: &Command) -> String {
    let width = GROUPS
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    let mut out = String::from("{before-help}{about-with-newline}\n{usage-heading} {usage}\n");
    for (group, names) in GROUPS {
        out.push('\n');
        out.push_str(group);
        out.push_str(":\n");
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|c| c.get_about())
                .map(|a| a.to_string())
                .unwrap_or_else(|| {
                    if *name == "help" {
                        "Print this message or the help of the given command".into()
                    } else {
                        String::new()
                    }
                });
            out.push_str(&format!("  {name:<width$}  {about}\n"));
        }
    }
    out.push_str("\nOptions:\n{options}\n\n`attune help COMMAND` (or `attune COMMAND --help`) tells more about each.{after-help}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subcommands() -> Vec<String> {
        let mut cmd = command();
        // clap adds `help` when the command is built.
        cmd.build();
        // Hidden commands (the agent's own) are not for people to run.
        cmd.get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_string())
            .collect()
    }

    #[test]
    fn every_command_is_in_exactly_one_group() {
        let names = subcommands();
        assert!(names.len() > 30, "{names:?}");
        for name in &names {
            let groups: Vec<&str> = GROUPS
                .iter()
                .filter(|(_, members)| members.contains(&name.as_str()))
                .map(|(g, _)| *g)
                .collect();
            assert_eq!(groups.len(), 1, "`{name}` is in groups {groups:?}");
        }
        for (group, members) in GROUPS {
            for m in *members {
                assert!(
                    names.iter().any(|n| n == m),
                    "{group} lists `{m}`, which is no command"
                );
            }
        }
    }

    #[test]
    fn the_help_shows_the_groups_with_every_command() {
        let help = command().render_help().to_string();
        for (group, members) in GROUPS {
            assert!(help.contains(&format!("{group}:")), "{help}");
            for m in *members {
                assert!(help.contains(&format!("  {m} ")), "`{m}` missing:\n{help}");
            }
        }
        assert!(help.contains("--home"), "{help}");
        assert!(
            help.contains("  feed ") && help.contains("The timeline"),
            "{help}"
        );
    }

    /// Every argument and option of every command has help text.
    #[test]
    fn every_argument_has_help() {
        fn check(cmd: &Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    check(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut cmd = command();
        cmd.build();
        let mut missing = vec![];
        check(&cmd, "attune", &mut missing);
        assert!(missing.is_empty(), "no help for: {missing:#?}");
    }

    #[test]
    fn the_grammar_is_consistent() {
        command().debug_assert();
    }
}
