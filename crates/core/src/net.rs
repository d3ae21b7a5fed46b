//! This computer's names and addresses, as the certificates, the Host check and the checklist
//! see them: one place, so those modules need not reach into each other for them.

use std::net::{IpAddr, UdpSocket};

/// The address of the interface holding the default route. Connecting a UDP socket sends
/// nothing; it only asks the kernel which source address it would use.
pub fn network_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// The host name, unless it is empty or `localhost`.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name != "localhost").then(|| name.to_string())
}
