//! Recovery codes and recovery bundles (PROTOCOL.md §16).
//!
//! A recovery code is 26 characters of Crockford base32 (130 random bits), shown
//! in groups of four or five. The relay files the bundle under
//! `SHA-256(RECOVERY_LOOKUP || code)`; the bundle is encrypted under a key
//! stretched from the code with Argon2id:
//!
//! ```text
//! bundle    = magic "ATTUNERB" | version u8 | m_cost_kib u32 | t_cost u32 | p_cost u32
//!             | salt 16 | nonce 24 | ciphertext var   (AAD = every byte before the ciphertext)
//! plaintext = version u8 | space 16 | member 16 | partner_name var | keystore contents
//! ```
//! The keystore contents are the recovery key's own identity (a device in the
//! roster, flagged `Recovery`) and every space key the member held at setup;
//! keys made later reach the recovery key as HPKE wraps in the history.

use std::fmt;

use attune_proto::codec::{Reader, Writer};
use attune_proto::ids::hash_labelled;
use attune_proto::{labels, Hash32, MemberId, SpaceId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::keystore::{decode_contents, encode_contents, stretch, KdfParams, KeystoreContents};
use crate::secret::random_array;

/// Crockford's base32: no I, L, O or U, so a written code reads back one way.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CODE_CHARS: usize = 26;
const MAX_NAME: usize = 256;

/// Argon2id for recovery bundles: 256 MiB and 3 passes, well above the keystore's,
/// because a bundle sits on a server and can be attacked offline.
pub const RECOVERY_KDF: KdfParams = KdfParams {
    m_cost_kib: 256 * 1024,
    t_cost: 3,
    p_cost: 1,
};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecoveryError {
    #[error("a recovery code has {CODE_CHARS} letters and digits (dashes and spaces do not count); this one has {0}")]
    CodeLength(usize),
    #[error("a recovery code uses only digits and the letters A-Z except I, L, O and U; '{0}' is not one of them")]
    CodeCharacter(char),
    #[error("this is not a recovery bundle")]
    NotABundle,
    #[error("the recovery bundle does not open with this code (a typo, or an old code that was replaced)")]
    WrongCode,
    #[error("the recovery bundle is damaged")]
    Corrupt,
    #[error("the recovery bundle asks for Argon2 settings outside the accepted range")]
    BadKdfParams,
    #[error("encrypting the recovery bundle failed")]
    Seal,
}

/// A recovery code. Shown once; never logged (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(Zeroizing<String>);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

impl RecoveryCode {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; CODE_CHARS]);
        OsRng.fill_bytes(&mut bytes[..]);
        // 256 is a multiple of 32: taking the low five bits keeps every letter equally likely.
        let s: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(b & 31)] as char)
            .collect();
        Self(Zeroizing::new(s))
    }

    /// Reads a code as a person typed it: any case, with or without dashes and
    /// spaces; O reads as 0, I and L as 1.
    pub fn parse(typed: &str) -> Result<Self, RecoveryError> {
        let mut s = Zeroizing::new(String::with_capacity(CODE_CHARS));
        for c in typed.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(RecoveryError::CodeCharacter(c));
            }
            s.push(c);
        }
        if s.len() != CODE_CHARS {
            return Err(RecoveryError::CodeLength(s.len()));
        }
        Ok(Self(s))
    }

    /// The code to write down: groups of four, then five and five at the end.
    pub fn reveal(&self) -> String {
        let s = self.0.as_str();
        let groups = [0..4, 4..8, 8..12, 12..16, 16..21, 21..26];
        groups
            .into_iter()
            .map(|r| &s[r])
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Where the relay files the bundle: reveals nothing about the code.
    pub fn lookup(&self) -> Hash32 {
        hash_labelled(labels::RECOVERY_LOOKUP, &[self.0.as_bytes()])
    }
}

