//! The certificate store: PEM loading, SNI selection and hot reload.
//!
//! Selection (RFC 6066 §3 server_name, RFC 6125 §6.4 for wildcards): the SNI name is
//! looked up among the DNS names of each certificate's subjectAltName, exactly first, then
//! as `*.parent` (one label only). No SNI, or a name no certificate carries, gets the
//! default: the first certificate, together with any other certificate for the same names.
//! Several certificates may carry the same name (typically one ECDSA and one RSA); the
//! client's `signature_algorithms` decides, ECDSA first when it can use both.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureAlgorithm, SignatureScheme};

use crate::error::{Error, Result};

/// Where one certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files: the certificate (optionally followed by its chain), the key, an optional
    /// separate chain file (Apache's `SSLCertificateChainFile`) and an optional DER OCSP
    /// response to staple.
    Files {
        cert: PathBuf,
        key: PathBuf,
        chain: Option<PathBuf>,
        ocsp: Option<PathBuf>,
    },
    /// A throwaway certificate generated in memory for these names (`--self-signed`).
    SelfSigned(Vec<String>),
}

/// One loaded certificate with the names it serves.
#[derive(Debug)]
struct Entry {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
}

/// All certificates, indexed by name. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct CertStore {
    entries: Vec<Entry>,
    exact: HashMap<String, Vec<usize>>,
    wildcard: HashMap<String, Vec<usize>>,
    default: Vec<usize>,
}

impl CertStore {
    /// Loads every source; any failure fails the whole load (so a reload is all or nothing).
    pub fn load(sources: &[CertSource], provider: &CryptoProvider) -> Result<CertStore> {
        let mut entries = Vec::with_capacity(sources.len());
        for source in sources {
            entries.push(load_one(source, provider)?);
        }
        Ok(CertStore::from_entries(entries))
    }

    fn from_entries(entries: Vec<Entry>) -> CertStore {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            for name in &entry.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()).or_default().push(i),
                    None => exact.entry(name.clone()).or_default().push(i),
                }
            }
        }
        let default = match entries.first() {
            Some(first) => {
                let mut same: Vec<usize> = (0..entries.len())
                    .filter(|&i| entries[i].names == first.names)
                    .collect();
                if same.is_empty() {
                    same.push(0);
                }
                same
            }
            None => Vec::new(),
        };
        CertStore {
            entries,
            exact,
            wildcard,
            default,
        }
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names each certificate serves, in order (for the startup log).
    pub fn names(&self) -> Vec<Vec<String>> {
        self.entries.iter().map(|e| e.names.clone()).collect()
    }

    /// The certificate for this SNI name and these client signature schemes.
    pub fn select(
        &self,
        sni: Option<&str>,
        schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let candidates = sni
            .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|name| {
                self.exact.get(&name).or_else(|| {
                    let (_, parent) = name.split_once('.')?;
                    self.wildcard.get(parent)
                })
            })
            .unwrap_or(&self.default);
        let usable = |i: &&usize| self.entries[**i].key.key.choose_scheme(schemes).is_some();
        let non_rsa = candidates
            .iter()
            .filter(|i| self.entries[**i].key.key.algorithm() != SignatureAlgorithm::RSA)
            .find(usable);
        let chosen = non_rsa
            .or_else(|| candidates.iter().find(usable))
            .or(candidates.first())?;
        Some(Arc::clone(&self.entries[*chosen].key))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path)?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|source| Error::Pem {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| Error::NoKey {
            path: path.to_path_buf(),
        })
}

fn load_one(source: &CertSource, provider: &CryptoProvider) -> Result<Entry> {
    match source {
        CertSource::Files {
            cert,
            key,
            chain,
            ocsp,
        } => {
            let mut certs = read_certs(cert)?;
            if let Some(chain) = chain {
                certs.extend(read_certs(chain)?);
            }
            let key_der = read_key(key)?;
            let names = dns_names(&certs[0]).map_err(|source| Error::BadCertificate {
                path: cert.clone(),
                source,
            })?;
            let signing = provider
                .key_provider
                .load_private_key(key_der)
                .map_err(|source| Error::BadKey {
                    path: key.clone(),
                    source,
                })?;
            let mut certified = CertifiedKey::new(certs, signing);
            if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
                certified.keys_match()
            {
                return Err(Error::KeyMismatch {
                    cert: cert.clone(),
                    key: key.clone(),
                });
            }
            if let Some(path) = ocsp {
                let response = read(path)?;
                // A DER OCSPResponse is a SEQUENCE (RFC 6960 §4.2.1); a PEM or empty file
                // here is a mistake worth refusing rather than stapling garbage.
                if response.first() != Some(&0x30) {
                    return Err(Error::BadOcsp { path: path.clone() });
                }
                certified.ocsp = Some(response);
            }
            Ok(Entry {
                key: Arc::new(certified),
                names,
            })
        }
        CertSource::SelfSigned(names) => {
            let generated = self_signed(names).map_err(|source| Error::SelfSigned {
                names: names.join(","),
                source,
            })?;
            let cert_der = generated.cert.der().clone();
            let key_der = PrivateKeyDer::Pkcs8(generated.key_pair.serialize_der().into());
            let signing = provider
                .key_provider
                .load_private_key(key_der)
                .map_err(Error::Tls)?;
            let names = dns_names(&cert_der).unwrap_or_default();
            Ok(Entry {
                key: Arc::new(CertifiedKey::new(vec![cert_der], signing)),
                names,
            })
        }
    }
}

