//! A TCP or unix-socket stream, and the delegation of tokio's I/O traits through the
//! enums this crate wraps streams in.

use tokio::net::{TcpStream, UnixStream};

/// Implements `AsyncRead` and `AsyncWrite` by forwarding to the one stream inside: a
/// struct's field, or each variant's stream (boxed or not) of an enum.
macro_rules! delegate_io {
    // A struct that wraps one such stream in field `$field`.
    ($type:ty => $field:ident) => {
        impl ::tokio::io::AsyncRead for $type {
            fn poll_read(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>, buf: &mut ::tokio::io::ReadBuf<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.get_mut().$field).poll_read(cx, buf)
            }
        }
        impl ::tokio::io::AsyncWrite for $type {
            fn poll_write(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>, buf: &[u8]) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
            }
            fn poll_write_vectored(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>, bufs: &[::std::io::IoSlice<'_>]) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().$field).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }
            fn poll_flush(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.get_mut().$field).poll_flush(cx)
            }
            fn poll_shutdown(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.get_mut().$field).poll_shutdown(cx)
            }
        }
    };
    // An enum whose every variant holds one stream.
    ($type:ty, $($variant:path),+) => {
        impl ::tokio::io::AsyncRead for $type {
            fn poll_read(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>, buf: &mut ::tokio::io::ReadBuf<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() { $($variant(s) => ::std::pin::Pin::new(s).poll_read(cx, buf),)+ }
            }
        }
        impl ::tokio::io::AsyncWrite for $type {
            fn poll_write(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>, buf: &[u8]) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() { $($variant(s) => ::std::pin::Pin::new(s).poll_write(cx, buf),)+ }
            }
            fn poll_write_vectored(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>, bufs: &[::std::io::IoSlice<'_>]) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() { $($variant(s) => ::std::pin::Pin::new(s).poll_write_vectored(cx, bufs),)+ }
            }
            fn is_write_vectored(&self) -> bool {
                match self { $($variant(s) => s.is_write_vectored(),)+ }
            }
            fn poll_flush(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() { $($variant(s) => ::std::pin::Pin::new(s).poll_flush(cx),)+ }
            }
            fn poll_shutdown(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() { $($variant(s) => ::std::pin::Pin::new(s).poll_shutdown(cx),)+ }
            }
        }
    };
}

pub(crate) use delegate_io;

/// A connection's socket: TCP (`http`, `https`) or a unix socket (`unix`, `unixs`).
#[derive(Debug)]
pub enum Socket {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix-socket connection.
    Unix(UnixStream),
}

delegate_io!(Socket, Socket::Tcp, Socket::Unix);
