//! Hashing, MACs and signatures done by the host (its `crypto` import): at
//! native speed, and with keys that can be secrets this component never holds.
//!
//! A setting written `"${secret:api_key}"` in the config reaches the component
//! as an opaque token; [`key`] turns a setting's value into a [`Key`] that is
//! that secret when it is a token, and the bytes of the value otherwise, so a
//! destination works with a plain setting and with a secret alike. Natively,
//! in `cargo test`, [`crate::mock`] computes SHA-256 and the HMACs itself and
//! knows the secrets a test gives it ([`crate::mock::secret`]).

#[cfg(target_family = "wasm")]
use crate::bindings::switchyard::destination::crypto as host;
pub use crate::bindings::switchyard::destination::crypto::Key;

/// How the host writes the token of a secret in the settings it hands over.
pub const SECRET_TOKEN_PREFIX: &str = "sy-secret-";

/// The key a setting's value stands for: the secret it is a token of, or its
/// own bytes.
pub fn key(setting: &str) -> Key {
    if setting.starts_with(SECRET_TOKEN_PREFIX) {
        Key::Secret(setting.to_string())
    } else {
        Key::Bytes(setting.as_bytes().to_vec())
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    #[cfg(target_family = "wasm")]
    return host::sha256(data);
    #[cfg(not(target_family = "wasm"))]
    crate::mock::crypto::sha256(data)
}

/// HMAC-SHA256 of `data` under `key`; `Err` names a secret this destination lacks.
pub fn hmac_sha256(key: &Key, data: &[u8]) -> Result<Vec<u8>, String> {
    #[cfg(target_family = "wasm")]
    return host::hmac_sha256(key, data);
    #[cfg(not(target_family = "wasm"))]
    crate::mock::crypto::hmac(key, data, false)
}

/// HMAC-SHA512 of `data` under `key`.
pub fn hmac_sha512(key: &Key, data: &[u8]) -> Result<Vec<u8>, String> {
    #[cfg(target_family = "wasm")]
    return host::hmac_sha512(key, data);
    #[cfg(not(target_family = "wasm"))]
    crate::mock::crypto::hmac(key, data, true)
}

/// RS256 signature of `data` (RSA PKCS#1 v1.5, SHA-256), key in PEM or DER.
/// Natively it is not available: the host does it.
pub fn sign_rs256(key: &Key, data: &[u8]) -> Result<Vec<u8>, String> {
    #[cfg(target_family = "wasm")]
    return host::sign_rs256(key, data);
    #[cfg(not(target_family = "wasm"))]
    crate::mock::crypto::unavailable("sign_rs256", key, data)
}

/// ES256 signature of `data` (ECDSA P-256, SHA-256; 64 bytes r ‖ s), PKCS#8 key.
/// Natively it is not available: the host does it.
pub fn sign_es256(key: &Key, data: &[u8]) -> Result<Vec<u8>, String> {
    #[cfg(target_family = "wasm")]
    return host::sign_es256(key, data);
    #[cfg(not(target_family = "wasm"))]
    crate::mock::crypto::unavailable("sign_es256", key, data)
}

/// `len` random bytes (at most 1024) from the host.
pub fn random_bytes(len: u32) -> Result<Vec<u8>, String> {
    #[cfg(target_family = "wasm")]
    return host::random_bytes(len);
    #[cfg(not(target_family = "wasm"))]
    crate::mock::crypto::random_bytes(len)
}

/// Lower-case hex of `bytes` (a digest as most vendors want it).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Base64url without padding (the encoding of a JWT's parts).
pub fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_keys_and_digests_are_right() {
        assert!(matches!(key("plain"), Key::Bytes(b) if b == b"plain"));
        assert!(
            matches!(key("sy-secret-api_key-00ff"), Key::Secret(t) if t == "sy-secret-api_key-00ff")
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231 test case 2, with the key as bytes and as a secret of the mock.
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let data = b"what do ya want for nothing?";
        assert_eq!(hex(&hmac_sha256(&key("Jefe"), data).unwrap()), want);
        crate::mock::secret("jefe", "Jefe");
        assert_eq!(
            hex(&hmac_sha256(&Key::Secret("jefe".into()), data).unwrap()),
            want
        );
        assert!(hmac_sha256(&Key::Secret("nope".into()), data).is_err());
        assert_eq!(hmac_sha512(&key("k"), b"x").unwrap().len(), 64);
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert!(sign_rs256(&key("k"), b"x").unwrap_err().contains("host"));
    }
}
