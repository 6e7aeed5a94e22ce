//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the kind
//! every authenticator app reads from an `otpauth://` link. Pure logic.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP: i64 = 30;
/// Steps of clock drift accepted either side.
const DRIFT: i64 = 1;

/// A new random secret (20 bytes, as RFC 4226 recommends), base32 without padding.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    base32(&bytes)
}

/// RFC 4648 base32 without padding (the alphabet authenticator apps expect).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 (case-insensitive, padding and spaces ignored); `None` for other characters.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The code of `secret` at step `step`.
pub fn code_at(secret: &[u8], step: i64) -> Option<u32> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).ok()?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let slice = digest.get(offset..offset + 4)?;
    let binary = (u32::from(slice[0] & 0x7f) << 24)
        | (u32::from(slice[1]) << 16)
        | (u32::from(slice[2]) << 8)
        | u32::from(slice[3]);
    Some(binary % 1_000_000)
}

/// The step a code given at `unix_seconds` matches (within one step of drift), if any; steps at
/// or before `last_used` are refused so a code cannot be replayed.
pub fn verify(
    secret_base32: &str,
    code: &str,
    unix_seconds: i64,
    last_used: Option<i64>,
) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let wanted: u32 = code.parse().ok()?;
    let secret = from_base32(secret_base32)?;
    let now = unix_seconds.div_euclid(STEP);
    (now - DRIFT..=now + DRIFT)
        .filter(|step| last_used.is_none_or(|last| *step > last))
        .find(|step| code_at(&secret, *step) == Some(wanted))
}

/// The `otpauth://` link an authenticator app scans (as a QR code) or opens.
pub fn link(secret_base32: &str, account: &str, issuer: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{}:{}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits=6&period={STEP}",
        encode(issuer),
        encode(account),
        encode(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the 8-digit values end in these 6 digits).
    #[test]
    fn matches_the_rfc_vectors() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(secret, time / STEP), Some(expected), "at {time}");
        }
    }

    #[test]
    fn base32_round_trips_and_codes_verify_once() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let bytes = from_base32(&secret).expect("decodes");
        assert_eq!(base32(&bytes), secret);
        let now = 1_700_000_000;
        let code = format!("{:06}", code_at(&bytes, now / STEP).expect("code"));
        let step = verify(&secret, &code, now, None).expect("valid");
        assert_eq!(
            verify(&secret, &code, now + 20, Some(step)),
            None,
            "no replay"
        );
        assert!(
            verify(&secret, &code, now + 120, None).is_none(),
            "too late"
        );
        assert!(verify(&secret, "12345", now, None).is_none());
        assert!(verify(&secret, "abcdef", now, None).is_none());
        assert!(
            link(&secret, "张伟@example.com", "Formwork").starts_with("otpauth://totp/Formwork:")
        );
    }
}
