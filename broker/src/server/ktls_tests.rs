//! What kernel TLS decides and builds without a kernel that has it: the cipher map, the
//! mode decision, the probe's reading of setsockopt errors, the kernel's crypto_info
//! from rustls' extracted secrets for each suite, the handling of non-data records and
//! of plaintext rustls drained; and the probe's answer on this machine.

use std::io::Write;
use std::sync::Arc;

use super::*;
use rustls::crypto::ring::{default_provider, ALL_CIPHER_SUITES};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn every_suite_rustls_negotiates_has_its_kernel_cipher() {
    for suite in ALL_CIPHER_SUITES {
        let (version, cipher) = kernel_cipher(suite.suite())
            .unwrap_or_else(|| panic!("{:?} has no kernel cipher", suite.suite()));
        let want_version = if suite.version() == &rustls::version::TLS13 {
            TlsVersion::Tls13
        } else {
            TlsVersion::Tls12
        };
        assert_eq!(version, want_version, "{:?}", suite.suite());
        let name = format!("{:?}", suite.suite());
        let want = if name.contains("AES_128_GCM") {
            KernelCipher::AesGcm128
        } else if name.contains("AES_256_GCM") {
            KernelCipher::AesGcm256
        } else {
            assert!(name.contains("CHACHA20_POLY1305"), "{name}");
            KernelCipher::Chacha20Poly1305
        };
        assert_eq!(cipher, want, "{name}");
    }
    // CBC suites: the kernel has no such cipher.
    assert_eq!(
        kernel_cipher(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA),
        None
    );
}

#[test]
fn a_connection_goes_to_the_kernel_only_with_a_cipher_the_probe_saw_taken() {
    use rustls::crypto::ring::cipher_suite as s;
    let only_aes128_13 = KernelTls::Available(vec![(TlsVersion::Tls13, KernelCipher::AesGcm128)]);
    assert_eq!(
        only_aes128_13.mode_for(Some(s::TLS13_AES_128_GCM_SHA256)),
        TlsMode::Kernel
    );
    for other in [
        s::TLS13_AES_256_GCM_SHA384,
        s::TLS13_CHACHA20_POLY1305_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ] {
        assert_eq!(
            only_aes128_13.mode_for(Some(other)),
            TlsMode::Userspace,
            "{:?}",
            other.suite()
        );
    }
    assert_eq!(only_aes128_13.mode_for(None), TlsMode::Userspace);
    let none = KernelTls::Unavailable("no".into());
    assert_eq!(
        none.mode_for(Some(s::TLS13_AES_128_GCM_SHA256)),
        TlsMode::Userspace
    );
    assert!(!none.is_available() && only_aes128_13.is_available());
    // off never asks the kernel.
    let off = KernelTls::decide(SslKtls::Off, || panic!("probed with --ssl-ktls off"));
    assert_eq!(off, KernelTls::Unavailable("--ssl-ktls is off".into()));
    assert_eq!(
        KernelTls::decide(SslKtls::Auto, || only_aes128_13.clone()),
        only_aes128_13
    );
    assert_eq!(TlsMode::Kernel.label(), "kernel");
    assert_eq!(TlsMode::Userspace.label(), "userspace");
}

#[test]
fn the_probe_explains_each_refusal_of_the_tls_ulp() {
    let why = |errno| ulp_refusal(&io::Error::from_raw_os_error(errno));
    assert!(
        why(libc::ENOENT).contains("CONFIG_TLS"),
        "{}",
        why(libc::ENOENT)
    );
    assert!(why(libc::ENOPROTOOPT).contains("TCP_ULP"));
    assert!(why(libc::EOPNOTSUPP).contains("refuses"));
    let other = why(libc::EPERM);
    assert!(
        other.contains("setsockopt(TCP_ULP") && other.contains("not permitted"),
        "{other}"
    );
}

/// The probe on this machine agrees with the kernel's list of upper layer protocols.
#[test]
fn the_probe_finds_what_this_kernel_offers() {
    let ulps = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
    let probed = KernelTls::probe();
    if ulps.split_whitespace().any(|u| u == "tls") {
        let KernelTls::Available(offered) = &probed else {
            panic!("tls is in tcp_available_ulp but the probe says {probed:?}");
        };
        assert!(offered.contains(&(TlsVersion::Tls13, KernelCipher::AesGcm128)));
    } else {
        match &probed {
            KernelTls::Unavailable(why) => assert!(why.contains("CONFIG_TLS"), "{why}"),
            other => panic!("no tls in tcp_available_ulp ({ulps:?}) but the probe says {other:?}"),
        }
    }
}

#[test]
fn only_close_notify_ends_a_kernel_tls_stream_quietly() {
    control_record(CONTENT_ALERT, &[1, ALERT_CLOSE_NOTIFY]).unwrap();
    let err = |t, p: &[u8]| control_record(t, p).unwrap_err().to_string();
    assert!(err(CONTENT_ALERT, &[2, 40]).contains("alert 40 (level 2)"));
    assert!(err(CONTENT_HANDSHAKE, &[HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0]).contains("KeyUpdate"));
    assert!(err(CONTENT_HANDSHAKE, &[4, 0, 0, 0]).contains("handshake message 4"));
    assert!(err(20, &[1]).contains("content type 20"));
    assert!(err(CONTENT_ALERT, &[]).contains("content type 21"));
}

