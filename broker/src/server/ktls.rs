//! Kernel TLS (kTLS): rustls does the handshake, then the connection's traffic keys are
//! installed on the socket (`setsockopt(SOL_TCP, TCP_ULP, "tls")`, then `SOL_TLS`
//! `TLS_TX` and `TLS_RX`) and the kernel encrypts and decrypts the records. Fetches
//! then keep sendfile: file ranges go from the page cache to the socket and the kernel
//! seals them into records on the way out. Kafka loses zero copy under TLS; this is how
//! Fjord keeps it.
//!
//! Whether the kernel offers it is found once at start ([`KernelTls::probe`], on a
//! loopback socket pair): a kernel without the TLS upper layer protocol (built without
//! CONFIG_TLS, or the module not loaded) is logged once and never tried per connection;
//! every TLS connection then stays in rustls (user space). A connection whose
//! negotiated cipher the kernel did not accept at the probe also stays in user space.
//!
//! Under kTLS RX, reading a record that is not application data fails with EIO and the
//! record must be read with recvmsg and its control message ([`read_control_record`]):
//! close_notify is the end of the stream; any other alert, a KeyUpdate (the kernel
//! cannot take new keys from us mid-stream) or anything else closes the connection.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use ktls_sys::bindings as sys;
use rustls::{CipherSuite, SupportedCipherSuite};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use crate::config::ssl::SslKtls;

/// The TLS versions the kernel protects records of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// The version number the kernel's `tls_crypto_info` carries.
    fn number(self) -> u16 {
        match self {
            TlsVersion::Tls12 => 0x0303,
            TlsVersion::Tls13 => 0x0304,
        }
    }
}

/// The record ciphers the kernel may implement, of those rustls negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelCipher {
    AesGcm128,
    AesGcm256,
    Chacha20Poly1305,
}

impl KernelCipher {
    pub const ALL: [KernelCipher; 3] = [
        KernelCipher::AesGcm128,
        KernelCipher::AesGcm256,
        KernelCipher::Chacha20Poly1305,
    ];
}

/// The kernel's name for a negotiated cipher suite; `None` for a suite the kernel has
/// no cipher for.
pub fn kernel_cipher(suite: CipherSuite) -> Option<(TlsVersion, KernelCipher)> {
    use CipherSuite as S;
    use KernelCipher as K;
    use TlsVersion::{Tls12, Tls13};
    Some(match suite {
        S::TLS13_AES_128_GCM_SHA256 => (Tls13, K::AesGcm128),
        S::TLS13_AES_256_GCM_SHA384 => (Tls13, K::AesGcm256),
        S::TLS13_CHACHA20_POLY1305_SHA256 => (Tls13, K::Chacha20Poly1305),
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
            (Tls12, K::AesGcm128)
        }
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
            (Tls12, K::AesGcm256)
        }
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => (Tls12, K::Chacha20Poly1305),
        _ => return None,
    })
}

/// Where a TLS connection's records are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// By the kernel: fetches use sendfile.
    Kernel,
    /// By rustls: fetches read the file and write through it.
    Userspace,
}

impl TlsMode {
    /// The value of the `mode` label of `fjord_tls_connections_total`.
    pub fn label(self) -> &'static str {
        match self {
            TlsMode::Kernel => "kernel",
            TlsMode::Userspace => "userspace",
        }
    }
}

/// What the kernel offers, decided once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelTls {
    /// Connections stay in user space; why (logged once).
    Unavailable(String),
    /// The TLS upper layer protocol loads, and the kernel took keys of these
    /// (version, cipher) pairs in both directions.
    Available(Vec<(TlsVersion, KernelCipher)>),
}

impl KernelTls {
    /// `--ssl-ktls`: off never asks the kernel; auto runs `probe`.
    pub fn decide(setting: SslKtls, probe: impl FnOnce() -> KernelTls) -> KernelTls {
        match setting {
            SslKtls::Off => KernelTls::Unavailable("--ssl-ktls is off".into()),
            SslKtls::Auto => probe(),
        }
    }

    pub fn is_available(&self) -> bool {
        matches!(self, KernelTls::Available(_))
    }

    /// Where the records of a connection that negotiated `suite` are encrypted.
    pub fn mode_for(&self, suite: Option<SupportedCipherSuite>) -> TlsMode {
        match (self, suite.and_then(|s| kernel_cipher(s.suite()))) {
            (KernelTls::Available(offered), Some(cipher)) if offered.contains(&cipher) => {
                TlsMode::Kernel
            }
            _ => TlsMode::Userspace,
        }
    }

