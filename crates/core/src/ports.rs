//! Who holds a TCP port: read from `/proc/net/tcp{,6}` (the listening socket's inode) and the
//! processes' open files, so "port in use" can name the program in the way.

use std::fs;

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    pub pid: u32,
    pub name: String,
}

/// The process listening on `port`, when this user may see it (Linux only; `None` elsewhere).
pub fn listening_process(port: u16) -> Option<PortHolder> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| listening_inode(&fs::read_to_string(table).ok()?, port))?;
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            if fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str()) {
                let name = fs::read_to_string(entry.path().join("comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Some(PortHolder { pid, name });
            }
        }
    }
    None
}

/// The inode of the socket listening on `port` in one `/proc/net/tcp` table.
fn listening_inode(table: &str, port: u16) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
        // State 0A is LISTEN.
        (local_port == port && *fields.get(3)? == "0A")
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// The addresses sockets listen on for `port`, from both tables (every process, every user).
pub fn listening_addresses(port: u16) -> Vec<std::net::IpAddr> {
    let mut addresses: Vec<std::net::IpAddr> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| listening_on(&table, port))
        .collect();
    // The kernel writes the table in pieces as it is read: a socket opened or closed meanwhile
    // can move the rest along, and a line is then read twice.
    let mut seen = std::collections::HashSet::new();
    addresses.retain(|address| seen.insert(*address));
    addresses
}

/// The local addresses of the LISTEN sockets for `port` in one `/proc/net/tcp` table. The kernel
/// writes each 32-bit word of the address in host byte order.
fn listening_on(table: &str, port: u16) -> Vec<std::net::IpAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, local_port) = fields.get(1)?.rsplit_once(':')?;
            if u16::from_str_radix(local_port, 16).ok()? != port || *fields.get(3)? != "0A" {
                return None;
            }
            let mut bytes = Vec::with_capacity(16);
            for word in 0..address.len() / 8 {
                let word = u32::from_str_radix(address.get(word * 8..word * 8 + 8)?, 16).ok()?;
                bytes.extend_from_slice(&word.to_ne_bytes());
            }
            match bytes.len() {
                4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
                16 => {
                    let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
                    Some(
                        v6.to_ipv4_mapped()
                            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
                    )
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_addresses_of_both_families() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0\n\
                  1: 00000000:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0\n\
                  2: 0100007F:2329 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0\n";
        let found: Vec<String> = listening_on(v4, 9001).iter().map(ToString::to_string).collect();
        assert_eq!(found, ["127.0.0.1", "0.0.0.0"]);
        let v6 = "  sl  local_address rem_address st\n\
                  0: 00000000000000000000000001000000:2329 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 4 1 0\n\
                  1: 00000000000000000000000000000000:2329 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 5 1 0\n";
        let found: Vec<String> = listening_on(v6, 9001).iter().map(ToString::to_string).collect();
        assert_eq!(found, ["::1", "::"]);
    }

    #[test]
    fn finds_where_this_process_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            listening_addresses(port),
            [std::net::IpAddr::from([127, 0, 0, 1])]
        );
    }

    #[test]
    fn finds_the_listening_inode_for_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                     0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0\n\
                     1: 0100007F:2329 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0\n";
        assert_eq!(listening_inode(table, 9001), Some(12345));
        assert_eq!(listening_inode(table, 9002), None);
    }

    #[test]
    fn names_this_process_for_a_port_it_holds() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = listening_process(port).expect("the test's own listener is found");
        assert_eq!(holder.pid, std::process::id());
    }
}
