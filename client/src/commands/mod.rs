//! The commands, one module per group, and the dispatch from the parsed command line.

pub mod devices;
pub mod held;
pub mod history;
pub mod import;
pub mod insights;
pub mod practice;
pub mod remind;
pub mod setup;
pub mod unlock;

use std::io::Write;
use std::time::Duration;

use clap::CommandFactory;

use attune_core::inert;
use attune_core::item::Body;
use attune_core::pair;
use attune_core::profile::{now_ms, resolve_home, ClientError, Profile};
use attune_core::sync;
use attune_core::vocab;

use crate::args::{
    ChallengeCommand, Cli, Command, ConfigCommand, OnOff, PairCommand, RemindCommand, Verdict,
};
use crate::common::{paired, partner_name, report_problems, send, writing};
use crate::editor::Draft;
use crate::prompts::{read_text, read_text_with, Terminal};
use crate::render::when;

pub use crate::common::EXIT_INTEGRITY;

/// The new text of a journal entry (sent or held): `-m`, or the editor opened
/// on its current text; `None` (said) when unchanged.
fn edited_text(body: &Body, message: Option<String>) -> Result<Option<String>, ClientError> {
    let Body::Journal { text: current } = body else {
        return Err(ClientError::Input(
            "only journal entries can be edited".into(),
        ));
    };
    let text = read_text_with(message, "edit", &Draft::from_text(current))?;
    if text == current.trim() {
        outln!("unchanged: nothing to save");
        return Ok(None);
    }
    Ok(Some(text))
}

