//! The key format: `gth_<8-char id><32-char secret><6-char checksum>`, all base62.
//!
//! The id is public (it names the key in lists, logs and the audit trail); the secret part carries
//! 32 × log2(62) ≈ 190 bits from the OS's CSPRNG. The checksum (CRC-32 of everything before it)
//! lets a typo be refused without a lookup and lets secret scanners recognise a leaked key.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "gth_";
pub const ID_LENGTH: usize = 8;
pub const SECRET_LENGTH: usize = 32;
pub const CHECKSUM_LENGTH: usize = 6;
pub const KEY_LENGTH: usize = PREFIX.len() + ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented string is not a well-formed key. None of these needs a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    NotAKey,
    BadChecksum,
}

/// Random base62 text from the OS's CSPRNG, without modulo bias.
pub fn random_base62(length: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(length);
    let mut buffer = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buffer)?;
        for byte in buffer {
            // 248 = 4 × 62: bytes at or above it would favour the first characters.
            if byte < 248 && out.len() < length {
                out.push(BASE62[usize::from(byte % 62)] as char);
            }
        }
    }
    Ok(out)
}

/// A new key; returns `(id, key)`.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let id = random_base62(ID_LENGTH)?;
    let secret = random_base62(SECRET_LENGTH)?;
    let key = with_checksum(&format!("{PREFIX}{id}{secret}"));
    Ok((id, key))
}

/// Appends the checksum to a key's first 44 characters.
pub fn with_checksum(body: &str) -> String {
    let sum = checksum(body);
    format!("{body}{}", String::from_utf8_lossy(&sum))
}

/// Checks the shape and checksum of `key` and returns its id.
pub fn parse(key: &str) -> Result<&str, FormatError> {
    if key.len() != KEY_LENGTH
        || !key.starts_with(PREFIX)
        || !key[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(FormatError::NotAKey);
    }
    let (body, sum) = key.split_at(KEY_LENGTH - CHECKSUM_LENGTH);
    if checksum(body) != sum.as_bytes() {
        return Err(FormatError::BadChecksum);
    }
    Ok(&key[PREFIX.len()..PREFIX.len() + ID_LENGTH])
}

/// Whether `text` holds a Gatehouse key: `gth_` at the start of a word, followed by a key whose
/// checksum holds — so `max_length_tokens` in a server's log is not mistaken for one.
pub fn holds_key(text: &str) -> bool {
    text.match_indices(PREFIX).any(|(at, _)| {
        let starts_a_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let end = text[at + PREFIX.len()..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(text.len(), |i| at + PREFIX.len() + i);
        starts_a_word && parse(&text[at..end]).is_ok()
    })
}

/// SHA-256 of the whole key: what `keys.toml` and the server keep instead of the key.
pub fn hash(key: &str) -> [u8; 32] {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

pub fn hash_text(key: &str) -> String {
    let mut text = String::from("sha256:");
    for byte in hash(key) {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Reads `sha256:<64 hex digits>` back into bytes.
pub fn parse_hash_text(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    // Hex digits only: a multi-byte character would split mid-character below, and
    // `from_str_radix` would take a sign (`+f`) as part of a number.
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// The checksum's base62 digits; bytes, not a `String`: every request with a key compares them.
fn checksum(body: &str) -> [u8; CHECKSUM_LENGTH] {
    let mut value = u64::from(crc32(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LENGTH];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

/// CRC-32 (IEEE) with a table built at compile time: keys are checked on every request.
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut index = 0;
        while index < 256 {
            let mut crc = index as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[index] = crc;
            index += 1;
        }
        table
    };
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc = (crc >> 8) ^ TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize];
    }
    !crc
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_key_is_found_in_a_line_and_look_alikes_are_not() {
        let (_, key) = generate().unwrap();
        assert!(holds_key(&format!("GET /x?api_key={key} HTTP/1.1")));
        assert!(holds_key(&format!("Authorization: Bearer {key}")));
        assert!(holds_key(&key));
        assert!(!holds_key("max_length_tokens=512 strength_0"));
        assert!(!holds_key("Bearer gth_notAKeyAtAll"));
        assert!(!holds_key(&format!("x{key}")), "inside a word");
        let mut broken = key.clone();
        broken.replace_range(10..11, if &key[10..11] == "A" { "B" } else { "A" });
        assert!(!holds_key(&broken), "a bad checksum is not a key");
    }

    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn generated_keys_parse_and_carry_their_id() {
        let (id, key) = generate().unwrap();
        assert_eq!(key.len(), KEY_LENGTH);
        assert!(key.starts_with("gth_"));
        assert_eq!(parse(&key), Ok(id.as_str()));
        let (_, other) = generate().unwrap();
        assert_ne!(key, other);
    }

    #[test]
    fn a_typo_is_caught_by_the_checksum() {
        let (_, key) = generate().unwrap();
        let mut typo = key.clone().into_bytes();
        typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
        assert_eq!(
            parse(&String::from_utf8(typo).unwrap()),
            Err(FormatError::BadChecksum)
        );
        assert_eq!(parse("gth_short"), Err(FormatError::NotAKey));
        assert_eq!(parse(&key.replace("gth_", "ghp_")), Err(FormatError::NotAKey));
        assert_eq!(
            parse(&format!("{}!", &key[..KEY_LENGTH - 1])),
            Err(FormatError::NotAKey)
        );
    }

    #[test]
    fn hashes_round_trip_through_text() {
        let text = hash_text("gth_example");
        assert_eq!(parse_hash_text(&text), Some(hash("gth_example")));
        assert_eq!(parse_hash_text("md5:abc"), None);
        // Found by the api_key fuzz target: a non-ASCII character among the 64 bytes panicked,
        // so a damaged keys.toml took the server down instead of being reported.
        let with_bom = format!("sha256:\u{feff}{}", "0".repeat(61));
        assert_eq!(parse_hash_text(&with_bom), None);
        assert_eq!(parse_hash_text(&format!("sha256:{}", "+f".repeat(32))), None);
    }

    #[test]
    fn random_text_uses_the_whole_alphabet() {
        let text = random_base62(4000).unwrap();
        let distinct: std::collections::HashSet<char> = text.chars().collect();
        assert_eq!(distinct.len(), 62);
    }
}
