//! `attune device …` and `attune recovery …`: more than one device per partner,
//! cutting one off, and coming back from losing them all.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use attune_core::device::{self, DeviceInfo};
use attune_core::inert;
use attune_core::profile::{ClientError, Profile};
use attune_core::recovery;
use serde_json::json;

use crate::args::{DeviceCommand, RecoveryCommand};
use crate::common::{json_text, paired, partner_name, try_push, try_sync};
use crate::prompts::{prompt, Terminal};
use crate::render::when;

/// This computer's name, for a device that was given none.
fn default_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    if name.is_empty() {
        "new device".into()
    } else {
        name
    }
}

fn short(id: &attune_proto::DeviceId) -> String {
    id.to_hex()[..12].to_string()
}

fn label(d: &DeviceInfo) -> String {
    match (&d.name, d.recovery) {
        (Some(n), false) => inert::line(n).into_owned(),
        (_, true) => "recovery code".into(),
        // The devices that created and joined the space were given no name.
        (None, false) => "first device".into(),
    }
}

pub async fn run(home: &Path, cmd: DeviceCommand) -> Result<i32, ClientError> {
    match cmd {
        DeviceCommand::Add { timeout } => {
            let mut p = paired(home)?;
            let relay = inert::line(&p.relay_url()?.unwrap_or_default()).into_owned();
            let added = device::add(&mut p, Duration::from_secs(timeout), |code| {
                outln!("code: {code}");
                let _ = std::io::stdout().flush();
                eprintln!(
                    "On the new device, after `attune init --name NAME`, run: attune device join {code} --relay {relay} --name laptop"
                );
                eprintln!("Waiting for it…");
            })
            .await
            .map_err(|e| p.explain_gone(e))?;
            try_push(&mut p).await;
            outln!(
                "added {} ({}); {} will see that you added a device",
                inert::line(&added.name),
                short(&added.device),
                partner_name(&p)
            );
            Ok(0)
        }
        DeviceCommand::Join {
            code,
            relay,
            name,
            timeout,
        } => {
            attune_core::relay::check_url(&relay)?;
            let mut p = Profile::open_with(home, &mut Terminal)?;
            let name = name.unwrap_or_else(default_name);
            let joined =
                device::join(&mut p, &code, &relay, &name, Duration::from_secs(timeout)).await?;
            outln!(
                "joined: this device ({}) now belongs to you in the space you share with {}",
                inert::line(&name),
                inert::line(&joined.partner_name)
            );
            eprintln!("Fetching your history…");
            let report =
                attune_core::sync::sync(&mut p, &mut crate::progress::Spinner::on_stderr())
                    .await
                    .map_err(|e| p.explain_gone(e))?;
            outln!(
                "received {}",
                crate::words::count(report.received, "item", "items")
            );
            Ok(crate::common::report_problems(&report.problems))
        }
        DeviceCommand::List { json } => {
            let mut p = paired(home)?;
            // A list of devices should be current: membership changes come with a sync.
            let _ = try_sync(&mut p).await;
            let devices = p.devices()?;
            let me = crate::common::my_name(&p);
            let partner = partner_name(&p);
            if json {
                let list: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.id.to_hex(),
                            "name": d.name,
                            "member": if d.mine { "me" } else { "partner" },
                            "recovery": d.recovery,
                            "added_at": d.added_at,
                            "last_seen": d.last_seen,
                            "revoked": d.revoked,
                            "revoked_at": d.revoked_at,
                            "this_device": d.this_device,
                        })
                    })
                    .collect();
                outln!("{}", json_text(&json!({ "devices": list })));
                return Ok(0);
            }
            for mine in [true, false] {
                outln!("{}", if mine { &me } else { &partner });
                for d in devices.iter().filter(|d| d.mine == mine) {
                    let mut line = format!("  {}  {:<20}", short(&d.id), label(d));
                    line.push_str(&format!("  added {}", when(d.added_at)));
                    if let Some(seen) = d.last_seen {
                        line.push_str(&format!(", last wrote {}", when(seen)));
                    }
                    if let Some(at) = d.revoked_at {
                        line.push_str(&format!(", revoked {}", when(at)));
                    } else if d.revoked {
                        line.push_str(", revoked");
                    }
                    if d.this_device {
                        line.push_str("  (this device)");
                    }
                    outln!("{line}");
                }
            }
            Ok(0)
        }
        DeviceCommand::Revoke { id, yes } => {
            let mut p = paired(home)?;
            let _ = try_sync(&mut p).await;
            let target = device::resolve_device(&p, &id)?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(ClientError::Input(
                        "revoking cuts that device off for good; pass --yes to confirm".into(),
                    ));
                }
                eprintln!(
                    "Device {} will be refused by the relay and cannot read anything written from now on.",
                    short(&target)
                );
                if prompt("Type 'revoke' to confirm: ")? != "revoke" {
                    eprintln!("nothing was changed");
                    return Ok(1);
                }
            }
            let revoked = device::revoke(&mut p, target)
                .await
                .map_err(|e| p.explain_gone(e))?;
            try_push(&mut p).await;
            outln!(
                "revoked {}{}: it can no longer sync, and everything from now on uses a new key (epoch {}); {} will see that you removed a device",
                short(&revoked.device),
                revoked
                    .name
                    .as_deref()
                    .map(|n| format!(" ({})", inert::line(n)))
                    .unwrap_or_default(),
                revoked.epoch,
                partner_name(&p)
            );
            Ok(0)
        }
    }
}

