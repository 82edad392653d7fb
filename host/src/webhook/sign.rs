//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` of
//! `{webhook-id}.{webhook-timestamp}.{body}`, one `v1,` entry per secret, space-separated.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::webhooks::decode_secret;

/// A key's signing secrets, decoded, newest first.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} secrets)", self.keys.len())
    }
}

impl Signer {
    /// From `whsec_…` secrets (checked by the configuration check; a bad one is an error).
    pub fn new(secrets: &[String]) -> Result<Self, String> {
        let keys = secrets
            .iter()
            .map(|s| decode_secret(s))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("no secret".into());
        }
        Ok(Self { keys })
    }

    /// The `webhook-signature` value of one delivery.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut out = String::new();
        for key in &self.keys {
            // HMAC takes a key of any length: this cannot fail.
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            base64::engine::general_purpose::STANDARD
                .encode_string(mac.finalize().into_bytes(), &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's example (its reference libraries' test).
    #[test]
    fn the_specifications_example() {
        let signer = Signer::new(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()]).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn one_signature_per_secret_newest_first() {
        let new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let old = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
        let both = Signer::new(&[new.clone(), old.clone()]).unwrap();
        let sig = both.sign("id", 1, b"{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], Signer::new(&[new]).unwrap().sign("id", 1, b"{}"));
        assert_eq!(parts[1], Signer::new(&[old]).unwrap().sign("id", 1, b"{}"));
    }
}
