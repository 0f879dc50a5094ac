//! The token: refused addresses, the `Authorization: Bearer` check on `/api/`, and the cookie
//! the page gets from `/?token=`.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;
use super::App;

/// The cookie the page keeps the token in (HttpOnly: no script reads it).
const COOKIE: &str = "xsearch_token";

/// A token every API request must carry.
pub struct Token(String);

impl Token {
    /// The token to require, if any, refusing to serve an address other machines can reach
    /// without one. An empty token is none.
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Result<Option<Token>> {
        let token = token.filter(|t| !t.is_empty());
        if token.is_none() && !addr.ip().is_loopback() {
            bail!(
                "{addr}: refusing to serve on an address other machines can reach without a \
                 token\n\nSet --token or XSEARCH_TOKEN to a long random string (every API \
                 request must then carry it), or listen on 127.0.0.1."
            );
        }
        let Some(token) = token else { return Ok(None) };
        // It travels in a header and a cookie: keep to characters both take as they are.
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
        {
            bail!(
                "the token has characters other than letters, digits and -._~+/=\n\nUse a \
                 random string of those, e.g. from `openssl rand -hex 32`."
            );
        }
        Ok(Some(Token(token.to_owned())))
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, given: &[u8]) -> bool {
        let want = self.0.as_bytes();
        want.len() == given.len() && want.iter().zip(given).fold(0, |d, (a, b)| d | (a ^ b)) == 0
    }

    fn carried_by(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .any(|t| self.matches(t));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .filter_map(|c| {
                c.trim_ascii()
                    .strip_prefix(COOKIE.as_bytes())?
                    .strip_prefix(b"=")
            })
            .any(|t| self.matches(t));
        bearer || cookie
    }
}

/// Lets an `/api/` request through only with the token (when one is set).
pub async fn require(State(app): State<App>, request: Request, next: Next) -> Response {
    match &app.token {
        Some(token)
            if request.uri().path().starts_with("/api/")
                && !token.carried_by(request.headers()) =>
        {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "a token is needed: send `Authorization: Bearer TOKEN`, or open the page once as /?token=TOKEN")
                    .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        _ => next.run(request).await,
    }
}

/// `/?token=T` with the right token: keeps it in a cookie and sends the browser to the same
/// page without it (so it leaves the address bar and the history); a wrong one is a 401.
pub fn take_from_page(app: &App, pairs: &[(String, String)]) -> Option<Response> {
    let (_, given) = pairs.iter().find(|(name, _)| name == "token")?;
    let Some(token) = app.token.as_ref().filter(|t| t.matches(given.as_bytes())) else {
        return Some(ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response());
    };
    let rest: Vec<String> = pairs
        .iter()
        .filter(|(name, _)| name != "token")
        .map(|(name, value)| format!("{}={}", escape(name), escape(value)))
        .collect();
    let target = if rest.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{}", rest.join("&"))
    };
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", token.0);
    let mut response = Redirect::to(&target).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("token characters were checked"),
    );
    Some(response)
}

/// Percent-escapes all but unreserved characters.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_goes_without_a_token() {
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let v6: SocketAddr = "[::1]:7878".parse().unwrap();
        let open: SocketAddr = "0.0.0.0:7878".parse().unwrap();
        assert!(Token::new(local, None).unwrap().is_none());
        assert!(Token::new(v6, Some("")).unwrap().is_none());
        let err = Token::new(open, None).err().unwrap().to_string();
        assert!(err.starts_with("0.0.0.0:7878: refusing"), "{err}");
        assert!(Token::new(open, Some("s3cret")).unwrap().is_some());
        assert!(Token::new(open, Some("a;b")).is_err());
    }

    #[test]
    fn the_token_comes_by_header_or_cookie() {
        let token = Token("s3cret".into());
        let with = |name, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).unwrap());
            token.carried_by(&headers)
        };
        assert!(with(header::AUTHORIZATION, "Bearer s3cret"));
        assert!(with(header::COOKIE, "a=b; xsearch_token=s3cret"));
        assert!(!with(header::AUTHORIZATION, "Bearer s3cre"));
        assert!(!with(header::AUTHORIZATION, "Bearer s3cret2"));
        assert!(!with(header::AUTHORIZATION, "s3cret"));
        assert!(!with(header::COOKIE, "xsearch_token_x=s3cret"));
    }
}
