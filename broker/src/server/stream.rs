//! A client connection's byte stream: plain TCP or TLS over TCP.
//!
//! The fetch path asks the write side for [`StreamWriter::zero_copy_socket`]: on plain
//! TCP, file ranges go to the socket with sendfile and never pass through user space;
//! on TLS the records must be encrypted, so the bytes are read and written. (Kernel TLS
//! would be a third case that keeps sendfile.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::sys::sendfile::sendfile;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::log::FileSlice;

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
