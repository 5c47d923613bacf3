//! The representative console (functions/http-api/console, docs/console.md).
//!
//! Without a browser: the pages' security headers, the embedded assets, and
//! the representative's case read (`GET /cases/{caseId}`) against the OpenAPI
//! document, with a discard reason on the timeline by name.
//!
//! In a real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): sign in, the queues, edit and send a draft (a double
//! click sends once), discard with a reason, a page that went stale refused
//! with the API's message, take over (the agent is not called on new mail)
//! and hand back, a customer's `<script>` and an agent's HTML shown as text,
//! axe-core on the queue and case pages (no serious or critical violation),
//! and a screenshot of each page under target/console-screenshots/. Without
//! chromedriver the browser test says so and passes, unless
//! CASEBRIDGE_REQUIRE_BROWSER=1, when it fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use casebridge::agent_client::HttpAgentClient;
use casebridge::ids::CaseId;
use casebridge::model::{CaseStatus, DraftStatus};
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge_tests::*;
use serde_json::{json, Value};

const TOKEN: &str = "console-representative-token-0123";
const NAME: &str = "Rita Reviewer";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn openapi() -> Value {
    serde_json::from_str(&std::fs::read_to_string(workspace().join("docs/openapi.json")).unwrap()).unwrap()
}

fn assert_documented(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let schema = &doc["paths"][path][method.to_lowercase()]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status} is not documented");
    let root = json!({"components": doc["components"], "$ref": schema["$ref"]});
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}\n{body}");
}

/// The customer's first mail: it tries to run a script.
const HOSTILE_CUSTOMER: &str =
    "I want a refund for order 1234. <script>window.__pwned = 'customer'</script>\n\nOn Mon, Ann wrote:\n> earlier text";
/// The agent's question: it carries HTML that must stay text.
const HOSTILE_AGENT: &str = "<b>Which</b> order was it? <img src=x id=agent-img onerror=\"window.__pwned='agent'\">";

/// The pipeline on the embedded store, its API on loopback, a scripted agent
/// that always asks `HOSTILE_AGENT`, semi-autonomous (every answer a draft).
struct Console {
    h: Harness,
    agent: ScriptedAgent,
    base: String,
    http: reqwest::Client,
}

