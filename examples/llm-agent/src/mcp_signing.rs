//! An rmcp HTTP client that signs every request with casebridge's HMAC v2
//! (direction `to-casebridge`, method, path with query, timestamp and the
//! body digest; docs/agents.md), for agents configured with
//! `[agents.auth] type = "hmac"`.
//!
//! It wraps rmcp's own reqwest client: the JSON-RPC message is serialized
//! here to sign its bytes, and rmcp's client sends the same message, which
//! serializes to the same bytes (serde_json is deterministic for one value).

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::Sse;

#[derive(Clone)]
pub struct SigningClient {
    pub inner: reqwest::Client,
    pub agent: String,
    pub key_id: String,
    pub secret: Arc<[u8]>,
}

impl std::fmt::Debug for SigningClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningClient").field("agent", &self.agent).finish_non_exhaustive()
    }
}

/// The request target of `uri` as signed: path and query, as on the wire.
pub fn path_and_query(uri: &str) -> String {
    match reqwest::Url::parse(uri) {
        Ok(url) => match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        },
        Err(_) => "/".into(),
    }
}

impl SigningClient {
    /// `headers` plus the signature headers for this request.
    pub fn signed(
        &self,
        method: &str,
        uri: &str,
        body: &[u8],
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> HashMap<HeaderName, HeaderValue> {
        use casebridge::agent_auth::{sign_v2, Direction, RequestFacts};
        let timestamp = chrono::Utc::now().timestamp();
        let path = path_and_query(uri);
        let facts = RequestFacts {
            direction: Direction::ToCasebridge,
            agent: &self.agent,
            method,
            path_and_query: &path,
            body,
        };
        let signature = sign_v2(&self.secret, &facts, timestamp);
        let mut put = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put("x-casebridge-agent", &self.agent);
        put("x-casebridge-key-id", &self.key_id);
        put("x-casebridge-timestamp", &timestamp.to_string());
        put("x-casebridge-signature", &signature);
        headers
    }
}

impl StreamableHttpClient for SigningClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let body = serde_json::to_vec(&message).unwrap_or_default();
        let headers = self.signed("POST", &uri, &body, custom_headers);
        self.inner
            .post_message_with_max_sse_event_size(uri, message, session_id, auth_header, headers, max_sse_event_size)
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let body = serde_json::to_vec(&message).unwrap_or_default();
        let headers = self.signed("POST", &uri, &body, custom_headers);
        self.inner
            .post_message_with_response_limits(uri, message, session_id, auth_header, headers, limits)
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let headers = self.signed("DELETE", &uri, b"", custom_headers);
        self.inner.delete_session(uri, session_id, auth_header, headers).await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let headers = self.signed("GET", &uri, b"", custom_headers);
        self.inner.get_stream(uri, session_id, last_event_id, auth_header, headers).await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let headers = self.signed("GET", &uri, b"", custom_headers);
        self.inner
            .get_stream_with_max_sse_event_size(uri, session_id, last_event_id, auth_header, headers, max_sse_event_size)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use casebridge::agent_auth::{verify, Direction, HmacKey, PresentedSignature, RequestFacts};

    #[test]
    fn signs_what_casebridge_verifies() {
        let client = SigningClient {
            inner: reqwest::Client::new(),
            agent: "refund-agent".into(),
            key_id: "2026-12".into(),
            secret: Arc::from(b"0123456789abcdef0123456789abcdef".as_slice()),
        };
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let headers = client.signed("POST", "http://127.0.0.1:3000/mcp", body, HashMap::new());
        let get = |name: &str| {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.get(&name).and_then(|v| v.to_str().ok())
        };
        assert_eq!(get("x-casebridge-agent"), Some("refund-agent"));
        let keys = [HmacKey {
            id: "2026-12".into(),
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        }];
        let facts = RequestFacts {
            direction: Direction::ToCasebridge,
            agent: "refund-agent",
            method: "POST",
            path_and_query: "/mcp",
            body,
        };
        let presented = PresentedSignature {
            timestamp: get("x-casebridge-timestamp"),
            signature: get("x-casebridge-signature"),
            key_id: get("x-casebridge-key-id"),
        };
        let now = chrono::Utc::now().timestamp();
        assert!(verify(casebridge::config::HmacScheme::V2, &keys, presented, &facts, now).is_ok());
        assert_eq!(path_and_query("https://api.example/prod/mcp?x=1"), "/prod/mcp?x=1");
    }
}