    /// Ask this kernel, on a loopback socket pair: can the TLS upper layer protocol be
    /// set, and which ciphers' keys does it take (zero keys on a throwaway socket)?
    pub fn probe() -> KernelTls {
        let socket = match loopback_pair() {
            Ok(pair) => pair,
            Err(e) => return KernelTls::Unavailable(format!("no loopback socket to probe: {e}")),
        };
        if let Err(e) = set_ulp(socket.1.as_raw_fd()) {
            return KernelTls::Unavailable(ulp_refusal(&e));
        }
        let mut offered = Vec::new();
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for cipher in KernelCipher::ALL {
                let taken = loopback_pair().and_then(|(_client, server)| {
                    let fd = server.as_raw_fd();
                    set_ulp(fd)?;
                    set_crypto(fd, sys::TLS_TX, &zero_key(version, cipher))?;
                    set_crypto(fd, sys::TLS_RX, &zero_key(version, cipher))
                });
                if taken.is_ok() {
                    offered.push((version, cipher));
                }
            }
        }
        if offered.is_empty() {
            return KernelTls::Unavailable(
                "the kernel's TLS takes keys of none of AES-GCM-128, AES-GCM-256 and \
                 CHACHA20-POLY1305"
                    .into(),
            );
        }
        KernelTls::Available(offered)
    }
}

/// Why kernel TLS cannot be used, from the error of `setsockopt(TCP_ULP, "tls")`.
pub fn ulp_refusal(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "the kernel has no TLS upper layer protocol (built without \
             CONFIG_TLS, or the tls module is not loaded; /proc/sys/net/ipv4/tcp_available_ulp \
             does not list tls)"
            .into(),
        Some(libc::ENOPROTOOPT) => {
            "the kernel does not know TCP_ULP (older than Linux 4.13)".into()
        }
        Some(libc::EOPNOTSUPP) => {
            "the kernel refuses the TLS upper layer protocol on TCP sockets".into()
        }
        _ => format!("setsockopt(TCP_ULP, \"tls\") failed: {e}"),
    }
}

fn loopback_pair() -> io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

#[allow(unsafe_code)]
fn set_ulp(fd: RawFd) -> io::Result<()> {
    const TLS: &[u8] = b"tls";
    // SAFETY: the option value is a valid buffer of the length given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_ULP,
            TLS.as_ptr().cast(),
            TLS.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn set_crypto(fd: RawFd, direction: u32, info: &ktls::CryptoInfo) -> io::Result<()> {
    // SAFETY: `info` points to a kernel crypto_info structure of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TLS,
            direction as libc::c_int,
            info.as_ptr(),
            info.size() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A crypto_info of `cipher` with a zero key, for the probe.
fn zero_key(version: TlsVersion, cipher: KernelCipher) -> ktls::CryptoInfo {
    let info = |cipher_type: u32| sys::tls_crypto_info {
        version: version.number(),
        cipher_type: cipher_type as u16,
    };
    match cipher {
        KernelCipher::AesGcm128 => {
            ktls::CryptoInfo::AesGcm128(sys::tls12_crypto_info_aes_gcm_128 {
                info: info(sys::TLS_CIPHER_AES_GCM_128),
                iv: [0; 8],
                key: [0; 16],
                salt: [0; 4],
                rec_seq: [0; 8],
            })
        }
        KernelCipher::AesGcm256 => {
            ktls::CryptoInfo::AesGcm256(sys::tls12_crypto_info_aes_gcm_256 {
                info: info(sys::TLS_CIPHER_AES_GCM_256),
                iv: [0; 8],
                key: [0; 32],
                salt: [0; 4],
                rec_seq: [0; 8],
            })
        }
        KernelCipher::Chacha20Poly1305 => {
            ktls::CryptoInfo::Chacha20Poly1305(sys::tls12_crypto_info_chacha20_poly1305 {
                info: info(sys::TLS_CIPHER_CHACHA20_POLY1305),
                iv: [0; 12],
                key: [0; 32],
                salt: sys::__IncompleteArrayField::new(),
                rec_seq: [0; 8],
            })
        }
    }
}

/// A TLS connection whose records the kernel now encrypts and decrypts.
pub struct KernelTlsStream {
    pub tcp: TcpStream,
    /// Plaintext rustls had already decrypted past the handshake (a client's first
    /// request may come with its Finished): read before the socket.
    pub drained: Vec<u8>,
}

/// Hand a finished handshake to the kernel. The stream was read record by record
/// (`CorkStream`), so rustls holds no partial record; what it decrypted is kept.
pub async fn hand_over(
    stream: tokio_rustls::server::TlsStream<ktls::CorkStream<TcpStream>>,
) -> Result<KernelTlsStream, ktls::Error> {
    let (drained, tcp) = ktls::config_ktls_server(stream).await?.into_raw();
    Ok(KernelTlsStream {
        tcp,
        drained: drained.unwrap_or_default(),
    })
}

/// TLS record content types (RFC 8446 section 5.1).
const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const HANDSHAKE_KEY_UPDATE: u8 = 24;

/// What a record that is not application data means for the connection: `Ok` for a
/// close_notify (the end of the stream), an error naming the record otherwise.
pub fn control_record(content_type: u8, payload: &[u8]) -> io::Result<()> {
    let refused = |what: String| {
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("kernel TLS: {what}; closing the connection"),
        ))
    };
    match (content_type, payload) {
        (CONTENT_ALERT, [_, ALERT_CLOSE_NOTIFY]) => Ok(()),
        (CONTENT_ALERT, [level, description]) => refused(format!(
            "the client sent alert {description} (level {level})"
        )),
        (CONTENT_HANDSHAKE, [HANDSHAKE_KEY_UPDATE, ..]) => {
            refused("the client sent a KeyUpdate, which kernel TLS cannot follow".into())
        }
        (CONTENT_HANDSHAKE, [kind, ..]) => {
            refused(format!("handshake message {kind} after the handshake"))
        }
        (t, p) => refused(format!("record of content type {t} ({} bytes)", p.len())),
    }
}

