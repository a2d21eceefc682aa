//! The feed's filters as typed on the command line: `--kind` in any case with
//! every kind offered, and `--from me|partner|NAME`.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};

use attune_core::inert;
use attune_core::query::{Author, FeedKind};

/// Parses `--kind` with [`FeedKind::parse`] (any case, `check-in` too) and
/// offers every kind in help and completions.
#[derive(Debug, Clone, Copy, Default)]
pub struct KindParser;

impl TypedValueParser for KindParser {
    type Value = FeedKind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<FeedKind, clap::Error> {
        let text = value.to_string_lossy();
        FeedKind::parse(&text).ok_or_else(|| {
            let mut err = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
            if let Some(arg) = arg {
                err.insert(
                    ContextKind::InvalidArg,
                    ContextValue::String(arg.to_string()),
                );
            }
            err.insert(
                ContextKind::InvalidValue,
                ContextValue::String(inert::line(&text).into_owned()),
            );
            err.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(FeedKind::ALL.iter().map(|k| k.name().into()).collect()),
            );
            err
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            FeedKind::ALL.iter().map(|k| PossibleValue::new(k.name())),
        ))
    }
}

/// Whose items `--from WHO` means: `me`, `partner`, or one of the two names
/// (compared without regard to case).
pub fn resolve_author(who: &str, me: &str, partner: &str) -> Result<Author, String> {
    let w = who.trim().to_lowercase();
    if w == "me" {
        return Ok(Author::Me);
    }
    if w == "partner" {
        return Ok(Author::Partner);
    }
    let is_me = w == me.trim().to_lowercase();
    let is_partner = w == partner.trim().to_lowercase();
    match (is_me, is_partner) {
        (true, false) => Ok(Author::Me),
        (false, true) => Ok(Author::Partner),
        (true, true) => Err(format!(
            "--from {}: you are both called that; say --from me or --from partner",
            inert::line(who.trim())
        )),
        (false, false) => Err(format!(
            "--from takes me, partner, {} (you) or {} (your partner), not '{}'",
            inert::line(me),
            inert::line(partner),
            inert::line(who.trim())
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn from_takes_keywords_and_either_name_in_any_case() {
        assert_eq!(resolve_author("me", "Alex", "Sam"), Ok(Author::Me));
        assert_eq!(
            resolve_author("PARTNER", "Alex", "Sam"),
            Ok(Author::Partner)
        );
        assert_eq!(resolve_author("sam", "Alex", "Sam"), Ok(Author::Partner));
        assert_eq!(resolve_author(" ALEX ", "Alex", "Sam"), Ok(Author::Me));
        assert_eq!(
            resolve_author("élodie", "Alex", "Élodie"),
            Ok(Author::Partner)
        );
        let err = resolve_author("Jo", "Alex", "Sam").unwrap_err();
        assert!(
            err.contains("Alex") && err.contains("Sam") && err.contains("'Jo'"),
            "{err}"
        );
        assert!(resolve_author("kim", "Kim", "KIM").is_err());
    }

    #[test]
    fn kinds_parse_in_any_case_and_all_are_offered() {
        let cmd = clap::Command::new("t");
        let parse = |s: &str| KindParser.parse_ref(&cmd, None, OsStr::new(s));
        assert_eq!(parse("Journal").unwrap(), FeedKind::Journal);
        assert_eq!(parse("CHECK-IN").unwrap(), FeedKind::CheckIn);
        assert!(parse("envelope").is_err());
        let offered: Vec<String> = KindParser
            .possible_values()
            .unwrap()
            .map(|v| v.get_name().to_string())
            .collect();
        assert_eq!(offered.len(), FeedKind::ALL.len());
        for k in FeedKind::ALL {
            assert!(offered.iter().any(|o| o == k.name()), "{}", k.name());
        }
    }
}
