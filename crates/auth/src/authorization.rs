//! Who a request or a session speaks for: [`Credentials`] (what it presented, parsed, nothing
//! checked yet) and [`Authorization`] (the outcome once `Authenticator::authorize` checked it).
//!
//! The one thing to know: both transports meet here. An HTTP `Authorization` header is read by
//! [`Credentials::from_header`] only, a WebSocket `Authenticate` frame becomes the same
//! [`Credentials`], and both are checked by the same function, so an admin acting as a user
//! gets the same identity over HTTP and over a WebSocket.
//!
//! The header's forms: none (anonymous); `Bearer <jwt>` (a user; the scheme's case does not
//! matter); `Convex <admin key>[:<base64 JSON identity>]` (the admin, acting as that identity
//! when given, as `ConvexHttpClient.setAdminAuth` and `pulsebase run --identity` send it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::identity::{Identity, IdentityShapeError};
use crate::rejection::TokenRejection;
use crate::verify::VerifiedToken;

/// What a request or an `Authenticate` frame presented, before any check.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// No header, or `Authenticate{tokenType: "None"}`.
    Anonymous,
    /// A user's access token.
    UserToken(String),
    /// The admin key, acting as the given UserIdentity object if any.
    AdminKey {
        key: String,
        acting_as: Option<ActingAs>,
    },
    /// A header this server cannot read; refused over the HTTP API.
    Malformed(Rejection),
}

/// The identity an admin asked to act as, read only once the key is accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum ActingAs {
    /// The UserIdentity object (`impersonating`, or the header's decoded JSON).
    Object(serde_json::Value),
    /// The header's identity part is not base64 JSON: why.
    Unreadable(String),
}

/// Who a request or a session speaks for, once its [`Credentials`] were checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Authorization {
    Anonymous,
    /// A verified user token (with its expiry). It never carries an admin's rights.
    User(VerifiedToken),
    /// The admin key: internal functions are callable, as `acting_as` when given.
    Admin {
        acting_as: Option<Identity>,
    },
    /// The credentials were refused.
    Rejected(Rejection),
}

/// Why credentials were refused: a precise reason for the log, a short code and text for the
/// client (never the token).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Token(#[from] TokenRejection),
    #[error("the admin key is not this deployment's")]
    AdminKey,
    #[error("{0}")]
    ActingAs(String),
    #[error("{0}")]
    Header(&'static str),
}

impl Credentials {
    /// Reads an `Authorization` header's raw bytes (`None`: no header). This is the only
    /// reader of that header.
    pub fn from_header(value: Option<&[u8]>) -> Credentials {
        let Some(bytes) = value else {
            return Credentials::Anonymous;
        };
        let Ok(value) = std::str::from_utf8(bytes) else {
            return Credentials::Malformed(Rejection::Header(
                "the Authorization header is not valid text",
            ));
        };
        if value.len() >= 7
            && value.is_char_boundary(7)
            && value[..7].eq_ignore_ascii_case("bearer ")
        {
            return Credentials::UserToken(value[7..].trim().to_string());
        }
        if let Some(rest) = value.strip_prefix("Convex ") {
            let (key, encoded) = match rest.split_once(':') {
                Some((key, encoded)) => (key, Some(encoded)),
                None => (rest, None),
            };
            return Credentials::AdminKey {
                key: key.trim().to_string(),
                acting_as: encoded.map(decode_acting_as),
            };
        }
        Credentials::Malformed(Rejection::Header(
            "the Authorization header must be `Bearer <token>` or `Convex <admin key>`",
        ))
    }

    /// The credentials an HTTP action honours: a bearer token, and nothing else (a webhook
    /// sender may use any other scheme, which leaves the request anonymous).
    pub fn bearer_only(self) -> Credentials {
        match self {
            Credentials::UserToken(token) => Credentials::UserToken(token),
            _ => Credentials::Anonymous,
        }
    }
}

fn decode_acting_as(encoded: &str) -> ActingAs {
    let bytes = match STANDARD.decode(encoded.trim()) {
        Ok(bytes) => bytes,
        Err(e) => {
            return ActingAs::Unreadable(format!(
                "the identity after the admin key is not base64: {e}"
            ));
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(object) => ActingAs::Object(object),
        Err(e) => ActingAs::Unreadable(format!("the identity is not JSON: {e}")),
    }
}

impl ActingAs {
    /// The identity, by Convex's rule ([`Identity::acting_as`]).
    pub fn identity(&self) -> Result<Identity, Rejection> {
        match self {
            ActingAs::Object(object) => Ok(Identity::acting_as(object)?),
            ActingAs::Unreadable(why) => Err(Rejection::ActingAs(why.clone())),
        }
    }
}

impl Authorization {
    /// The identity functions see: the user's, or the one the admin acts as.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Authorization::User(verified) => Some(&verified.identity),
            Authorization::Admin { acting_as } => acting_as.as_ref(),
            Authorization::Anonymous | Authorization::Rejected(_) => None,
        }
    }

    /// Whether internal functions are callable.
    pub fn is_admin(&self) -> bool {
        matches!(self, Authorization::Admin { .. })
    }
}

impl Rejection {
    /// Convex's short code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Token(rejection) => rejection.code(),
            Rejection::AdminKey => "BadAdminKey",
            Rejection::ActingAs(_) => "InvalidIdentity",
            Rejection::Header(_) => "InvalidAuthHeader",
        }
    }

    /// The text a client is shown.
    pub fn client_message(&self) -> String {
        match self {
            Rejection::Token(rejection) => rejection.client_message().to_string(),
            Rejection::AdminKey => {
                "The provided admin key is invalid; read it from .pulsebase/admin_key".to_string()
            }
            Rejection::ActingAs(why) => why.clone(),
            Rejection::Header(why) => (*why).to_string(),
        }
    }
}

impl From<IdentityShapeError> for Rejection {
    fn from(error: IdentityShapeError) -> Rejection {
        Rejection::ActingAs(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header(text: &str) -> Credentials {
        Credentials::from_header(Some(text.as_bytes()))
    }

    #[test]
    fn header_forms() {
        assert_eq!(Credentials::from_header(None), Credentials::Anonymous);
        assert_eq!(header("bEaReR  abc "), Credentials::UserToken("abc".into()));
        assert_eq!(
            header("Convex key"),
            Credentials::AdminKey {
                key: "key".into(),
                acting_as: None
            }
        );
        let encoded = STANDARD.encode(json!({"subject": "u"}).to_string());
        assert_eq!(
            header(&format!("Convex key:{encoded}")),
            Credentials::AdminKey {
                key: "key".into(),
                acting_as: Some(ActingAs::Object(json!({"subject": "u"})))
            }
        );
        assert!(matches!(
            header("Convex key:%%%"),
            Credentials::AdminKey {
                acting_as: Some(ActingAs::Unreadable(_)),
                ..
            }
        ));
        assert!(matches!(
            header("Basic dXNlcg=="),
            Credentials::Malformed(Rejection::Header(_))
        ));
        assert!(matches!(
            Credentials::from_header(Some(b"Bearer \xe9t\xe9")),
            Credentials::Malformed(Rejection::Header(_))
        ));
        // Seven bytes that end inside a character must not panic.
        assert!(matches!(header("Beareré x"), Credentials::Malformed(_)));
    }

    #[test]
    fn actions_honour_bearer_tokens_only() {
        assert_eq!(
            header("Bearer t").bearer_only(),
            Credentials::UserToken("t".into())
        );
        assert_eq!(header("Convex key").bearer_only(), Credentials::Anonymous);
        assert_eq!(header("Basic x").bearer_only(), Credentials::Anonymous);
    }
}
