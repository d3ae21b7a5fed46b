//! The card a short-lived key is handed over with: the endpoint, the CA to trust, the key, until
//! when and for which models — as text and as a QR code a phone can read. The key appears in it,
//! so the card is shown only when the key is created, like the key itself.

use std::path::PathBuf;

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareCard {
    pub url: String,
    /// The CA certificate the receiver must trust, when the server speaks TLS with the local CA.
    pub ca: Option<PathBuf>,
    pub key: String,
    /// RFC 3339; `None` for a key that never expires (which is not a demo key).
    pub expires: Option<String>,
    /// The only models the key may run; every model when empty.
    pub models: Vec<String>,
}

/// The address other computers reach the server at: its listening address, or this computer's
/// network address when it listens on all of them.
pub fn endpoint(settings: &Settings) -> String {
    let scheme = if settings.tls.enabled { "https" } else { "http" };
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "::" => {
            crate::net::network_address().map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
        }
        host => host.to_string(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!("{scheme}://{host}:{}", settings.server.port)
}

impl ShareCard {
    /// The card for `record`'s key, as this computer's settings and local CA have a client reach
    /// the server: the one way the CLI and the panel make it.
    pub fn for_key(paths: &crate::paths::Paths, record: &crate::keys::KeyRecord, key: &str) -> ShareCard {
        let settings = Settings::effective(&paths.settings_file()).unwrap_or_default();
        let ca = crate::certs::CertFiles::new(paths.certs_dir()).ca();
        ShareCard {
            url: endpoint(&settings),
            ca: (settings.tls.enabled && ca.exists()).then_some(ca),
            key: key.to_string(),
            expires: record
                .expires
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            models: record.models.clone(),
        }
    }

    pub fn text(&self) -> String {
        let mut text = format!("Gatehouse endpoint: {}\nAPI key: {}\n", self.url, self.key);
        if let Some(expires) = &self.expires {
            text.push_str(&format!("Valid until: {expires}\n"));
        }
        if !self.models.is_empty() {
            text.push_str(&format!("Models: {}\n", self.models.join(", ")));
        }
        if let Some(ca) = &self.ca {
            text.push_str(&format!("Trust this CA: {}\n", crate::paths::display(ca)));
        }
        text.push_str("Send it as: Authorization: Bearer <key>\n");
        text
    }

    /// The card's text as a QR code, SVG.
    pub fn qr_svg(&self) -> String {
        QrCode::new(self.text().as_bytes())
            .map(|code| {
                code.render::<svg::Color>()
                    .min_dimensions(220, 220)
                    .quiet_zone(true)
                    .build()
            })
            .unwrap_or_default()
    }

    /// The card's text as a QR code drawn with half-block characters, for a terminal.
    pub fn qr_terminal(&self) -> String {
        QrCode::new(self.text().as_bytes())
            .map(|code| {
                code.render::<unicode::Dense1x2>()
                    .dark_color(unicode::Dense1x2::Light)
                    .light_color(unicode::Dense1x2::Dark)
                    .quiet_zone(true)
                    .build()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_says_where_what_until_when_and_encodes_itself() {
        let card = ShareCard {
            url: "https://192.168.1.20:9001".into(),
            ca: Some("/home/me/.config/gatehouse/certs/ca.pem".into()),
            key: "gth_example".into(),
            expires: Some("2026-12-03T12:00:00Z".into()),
            models: vec!["magika".into()],
        };
        let text = card.text();
        for part in [
            "https://192.168.1.20:9001",
            "gth_example",
            "2026-12-03T12:00:00Z",
            "Models: magika",
            "ca.pem",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let svg = card.qr_svg();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(
            !svg.contains("gth_example"),
            "the key is in the code's modules, not in its text"
        );
        assert!(card.qr_terminal().lines().count() > 10);
    }

    #[test]
    fn the_endpoint_follows_the_settings() {
        let mut settings = Settings::default();
        assert_eq!(endpoint(&settings), "http://127.0.0.1:9001");
        settings.tls.enabled = true;
        settings.server.host = "192.168.1.20".into();
        settings.server.port = 9443;
        assert_eq!(endpoint(&settings), "https://192.168.1.20:9443");
        settings.server.host = "fd00::5".into();
        assert_eq!(endpoint(&settings), "https://[fd00::5]:9443");
    }
}
