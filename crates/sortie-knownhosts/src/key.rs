//! Public key blobs: fingerprints and the key type name stored inside a blob.
//!
//! Owns only what known_hosts handling needs from the SSH wire format (RFC 4253 §6.6): the
//! leading `string` that names the key type, and the SHA-256 fingerprint `ssh-keygen -l` prints.
//! It does not parse or validate key material.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The SHA-256 fingerprint of a public key blob, exactly as `ssh-keygen -l` prints it:
/// `SHA256:` followed by unpadded standard base64 of the digest.
///
/// `blob` is the key in SSH wire format (the base64-decoded second field of a known_hosts line).
pub fn fingerprint_sha256(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The key type name a wire-format blob starts with (`ssh-ed25519`, `ssh-rsa`,
/// `ecdsa-sha2-nistp256`, ...), or `None` when the blob is too short or the name is not
/// printable ASCII.
pub fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len_bytes: [u8; 4] = blob.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let name = blob.get(4..4usize.checked_add(len)?)?;
    if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// Maps an algorithm name to the key type it uses: the RSA signature algorithms
/// `rsa-sha2-256` and `rsa-sha2-512` (and their certificate forms) use `ssh-rsa` keys;
/// every other name is already a key type.
pub fn key_type_of_algorithm(algorithm: &str) -> &str {
    match algorithm {
        "rsa-sha2-256" | "rsa-sha2-512" => "ssh-rsa",
        "rsa-sha2-256-cert-v01@openssh.com" | "rsa-sha2-512-cert-v01@openssh.com" => {
            "ssh-rsa-cert-v01@openssh.com"
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_from_blob() {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        blob.extend_from_slice(&[1; 32]);
        assert_eq!(blob_key_type(&blob), Some("ssh-ed25519"));
        assert_eq!(blob_key_type(&blob[..10]), None);
        assert_eq!(blob_key_type(&[0xff, 0xff, 0xff, 0xff, b'a']), None);
        assert_eq!(blob_key_type(&[]), None);
        assert_eq!(blob_key_type(&[0, 0, 0, 0]), None);
    }

    #[test]
    fn rsa_signature_algorithms_map_to_ssh_rsa() {
        assert_eq!(key_type_of_algorithm("rsa-sha2-512"), "ssh-rsa");
        assert_eq!(key_type_of_algorithm("rsa-sha2-256"), "ssh-rsa");
        assert_eq!(key_type_of_algorithm("ssh-ed25519"), "ssh-ed25519");
    }
}