/// What a recovery bundle holds.
#[derive(Debug, Clone)]
pub struct RecoveryContents {
    pub space: SpaceId,
    pub member: MemberId,
    pub partner_name: String,
    /// The recovery key's identity and the member's space keys.
    pub keystore: KeystoreContents,
}

/// Seals `contents` under `code` with the given Argon2id settings.
pub fn seal_recovery(
    code: &RecoveryCode,
    contents: &RecoveryContents,
    params: KdfParams,
) -> Result<Vec<u8>, RecoveryError> {
    seal_recovery_with(code, contents, params, random_array(), random_array())
}

/// [`seal_recovery`] with a chosen salt and nonce: only for the test vectors.
pub(crate) fn seal_recovery_with(
    code: &RecoveryCode,
    contents: &RecoveryContents,
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
) -> Result<Vec<u8>, RecoveryError> {
    let key =
        stretch(code.0.as_bytes(), &salt, &params).map_err(|_| RecoveryError::BadKdfParams)?;
    let name = contents.partner_name.as_bytes();
    if name.len() > MAX_NAME {
        return Err(RecoveryError::Seal);
    }
    let inner = encode_contents(&contents.keystore);
    let mut w = Writer::new();
    w.u8(attune_proto::VERSION)
        .fixed(&contents.space.0)
        .fixed(&contents.member.0)
        .var(name)
        .fixed(&inner);
    let plain = Zeroizing::new(w.finish());
    let mut w = Writer::new();
    w.fixed(labels::RECOVERY_MAGIC)
        .u8(attune_proto::VERSION)
        .u32(params.m_cost_kib)
        .u32(params.t_cost)
        .u32(params.p_cost)
        .fixed(&salt)
        .fixed(&nonce);
    let mut out = w.finish();
    let ct = XChaCha20Poly1305::new(key.expose().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &out,
            },
        )
        .map_err(|_| RecoveryError::Seal)?;
    let mut w = Writer::new();
    w.var(&ct);
    out.extend_from_slice(&w.finish());
    Ok(out)
}

