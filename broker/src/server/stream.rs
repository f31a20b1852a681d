//! A client connection's byte stream: plain TCP or TLS over TCP.
//!
//! The fetch path asks the write side for [`StreamWriter::zero_copy_socket`]: on plain
//! TCP, file ranges go to the socket with sendfile and never pass through user space;
//! on TLS the records must be encrypted, so the bytes are read and written. (Kernel TLS
//! would be a third case that keeps sendfile.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum ClientStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
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
                let (r, w) = tokio::io::split(*s);
                (StreamReader::Tls(r), StreamWriter::Tls(w))
            }
        }
    }
}

pub enum StreamReader {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

pub enum StreamWriter {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl StreamWriter {
    /// The socket that file ranges can be sent to with sendfile: plain TCP only.
    pub fn zero_copy_socket(&self) -> Option<&TcpStream> {
        match self {
            StreamWriter::Tcp(w) => Some(w.as_ref()),
            StreamWriter::Tls(_) => None,
        }
    }
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWriter::Tcp(w) => Pin::new(w).poll_flush(cx),
            StreamWriter::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWriter::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            StreamWriter::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
