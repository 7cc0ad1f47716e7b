//! Hashing helpers every part uses (the audit chain, receipts, tokens, certificates, document
//! bodies): in a module of their own, so that none of those parts imports another for them.

/// SHA-256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// SHA-256 (hex) of the body's JSON text as serde_json writes it (keys sorted, so equal
/// documents give equal text, however they were formatted), streamed into the hash with the
/// payload's canonical text spliced in: the body is not serialized a second time, and the hash
/// is the one stores written by earlier versions hold.
pub fn body_sha256(body: &serde_json::Value, payload_text: &str) -> String {
    use sha2::{Digest, Sha256};
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let Some(map) = body.as_object() else { return sha256_hex(body.to_string().as_bytes()) };
    let mut h = Hashing(Sha256::new());
    h.0.update(b"{");
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            h.0.update(b",");
        }
        // Writing into a hash cannot fail.
        let _ = serde_json::to_writer(&mut h, key);
        h.0.update(b":");
        if key == "payload" {
            h.0.update(payload_text.as_bytes());
        } else {
            let _ = serde_json::to_writer(&mut h, value);
        }
    }
    h.0.update(b"}");
    hex(&h.0.finalize())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn sha256_is_written_in_lower_case_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn the_body_hash_is_that_of_the_whole_text_as_before() {
        for body in [
            serde_json::json!({"ucr": "U-1", "documentType": "x", "payload": {"b": [1, 2, {"é\"": null}], "a": "\u{1}"}, "origin": "AR"}),
            serde_json::json!({"payload": 3}),
            serde_json::json!({}),
            serde_json::json!({"zz": true, "k\"ey": 1.5e300}),
        ] {
            let payload = body.get("payload").unwrap_or(&Value::Null).to_string();
            assert_eq!(body_sha256(&body, &payload), sha256_hex(body.to_string().as_bytes()), "{body}");
        }
        // Equal documents hash equal whatever their key order (serde_json keeps keys sorted).
        let a: Value = serde_json::from_str(r#"{"ucr":"U","payload":{"x":1,"y":[2]},"origin":"AR"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"origin":"AR","payload":{"y":[2],"x":1},"ucr":"U"}"#).unwrap();
        let text = |v: &Value| v["payload"].to_string();
        assert_eq!(body_sha256(&a, &text(&a)), body_sha256(&b, &text(&b)));
    }
}