/// A client and a server of one suite, after the handshake and `records` records from
/// the server, in memory.
fn handshake(suite: SupportedCipherSuite, records: usize) -> (ServerConnection, ClientConnection) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..default_provider()
    });
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[suite.version()])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key)
        .unwrap();
    server.enable_secret_extraction = true;
    server.send_tls13_tickets = 0;
    let mut roots = RootCertStore::empty();
    roots.add(chain[0].clone()).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[suite.version()])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.enable_secret_extraction = true;
    let mut server = ServerConnection::new(Arc::new(server)).unwrap();
    let mut client =
        ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let pump = |server: &mut ServerConnection, client: &mut ClientConnection| {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        server.read_tls(&mut &wire[..]).unwrap();
        server.process_new_packets().unwrap();
        wire.clear();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        client.read_tls(&mut &wire[..]).unwrap();
        client.process_new_packets().unwrap();
    };
    while server.is_handshaking() || client.is_handshaking() {
        pump(&mut server, &mut client);
    }
    for i in 0..records {
        server
            .writer()
            .write_all(format!("record {i}").as_bytes())
            .unwrap();
        pump(&mut server, &mut client);
    }
    (server, client)
}

#[allow(unsafe_code)]
fn bytes(info: &ktls::CryptoInfo) -> &[u8] {
    // SAFETY: as_ptr and size describe the crypto_info structure `info` holds.
    unsafe { std::slice::from_raw_parts(info.as_ptr().cast::<u8>(), info.size()) }
}

/// What the kernel is given for each direction is what the peer protects that direction
/// with: the server's TLS_TX is the client's receive keys and record sequence.
#[test]
fn crypto_info_from_extracted_secrets_matches_the_peer_for_each_suite() {
    use rustls::crypto::ring::cipher_suite as s;
    // rcgen's keys are ECDSA: the TLS 1.2 RSA suites share these ciphers.
    for suite in [
        s::TLS13_AES_128_GCM_SHA256,
        s::TLS13_AES_256_GCM_SHA384,
        s::TLS13_CHACHA20_POLY1305_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let name = format!("{:?}", suite.suite());
        let (server, client) = handshake(suite, 3);
        assert_eq!(server.negotiated_cipher_suite(), Some(suite), "{name}");
        let server_secrets = server.dangerous_extract_secrets().unwrap();
        let client_secrets = client.dangerous_extract_secrets().unwrap();
        let tx = ktls::CryptoInfo::from_rustls(suite, server_secrets.tx).unwrap();
        let rx = ktls::CryptoInfo::from_rustls(suite, server_secrets.rx).unwrap();
        let peer_rx = ktls::CryptoInfo::from_rustls(suite, client_secrets.rx).unwrap();
        let peer_tx = ktls::CryptoInfo::from_rustls(suite, client_secrets.tx).unwrap();
        assert_eq!(bytes(&tx), bytes(&peer_rx), "{name}: server TX");
        assert_eq!(bytes(&rx), bytes(&peer_tx), "{name}: server RX");
        assert_ne!(bytes(&tx), bytes(&rx), "{name}: one key per direction");
        let (version, cipher) = kernel_cipher(suite.suite()).unwrap();
        let (header, key_len, rec_seq) = match (&tx, cipher) {
            (ktls::CryptoInfo::AesGcm128(i), KernelCipher::AesGcm128) => {
                (i.info, i.key.len(), i.rec_seq)
            }
            (ktls::CryptoInfo::AesGcm256(i), KernelCipher::AesGcm256) => {
                (i.info, i.key.len(), i.rec_seq)
            }
            (ktls::CryptoInfo::Chacha20Poly1305(i), KernelCipher::Chacha20Poly1305) => {
                (i.info, i.key.len(), i.rec_seq)
            }
            _ => panic!("{name}: crypto_info of another cipher than {cipher:?}"),
        };
        assert_eq!(header.version, version.number(), "{name}");
        let want_type = match cipher {
            KernelCipher::AesGcm128 => sys::TLS_CIPHER_AES_GCM_128,
            KernelCipher::AesGcm256 => sys::TLS_CIPHER_AES_GCM_256,
            KernelCipher::Chacha20Poly1305 => sys::TLS_CIPHER_CHACHA20_POLY1305,
        };
        assert_eq!(u32::from(header.cipher_type), want_type, "{name}");
        assert_eq!(
            key_len,
            zero_key(version, cipher).size() - bytes_after_key(cipher)
        );
        // The kernel goes on from the record after the three the server sent (TLS 1.2
        // counts its Finished as record 0 of the new keys).
        let sent = u64::from_be_bytes(rec_seq);
        let finished = u64::from(version == TlsVersion::Tls12);
        assert_eq!(sent, 3 + finished, "{name}: record sequence");
    }
}

/// The bytes of a crypto_info besides its key: header, iv, salt, rec_seq.
fn bytes_after_key(cipher: KernelCipher) -> usize {
    4 + match cipher {
        KernelCipher::AesGcm128 | KernelCipher::AesGcm256 => 8 + 4 + 8,
        KernelCipher::Chacha20Poly1305 => 12 + 8,
    }
}

/// Plaintext rustls decrypted before the hand-over comes first, then the socket's.
#[tokio::test]
async fn drained_plaintext_is_read_before_the_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let (read, _write) = server.into_split();
    let mut reader = KernelTlsReader::new(read, b"first request ".to_vec());
    client.write_all(b"then the socket").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"first request then the socket");
}
