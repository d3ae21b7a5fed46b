//! TLS: versions, the certificate and its names and lifetime, mutual TLS, and the identity the probes present.

use super::*;

/// The TLS items. `mtls` is what the server says of itself (`None` for other servers).
pub(in crate::checklist) async fn transport(
    prober: &Prober,
    loopback_only: bool,
    mtls: Option<bool>,
) -> Vec<Item> {
    if !prober.endpoint.tls {
        let fix = Some(Fix::EnableTls);
        let plain = evidence(format!("scheme of {}", prober.endpoint.url()), "http: no TLS");
        return vec![if loopback_only {
            item(
                ItemId::TransportTls,
                Status::Pass,
                "TLS is off; only this computer connects, so traffic never leaves it",
                vec![plain],
                None,
            )
        } else {
            item(
                ItemId::TransportTls,
                Status::Fail,
                "reachable beyond this computer in plain text",
                vec![plain],
                fix,
            )
        }];
    }
    let only_tls13 = [&rustls::version::TLS13];
    let only_tls12 = [&rustls::version::TLS12];
    let (tls13, tls12, tls11, tls10, plaintext, anonymous) = tokio::join!(
        prober.handshake(&only_tls13, true),
        prober.handshake(&only_tls12, true),
        prober.legacy_hello(2),
        prober.legacy_hello(1),
        prober.plaintext_request("/healthz"),
        async {
            match mtls {
                Some(true) => Some(prober.handshake(&only_tls13, false).await),
                _ => None,
            }
        },
    );
    let mut items = Vec::new();
    let modern = tls13.as_ref().or(tls12.as_ref());
    items.push(match modern {
        Ok(handshake) => item(
            ItemId::TransportTls,
            Status::Pass,
            format!("TLS on ({})", handshake.version),
            vec![evidence(
                "TLS handshake",
                format!("completed with {}", handshake.version),
            )],
            None,
        ),
        Err(error) => item(
            ItemId::TransportTls,
            Status::Fail,
            "no TLS handshake succeeded",
            vec![evidence("TLS handshake", describe(error))],
            None,
        ),
    });
    if let Ok(handshake) = modern {
        items.push(certificate(handshake, prober.identity.local_ca.as_ref()));
    }
    let version_evidence = vec![
        evidence("TLS 1.3 handshake", handshake_outcome(&tls13)),
        evidence("TLS 1.2 handshake", handshake_outcome(&tls12)),
        evidence("TLS 1.1 ClientHello", legacy_outcome(&tls11)),
        evidence("TLS 1.0 ClientHello", legacy_outcome(&tls10)),
    ];
    let legacy_accepted: Vec<&str> = [("1.1", &tls11), ("1.0", &tls10)]
        .iter()
        .filter(|(_, answer)| matches!(answer, Ok(LegacyAnswer::Accepted)))
        .map(|(name, _)| *name)
        .collect();
    items.push(if !legacy_accepted.is_empty() {
        item(
            ItemId::TransportVersions,
            Status::Fail,
            format!("accepts TLS {}", legacy_accepted.join(" and ")),
            version_evidence,
            None,
        )
    } else if tls11.is_err() || tls10.is_err() {
        item(
            ItemId::TransportVersions,
            Status::Unknown,
            "the legacy handshakes got no clear answer",
            version_evidence,
            None,
        )
    } else {
        let accepted: Vec<&str> = [("1.3", &tls13), ("1.2", &tls12)]
            .iter()
            .filter(|(_, h)| h.is_ok())
            .map(|(name, _)| *name)
            .collect();
        item(
            ItemId::TransportVersions,
            Status::Pass,
            format!("TLS {} accepted; 1.0 and 1.1 refused", accepted.join(" and ")),
            version_evidence,
            None,
        )
    });
    let plain_evidence = vec![evidence(
        "plain HTTP GET /healthz to the TLS port",
        observed(&plaintext),
    )];
    items.push(match &plaintext {
        Ok(response) if (200..400).contains(&response.status) => item(
            ItemId::TransportPlaintext,
            Status::Fail,
            format!("plain HTTP answered {}", response.status),
            plain_evidence,
            None,
        ),
        Ok(response) => item(
            ItemId::TransportPlaintext,
            Status::Pass,
            format!("plain HTTP refused with {}", response.status),
            plain_evidence,
            None,
        ),
        Err(_) => item(
            ItemId::TransportPlaintext,
            Status::Pass,
            "plain HTTP gets no answer",
            plain_evidence,
            None,
        ),
    });
    if let Some(mtls) = mtls {
        items.push(mutual_tls(mtls, anonymous, loopback_only, prober));
    }
    items
}

pub(in crate::checklist) fn handshake_outcome(
    result: &Result<crate::probe::Handshake, ProbeError>,
) -> String {
    match result {
        Ok(handshake) => format!("completed ({})", handshake.version),
        Err(error) => describe(error),
    }
}

pub(in crate::checklist) fn legacy_outcome(result: &Result<LegacyAnswer, ProbeError>) -> String {
    match result {
        Ok(LegacyAnswer::Accepted) => "accepted".into(),
        Ok(LegacyAnswer::Refused(how)) => format!("refused: {how}"),
        Err(error) => describe(error),
    }
}

