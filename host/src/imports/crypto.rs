//! The host side of the `crypto` import: hashing, MACs and signatures at
//! native speed, with keys that may be secrets the guest never holds.
//!
//! Where it sits: beside [`super::http`]; the runtime's host functions resolve
//! a key (bytes from the guest, or a secret by name through
//! [`super::secrets::Sealed::key`]) and call these. Everything here is `ring`
//! (already in the host for TLS): SHA-256, HMAC-SHA256/512, RSASSA-PKCS1-v1_5
//! with SHA-256 (JWT `RS256`) and ECDSA P-256 with SHA-256 (JWT `ES256`).

use base64::Engine as _;
use ring::rand::SecureRandom as _;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};

/// Most random bytes one call may ask for.
pub const MAX_RANDOM_BYTES: u32 = 1024;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// HMAC-SHA512 of `data` under `key`.
pub fn hmac_sha512(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA512, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// The RS256 signature of `data` with an RSA private key (PEM or DER, PKCS#8
/// or PKCS#1, as Google service-account files carry it).
pub fn sign_rs256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let der = der_of(key)?;
    let pair = RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| RsaKeyPair::from_der(&der))
        .map_err(|e| format!("not an RSA private key (PKCS#8 or PKCS#1): {e}"))?;
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        data,
        &mut sig,
    )
    .map_err(|_| "RSA signing failed".to_string())?;
    Ok(sig)
}

/// The ES256 signature of `data` (64 bytes, `r ‖ s`, as JWTs carry it) with a
/// P-256 private key in PKCS#8 (PEM or DER).
pub fn sign_es256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let der = der_of(key)?;
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .map_err(|e| format!("not a P-256 private key in PKCS#8: {e}"))?;
    pair.sign(&rng, data)
        .map(|s| s.as_ref().to_vec())
        .map_err(|_| "ECDSA signing failed".to_string())
}

/// `len` bytes from the system's cryptographic random source.
pub fn random_bytes(len: u32) -> Result<Vec<u8>, String> {
    if len > MAX_RANDOM_BYTES {
        return Err(format!("at most {MAX_RANDOM_BYTES} random bytes per call"));
    }
    let mut out = vec![0u8; len as usize];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| "the random source failed".to_string())?;
    Ok(out)
}

/// The DER bytes of a key given as PEM (`-----BEGIN ... PRIVATE KEY-----`;
/// `\n` written as the two characters `\` `n`, as in JSON service-account
/// files, are read as line breaks) or as DER already.
fn der_of(key: &[u8]) -> Result<Vec<u8>, String> {
    let Ok(text) = std::str::from_utf8(key) else {
        return Ok(key.to_vec());
    };
    let text = text.replace("\\n", "\n");
    let Some(start) = text.find("-----BEGIN") else {
        return Ok(key.to_vec());
    };
    let body: String = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("a PEM key whose body is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn digests_and_macs_match_the_published_vectors() {
        // FIPS 180-2 "abc"; RFC 4231 test case 2 ("Jefe").
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha512(b"Jefe", b"what do ya want for nothing?")),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn signatures_verify_with_the_public_key() {
        use ring::signature::KeyPair as _;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let sig = sign_es256(pem.as_bytes(), b"header.payload").unwrap();
        assert_eq!(sig.len(), 64);
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key())
            .verify(b"header.payload", &sig)
            .unwrap();

        // A key made for this test only (openssl genpkey -algorithm RSA).
        let rsa = include_str!("testdata/rsa-test-key.pem");
        let sig = sign_rs256(rsa.as_bytes(), b"header.payload").unwrap();
        assert_eq!(sig.len(), 256);
        let der = der_of(rsa.as_bytes()).unwrap();
        let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public_key().as_ref(),
        )
        .verify(b"header.payload", &sig)
        .unwrap();
        let err = sign_rs256(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            b"x",
        )
        .unwrap_err();
        assert!(err.contains("not an RSA private key"), "{err}");
        assert_eq!(random_bytes(16).unwrap().len(), 16);
        assert!(random_bytes(MAX_RANDOM_BYTES + 1).is_err());
    }
}
