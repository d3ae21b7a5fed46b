//! The ClientHello of TLS 1.0 and 1.1, written by hand: rustls cannot speak them, and the
//! checklist has to offer them to prove the server refuses them.

pub(super) fn legacy_client_hello(minor: u8, host: &str) -> Vec<u8> {
    let mut random = [0u8; 32];
    let _ = getrandom::fill(&mut random);
    // ECDHE and RSA CBC suites every TLS 1.0/1.1 server offers.
    let suites: [u16; 6] = [0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035];
    let mut extensions = Vec::new();
    if host.parse::<std::net::IpAddr>().is_err() {
        let name = host.as_bytes();
        let mut server_name = Vec::new();
        push_u16(&mut server_name, name.len() as u16 + 3);
        server_name.push(0);
        push_u16(&mut server_name, name.len() as u16);
        server_name.extend_from_slice(name);
        push_extension(&mut extensions, 0x0000, &server_name);
    }
    // supported_groups: x25519, secp256r1, secp384r1; ec_point_formats: uncompressed.
    push_extension(&mut extensions, 0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]);
    push_extension(&mut extensions, 0x000b, &[1, 0]);
    let mut body = vec![3, minor];
    body.extend_from_slice(&random);
    body.push(0);
    push_u16(&mut body, (suites.len() * 2) as u16);
    for suite in suites {
        push_u16(&mut body, suite);
    }
    body.extend_from_slice(&[1, 0]);
    push_u16(&mut body, extensions.len() as u16);
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    push_u16(&mut record, handshake.len() as u16);
    record.extend_from_slice(&handshake);
    record
}

pub(super) fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub(super) fn push_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    push_u16(out, kind);
    push_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

pub(super) fn alert_name(code: u8) -> &'static str {
    match code {
        40 => "handshake_failure",
        47 => "illegal_parameter",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        _ => "other",
    }
}