pub(in crate::checklist) fn certificate(
    handshake: &crate::probe::Handshake,
    local_ca: Option<&rustls::pki_types::CertificateDer<'static>>,
) -> Item {
    let Some(der) = &handshake.certificate else {
        return item(
            ItemId::TransportCertificate,
            Status::Unknown,
            "the server sent no certificate",
            vec![],
            None,
        );
    };
    let parsed = x509_parser::parse_x509_certificate(der.as_ref());
    let (subject, not_after) = match &parsed {
        Ok((_, cert)) => (
            cert.subject().to_string(),
            OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok(),
        ),
        Err(_) => ("unreadable".to_string(), None),
    };
    let now = OffsetDateTime::now_utc();
    let days_left = not_after.map(|t| (t - now).whole_days());
    let expiry = match (not_after, days_left) {
        (Some(t), Some(days)) => format!(
            "expires {} ({days} days)",
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ),
        _ => "expiry unreadable".to_string(),
    };
    let mut found = vec![evidence(
        "certificate presented in the handshake",
        format!("{subject}; {expiry}"),
    )];
    found.push(evidence(
        "verification against Gatehouse's local CA",
        match &handshake.verified {
            Ok(()) => "trusted".to_string(),
            Err(reason) => format!("not trusted: {reason}"),
        },
    ));
    // Only a certificate the local CA signed is Gatehouse's to renew; an imported one goes back
    // to its issuer. Without the local CA at hand (a bare `check --url`), the fix says what it
    // needs when it runs.
    let ours = local_ca.is_none_or(|ca| crate::certs::signed_by(der.as_ref(), ca.as_ref()));
    let (renew, by_issuer) = if ours {
        (Some(Fix::RenewCertificates), "")
    } else {
        (
            None,
            "; it was imported: renew it with its issuer, then run `gatehouse certs import`",
        )
    };
    let expired = not_after.is_some_and(|t| t <= now);
    match (expired, days_left, &handshake.verified) {
        (true, ..) => item(
            ItemId::TransportCertificate,
            Status::Fail,
            format!("the certificate has expired{by_issuer}"),
            found,
            renew,
        ),
        (_, Some(days), _) if days < CERTIFICATE_WARN_DAYS => item(
            ItemId::TransportCertificate,
            Status::Warn,
            format!("the certificate expires in {days} days{by_issuer}"),
            found,
            renew,
        ),
        (_, _, Err(reason)) => item(
            ItemId::TransportCertificate,
            Status::Warn,
            format!("not verifiable with the local CA or an imported certificate's CA: {reason}"),
            found,
            None,
        ),
        _ => {
            // A CA made before name constraints can vouch for any site once trusted; only a new
            // CA fixes that, and its clients must trust it anew, so this is advice, not a fix.
            let unconstrained = ours
                && local_ca
                    .is_some_and(|ca| matches!(crate::certs::authority_permits_der(ca.as_ref()), Ok(None)));
            if unconstrained {
                found.push(evidence("the local CA's name constraints", "none"));
                return item(
                    ItemId::TransportCertificate,
                    Status::Warn,
                    format!(
                        "trusted; {expiry}; but the local CA has no name constraints, so whoever takes its key \
                         can make certificates for any site: run `gatehouse certs init --new-ca` to reissue it \
                         for this computer's names only (clients then trust the new ca.pem)"
                    ),
                    found,
                    None,
                );
            }
            item(
                ItemId::TransportCertificate,
                Status::Pass,
                format!("trusted; {expiry}"),
                found,
                None,
            )
        }
    }
}

pub(in crate::checklist) fn mutual_tls(
    mtls: bool,
    anonymous: Option<Result<crate::probe::Handshake, ProbeError>>,
    loopback_only: bool,
    prober: &Prober,
) -> Item {
    let with_certificate = if prober.identity.client.is_some() {
        "the probes presented a client certificate from certs/clients"
    } else {
        "no client certificate in certs/clients to probe with"
    };
    match (mtls, anonymous) {
        (true, Some(Err(error))) => item(
            ItemId::TransportMtls,
            Status::Pass,
            "a client without a certificate is refused in the handshake",
            vec![
                evidence("TLS handshake without a client certificate", describe(&error)),
                evidence("client certificate", with_certificate),
            ],
            None,
        ),
        (true, Some(Ok(_))) => item(
            ItemId::TransportMtls,
            Status::Fail,
            "mTLS is on but a client without a certificate got through",
            vec![evidence(
                "TLS handshake without a client certificate",
                "completed",
            )],
            None,
        ),
        (false, _) if loopback_only => item(
            ItemId::TransportMtls,
            Status::Pass,
            "off; not needed while only this computer connects",
            vec![evidence("/info", "mtls: false")],
            None,
        ),
        _ => item(
            ItemId::TransportMtls,
            Status::Warn,
            "off: any device on the network can try keys",
            vec![evidence("/info", "mtls: false")],
            None,
        ),
    }
}

/// [`local_identity`], read afresh each time it is called: what the supervisor's probes use, so
/// certificates made while it runs are in force from the server's next start.
pub fn local_identity_reader(paths: &Paths) -> std::sync::Arc<dyn Fn() -> TlsIdentity + Send + Sync> {
    let paths = paths.clone();
    std::sync::Arc::new(move || local_identity(&paths))
}

/// What probes of the local server trust and show: the local CA and the CA of an imported server
/// certificate, and the first current client certificate in `certs/clients` (sent only when the
/// server asks for one, i.e. with mutual TLS).
pub fn local_identity(paths: &Paths) -> TlsIdentity {
    let files = CertFiles::new(paths.certs_dir());
    let mut identity = TlsIdentity::trusting_pem(&files.ca());
    identity.local_ca = identity.roots.first().cloned();
    identity
        .roots
        .extend(TlsIdentity::trusting_pem(&files.imported_ca()).roots);
    let client = crate::certs::list(&files)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|info| info.role == crate::certs::CertRole::Client && info.days_left >= 0)
        .find_map(|info| {
            let name = info.path.file_stem()?.to_string_lossy().into_owned();
            let key = files.client_key(&name);
            key.exists().then_some((info.path, key))
        });
    match client {
        Some((cert, key)) => identity.with_client(&cert, &key),
        None => identity,
    }
}
