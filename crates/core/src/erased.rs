//! A space that is gone: when a member runs `attune leave`, the relay erases the
//! space, and every later request of the other member's devices is answered
//! "no such space". That is final, not a network fault to retry: front-ends say
//! so plainly (who erased it, that an export keeps what this device holds) and
//! stop.

use attune_proto::api::codes;

use crate::error::ClientError;
use crate::profile::Profile;
use crate::relay::RelayError;

/// True if the relay answered that the space does not exist (any more).
pub fn space_gone(e: &RelayError) -> bool {
    matches!(e, RelayError::Refused { status: 404, code, .. } if code == codes::NOT_FOUND)
}

/// True if the relay's answer is final for this device: the space is gone, or
/// this device was revoked. Retrying cannot help.
pub fn is_final(e: &RelayError) -> bool {
    space_gone(e) || e.code() == Some(codes::DEVICE_REVOKED)
}

impl Profile {
    /// `e` as it should be told: [`ClientError::SpaceErased`] when the relay no
    /// longer has this profile's space, else `e` unchanged.
    pub fn explain_gone(&self, e: ClientError) -> ClientError {
        match e {
            ClientError::Relay(RelayError::Refused { code, .. })
                if code == codes::DEVICE_REVOKED =>
            {
                ClientError::DeviceRemoved
            }
            ClientError::Relay(r) if space_gone(&r) => ClientError::SpaceErased {
                partner: self
                    .partner_name()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "your partner".into()),
            },
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::space_gone;
    use crate::relay::RelayError;

    #[test]
    fn only_a_missing_space_is_taken_for_an_erased_one() {
        let refused = |status, code: &str| RelayError::Refused {
            status,
            code: code.into(),
            message: "no such space on this relay".into(),
        };
        assert!(space_gone(&refused(404, "not_found")));
        assert!(!space_gone(&refused(404, "unknown_route")));
        assert!(!space_gone(&refused(503, "overloaded")));
        assert!(!space_gone(&RelayError::StreamCut { url: "x".into() }));
    }
}