/// Opens a bundle with `code`; the Argon2id settings are the bundle's own,
/// within the accepted range.
pub fn open_recovery(
    code: &RecoveryCode,
    bundle: &[u8],
) -> Result<RecoveryContents, RecoveryError> {
    let mut r = Reader::new(bundle);
    let magic: [u8; 8] = r
        .array("recovery magic")
        .map_err(|_| RecoveryError::NotABundle)?;
    if &magic != labels::RECOVERY_MAGIC {
        return Err(RecoveryError::NotABundle);
    }
    let corrupt = |_| RecoveryError::Corrupt;
    if r.u8("recovery version").map_err(corrupt)? != attune_proto::VERSION {
        return Err(RecoveryError::Corrupt);
    }
    let params = KdfParams {
        m_cost_kib: r.u32("m_cost").map_err(corrupt)?,
        t_cost: r.u32("t_cost").map_err(corrupt)?,
        p_cost: r.u32("p_cost").map_err(corrupt)?,
    };
    let salt: [u8; 16] = r.array("salt").map_err(corrupt)?;
    let nonce: [u8; 24] = r.array("nonce").map_err(corrupt)?;
    let header_len = bundle.len() - r.remaining();
    let ct = r.var("recovery ciphertext", 0, 1 << 20).map_err(corrupt)?;
    r.finish("recovery bundle").map_err(corrupt)?;
    let key =
        stretch(code.0.as_bytes(), &salt, &params).map_err(|_| RecoveryError::BadKdfParams)?;
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(key.expose().into())
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: ct,
                    aad: &bundle[..header_len],
                },
            )
            .map_err(|_| RecoveryError::WrongCode)?,
    );
    let mut r = Reader::new(&plain);
    if r.u8("version").map_err(corrupt)? != attune_proto::VERSION {
        return Err(RecoveryError::Corrupt);
    }
    let space = SpaceId(r.array("space").map_err(corrupt)?);
    let member = MemberId(r.array("member").map_err(corrupt)?);
    let name = r.var("partner name", 0, MAX_NAME).map_err(corrupt)?;
    let partner_name = String::from_utf8(name.to_vec()).map_err(|_| RecoveryError::Corrupt)?;
    let rest = r.rest("keystore contents", 0, 1 << 20).map_err(corrupt)?;
    let keystore = decode_contents(rest).map_err(|_| RecoveryError::Corrupt)?;
    let mut out = RecoveryContents {
        space,
        member,
        partner_name,
        keystore,
    };
    out.keystore.keys.set_member(member);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceIdentity;
    use crate::keys::Keyring;
    use crate::secret::SymmetricKey;
    use attune_proto::KeyId;

    const CHEAP: KdfParams = KdfParams::INSECURE_FOR_TESTS;

    fn contents() -> RecoveryContents {
        let mut keys = Keyring::new();
        keys.insert(KeyId::Epoch(0), SymmetricKey::from_bytes([7; 32]));
        keys.insert(KeyId::MemberPrivate(0), SymmetricKey::from_bytes([9; 32]));
        RecoveryContents {
            space: SpaceId([1; 16]),
            member: MemberId([2; 16]),
            partner_name: "Sam".into(),
            keystore: KeystoreContents {
                identity: DeviceIdentity::generate(),
                keys,
            },
        }
    }

    #[test]
    fn a_bundle_opens_only_with_its_code() {
        let code = RecoveryCode::generate();
        let c = contents();
        let bundle = seal_recovery(&code, &c, CHEAP).unwrap();
        let opened = open_recovery(&code, &bundle).unwrap();
        assert_eq!(opened.space, c.space);
        assert_eq!(opened.member, c.member);
        assert_eq!(opened.partner_name, "Sam");
        assert_eq!(opened.keystore.identity.id(), c.keystore.identity.id());
        assert_eq!(
            opened.keystore.keys.get(&KeyId::Epoch(0)).unwrap().expose(),
            &[7; 32]
        );
        // Typed differently, the same code.
        let typed = code.reveal().to_lowercase().replace('-', " ");
        assert!(open_recovery(&RecoveryCode::parse(&typed).unwrap(), &bundle).is_ok());
        // Any other code, or one character changed, does not open it.
        let other = RecoveryCode::generate();
        assert_eq!(
            open_recovery(&other, &bundle).unwrap_err(),
            RecoveryError::WrongCode
        );
        let mut near = code.0.to_string();
        let last = near.pop().unwrap();
        near.push(if last == '0' { '1' } else { '0' });
        let near = RecoveryCode::parse(&near).unwrap();
        assert_eq!(
            open_recovery(&near, &bundle).unwrap_err(),
            RecoveryError::WrongCode
        );
        // Every byte is authenticated: the settings too.
        for i in [9, 12, 30, bundle.len() - 1] {
            let mut bad = bundle.clone();
            bad[i] ^= 1;
            assert!(open_recovery(&code, &bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn codes_parse_as_people_type_them() {
        let code = RecoveryCode::generate();
        let shown = code.reveal();
        assert_eq!(shown.len(), CODE_CHARS + 5);
        assert_eq!(RecoveryCode::parse(&shown).unwrap(), code);
        assert_eq!(
            RecoveryCode::parse("oil0-1111-1111-1111-11111-11111").unwrap(),
            RecoveryCode::parse("0110-1111-1111-1111-11111-11111").unwrap()
        );
        assert_eq!(
            RecoveryCode::parse("ABCD").unwrap_err(),
            RecoveryError::CodeLength(4)
        );
        assert!(matches!(
            RecoveryCode::parse("UUUU-1111-1111-1111-11111-11111"),
            Err(RecoveryError::CodeCharacter('U'))
        ));
        assert_ne!(code.lookup(), RecoveryCode::generate().lookup());
        assert!(!format!("{code:?}").contains(&shown[..4]));
    }
}
