//! The one place errors become HTTP responses. Every error has a stable `code`; the
//! table in [`Code::status`] maps it to a status. Server-side failures (5xx) answer
//! with a generic message; their detail goes to the log with the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::ValidationError;
use cairn_store::StoreError;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidJson,
    InvalidRequest,
    InvalidField,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    InsufficientScope,
    NotFound,
    TenantNotFound,
    UserNotFound,
    MembershipNotFound,
    ApiKeyNotFound,
    OAuthClientNotFound,
    KbNotFound,
    DocumentNotFound,
    WebhookSourceNotFound,
    /// The signature, its headers or its timestamp did not verify.
    WebhookVerificationFailed,
    /// The message id was already received from this source.
    WebhookReplayed,
    EmptyDocument,
    /// A document beyond an extraction limit (nesting depth, node count, output size).
    DocumentTooComplex,
    /// The document's extraction crashed or timed out (its worker was replaced).
    ExtractionFailed,
    InvalidEncoding,
    MethodNotAllowed,
    TenantSlugTaken,
    EmailTaken,
    MembershipExists,
    Conflict,
    TenantBusy,
    ServiceUnavailable,
    Internal,
}

impl Code {
    /// The error table: stable code → HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidJson | Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InvalidField => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::NotFound
            | Self::TenantNotFound
            | Self::UserNotFound
            | Self::MembershipNotFound
            | Self::ApiKeyNotFound
            | Self::OAuthClientNotFound
            | Self::KbNotFound
            | Self::DocumentNotFound
            | Self::WebhookSourceNotFound => StatusCode::NOT_FOUND,
            Self::WebhookVerificationFailed => StatusCode::UNAUTHORIZED,
            Self::WebhookReplayed => StatusCode::CONFLICT,
            Self::EmptyDocument | Self::InvalidEncoding => StatusCode::BAD_REQUEST,
            Self::DocumentTooComplex | Self::ExtractionFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TenantSlugTaken | Self::EmailTaken | Self::MembershipExists | Self::Conflict => StatusCode::CONFLICT,
            Self::TenantBusy | Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidField => "invalid_field",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::InsufficientScope => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::TenantNotFound => "tenant_not_found",
            Self::UserNotFound => "user_not_found",
            Self::MembershipNotFound => "membership_not_found",
            Self::ApiKeyNotFound => "api_key_not_found",
            Self::OAuthClientNotFound => "oauth_client_not_found",
            Self::KbNotFound => "kb_not_found",
            Self::DocumentNotFound => "document_not_found",
            Self::WebhookSourceNotFound => "webhook_source_not_found",
            Self::WebhookVerificationFailed => "webhook_verification_failed",
            Self::WebhookReplayed => "webhook_replayed",
            Self::EmptyDocument => "empty_document",
            Self::DocumentTooComplex => "document_too_complex",
            Self::ExtractionFailed => "extraction_failed",
            Self::InvalidEncoding => "invalid_encoding",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TenantSlugTaken => "tenant_slug_taken",
            Self::EmailTaken => "email_taken",
            Self::MembershipExists => "membership_exists",
            Self::Conflict => "conflict",
            Self::TenantBusy => "tenant_busy",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal_error",
        }
    }
}

/// An error on its way to a client (HTTP or CLI).
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(Code::Unauthorized, "a valid bearer token is required")
    }

    pub fn not_found() -> Self {
        Self::new(Code::NotFound, "no such resource")
    }

    /// A server-side failure: the detail is logged here, the client sees a generic text.
    /// 422 `invalid_field` naming the field.
    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: Code::InvalidField,
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(Code::Internal, "internal server error")
    }

    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "dependency unavailable");
        Self::new(Code::ServiceUnavailable, "service temporarily unavailable, retry later")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl std::error::Error for ApiError {}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self {
            code: Code::InvalidField,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SlugTaken => Self::new(Code::TenantSlugTaken, "a tenant with this slug already exists"),
            StoreError::EmailTaken => Self::new(Code::EmailTaken, "a user with this e-mail address already exists"),
            StoreError::MembershipExists => {
                Self::new(Code::MembershipExists, "the user is already a member of this tenant")
            }
            StoreError::TenantNotFound => Self::new(Code::TenantNotFound, "tenant not found"),
            StoreError::UserNotFound => Self::new(Code::UserNotFound, "user not found"),
            StoreError::MembershipNotFound => {
                Self::new(Code::MembershipNotFound, "the user is not a member of this tenant")
            }
            StoreError::ApiKeyNotFound => Self::new(Code::ApiKeyNotFound, "api key not found"),
            StoreError::Conflict(what) => Self::new(Code::Conflict, what),
            StoreError::InvalidCursor => Self {
                code: Code::InvalidField,
                message: "cursor: is not a cursor returned by this listing".into(),
                field: Some("cursor"),
            },
            StoreError::TenantBusy(_) => Self::new(
                Code::TenantBusy,
                "too many concurrent requests for this tenant, retry shortly",
            ),
            StoreError::Unavailable(e) => Self::unavailable(e),
            e @ (StoreError::Config(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) | StoreError::Database(_)) => {
                Self::internal(e)
            }
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = Body {
            error: Inner {
                code: self.code.as_str(),
                message: &self.message,
                field: self.field,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        match self.code {
            Code::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Code::TenantBusy | Code::ServiceUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_map_to_statuses() {
        let all = [
            Code::InvalidJson,
            Code::InvalidRequest,
            Code::InvalidField,
            Code::UnsupportedMediaType,
            Code::PayloadTooLarge,
            Code::Unauthorized,
            Code::Forbidden,
            Code::InsufficientScope,
            Code::NotFound,
            Code::TenantNotFound,
            Code::UserNotFound,
            Code::MembershipNotFound,
            Code::MethodNotAllowed,
            Code::TenantSlugTaken,
            Code::EmailTaken,
            Code::MembershipExists,
            Code::Conflict,
            Code::ApiKeyNotFound,
            Code::OAuthClientNotFound,
            Code::TenantBusy,
            Code::ServiceUnavailable,
            Code::Internal,
        ];
        let mut names: Vec<_> = all.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(Code::TenantSlugTaken.status(), StatusCode::CONFLICT);
        assert_eq!(Code::InvalidField.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn internal_errors_do_not_leak_detail() {
        let e = ApiError::from(StoreError::Corrupt("tenants: secret detail".into()));
        assert_eq!(e.code, Code::Internal);
        assert!(!e.message.contains("secret"));
    }
}
