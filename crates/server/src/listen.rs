//! Where the server listens. "This computer only" means both loopback addresses, `127.0.0.1` and
//! `::1`, on the same port, so clients that resolve `localhost` to either reach it; anything else
//! is the one address asked for.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

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
        match TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), address.port())).await {
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