/// How long a `--self-signed` certificate is valid: long enough for any development
/// session, short enough to satisfy certificate-lifespan checks (Mozilla's profiles
/// allow at most 398 days). It starts a day back to tolerate clock skew.
const SELF_SIGNED_DAYS: i64 = 90;

/// A fresh ECDSA P-256 certificate and key for `names` (DNS names or IP addresses), with
/// the first name as its common name.
fn self_signed(names: &[String]) -> std::result::Result<rcgen::CertifiedKey, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let key_pair = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key_pair)?;
    Ok(rcgen::CertifiedKey { cert, key_pair })
}

/// The DNS names of a certificate's subjectAltName, lowercased (wildcards kept as `*.x`).
fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, webpki::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert)?;
    Ok(parsed
        .valid_dns_names()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect())
}

/// The rustls certificate resolver: the current store behind a lock, swapped on reload.
#[derive(Debug)]
pub struct SniResolver {
    store: RwLock<Arc<CertStore>>,
}

impl SniResolver {
    pub fn new(store: CertStore) -> SniResolver {
        SniResolver {
            store: RwLock::new(Arc::new(store)),
        }
    }

    /// Makes new handshakes use `store`; handshakes in progress keep the old one.
    pub fn replace(&self, store: CertStore) {
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(store);
    }

    pub fn current(&self) -> Arc<CertStore> {
        Arc::clone(&self.store.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
            .select(hello.server_name(), hello.signature_schemes())
    }
}

/// The commonName of a DER-encoded X.501 Name (the content of its outer SEQUENCE, as
/// webpki's `Cert::subject` gives it), for the PROXY v2 `PP2_SUBTYPE_SSL_CN` TLV.
///
/// Written by hand: webpki exposes the subject only as raw bytes, and a full X.509 parser
/// (x509-parser) is a large dependency for one attribute. Only definite short and long
/// lengths are read; anything else yields `None`.
pub fn common_name(name: &[u8]) -> Option<String> {
    const CN_OID: [u8; 3] = [0x55, 0x04, 0x03];
    let mut rdns = name;
    let mut found = None;
    while !rdns.is_empty() {
        let (tag, set, rest) = der_tlv(rdns)?;
        rdns = rest;
        if tag != 0x31 {
            return None;
        }
        let mut atvs = set;
        while !atvs.is_empty() {
            let (tag, atv, rest) = der_tlv(atvs)?;
            atvs = rest;
            if tag != 0x30 {
                return None;
            }
            let (oid_tag, oid, value) = der_tlv(atv)?;
            let (_, value, _) = der_tlv(value)?;
            if oid_tag == 0x06 && oid == CN_OID {
                // The last CN wins, as in OpenSSL's `X509_NAME_get_text_by_NID` users.
                found = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    found
}

/// Splits one DER TLV off `input`: (tag, value, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn self_signed(names: &[&str]) -> CertSource {
        CertSource::SelfSigned(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_self_signed_certificate_is_short_lived_and_names_its_hosts() {
        let generated = super::self_signed(&["dev.test".into(), "127.0.0.1".into()]).unwrap();
        let params = generated.cert.params();
        let now = time::OffsetDateTime::now_utc();
        assert!(params.not_before < now && now < params.not_after);
        let lifespan = params.not_after - params.not_before;
        assert!(lifespan <= time::Duration::days(398), "{lifespan}");
        let names = dns_names(generated.cert.der()).unwrap();
        assert_eq!(names, ["dev.test"]);
        assert!(matches!(
            params.subject_alt_names[1],
            rcgen::SanType::IpAddress(_)
        ));
    }

    #[test]
    fn selection_by_sni() {
        let store = CertStore::load(
            &[
                self_signed(&["default.test"]),
                self_signed(&["a.test", "www.a.test"]),
                self_signed(&["*.wild.test"]),
            ],
            &provider(),
        )
        .unwrap();
        let schemes = [SignatureScheme::ECDSA_NISTP256_SHA256];
        let pick = |sni: Option<&str>| {
            let chosen = store.select(sni, &schemes).unwrap();
            store
                .entries
                .iter()
                .position(|e| Arc::ptr_eq(&e.key, &chosen))
                .unwrap()
        };
        let table: &[(Option<&str>, usize)] = &[
            (None, 0),
            (Some("unknown.test"), 0),
            (Some("a.test"), 1),
            (Some("A.TEST."), 1),
            (Some("www.a.test"), 1),
            (Some("x.wild.test"), 2),
            (Some("wild.test"), 0),
            (Some("y.x.wild.test"), 0),
        ];
        for (sni, want) in table {
            assert_eq!(pick(*sni), *want, "sni {sni:?}");
        }
    }

    #[test]
    fn common_name_table() {
        // SET { SEQ { OID 2.5.4.10, UTF8 "Org" } }, SET { SEQ { OID 2.5.4.3, UTF8 "alice" } }
        let name = [
            0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x03, b'O', b'r', b'g',
            0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b'a', b'l', b'i',
            b'c', b'e',
        ];
        let table: &[(&[u8], Option<&str>)] = &[
            (&name, Some("alice")),
            (&name[..14], None),
            (&[], None),
            (&[0x31, 0x05, 0x30], None),
        ];
        for (input, want) in table {
            assert_eq!(common_name(input).as_deref(), *want, "{input:x?}");
        }
    }
}