/// Read the record that made a kTLS read fail with EIO, with its content type.
fn read_control_record(fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, TlsGetRecordType};
    // Alerts are 2 bytes and handshake headers 4: more is not needed to decide.
    let mut payload = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(&mut payload)];
    let mut cmsg = nix::cmsg_space!(u8);
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let len = msg.bytes;
    let content_type = msg.cmsgs().map_err(io::Error::from)?.find_map(|c| match c {
        ControlMessageOwned::TlsGetRecordType(t) => Some(match t {
            TlsGetRecordType::ChangeCipherSpec => 20,
            TlsGetRecordType::Alert => CONTENT_ALERT,
            TlsGetRecordType::Handshake => CONTENT_HANDSHAKE,
            TlsGetRecordType::ApplicationData => 23,
            TlsGetRecordType::Unknown(t) => t,
            _ => 0,
        }),
        _ => None,
    });
    match content_type {
        Some(t) => control_record(t, &payload[..len.min(payload.len())]),
        None if len == 0 => Ok(()),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "kernel TLS: a read failed and no record type came with it; closing the connection",
        )),
    }
}

/// The read side of a kTLS connection: the drained plaintext, then the socket.
pub struct KernelTlsReader {
    drained: Vec<u8>,
    position: usize,
    half: OwnedReadHalf,
    closed: bool,
}

impl KernelTlsReader {
    pub fn new(half: OwnedReadHalf, drained: Vec<u8>) -> KernelTlsReader {
        KernelTlsReader {
            drained,
            position: 0,
            half,
            closed: false,
        }
    }
}

impl AsyncRead for KernelTlsReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.position < this.drained.len() {
            let n = (this.drained.len() - this.position).min(buf.remaining());
            buf.put_slice(&this.drained[this.position..this.position + n]);
            this.position += n;
            if this.position == this.drained.len() {
                this.drained = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        match std::task::ready!(Pin::new(&mut this.half).poll_read(cx, buf)) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                read_control_record(this.half.as_ref().as_raw_fd())?;
                this.closed = true;
                Poll::Ready(Ok(()))
            }
            other => Poll::Ready(other),
        }
    }
}

/// Send a close_notify alert through the kernel (a record of content type alert, set
/// with the TLS_SET_RECORD_TYPE control message).
#[allow(unsafe_code)]
pub fn send_close_notify(fd: RawFd) -> io::Result<()> {
    const TLS_SET_RECORD_TYPE: libc::c_int = 1;
    let alert = [1u8, ALERT_CLOSE_NOTIFY];
    // SAFETY: CMSG_SPACE of one byte fits in the buffer; the header and data are
    // written through the libc macros within it.
    unsafe {
        let space = libc::CMSG_SPACE(1) as usize;
        let mut control = [0u64; 4];
        debug_assert!(space <= std::mem::size_of_val(&control));
        let mut iov = libc::iovec {
            iov_base: alert.as_ptr() as *mut libc::c_void,
            iov_len: alert.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = CONTENT_ALERT;
        if libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "ktls_tests.rs"]
mod tests;
