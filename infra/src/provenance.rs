//! Who sent a message: the API key that HTTP ingest attaches to what it publishes, in a form that
//! a NATS publisher cannot forge.
//!
//! HTTP ingest checks the caller's key, then publishes the message with two headers: the key's
//! name ([`KEY_HEADER`]) and an HMAC-SHA256 over that name and the payload ([`SIGNATURE_HEADER`]),
//! made with a secret that only sitrep's processes know (kept in the `sitrep_secrets` table).
//! Ingest records the key name in the event's metadata only when the signature holds; a header
//! that a NATS publisher set itself is ignored. So `api_key` in an event's metadata proves that
//! the payload came in over HTTP with that key. Its absence proves nothing either way: NATS
//! publishers are identified by NATS's own accounts and subject permissions, not by sitrep.

use crate::error::InfraError;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The header that names the API key a message came in with.
pub const KEY_HEADER: &str = "Sitrep-Api-Key";
/// The header that proves [`KEY_HEADER`] was set by HTTP ingest.
pub const SIGNATURE_HEADER: &str = "Sitrep-Api-Key-Signature";

/// Signs and checks key names attached to messages.
#[derive(Clone)]
pub struct Provenance {
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Provenance(..)")
    }
}

impl Provenance {
    /// The shared secret, made on first use (every process then reads the same one).
    pub async fn load(db: &impl tokio_postgres::GenericClient) -> Result<Self, InfraError> {
        let fresh: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()].iter().flat_map(|u| u.into_bytes()).collect();
        db.execute(
            "INSERT INTO sitrep_secrets (name, value) VALUES ('provenance', $1) ON CONFLICT (name) DO NOTHING",
            &[&fresh],
        )
        .await?;
        let row = db.query_one("SELECT value FROM sitrep_secrets WHERE name = 'provenance'", &[]).await?;
        let secret: Vec<u8> = row.get(0);
        Ok(Self { secret: secret.into() })
    }

    /// A secret of this process alone, for tests and for a web process with no ingest behind it.
    pub fn ephemeral() -> Self {
        Self { secret: uuid::Uuid::new_v4().into_bytes().to_vec().into() }
    }

    fn mac(&self, key_name: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(key_name.as_bytes());
        mac.update(&[0]);
        mac.update(&Sha256::digest(payload));
        mac
    }

    /// The signature of `key_name` on `payload`, as lower-case hex.
    pub fn sign(&self, key_name: &str, payload: &[u8]) -> String {
        self.mac(key_name, payload).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `signature` is this secret's signature of `key_name` on `payload` (compared in
    /// constant time).
    pub fn verify(&self, key_name: &str, payload: &[u8], signature: &str) -> bool {
        let Some(bytes) = hex(signature) else { return false };
        self.mac(key_name, payload).verify_slice(&bytes).is_ok()
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_key_and_payload_only() {
        let p = Provenance::ephemeral();
        let sig = p.sign("derecho-collector", b"{\"system\":\"derecho\"}");
        assert_eq!(sig.len(), 64);
        assert!(p.verify("derecho-collector", b"{\"system\":\"derecho\"}", &sig));
        assert!(!p.verify("casper-collector", b"{\"system\":\"derecho\"}", &sig), "another key's name");
        assert!(!p.verify("derecho-collector", b"{\"system\":\"casper\"}", &sig), "another payload");
        assert!(
            !Provenance::ephemeral().verify("derecho-collector", b"{\"system\":\"derecho\"}", &sig),
            "another secret"
        );
        for forged in ["", "00", "zz", "é", &sig[..63]] {
            assert!(!p.verify("derecho-collector", b"{\"system\":\"derecho\"}", forged), "{forged:?}");
        }
    }
}
