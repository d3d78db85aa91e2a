//! The algorithms acura-ha offers: OpenSSH's client defaults as far as russh has them.

use super::*;

/// Key exchange: OpenSSH's client order (post-quantum and curve25519 first, then the NIST curves
/// a FIPS-mode server is limited to, then finite-field Diffie-Hellman), plus the extension names.
pub(crate) const KEX_ORDER: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::ECDH_SHA2_NISTP256,
    russh::kex::ECDH_SHA2_NISTP384,
    russh::kex::ECDH_SHA2_NISTP521,
    russh::kex::DH_GEX_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G18_SHA512,
    russh::kex::DH_G14_SHA256,
    russh::kex::DH_G17_SHA512,
    russh::kex::DH_G15_SHA512,
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// Host-key algorithms: OpenSSH's (>= 8.8) client defaults; SHA-1 `ssh-rsa` is not offered.
pub(crate) const HOST_KEY_ORDER: &[ssh_key::Algorithm] = &[
    ssh_key::Algorithm::Ed25519,
    ssh_key::Algorithm::Ecdsa {
        curve: ssh_key::EcdsaCurve::NistP256,
    },
    ssh_key::Algorithm::Ecdsa {
        curve: ssh_key::EcdsaCurve::NistP384,
    },
    ssh_key::Algorithm::Ecdsa {
        curve: ssh_key::EcdsaCurve::NistP521,
    },
    ssh_key::Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    ssh_key::Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// Ciphers: OpenSSH's client defaults, in its order.
pub(crate) const CIPHER_ORDER: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_128_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
];

/// MACs: OpenSSH's client defaults that russh implements (it has no UMAC), in OpenSSH's order.
pub(crate) const MAC_ORDER: &[russh::mac::Name] = &[
    russh::mac::HMAC_SHA256_ETM,
    russh::mac::HMAC_SHA512_ETM,
    russh::mac::HMAC_SHA1_ETM,
    russh::mac::HMAC_SHA256,
    russh::mac::HMAC_SHA512,
    russh::mac::HMAC_SHA1,
];

/// The algorithms acura-ha offers.
pub fn preferred() -> russh::Preferred {
    russh::Preferred {
        kex: KEX_ORDER.into(),
        key: HOST_KEY_ORDER.into(),
        cipher: CIPHER_ORDER.into(),
        mac: MAC_ORDER.into(),
        ..russh::Preferred::DEFAULT
    }
}
