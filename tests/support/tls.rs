//! Test PKI made at test time with rcgen (AWS-LC backend): a CA, a server certificate for
//! 127.0.0.1/localhost signed by it, and a client certificate for mTLS. Nothing is checked in,
//! so nothing expires and no private key sits in the repository.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM) that signed the server and client certificates.
    pub ca_pem: PathBuf,
    /// Another CA's certificate, which signed nothing here.
    pub other_ca_pem: PathBuf,
    pub client_cert_pem: PathBuf,
    pub client_key_pem: PathBuf,
    /// A client certificate from the other CA, which the server does not trust.
    pub rogue_cert_pem: PathBuf,
    pub rogue_key_pem: PathBuf,
    /// The server certificate and its key (PEM), for servers started as processes (Redis).
    pub server_cert_pem: PathBuf,
    pub server_key_pem: PathBuf,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

fn new_ca(name: &str) -> (Issuer<'static, KeyPair>, rcgen::Certificate) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (Issuer::new(params, key), cert)
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (rcgen::Certificate, KeyPair) {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert, key)
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_cert) = new_ca("flagrelay test CA");
        let (other, other_cert) = new_ca("some other CA");
        let (server, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        let (client, client_key) =
            leaf(&["relay-client"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
        let (rogue, rogue_key) = leaf(
            &["rogue-client"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &other,
        );
        let write = |name: &str, pem: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        Pki {
            ca_pem: write("ca.pem", &ca_cert.pem()),
            other_ca_pem: write("other-ca.pem", &other_cert.pem()),
            client_cert_pem: write("client.pem", &client.pem()),
            client_key_pem: write("client.key", &client_key.serialize_pem()),
            rogue_cert_pem: write("rogue.pem", &rogue.pem()),
            rogue_key_pem: write("rogue.key", &rogue_key.serialize_pem()),
            server_cert_pem: write("server.pem", &server.pem()),
            server_key_pem: write("server.key", &server_key.serialize_pem()),
            ca_der: ca_cert.der().clone(),
            server_chain: vec![server.der().clone()],
            server_key: server_key.serialize_der(),
            dir,
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// A server configuration presenting the server certificate; with `require_client_cert`,
    /// only clients with a certificate from the test CA get through the handshake.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(Pki::provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Pki::provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        Arc::new(
            builder
                .with_single_cert(self.server_chain.clone(), key)
                .unwrap(),
        )
    }
}
