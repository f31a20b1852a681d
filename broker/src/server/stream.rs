//! A client connection's byte stream: plain TCP, TLS in user space (rustls), or TLS
//! whose records the kernel encrypts (kTLS, see `server::ktls`).
//!
//! The fetch path asks the write side for [`StreamWriter::zero_copy_socket`]: on plain
//! TCP and on kernel TLS, file ranges go to the socket with sendfile and never pass
//! through user space; on user-space TLS the records must be encrypted by rustls, so
//! the bytes are read and written.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::sys::sendfile::sendfile;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::ktls::{self, KernelTlsReader, KernelTlsStream};
use crate::log::FileSlice;

/// A TLS stream rustls encrypts: over the socket as it is, or over the record-by-record
/// reader used where the kernel might take over.
pub trait UserspaceTls: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> UserspaceTls for T {}

pub enum ClientStream {
    Tcp(TcpStream),
    Tls(Box<dyn UserspaceTls>),
    KernelTls(KernelTlsStream),
}

impl ClientStream {
    /// Read and write sides that a connection's tasks use at the same time.
    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        match self {
            ClientStream::Tcp(s) => {
                let (r, w) = s.into_split();
                (StreamReader::Tcp(r), StreamWriter::Tcp(w))
            }
            ClientStream::Tls(s) => {
                let (r, w) = tokio::io::split(s);
                (StreamReader::Tls(r), StreamWriter::Tls(w))
            }
            ClientStream::KernelTls(s) => {
                let (r, w) = s.tcp.into_split();
                (
                    StreamReader::KernelTls(KernelTlsReader::new(r, s.drained)),
                    StreamWriter::KernelTls {
                        half: w,
                        close_notify_sent: false,
                    },
                )
            }
        }
    }
}

pub enum StreamReader {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<Box<dyn UserspaceTls>>),
    KernelTls(KernelTlsReader),
}

pub enum StreamWriter {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<Box<dyn UserspaceTls>>),
    /// Writes to the socket are application data records the kernel seals.
    KernelTls {
        half: OwnedWriteHalf,
        close_notify_sent: bool,
    },
}

impl StreamWriter {
    /// The socket that file ranges can be sent to with sendfile: plain TCP, and kernel
    /// TLS (the kernel encrypts what sendfile hands it).
    pub fn zero_copy_socket(&self) -> Option<&TcpStream> {
        match self {
            StreamWriter::Tcp(w) => Some(w.as_ref()),
            StreamWriter::KernelTls { half, .. } => Some(half.as_ref()),
            StreamWriter::Tls(_) => None,
        }
    }

    /// Write `len` bytes of a segment file: with sendfile where the stream allows it,
    /// else through user space.
    pub async fn write_file_range(&mut self, slice: &FileSlice, len: usize) -> io::Result<()> {
        match self.zero_copy_socket() {
            Some(socket) => send_file(socket, slice, len).await,
            None => write_file(self, slice, len).await,
        }
    }
}

/// Send `len` bytes of a segment file straight from the page cache to the socket.
async fn send_file(stream: &TcpStream, slice: &FileSlice, len: usize) -> io::Result<()> {
    let mut offset = i64::try_from(slice.position).map_err(io::Error::other)?;
    let end = offset + len as i64;
    while offset < end {
        stream.writable().await?;
        let count = (end - offset) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            sendfile(stream, &*slice.file, Some(&mut offset), count).map_err(io::Error::from)
        });
        match sent {
            // The frame's size is already on the wire: a file that shrank under us
            // (truncated or deleted segment) leaves no way but closing the connection.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended before the fetched range",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes of a segment file read at once where sendfile cannot be used.
const FILE_COPY_CHUNK_BYTES: usize = 256 * 1024;

/// Send `len` bytes of a segment file through user space (TLS): read in chunks, so a
/// large fetch costs one chunk of memory, not the whole range.
async fn write_file(stream: &mut StreamWriter, slice: &FileSlice, len: usize) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len.min(FILE_COPY_CHUNK_BYTES)];
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(buf.len());
        // A read of the page cache, as sendfile's would be; segment data being fetched
        // is almost always cached.
        let read = slice
            .file
            .read_at(&mut buf[..n], slice.position + done as u64)?;
        if read == 0 {
            // As with sendfile: the frame's size is on the wire already.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment file ended before the fetched range",
            ));
        }
        stream.write_all(&buf[..read]).await?;
        done += read;
    }
    Ok(())
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamReader::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            StreamReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
            StreamReader::KernelTls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            StreamWriter::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            StreamWriter::Tls(w) => Pin::new(w).poll_write(cx, buf),
            StreamWriter::KernelTls { half, .. } => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWriter::Tcp(w) => Pin::new(w).poll_flush(cx),
            StreamWriter::Tls(w) => Pin::new(w).poll_flush(cx),
            StreamWriter::KernelTls { half, .. } => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWriter::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            StreamWriter::Tls(w) => Pin::new(w).poll_shutdown(cx),
            StreamWriter::KernelTls {
                half,
                close_notify_sent,
            } => {
                // As rustls does on shutdown: close_notify, so the client knows the
                // stream ended where the broker meant it to (best effort: a full send
                // buffer or a gone client only loses the alert).
                if !*close_notify_sent {
                    *close_notify_sent = true;
                    if let Err(e) = ktls::send_close_notify(half.as_ref().as_raw_fd()) {
                        tracing::debug!(error = %e, "kernel TLS close_notify not sent");
                    }
                }
                Pin::new(half).poll_shutdown(cx)
            }
        }
    }
}
