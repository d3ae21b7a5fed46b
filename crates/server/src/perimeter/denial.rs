//! Why the perimeter refused a request, named once: each refusal gives the metric it counts in
//! (and its label), the audit line's reason and the response's error code, so the three cannot
//! drift apart.

use gatehouse_core::keys::Refusal;

use crate::error::ErrorCode;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Over the address group's request rate.
    AddressRate,
    /// No key anywhere the perimeter looks.
    MissingKey,
    /// A key that did not verify.
    Key(Refusal),
    /// The guessing guard has locked the key id or address out.
    LockedOut,
    /// A Basic-authenticated request a browser could have sent on its own.
    CrossSite,
    /// A valid key without the route's scope.
    InsufficientScope,
    /// Over the key's request rate.
    KeyRate,
    /// Too many bodies being read for a key at once.
    UnauthenticatedBodies,
}

/// Which metric family a denial counts in.
enum Counted {
    AuthFailure(&'static str),
    RateLimited(&'static str),
}

impl Denial {
    fn counted(self) -> Counted {
        match self {
            Denial::AddressRate => Counted::RateLimited("address"),
            Denial::MissingKey => Counted::AuthFailure("missing"),
            Denial::Key(refusal) => Counted::AuthFailure(refusal.reason()),
            Denial::LockedOut => Counted::RateLimited("auth_guard"),
            Denial::CrossSite => Counted::AuthFailure("cross_site"),
            Denial::InsufficientScope => Counted::AuthFailure("insufficient_scope"),
            Denial::KeyRate => Counted::RateLimited("key"),
            Denial::UnauthenticatedBodies => Counted::RateLimited("unauthenticated_bodies"),
        }
    }

    /// Counts the denial in `/metrics`.
    pub fn count(self, metrics: &Metrics) {
        match self.counted() {
            Counted::AuthFailure(label) => metrics.auth_failure(label),
            Counted::RateLimited(label) => metrics.rate_limited(label),
        }
    }

    /// The audit line's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::AddressRate => "address_rate",
            Denial::MissingKey => "missing_key",
            Denial::Key(refusal) => refusal.reason(),
            Denial::LockedOut => "locked_out",
            Denial::CrossSite => "cross_site",
            Denial::InsufficientScope => "insufficient_scope",
            Denial::KeyRate => "key_rate",
            Denial::UnauthenticatedBodies => "unauthenticated_bodies",
        }
    }

    /// The response's error code.
    pub fn code(self) -> ErrorCode {
        match self {
            Denial::AddressRate | Denial::KeyRate => ErrorCode::RateLimited,
            Denial::MissingKey => ErrorCode::Unauthorized,
            Denial::Key(Refusal::Expired) => ErrorCode::ExpiredApiKey,
            Denial::Key(Refusal::Revoked) => ErrorCode::RevokedApiKey,
            Denial::Key(_) => ErrorCode::Unauthorized,
            Denial::LockedOut => ErrorCode::TooManyAuthFailures,
            Denial::CrossSite => ErrorCode::CrossSiteRequestRefused,
            Denial::InsufficientScope => ErrorCode::InsufficientScope,
            Denial::UnauthenticatedBodies => ErrorCode::Busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_of_a_key_keeps_its_names() {
        assert_eq!(Denial::Key(Refusal::Expired).code(), ErrorCode::ExpiredApiKey);
        assert_eq!(Denial::Key(Refusal::WrongSecret).code(), ErrorCode::Unauthorized);
        assert_eq!(Denial::Key(Refusal::WrongSecret).reason(), "wrong_secret");
        assert_eq!(Denial::MissingKey.reason(), "missing_key");
        assert_eq!(Denial::LockedOut.code().status().as_u16(), 429);
        assert_eq!(Denial::InsufficientScope.code().status().as_u16(), 403);
    }
}