pub async fn run(cli: Cli) -> Result<i32, ClientError> {
    let home = resolve_home(cli.home)?;
    // A reminder no notification could show: the next command says it (on
    // stderr, so piped output stays clean).
    if !matches!(
        cli.command,
        Command::Remind(RemindCommand::Fire) | Command::AgentServe
    ) {
        remind::show_pending(&home);
    }
    match cli.command {
        Command::Init {
            name,
            no_passphrase,
        } => setup::init(&home, &name, no_passphrase),
        Command::Pair(PairCommand::Invite {
            relay,
            relay_token,
            timeout,
        }) => {
            attune_core::relay::check_url(&relay)?;
            let mut p = Profile::open_with(&home, &mut Terminal)?;
            let wait = Duration::from_secs(timeout);
            let paired = pair::invite(&mut p, &relay, relay_token, wait, |code| {
                outln!("code: {code}");
                let _ = std::io::stdout().flush();
                eprintln!("Give your partner this code; they run: attune pair join {code} --relay {relay}");
            })
            .await?;
            outln!("paired with {}", inert::line(&paired.partner_name));
            outln!("Compare `attune verify` with your partner's, in person.");
            Ok(0)
        }
        Command::Pair(PairCommand::Join {
            code,
            relay,
            timeout,
        }) => {
            attune_core::relay::check_url(&relay)?;
            let mut p = Profile::open_with(&home, &mut Terminal)?;
            let paired = pair::join(&mut p, &code, &relay, Duration::from_secs(timeout)).await?;
            outln!("paired with {}", inert::line(&paired.partner_name));
            outln!("Compare `attune verify` with your partner's, in person.");
            Ok(0)
        }
        Command::Device(cmd) => devices::run(&home, cmd).await,
        Command::Recovery(cmd) => devices::recover(&home, cmd).await,
        Command::Verify => {
            let p = Profile::open_with(&home, &mut Terminal)?;
            let roster = p.roster()?;
            let members = roster.members();
            if members.len() < 2 {
                return Err(ClientError::NotPaired);
            }
            let number =
                attune_crypto::safety_number(&members[0].identity_key, &members[1].identity_key);
            outln!("{number}");
            // The number covers the two first devices; every other device was
            // added by a signed roster event chaining back to them.
            let devices = p.devices()?;
            outln!("It covers these devices (each added by one already in the space):");
            for mine in [true, false] {
                let who = if mine {
                    crate::common::my_name(&p)
                } else {
                    partner_name(&p)
                };
                let list: Vec<String> = devices
                    .iter()
                    .filter(|d| d.mine == mine && !d.revoked)
                    .map(|d| {
                        let name = if d.recovery {
                            "recovery code".to_string()
                        } else {
                            d.name
                                .as_deref()
                                .map(|n| inert::line(n).into_owned())
                                .unwrap_or_else(|| "first device".into())
                        };
                        format!(
                            "{} {name}{}",
                            &d.id.to_hex()[..8],
                            if d.this_device { " (this device)" } else { "" }
                        )
                    })
                    .collect();
                outln!("  {who}: {}", list.join(", "));
            }
            Ok(0)
        }
        Command::Checkin(args) => practice::checkin(&home, args).await,
        Command::Journal {
            message,
            private,
            send_after,
        } => {
            let mut p = writing(&home).await?;
            let delay = send_after
                .as_deref()
                .map(crate::timespec::parse_duration)
                .transpose()
                .map_err(|e| ClientError::Input(format!("--send-after: {e}")))?;
            let text = read_text(message, "journal")?;
            let mut delay = delay;
            // The coach reads a draft the partner will read, once, on this device.
            if !private
                && delay.is_none()
                && crate::coach::review(&p, &text, &partner_name(&p), crate::coach::Draft::Journal)?
                    == crate::coach::Choice::Hold
            {
                delay = Some(
                    crate::timespec::parse_duration(crate::coach::COOL_OFF)
                        .map_err(|e| ClientError::Input(e.to_string()))?,
                );
            }
            if let Some(delay) = delay {
                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                let send_at = now_ms().saturating_add(delay_ms);
                let id = p.hold(Body::Journal { text }, private, send_at)?;
                outln!(
                    "held on this device until {} ({id}); `attune withdraw {}` cancels it",
                    when(send_at),
                    &id[..8]
                );
                return Ok(0);
            }
            let id = p.write(Body::Journal { text }, private)?;
            outln!(
                "{} ({})",
                if private { "kept privately" } else { "written" },
                id.to_hex()
            );
            send(&mut p).await;
            Ok(0)
        }
        Command::Withdraw { id } => {
            let p = paired(&home)?;
            let id = id.trim().to_lowercase();
            let held: Vec<String> =
                p.db.later()?
                    .into_iter()
                    .map(|h| h.0)
                    .filter(|h| id.len() >= 4 && h.starts_with(&id))
                    .collect();
            match held.as_slice() {
                [one] => {
                    p.db.remove_later(one)?;
                    outln!("withdrawn: it was never sent");
                    Ok(0)
                }
                [] => Err(ClientError::Input(format!(
                    "nothing held with id {id}: it may already have been sent (`attune status` lists what is held)"
                ))),
                _ => Err(ClientError::Input(format!("{id} matches several held entries; give more of the id"))),
            }
        }
        Command::Edit { id, message } => {
            let mut p = writing(&home).await?;
            if let Some(h) = p.find_held(&id)? {
                return held::edit(&mut p, h, message);
            }
            let target = history::own_entry(&p, &id)?;
            let Some(text) = edited_text(&target.item.body, message)? else {
                return Ok(0);
            };
            p.write(
                Body::Edit {
                    target: target.id.to_hex(),
                    text,
                },
                target.private,
            )?;
            outln!("edited {}", target.id.to_hex());
            send(&mut p).await;
            Ok(0)
        }
        Command::Delete { id } => {
            let mut p = writing(&home).await?;
            if let Some(h) = p.find_held(&id)? {
                return held::delete(&p, &h);
            }
            let target = history::own_entry(&p, &id)?;
            if !attune_core::profile::deletable(&target.item.body) {
                return Err(ClientError::Input(
                    "only open check-ins, journal entries and appreciations can be deleted; a sealed answer stays as it was sealed".into(),
                ));
            }
            p.write(
                Body::Delete {
                    target: target.id.to_hex(),
                },
                target.private,
            )?;
            outln!("deleted {}", target.id.to_hex());
            send(&mut p).await;
            Ok(0)
        }
        Command::Sync => {
            let mut p = paired(&home)?;
            let waiting = p.db.outbox_len()?;
            let synced = sync::sync(&mut p, &mut crate::progress::Spinner::on_stderr()).await;
            // A space the partner erased is final: said as such, not retried.
            let report = match synced.map_err(|e| p.explain_gone(e)) {
                Ok(r) => r,
                Err(ClientError::Relay(e)) => {
                    eprintln!("could not sync: {}", inert::line(&e.to_string()));
                    eprintln!(
                        "{} in the outbox; nothing is lost. Run `attune sync` again later.",
                        if waiting == 1 {
                            "1 item waits".to_string()
                        } else {
                            format!("{waiting} items wait")
                        }
                    );
                    return Ok(1);
                }
                Err(e) => return Err(e),
            };
            outln!("sent {}, received {}", report.sent, report.received);
            crate::common::print_opened(&report, &partner_name(&p));
            Ok(report_problems(&report.problems))
        }
        Command::Feed(args) => history::feed(&home, args),
        Command::Show { id, json } => history::show(&home, &id, json),
        Command::Status { json } => setup::status(&home, json),
        Command::Watch { seconds, notify } => setup::watch(&home, seconds, notify).await,
        Command::Remind(RemindCommand::At { time }) => remind::at(&home, &time),
        Command::Remind(RemindCommand::Off) => remind::off(&home),
        Command::Remind(RemindCommand::Fire) => remind::fire(&home),
        Command::Export { format, out } => history::export(&home, format, out),
        Command::Import(args) => import::import(&home, args).await,
        Command::Leave { yes } => setup::leave(&home, yes).await,
        Command::Ask { kind, prompt } => practice::ask(&home, kind.into(), prompt).await,
        Command::Answer { id, message } => practice::answer(&home, &id, message).await,
        Command::Mark {
            id,
            verdict,
            message,
        } => practice::mark(&home, &id, verdict == Verdict::Accurate, message).await,
        Command::Reflect {
            id,
            message,
            starter,
        } => practice::reflect(&home, &id, message, starter).await,
        Command::Confirm { id } => practice::respond(&home, &id, None).await,
        Command::Correct { id, message } => practice::respond(&home, &id, Some(message)).await,
        Command::Timeout { duration, message } => {
            practice::timeout(&home, &duration, message).await
        }
        Command::Resume => practice::resume(&home).await,
        Command::Appreciate { text } => practice::appreciate(&home, &text.join(" ")).await,
        Command::Gratitude { json } => practice::gratitude(&home, json),
        Command::Today { json } => insights::today(&home, json),
        Command::Coach { days, json } => insights::coach(&home, days, json),
        Command::Stats { days, json } => insights::stats(&home, days, json),
        Command::Report {
            month,
            year,
            out,
            json,
        } => insights::report(&home, month, year, out.as_deref(), json),
        Command::Challenge(ChallengeCommand::Start) => insights::challenge(&home, true).await,
        Command::Challenge(ChallengeCommand::Stop) => insights::challenge(&home, false).await,
        Command::Feelings => {
            for (q, words) in vocab::EMOTIONS {
                outln!("{}: {}", q.label(), words.join(", "));
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "attune", &mut std::io::stdout());
            Ok(0)
        }
        Command::Unlock { for_ } => unlock::unlock(&home, for_.into()),
        Command::Lock => unlock::lock(&home),
        Command::Config(ConfigCommand::Coach { state }) => {
            let p = Profile::open_with(&home, &mut Terminal)?;
            let on = match state {
                Some(state) => {
                    let on = state == OnOff::On;
                    p.set_coach(on)?;
                    on
                }
                None => p.coach_on()?,
            };
            outln!(
                "{}",
                if on {
                    "coach on: a heated draft gets one suggestion before it is sent (checked on this device only)"
                } else {
                    "coach off: drafts are sent without a tone check (`attune config coach on` turns it on)"
                }
            );
            Ok(0)
        }
        Command::AgentServe => unlock::agent_serve(&home).await,
        #[cfg(feature = "demo")]
        Command::Demo => crate::demo::run().await,
        #[cfg(not(feature = "demo"))]
        Command::Demo => Err(ClientError::Input(
            "this build of attune has no demo (it was built without the `demo` feature)".into(),
        )),
    }
}