impl Console {
    async fn start() -> Console {
        let agent = spawn_scripted_agent(
            vec![Behaviour::answer(json!({"responseType": "Question", "message": HOSTILE_AGENT}))],
            None,
        )
        .await;
        let config = config(&agent.url, "semi_autonomous");
        let secrets = std::sync::Arc::new(casebridge::secrets::Secrets::env_only());
        let h = Harness::new(Backend::embedded(), config.clone(), HttpAgentClient::new(secrets).unwrap()).await;
        let addr = spawn_api(h.store.clone(), h.backend.mailer(), TOKEN, &config).await;
        Console {
            h,
            agent,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// A new case from a new customer, worked by the agent into a pending draft.
    async fn case_with_draft(&mut self, subject: &str, body: &str) -> CaseId {
        let customer = format!("{}@customer.example", unique("c"));
        let raw = customer_mail(&customer, subject, &format!("{}@c.example", unique("m")), None, body);
        let IngestOutcome::Stored {
            case_id,
            work_item: Some(_),
            ..
        } = self.h.ingest(&raw).await
        else {
            panic!("no case with a turn opened");
        };
        self.h.one_turn(&case_id).await;
        let case = self.h.case(&case_id).await;
        assert_eq!(case.status, CaseStatus::PendingReview, "{case:?}");
        case_id
    }

    async fn rep(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("x-casebridge-representative", "Robin Other");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn pending_draft(&self, case: &CaseId) -> String {
        let drafts = self.h.drafts(case).await;
        let draft = drafts
            .iter()
            .find(|d| d.status == DraftStatus::PendingReview)
            .expect("a pending draft");
        casebridge_http_api::public_draft_id(&draft.id)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_pages_carry_a_strict_policy_and_only_embedded_assets() {
    let c = Console::start().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/views.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = c.http.get(format!("{}{path}", c.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(get("content-type").starts_with(kind), "{path}: {}", get("content-type"));
        let csp = get("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{path}");
    }
    let page = c.http.get(&c.base).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"<script type="module" src="/console/app.js"></script>"#), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from another origin: {page}"
    );
    let missing = c.http.get(format!("{}/console/nope.js", c.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("content-security-policy"));
    // The console needs no token; the API behind it does.
    let (status, _) = (c.http.get(format!("{}/drafts", c.base)).send().await.unwrap().status().as_u16(), ());
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draft_sent_back_with_a_note_opens_a_turn_whose_context_has_the_note() {
    let mut c = Console::start().await;
    let doc = openapi();
    let case = c.case_with_draft("Refund please", "Please refund order 1234.").await;
    let draft = c.pending_draft(&case).await;
    let send_back = format!("/cases/{case}/drafts/{draft}/send-back");
    for (body, code) in [
        (None, 400),
        (Some(json!({})), 400),
        (Some(json!({"note": 7})), 400),
        (Some(json!({"note": "ok", "extra": true})), 400),
        (Some(json!({"note": "x".repeat(2001)})), 400),
        (Some(json!({"note": "  \n "})), 409),
    ] {
        let (status, answer) = c.rep(reqwest::Method::POST, &send_back, body.clone()).await;
        assert_eq!(status, code, "{body:?}: {answer}");
        assert_documented(&doc, "POST", "/cases/{caseId}/drafts/{draftId}/send-back", code, &answer);
    }
    assert_eq!(
        c.h.drafts(&case).await[0].status,
        DraftStatus::PendingReview,
        "a refused request changes nothing"
    );
    let calls = c.agent.calls().len();

    let (status, answer) = c
        .rep(
            reqwest::Method::POST,
            &send_back,
            Some(json!({"note": "Ask for\n a photo  of the damage"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_documented(&doc, "POST", "/cases/{caseId}/drafts/{draftId}/send-back", 200, &answer);
    // Sent back once: the same draft again is refused.
    let (status, answer) = c.rep(reqwest::Method::POST, &send_back, Some(json!({"note": "again"}))).await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("not_applicable")), "{answer}");

    let (_, context) = casebridge::context::case_context(&c.h.store, &case).await.unwrap();
    let notes: Vec<&str> = context.representative_notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(
        notes,
        vec!["Robin Other sent the question draft back to the agent: Ask for a photo of the damage"]
    );
    let (_, view) = c.rep(reqwest::Method::GET, &format!("/cases/{case}"), None).await;
    assert_documented(&doc, "GET", "/cases/{caseId}", 200, &view);
    assert_eq!(view["representativeNotes"][0]["text"], json!(notes[0]));

    // The agent is called again and drafts anew.
    c.h.one_turn(&case).await;
    assert_eq!(c.agent.calls().len(), calls + 1);
    let drafts = c.h.drafts(&case).await;
    let statuses: Vec<DraftStatus> = drafts.iter().map(|d| d.status).collect();
    assert_eq!(statuses, vec![DraftStatus::Discarded, DraftStatus::PendingReview]);

    // Taken over, the case has no agent to send back to: refused, nothing changes.
    let (status, _) = c.rep(reqwest::Method::POST, &format!("/cases/{case}/take-over"), None).await;
    assert_eq!(status, 200);
    let redraft = c.pending_draft(&case).await;
    let (status, answer) = c
        .rep(
            reqwest::Method::POST,
            &format!("/cases/{case}/drafts/{redraft}/send-back"),
            Some(json!({"note": "shorter please"})),
        )
        .await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("not_applicable")), "{answer}");
    assert_eq!(
        c.h.drafts(&case)
            .await
            .iter()
            .filter(|d| d.status == DraftStatus::PendingReview)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_representatives_case_read_is_documented_and_a_discard_reason_names_who() {
    let mut c = Console::start().await;
    let doc = openapi();
    let case = c.case_with_draft("Refund please", HOSTILE_CUSTOMER).await;
    let path = format!("/cases/{case}");
    let unauthenticated = c.http.get(format!("{}{path}", c.base)).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let (status, view) = c.rep(reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{view}");
    assert_documented(&doc, "GET", "/cases/{caseId}", 200, &view);
    assert_eq!(view["caseId"], json!(case.to_string()));
    assert_eq!(view["intent"], "refund");
    assert_eq!(view["agent"], "refund-agent");
    assert_eq!(view["workflow"], "semi_autonomous");
    assert_eq!(
        view["thread"][0]["newText"].as_str().map(|t| t.contains("<script>")),
        Some(true),
        "{view}"
    );
    assert_eq!(view["turns"][0]["message"], HOSTILE_AGENT);
    let draft = &view["drafts"][0];
    assert_eq!(draft["status"], "pending_review");
    assert!(draft["body"].as_str().unwrap().contains("<b>Which</b>"), "{draft}");

    // The queues carry the intent (and the escalations the agent).
    let (_, drafts) = c.rep(reqwest::Method::GET, "/drafts", None).await;
    assert_documented(&doc, "GET", "/drafts", 200, &drafts);
    let listed = drafts["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["caseId"] == json!(case.to_string()))
        .unwrap();
    assert_eq!(listed["intent"], "refund");

    // Discard with a reason: on the timeline with the representative's name.
    let draft_id = draft["draftId"].as_str().unwrap();
    let discard = format!("/cases/{case}/drafts/{draft_id}/discard");
    let (status, body) = c.rep(reqwest::Method::POST, &discard, Some(json!({"reason": 42}))).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_body")));
    let (status, body) = c
        .rep(reqwest::Method::POST, &discard, Some(json!({"reason": "x".repeat(501)})))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_body")));
    assert_eq!(
        c.h.drafts(&case).await[0].status,
        DraftStatus::PendingReview,
        "a refused request changes nothing"
    );
    let (status, body) = c
        .rep(
            reqwest::Method::POST,
            &discard,
            Some(json!({"reason": "  wrong order\n\n   number "})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = c.rep(reqwest::Method::POST, &discard, Some(json!({"reason": "again"}))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_applicable")), "{body}");
    let (_, timeline) = c.rep(reqwest::Method::GET, &format!("/cases/{case}/timeline"), None).await;
    let details: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(
        details.contains(&"Robin Other discarded the question draft: wrong order number"),
        "{details:?}"
    );
    let (_, view) = c.rep(reqwest::Method::GET, &path, None).await;
    assert_eq!(view["drafts"][0]["status"], "discarded");
    assert_documented(&doc, "GET", "/cases/{caseId}", 200, &view);

    let (status, body) = c.rep(reqwest::Method::GET, "/cases/CB-0000000000", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("case_not_found")));
    let (status, body) = c.rep(reqwest::Method::GET, "/cases/nonsense", None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_case_id")));
}

// ---------------------------------------------------------------------------
// A small typed WebDriver client (W3C WebDriver over the workspace's reqwest).

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    http: reqwest::Client,
    session: String,
    driver: tokio::process::Child,
    profile: PathBuf,
}

#[derive(Clone, Debug)]
struct Element(String);

/// Where chromedriver is, or why the browser tests cannot run.
fn chromedriver() -> Result<PathBuf, String> {
    let path = std::env::var_os("CASEBRIDGE_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    if !path.exists() {
        return Err(format!("{} not found (apt-get install chromium chromium-driver)", path.display()));
    }
    Ok(path)
}

fn chromium() -> PathBuf {
    std::env::var_os("CASEBRIDGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn browser_required() -> bool {
    std::env::var("CASEBRIDGE_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

impl Browser {
    async fn start(driver_path: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready {
                let status: Value = response.json().await.unwrap_or(Value::Null);
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(unique("casebridge-chromium-"));
        std::fs::create_dir_all(&profile).unwrap();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1366,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium(), "args": args},
            "timeouts": {"script": 30000, "pageLoad": 30000, "implicit": 0}
        }}});
        let response: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {response}"))
            .to_string();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        } else if method == reqwest::Method::POST {
            request = request.json(&json!({}));
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        let ok = response.status().is_success();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(value["value"].clone())
        }
    }

    async fn must(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {path} failed: {e}"))
    }

    async fn goto(&self, url: &str) {
        self.must(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> Option<Element> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .map_err(|e| {
                if std::env::var_os("CASEBRIDGE_WEBDRIVER_DEBUG").is_some() {
                    eprintln!("find {css}: {e}");
                }
            })
            .ok()?;
        if std::env::var_os("CASEBRIDGE_WEBDRIVER_DEBUG").is_some() {
            eprintln!("find {css}: {found}");
        }
        found[ELEMENT].as_str().map(|id| Element(id.to_string()))
    }

    /// Waits up to 15 s for an element matching `css`.
    async fn wait(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(Instant::now() < deadline, "no element {css} appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 15 s for the script (a function body) to return true.
    async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.run(script, json!([])).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn run(&self, script: &str, args: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn run_async(&self, script: &str, args: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn click(&self, element: &Element) {
        self.must(reqwest::Method::POST, &format!("/element/{}/click", element.0), None)
            .await;
    }

    async fn double_click(&self, element: &Element) {
        let origin = json!({ELEMENT: element.0});
        let actions = json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "origin": origin, "x": 0, "y": 0, "duration": 0},
            {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0},
            {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}
        ]}]});
        self.must(reqwest::Method::POST, "/actions", Some(actions)).await;
        self.command(reqwest::Method::DELETE, "/actions", None).await.ok();
    }

    async fn clear(&self, element: &Element) {
        self.must(reqwest::Method::POST, &format!("/element/{}/clear", element.0), None)
            .await;
    }

    async fn type_into(&self, element: &Element, text: &str) {
        self.must(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let element = self.wait(css).await;
        self.must(reqwest::Method::GET, &format!("/element/{}/text", element.0), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Types into the focused element (keyboard only).
    async fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for ch in text.chars() {
            actions.push(json!({"type": "keyDown", "value": ch.to_string()}));
            actions.push(json!({"type": "keyUp", "value": ch.to_string()}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.must(reqwest::Method::POST, "/actions", Some(body)).await;
    }

    /// A screenshot of the whole page (the window grown to its height for it).
    async fn screenshot(&self, name: &str) {
        let height = self
            .run(
                "return Math.min(4000, Math.max(900, document.documentElement.scrollHeight));",
                json!([]),
            )
            .await
            .as_u64()
            .unwrap_or(900);
        self.must(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": 1366, "height": height})),
        )
        .await;
        let data = self.must(reqwest::Method::GET, "/screenshot", None).await;
        self.must(reqwest::Method::POST, "/window/rect", Some(json!({"width": 1366, "height": 900})))
            .await;
        let png = base64_decode(data.as_str().unwrap_or(""));
        let dir = workspace().join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs axe-core in the page; returns the serious and critical violations.
    async fn axe(&self, source: &str) -> Vec<String> {
        self.run(&format!("{source}\n;return typeof window.axe;"), json!([])).await;
        let result = self
            .run_async(
                "const done = arguments[arguments.length - 1];\
                 window.axe.run(document, {resultTypes: ['violations']})\
                   .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                     .map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
                   .catch(e => done(['axe failed: ' + e]));",
                json!([]),
            )
            .await;
        serde_json::from_value(result).unwrap_or_else(|e| vec![format!("axe answered something else: {e}")])
    }

    async fn quit(mut self) {
        self.command(reqwest::Method::DELETE, "", None).await.ok();
        self.session.clear();
        self.driver.start_kill().ok();
        let _ = self.driver.wait().await;
    }
}

impl Drop for Browser {
    /// Closes the session (so Chromium exits) when a test fails midway; the
    /// driver is killed with its handle.
    fn drop(&mut self) {
        if let Some(rest) = self.session.strip_prefix("http://") {
            if let Some((host, path)) = rest.split_once('/') {
                use std::io::{Read, Write};
                if let Ok(mut stream) = std::net::TcpStream::connect(host) {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let request = format!("DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    if stream.write_all(request.as_bytes()).is_ok() {
                        let _ = stream.read(&mut [0u8; 1024]);
                    }
                }
            }
        }
        std::fs::remove_dir_all(&self.profile).ok();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// axe-core's browser build, installed by infra/test.sh (pinned, git-ignored).
fn axe_source() -> Option<String> {
    let path = std::env::var_os("CASEBRIDGE_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/axe-core/node_modules/axe-core/axe.min.js"));
    std::fs::read_to_string(path).ok()
}

async fn assert_accessible(browser: &Browser, axe: Option<&str>, page: &str) {
    let Some(axe) = axe else { return };
    let violations = browser.axe(axe).await;
    assert!(
        violations.is_empty(),
        "{page}: serious or critical accessibility violations: {violations:#?}"
    );
}

/// The page's rendered text of the whole view.
async fn view_text(browser: &Browser) -> String {
    browser.text("#view").await
}

async fn no_markup_from_data(browser: &Browser, page: &str) {
    let found = browser
        .run(
            "return {scripts: document.querySelectorAll('#view script').length,\
                     bold: document.querySelectorAll('#view b').length,\
                     images: document.querySelectorAll('#view img').length,\
                     pwned: window.__pwned === undefined ? null : String(window.__pwned)};",
            json!([]),
        )
        .await;
    assert_eq!(found, json!({"scripts": 0, "bold": 0, "images": 0, "pwned": null}), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_representative_works_cases_in_the_browser() {
    let driver = match chromedriver() {
        Ok(path) => path,
        Err(why) if browser_required() => panic!("CASEBRIDGE_REQUIRE_BROWSER=1 but the browser cannot run: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: the console's browser test needs chromedriver: {why}");
            return;
        }
    };
    let axe = axe_source();
    if axe.is_none() {
        assert!(
            !browser_required(),
            "CASEBRIDGE_REQUIRE_BROWSER=1 but axe-core is not installed (infra/test.sh installs it into target/axe-core)"
        );
        eprintln!("axe-core not installed under target/axe-core: accessibility checks skipped");
    }
    let mut c = Console::start().await;
    let send_case = c.case_with_draft("Refund please", HOSTILE_CUSTOMER).await;
    let discard_case = c.case_with_draft("Money back", "Please give me my money back for order 77.").await;
    let stale_case = c.case_with_draft("Refund for 88", "I would like a refund for order 88.").await;
    let hold_case = c.case_with_draft("Refund for 99", "Please refund order 99.").await;
    let held = match c
        .h
        .ingest(&customer_mail(
            "hal@customer.example",
            "Where is my order?",
            &format!("{}@c.example", unique("m")),
            None,
            "Where is my order? The tracking has not moved.",
        ))
        .await
    {
        IngestOutcome::Stored { case_id, .. } => case_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.h.case(&held).await.agent, None, "order_status has no agent: the case is held");

    // A failed assertion drops the browser, which closes the session and stops chromedriver.
    let browser = Browser::start(&driver).await;
    work_cases(
        &browser,
        &mut c,
        axe.as_deref(),
        [&send_case, &discard_case, &stale_case, &hold_case, &held],
    )
    .await;
    browser.quit().await;
}

/// Opens a case page and waits until it shows that case (a hash change
/// keeps the previous page on screen until the new one is loaded).
async fn open_case(browser: &Browser, base: &str, case: &CaseId) {
    browser.goto(&format!("{base}/#/case/{case}")).await;
    browser.wait(&format!("section.case[data-case='{case}']")).await;
}

async fn work_cases(browser: &Browser, c: &mut Console, axe: Option<&str>, cases: [&CaseId; 5]) {
    let [send_case, discard_case, stale_case, hold_case, held] = cases;
    let base = c.base.clone();

    // Sign in: a wrong token is refused, then the right one, by keyboard.
    browser.goto(&format!("{base}/")).await;
    let name = browser.wait("#sign-in:not([hidden]) #sign-in-name").await;
    browser.screenshot("sign-in").await;
    assert_accessible(browser, axe, "sign-in").await;
    browser.type_into(&name, NAME).await;
    let token = browser.wait("#sign-in-token").await;
    browser.type_into(&token, "not-the-token").await;
    browser.click(&browser.wait("#sign-in-submit").await).await;
    browser
        .wait_until(
            "the refusal",
            "return document.getElementById('alert').textContent.includes('refused');",
        )
        .await;
    browser.clear(&token).await;
    browser.click(&token).await;
    browser.keys(&format!("{TOKEN}\u{E007}")).await; // Enter submits the form.
    browser.wait("#draft-queue").await;
    let stored = browser
        .run(
            "return [sessionStorage.getItem('casebridge.console.token'), localStorage.length];",
            json!([]),
        )
        .await;
    assert_eq!(stored, json!([TOKEN, 0]), "the token is kept in sessionStorage only");
    assert_eq!(browser.text("#who").await, NAME);

    // The draft queue: every draft, oldest first, with intent and age; counts in the navigation.
    browser
        .wait_until("the counts", "return document.getElementById('count-drafts').textContent === '4';")
        .await;
    assert_eq!(browser.text("#count-held").await, "1");
    assert_eq!(browser.text("#count-escalations").await, "0");
    let order = browser
        .run(
            "return [...document.querySelectorAll('#draft-queue tbody tr')].map(r => r.dataset.case);",
            json!([]),
        )
        .await;
    let expected: Vec<String> = [send_case, discard_case, stale_case, hold_case]
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(order, json!(expected), "oldest first");
    let queue = view_text(browser).await;
    assert!(queue.contains("refund") && queue.contains("question"), "{queue}");
    browser.screenshot("drafts-queue").await;
    assert_accessible(browser, axe, "drafts queue").await;

    // The case page: the customer's <script> and the agent's HTML are text.
    browser
        .click(&browser.wait(&format!("#draft-queue tr[data-case='{send_case}'] a")).await)
        .await;
    browser.wait(&format!("section.case[data-case='{send_case}'] textarea")).await;
    let page = view_text(browser).await;
    assert!(page.contains("<script>window.__pwned = 'customer'</script>"), "{page}");
    assert!(page.contains("<b>Which</b> order was it?"), "{page}");
    assert!(!page.contains("earlier text"), "quoted history is folded: {page}");
    let folded = browser
        .run(
            "return [...document.querySelectorAll('#view details')].map(d => d.open + ':' + d.textContent.includes('earlier text'));",
            json!([]),
        )
        .await;
    assert_eq!(folded[0], "false:true", "{folded}");
    no_markup_from_data(browser, "case page").await;
    let textarea = browser.wait("section.case textarea").await;
    let value = browser.run("return arguments[0].value;", json!([{ELEMENT: textarea.0}])).await;
    assert!(
        value.as_str().unwrap().contains("<img src=x"),
        "the draft's HTML is in the editor as text: {value}"
    );
    browser.screenshot("case").await;
    assert_accessible(browser, axe, "case page").await;

    // Edit and send, with a double click: one mail, the edited text, the draft gone.
    browser.clear(&textarea).await;
    browser
        .type_into(&textarea, "Hello, your refund for order 1234 is on its way.")
        .await;
    let send = browser.wait("section.case button.send-draft").await;
    browser.double_click(&send).await;
    browser
        .wait_until("the send", "return document.getElementById('status').textContent.includes('done');")
        .await;
    browser.wait("section.case ul.done-drafts").await;
    let customer = c.h.case(send_case).await.customer;
    let mails = c.h.sent_to(&customer).await;
    assert_eq!(mails.len(), 1, "a double click sends one mail: {mails:?}");
    assert!(
        mails[0].text.contains("your refund for order 1234 is on its way") && !mails[0].text.contains("Which"),
        "the edited text went: {}",
        mails[0].text
    );
    assert_eq!(c.h.outbound(send_case).await.len(), 1);
    let drafts = c.h.drafts(send_case).await;
    assert!(drafts[0].edited && drafts[0].status == DraftStatus::Sent, "{drafts:?}");
    let timeline = browser.text("#timeline").await;
    assert!(timeline.contains("question draft sent by a representative (edited)"), "{timeline}");
    assert!(timeline.contains(&format!("{NAME} sent the question draft")), "{timeline}");
    browser.goto(&format!("{base}/#/drafts")).await;
    browser.wait(&format!("#draft-queue tr[data-case='{discard_case}']")).await;
    browser
        .wait_until(
            "the queue without the sent draft",
            "return document.getElementById('count-drafts').textContent === '3';",
        )
        .await;
    assert!(browser.find(&format!("#draft-queue tr[data-case='{send_case}']")).await.is_none());

    // Discard with a reason: on the timeline by name.
    open_case(browser, &base, discard_case).await;
    let reason = browser.wait("section.case input[name='reason']").await;
    browser.type_into(&reason, "Customer already refunded by phone").await;
    browser.click(&browser.wait("section.case button.discard-draft").await).await;
    browser.wait("section.case ul.done-drafts").await;
    let timeline = browser.text("#timeline").await;
    assert!(
        timeline.contains(&format!("{NAME} discarded the question draft: Customer already refunded by phone")),
        "{timeline}"
    );
    assert_eq!(c.h.drafts(discard_case).await[0].status, DraftStatus::Discarded);
    assert!(c.h.sent_to(&c.h.case(discard_case).await.customer).await.is_empty());

    // A page that went stale: another representative discarded meanwhile; sending is refused with the API's message.
    open_case(browser, &base, stale_case).await;
    let send = browser
        .wait(&format!("section.case[data-case='{stale_case}'] button.send-draft"))
        .await;
    let draft = c.pending_draft(stale_case).await;
    let (status, body) = c
        .rep(reqwest::Method::POST, &format!("/cases/{stale_case}/drafts/{draft}/discard"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    browser.click(&send).await;
    browser
        .wait_until(
            "the refusal",
            "return document.getElementById('alert').textContent.includes('draft_not_pending');",
        )
        .await;
    let alert = browser.text("#alert").await;
    assert!(alert.contains("the draft was already sent or discarded"), "{alert}");
    assert!(c.h.sent_to(&c.h.case(stale_case).await.customer).await.is_empty(), "nothing sent");

    // Take over: new mail does not call the agent; hand back: it does.
    open_case(browser, &base, hold_case).await;
    browser.click(&browser.wait("#take-over").await).await;
    browser.wait("#hand-back").await;
    assert_eq!(c.h.case(hold_case).await.status, CaseStatus::Escalated);
    let calls = c.agent.calls().len();
    match c.h.customer_writes(hold_case, "Any news on my refund?").await {
        IngestOutcome::Stored { work_item: None, .. } => {}
        other => panic!("mail to a held case opens no turn: {other:?}"),
    }
    c.h.agent_step().await;
    assert_eq!(c.agent.calls().len(), calls, "the agent is not called while the case is held");
    browser.goto(&format!("{base}/#/escalations")).await;
    browser.wait(&format!("#case-queue tr[data-case='{hold_case}']")).await;
    assert_eq!(browser.text("#count-escalations").await, "1");
    let queue = view_text(browser).await;
    assert!(queue.contains(&format!("taken over by {NAME}")), "{queue}");
    browser.screenshot("escalated-queue").await;
    assert_accessible(browser, axe, "escalated queue").await;
    open_case(browser, &base, hold_case).await;
    browser.click(&browser.wait("#hand-back").await).await;
    browser.wait("#take-over").await;
    c.h.agent_step().await;
    assert_eq!(
        c.agent.calls().len(),
        calls + 1,
        "handed back, the agent is called with the mail that came"
    );
    let timeline = browser.text("#timeline").await;
    assert!(timeline.contains(&format!("{NAME} took the case over")), "{timeline}");
    assert!(
        timeline.contains(&format!("{NAME} handed the case back to agent refund-agent")),
        "{timeline}"
    );

    // Sent as drafted, by keyboard: not counted as edited.
    let send = browser
        .wait(&format!("section.case[data-case='{hold_case}'] button.send-draft"))
        .await;
    browser
        .run(
            "arguments[0].focus(); return document.activeElement === arguments[0];",
            json!([{ELEMENT: send.0}]),
        )
        .await;
    browser.keys("\u{E006}").await; // Return on the focused button.
    browser.wait(&format!("section.case[data-case='{hold_case}'] ul.done-drafts")).await;
    let sent = c.h.drafts(hold_case).await;
    let sent = sent.iter().find(|d| d.status == DraftStatus::Sent).expect("the draft was sent");
    assert!(!sent.edited, "sent as drafted: {sent:?}");
    let mails = c.h.sent_to(&c.h.case(hold_case).await.customer).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.contains("<b>Which</b> order was it?"), "{}", mails[0].text);

    // Handed back by someone else meanwhile: the page's hand back is refused with the API's reason.
    let (status, body) = c.rep(reqwest::Method::POST, &format!("/cases/{hold_case}/take-over"), None).await;
    assert_eq!(status, 200, "{body}");
    browser.click(&browser.wait("#reload").await).await;
    let hand_back = browser.wait(&format!("section.case[data-case='{hold_case}'] #hand-back")).await;
    let (status, body) = c.rep(reqwest::Method::POST, &format!("/cases/{hold_case}/hand-back"), None).await;
    assert_eq!(status, 200, "{body}");
    browser.click(&hand_back).await;
    browser
        .wait_until(
            "the refusal",
            "return document.getElementById('alert').textContent.includes('not held by a representative');",
        )
        .await;
    let alert = browser.text("#alert").await;
    assert!(
        alert.starts_with("Handing the case back was refused:") && alert.contains("(not_applicable)"),
        "{alert}"
    );
    browser.wait(&format!("section.case[data-case='{hold_case}'] #take-over")).await;

    // Send back to the agent with a note: the draft goes, the note is in the
    // agent's case context, the agent is called again and its redraft shows.
    let back_case = c
        .case_with_draft("Refund for 55", "Please refund order 55, it arrived broken.")
        .await;
    open_case(browser, &base, &back_case).await;
    let calls = c.agent.calls().len();
    let note = browser
        .wait(&format!("section.case[data-case='{back_case}'] textarea[name='note']"))
        .await;
    browser.type_into(&note, "Ask for a photo of the damage too").await;
    browser
        .click(
            &browser
                .wait(&format!("section.case[data-case='{back_case}'] button.send-back-draft"))
                .await,
        )
        .await;
    browser
        .wait_until(
            "the draft sent back",
            "return document.getElementById('timeline').textContent.includes('draft back to the agent');",
        )
        .await;
    let (_, context) = casebridge::context::case_context(&c.h.store, &back_case).await.unwrap();
    let notes: Vec<&str> = context.representative_notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(
        notes,
        vec![format!("{NAME} sent the question draft back to the agent: Ask for a photo of the damage too").as_str()]
    );
    c.h.one_turn(&back_case).await;
    assert_eq!(c.agent.calls().len(), calls + 1, "the agent is called again");
    let drafts = c.h.drafts(&back_case).await;
    let count = |status: DraftStatus| drafts.iter().filter(|d| d.status == status).count();
    assert_eq!(
        (count(DraftStatus::Discarded), count(DraftStatus::PendingReview)),
        (1, 1),
        "{drafts:?}"
    );
    browser.click(&browser.wait("#reload").await).await;
    browser
        .wait(&format!("section.case[data-case='{back_case}'] button.send-back-draft"))
        .await;
    // Without a note it is refused, and the redraft stays.
    browser
        .click(
            &browser
                .wait(&format!("section.case[data-case='{back_case}'] button.send-back-draft"))
                .await,
        )
        .await;
    browser
        .wait_until(
            "the refusal",
            "return document.getElementById('alert').textContent.includes('a note for the agent is needed');",
        )
        .await;
    assert_eq!(c.agent.calls().len(), calls + 1);
    assert_eq!(
        c.h.drafts(&back_case)
            .await
            .iter()
            .filter(|d| d.status == DraftStatus::PendingReview)
            .count(),
        1
    );

    // Held cases (no agent): their own queue, no hand back offered.
    browser.goto(&format!("{base}/#/held")).await;
    browser.wait(&format!("#case-queue tr[data-case='{held}']")).await;
    browser.screenshot("held-queue").await;
    assert_accessible(browser, axe, "held queue").await;
    open_case(browser, &base, held).await;
    browser.wait(&format!("section.case[data-case='{held}']")).await;
    assert!(
        browser.find("#hand-back").await.is_none(),
        "a case without an agent cannot be handed back"
    );

    // Sign out forgets the token.
    browser.click(&browser.wait("#sign-out").await).await;
    browser.wait("#sign-in:not([hidden]) #sign-in-name").await;
    let stored = browser
        .run("return sessionStorage.getItem('casebridge.console.token');", json!([]))
        .await;
    assert_eq!(stored, Value::Null);
}
