//! Order-preserving byte encodings of key values, so SQLite's `memcmp` order of BLOBs is
//! DynamoDB's order of sort keys: strings by UTF-8 bytes, binaries by bytes, numbers by value.
//! A table's schema fixes each key attribute's type, so encodings carry no type tag.

use super::value::{AttributeValue, Number};

/// Encodes a key value (S, N or B) so that byte order equals DynamoDB's sort order.
pub(crate) fn encode(value: &AttributeValue) -> Vec<u8> {
    match value {
        AttributeValue::S(text) => text.as_bytes().to_vec(),
        AttributeValue::B(bytes) => bytes.clone(),
        AttributeValue::N(number) => encode_number(number),
        // Callers validate key types first; other types never reach the encoder.
        _ => Vec::new(),
    }
}

const NEGATIVE: u8 = 0x40;
const ZERO: u8 = 0x80;
const POSITIVE: u8 = 0xC0;

/// Sign byte, then the exponent as a biased big-endian u16, then one byte per digit and a
/// terminator; for negative numbers exponent and digits are inverted so that larger magnitudes
/// sort first, and the terminator sorts last.
fn encode_number(number: &Number) -> Vec<u8> {
    let (digits, exponent) = number.scientific_parts();
    if digits.is_empty() {
        return vec![ZERO];
    }
    // Exponents stay within ±131, so the biased value fits in a u16.
    let biased = u16::try_from(exponent + 0x8000).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(digits.len() + 4);
    if number.is_negative() {
        out.push(NEGATIVE);
        out.extend_from_slice(&(u16::MAX - biased).to_be_bytes());
        out.extend(digits.iter().map(|d| 10 - d));
        out.push(0xFF);
    } else {
        out.push(POSITIVE);
        out.extend_from_slice(&biased.to_be_bytes());
        out.extend(digits.iter().map(|d| d + 1));
        out.push(0x00);
    }
    out
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` when
/// no such bound exists (the prefix is all 0xFF).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last < u8::MAX {
            bound.push(last + 1);
            return Some(bound);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_encoding_preserves_numeric_order() {
        let ordered = [
            "-1e125",
            "-1000",
            "-100.5",
            "-100",
            "-99",
            "-1.5",
            "-1",
            "-0.123",
            "-0.12",
            "-1e-130",
            "0",
            "1e-130",
            "0.12",
            "0.123",
            "1",
            "1.5",
            "2",
            "10",
            "99",
            "100",
            "100.5",
            "1000",
            "12345678901234567890123456789012345678",
            "9.9e125",
        ];
        let encoded: Vec<Vec<u8>> =
            ordered.iter().map(|text| encode(&AttributeValue::N(Number::parse(text).unwrap()))).collect();
        for window in encoded.windows(2).zip(ordered.windows(2)) {
            let (pair, names) = window;
            assert!(pair[0] < pair[1], "{} should sort before {}", names[0], names[1]);
        }
    }

    #[test]
    fn prefix_successor_bounds_every_extension() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[0x61, 0xFF]), Some(vec![0x62]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
    }
}
