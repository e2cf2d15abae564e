//! The invitation page, `/t/{slug}/invitations/{token}`: the invited person signs in
//! with their own account and joins the tenant. It sits with the other sign-in pages
//! (same look, same login throttle, same refusal for every kind of wrong credential).

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use cairn_core::audit::Actor;
use cairn_core::tenant::{Tenant, TenantStatus};
use serde::Deserialize;

use super::pages::{error_page, escape, html};
use crate::extract::RequestMeta;
use crate::service::invitations::{self, Refused};
use crate::state::{AppState, Ctx};

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn tenant(state: &AppState, slug: &str) -> Result<Arc<Tenant>, Response> {
    match state.tenants.get(&state.store, slug).await {
        Ok(Some(t)) if t.status != TenantStatus::Suspended => Ok(t),
        Ok(_) => Err(unusable()),
        Err(_) => Err(unavailable()),
    }
}

fn unusable() -> Response {
    error_page(
        StatusCode::GONE,
        "This invitation link is not valid any more: it was used, withdrawn or has expired. Ask for a new one.",
    )
}

fn unavailable() -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is temporarily unavailable. Please try again.",
    )
}

fn form(status: StatusCode, tenant: &Tenant, role: &str, email: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"err\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Join {tenant}</h1><p class=\"muted\">You are invited as <strong>{role}</strong>. \
         Sign in with your account to accept.</p>{error}\
         <form method=\"post\">\
         <label for=\"email\">E-mail</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" value=\"{email}\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in and join</button></form>",
        tenant = escape(tenant.name.as_str()),
        role = escape(role),
        email = escape(email),
    );
    html(status, "Join", &body)
}

fn anonymous(state: &AppState, meta: RequestMeta) -> Ctx {
    Ctx {
        state: state.clone(),
        actor: Actor::Anonymous,
        meta,
    }
}

/// `GET /t/{slug}/invitations/{token}`.
pub async fn show(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
    meta: RequestMeta,
) -> Response {
    let tenant = match tenant(&state, &slug).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    match invitations::pending(&anonymous(&state, meta), &tenant, &token).await {
        Ok(inv) => form(StatusCode::OK, &tenant, inv.role.as_str(), inv.email.as_str(), None),
        Err(Refused::Unavailable(e)) => {
            tracing::warn!(error = %e, "invitation page: store unavailable");
            unavailable()
        }
        Err(_) => unusable(),
    }
}

/// `POST /t/{slug}/invitations/{token}` (form: email, password).
pub async fn accept(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
    meta: RequestMeta,
    Form(input): Form<AcceptForm>,
) -> Response {
    let tenant = match tenant(&state, &slug).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let ctx = anonymous(&state, meta);
    let typed = input.email.trim().to_lowercase();
    if state.oauth.logins.check_key(&(tenant.id, typed.clone())).is_err() {
        let role = invitations::pending(&ctx, &tenant, &token).await.map(|i| i.role);
        let role = role.as_ref().map_or("member", |r| r.as_str());
        let wait = "Too many attempts. Wait a minute and try again.";
        return form(StatusCode::TOO_MANY_REQUESTS, &tenant, role, &typed, Some(wait));
    }
    match invitations::accept(&ctx, &tenant, &token, &input.email, input.password).await {
        Ok(member) => html(
            StatusCode::OK,
            "Joined",
            &format!(
                "<h1>Welcome to {}</h1><p>You joined as <strong>{}</strong>. You can close this page.</p>",
                escape(tenant.name.as_str()),
                escape(member.role.as_str())
            ),
        ),
        Err(Refused::BadCredentials(role)) => form(
            StatusCode::UNAUTHORIZED,
            &tenant,
            role.as_str(),
            &typed,
            Some("Wrong e-mail or password."),
        ),
        Err(Refused::Unusable) => unusable(),
        Err(Refused::Unavailable(e)) => {
            tracing::warn!(error = %e, "invitation acceptance: store unavailable");
            unavailable()
        }
    }
}
