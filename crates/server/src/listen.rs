//! Where the server listens. "This computer only" means both loopback addresses, `127.0.0.1` and
//! `::1`, on the same port, so clients that resolve `localhost` to either reach it; anything else
//! is the one address asked for.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket};

/// How many connections the kernel may hold for the server before it accepts them (the kernel
/// caps it at `net.core.somaxconn`, 4096 on current Linux). The usual 128 overflows when a burst
/// of clients connects at once — a flood of idle sockets, say — and a client past it waits a
/// whole second for its SYN to be sent again, which the reliability suite's load part measured.
const BACKLOG: u32 = 4096;

/// A listening socket on `address` with [`BACKLOG`].
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As every server does, so a restart can listen again while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// One or two bound sockets that accept as one.
pub struct Listeners {
    pub primary: TcpListener,
    /// `[::1]` beside `127.0.0.1`, when that is what was asked for and IPv6 is available.
    pub loopback_v6: Option<TcpListener>,
}

impl Listeners {
    /// Adds `[::1]:port` when `primary` is `127.0.0.1`; a failure there only costs IPv6 clients
    /// and is returned for the log.
    pub async fn with_loopback_v6(primary: TcpListener) -> (Listeners, Option<std::io::Error>) {
        let Ok(address) = primary.local_addr() else {
            return (
                Listeners {
                    primary,
                    loopback_v6: None,
                },
                None,
            );
        };
        if address.ip() != IpAddr::from([127, 0, 0, 1]) {
            return (
                Listeners {
                    primary,
                    loopback_v6: None,
                },
                None,
            );
        }
        match bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), address.port())) {
            Ok(v6) => (
                Listeners {
                    primary,
                    loopback_v6: Some(v6),
                },
                None,
            ),
            Err(error) => (
                Listeners {
                    primary,
                    loopback_v6: None,
                },
                Some(error),
            ),
        }
    }

    pub fn addresses(&self) -> Vec<SocketAddr> {
        std::iter::once(&self.primary)
            .chain(self.loopback_v6.as_ref())
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn into_vec(self) -> Vec<TcpListener> {
        std::iter::once(self.primary).chain(self.loopback_v6).collect()
    }
}
