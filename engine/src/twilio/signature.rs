//! Twilio request signatures (`X-Twilio-Signature`).
//!
//! Twilio signs every webhook and the media WebSocket upgrade: the full URL
//! it requested, then for each POST parameter sorted by name (then value)
//! the name followed by the value, all HMAC-SHA1 keyed by the account's auth
//! token, base64-encoded. A WebSocket upgrade has no body, so its signature
//! covers the `wss://` URL alone.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Name of the header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Why a request's signature was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The request has no `X-Twilio-Signature` header.
    #[error("missing X-Twilio-Signature header")]
    Missing,
    /// The header is not base64 of a 20-byte HMAC-SHA1.
    #[error("X-Twilio-Signature is not a base64 HMAC-SHA1 value")]
    Malformed,
    /// The header is well formed but does not match the request.
    #[error("X-Twilio-Signature does not match the request")]
    Mismatch,
}

fn mac_over(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable_key());
    mac.update(url.as_bytes());
    let mut order: Vec<&(String, String)> = params.iter().collect();
    order.sort_unstable();
    for (name, value) in order {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

// HMAC accepts keys of any length.
#[cold]
fn unreachable_key() -> ! {
    unreachable!("HMAC-SHA1 takes keys of any length")
}

/// The signature Twilio sends for a request to `url` with form `params`
/// (empty for a WebSocket upgrade or a GET).
pub fn expected_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac_over(auth_token, url, params).finalize().into_bytes())
}

/// Check a request's `X-Twilio-Signature` (`header`, `None` when absent)
/// against `url` and `params`. The comparison is constant-time.
pub fn validate(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut given = [0u8; 20];
    match STANDARD.decode_slice(header.trim().as_bytes(), &mut given) {
        Ok(20) => {}
        _ => return Err(SignatureError::Malformed),
    }
    mac_over(auth_token, url, params)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    // Twilio's documented example, as in its helper libraries' tests
    // (twilio-php/-csharp `RequestValidatorTest`). Note: Caller/From are
    // +14158675309; with +12349013030 the same algorithm gives
    // `0/KCTR6DLpKmkAf8muzZqo1nDgQ=`.
    fn documented() -> Vec<(String, String)> {
        [
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("From", "+14158675309"),
            ("Digits", "1234"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn documented_vector() {
        assert_eq!(
            expected_signature("12345", URL, &documented()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            validate(
                "12345",
                URL,
                &documented(),
                Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
            ),
            Ok(())
        );
    }

    #[test]
    fn brief_variant_of_the_vector() {
        let mut p = documented();
        for (k, v) in &mut p {
            if k == "Caller" || k == "From" {
                *v = "+12349013030".into();
            }
        }
        assert_eq!(
            expected_signature("12345", URL, &p),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn tampering_is_detected() {
        let sig = Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        let url = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert_eq!(
            validate("12345", url, &documented(), sig),
            Err(SignatureError::Mismatch)
        );
        let mut p = documented();
        p[3].1 = "9999".into();
        assert_eq!(
            validate("12345", URL, &p, sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            validate("54321", URL, &documented(), sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            validate("12345", URL, &documented(), None),
            Err(SignatureError::Missing)
        );
        for bad in ["", "not base64!", "AAAA", "王"] {
            assert_eq!(
                validate("12345", URL, &documented(), Some(bad)),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn websocket_upgrade_signs_the_url_alone() {
        let url = "wss://voice.example.com/twilio/media";
        let sig = expected_signature("tok", url, &[]);
        assert_eq!(validate("tok", url, &[], Some(&sig)), Ok(()));
        assert_eq!(
            validate(
                "tok",
                "wss://evil.example.com/twilio/media",
                &[],
                Some(&sig)
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn params_sort_by_name_then_value() {
        let a = vec![
            ("Digits".to_string(), "2".to_string()),
            ("Digits".to_string(), "1".to_string()),
        ];
        let b = vec![
            ("Digits".to_string(), "1".to_string()),
            ("Digits".to_string(), "2".to_string()),
        ];
        assert_eq!(
            expected_signature("t", URL, &a),
            expected_signature("t", URL, &b)
        );
    }
}
