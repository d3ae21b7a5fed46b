//! The local certificate authority: made once, constrained to this computer's names and
//! private addresses, its key kept in the keychain; it signs the server's and the clients' certificates.

use super::*;

/// The local CA: its certificate on disk, its key in the keychain.
pub struct Authority {
    pub(super) cert_pem: String,
    pub(super) key: KeyPair,
}

impl Authority {
    /// Loads the CA, or makes one when there is none (or `replace` is set), constrained to this
    /// computer's names, private addresses and `names`.
    pub fn load_or_create(
        files: &CertFiles,
        keychain: &Keychain,
        replace: bool,
        names: &[String],
    ) -> Result<(Authority, bool), CertError> {
        if !replace && files.ca().exists() {
            return Ok((Self::load(files, keychain)?, false));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.name_constraints = Some(authority_constraints(names));
        params.distinguished_name = name(&format!(
            "Gatehouse local CA ({})",
            host_name().unwrap_or_else(|| "this computer".into())
        ));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + CA_LIFETIME;
        let cert = params.self_signed(&key)?;
        // The key goes to the keychain before the certificate is written: a CA file without its
        // key would be a CA nobody can use.
        keychain.store(
            &ca_key_account(&cert.pem()),
            "local certificate authority",
            &Sensitive::new(key.serialize_pem()),
        )?;
        write_public(&files.ca(), cert.pem().as_bytes())?;
        Ok((
            Authority {
                cert_pem: cert.pem(),
                key,
            },
            true,
        ))
    }

    pub fn load(files: &CertFiles, keychain: &Keychain) -> Result<Authority, CertError> {
        let cert_pem = std::fs::read_to_string(files.ca()).map_err(|_| CertError::NoAuthority)?;
        let key_pem = match keychain.get(&ca_key_account(&cert_pem)) {
            Ok(pem) => pem,
            Err(KeyError::NotInKeychain { .. }) => return Err(CertError::AuthorityKeyMissing),
            Err(other) => return Err(other.into()),
        };
        let key = KeyPair::from_pem(key_pem.expose())?;
        Ok(Authority { cert_pem, key })
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, CertError> {
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?)
    }

    /// Issues the server certificate for `names` into `server.pem` / `server-key.pem`.
    pub fn issue_server(
        &self,
        files: &CertFiles,
        names: &[String],
        lifetime: time::Duration,
    ) -> Result<CertInfo, CertError> {
        // A certificate for a name outside the CA's constraints would be refused by every client.
        if let Ok(Some(permitted)) = authority_permits(self.cert_pem.as_bytes()) {
            let outside = permitted.outside(names);
            if !outside.is_empty() {
                return Err(CertError::OutsideAuthority { names: outside });
            }
        }
        let server_params = |names: &[String], subject: &[String]| -> Result<CertificateParams, CertError> {
            let mut params = CertificateParams::new(names.to_vec()).map_err(|_| CertError::Invalid {
                what: "host name",
                name: names.join(", "),
                fix: "give DNS names (letters, digits, dots, dashes) or IP addresses",
            })?;
            params.distinguished_name = name(subject.first().map_or("gatehouse", String::as_str));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            Ok(params)
        };
        let params = server_params(names, names)?;
        // Both certificates get the same validity, which is how the server tells that the twin
        // belongs to the certificate beside it.
        let now = OffsetDateTime::now_utc();
        let validity = (now - time::Duration::minutes(5), now + lifetime);
        let dns: Vec<String> = names
            .iter()
            .filter(|n| n.parse::<std::net::IpAddr>().is_err())
            .cloned()
            .collect();
        if dns.is_empty() || dns.len() == names.len() {
            forget_names_twin(files)?;
        } else {
            self.sign_at(
                server_params(&dns, names)?,
                validity,
                &files.server_names_cert(),
                &files.server_names_key(),
            )?;
        }
        self.sign_at(params, validity, &files.server_cert(), &files.server_key())?;
        inspect(CertRole::Server, &files.server_cert())
    }

    /// Issues a client certificate for mutual TLS.
    pub fn issue_client(
        &self,
        files: &CertFiles,
        client: &str,
        lifetime: time::Duration,
    ) -> Result<CertInfo, CertError> {
        if client.is_empty()
            || client.len() > 64
            || !client
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(CertError::Invalid {
                what: "client name",
                name: client.to_string(),
                fix: "use letters, digits, - and _ (it names the files)",
            });
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(client);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(
            params,
            lifetime,
            &files.client_cert(client),
            &files.client_key(client),
        )?;
        inspect(CertRole::Client, &files.client_cert(client))
    }

    fn sign(
        &self,
        params: CertificateParams,
        lifetime: time::Duration,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(), CertError> {
        let now = OffsetDateTime::now_utc();
        self.sign_at(
            params,
            (now - time::Duration::minutes(5), now + lifetime),
            cert_path,
            key_path,
        )
    }

    fn sign_at(
        &self,
        mut params: CertificateParams,
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(), CertError> {
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        // Key first: a certificate whose key is missing would fail at the next handshake.
        fsutil::write_atomic(key_path, key.serialize_pem().as_bytes()).map_err(|source| {
            CertError::Write {
                path: key_path.to_path_buf(),
                source,
            }
        })?;
        write_public(cert_path, cert.pem().as_bytes())
    }
}

pub(super) fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "Gatehouse");
    name
}