/// The recovery code, from `ATTUNE_RECOVERY_CODE` or the terminal.
fn read_code() -> Result<String, ClientError> {
    if let Ok(c) = std::env::var("ATTUNE_RECOVERY_CODE") {
        return Ok(c);
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Input(
            "type the recovery code on a terminal, or set ATTUNE_RECOVERY_CODE".into(),
        ));
    }
    rpassword::prompt_password("Recovery code: ")
        .map_err(|_| ClientError::Input("could not read the recovery code".into()))
}

fn show_code(set: &recovery::RecoverySet) {
    outln!("recovery code: {}", set.code.reveal());
    eprintln!("Write it down now and keep it somewhere safe: it is shown only this once.");
    eprintln!(
        "With it, `attune recovery restore` brings back your keys and history on a new device."
    );
    eprintln!(
        "Anyone who has it and reaches the relay can do the same: do not store it on this device."
    );
}

pub async fn recover(home: &Path, cmd: RecoveryCommand) -> Result<i32, ClientError> {
    match cmd {
        RecoveryCommand::Setup | RecoveryCommand::Rotate => {
            let replace = matches!(cmd, RecoveryCommand::Rotate);
            let mut p = paired(home)?;
            let _ = try_sync(&mut p).await;
            let set = recovery::set_up(&mut p, replace)
                .await
                .map_err(|e| p.explain_gone(e))?;
            try_push(&mut p).await;
            show_code(&set);
            if !set.replaced.is_empty() {
                eprintln!("The previous recovery code no longer works.");
            }
            Ok(0)
        }
        RecoveryCommand::Restore {
            relay,
            name,
            revoke_others,
        } => {
            attune_core::relay::check_url(&relay)?;
            let mut p = Profile::open_with(home, &mut Terminal)?;
            let code = read_code()?;
            eprintln!("Opening the recovery bundle (this takes a few seconds)…");
            let restored = recovery::restore(&mut p, &relay, &code).await?;
            let report =
                attune_core::sync::sync(&mut p, &mut crate::progress::Spinner::on_stderr())
                    .await
                    .map_err(|e| p.explain_gone(e))?;
            let name = name.unwrap_or_else(default_name);
            recovery::announce_restore(&mut p, &name)?;
            outln!(
                "restored: {} of the space you share with {}",
                crate::words::count(restored.received + report.received, "item", "items"),
                inert::line(&restored.partner_name)
            );
            let mut exit = crate::common::report_problems(&report.problems);
            if !restored.others.is_empty() {
                let revoke = revoke_others
                    || (std::io::stdin().is_terminal()
                        && prompt(&format!(
                            "Your other {} may be lost: revoke {} now? [y/N] ",
                            crate::words::count(restored.others.len(), "device", "devices"),
                            if restored.others.len() == 1 {
                                "it"
                            } else {
                                "them"
                            }
                        ))?
                        .eq_ignore_ascii_case("y"));
                if revoke {
                    for d in &restored.others {
                        device::revoke(&mut p, *d).await?;
                        outln!("revoked {}", short(d));
                    }
                } else {
                    eprintln!(
                        "Your other devices still work. If one is lost, `attune device revoke ID` cuts it off (`attune device list` shows them)."
                    );
                }
            }
            if try_sync(&mut p).await.is_none() {
                exit = exit.max(1);
            }
            eprintln!("Set up a new recovery code soon: `attune recovery rotate` (the one you used still works until then).");
            Ok(exit)
        }
    }
}
