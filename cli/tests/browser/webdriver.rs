//! A small blocking W3C WebDriver client for the browser tests: it starts `chromedriver` on a
//! free loopback port, opens one headless Chromium session, and drives it (navigate, find by CSS,
//! type, click, run scripts, wait, screenshots, file uploads). Dropping it ends the session and
//! kills chromedriver's whole process group, so no browser outlives a test, even a failed one.
//!
//! Test support, so protocol failures panic with the command and the driver's message.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Keys from the WebDriver key table, for [`Element::send_keys`] and [`Browser::press`].
pub mod key {
    pub const ENTER: &str = "\u{E007}";
    pub const TAB: &str = "\u{E004}";
}

/// The programs a session needs, found on the PATH.
pub struct Programs {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Programs {
    /// `chromium` and `chromedriver` from the PATH (Debian's `chromium` and `chromium-driver`
    /// packages), or a message naming what is missing and how to install it.
    pub fn find() -> Result<Programs, String> {
        let which = |name: &str| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        };
        match (which("chromium"), which("chromedriver")) {
            (Some(chromium), Some(chromedriver)) => Ok(Programs {
                chromium,
                chromedriver,
            }),
            (chromium, _) => Err(format!(
                "the browser tests need {} on the PATH\n\nInstall them with `apt-get install \
                 chromium chromium-driver` (.ci/run does so when they are missing).",
                if chromium.is_none() {
                    "chromium and chromedriver"
                } else {
                    "chromedriver"
                }
            )),
        }
    }
}

/// How the browser presents itself.
pub enum Screen {
    /// A desktop window of this size in CSS pixels.
    Desktop { width: u32, height: u32 },
    /// Chromium's mobile emulation: a touch device whose viewport is this size in CSS pixels,
    /// honouring `<meta name="viewport">` as a phone does.
    Phone { width: u32, height: u32 },
}

/// A chromedriver process with one open Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    // Chromium's profile: fresh per session, removed after it.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start(programs: &Programs, screen: Screen) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (driver, base) = start_driver(&programs.chromedriver, profile.path());
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            _profile: profile,
        };
        let mut args = vec![
            "--headless=new".to_owned(),
            // The tests run as root in containers, where Chromium's sandbox cannot start.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // Nothing may leave the machine: no QUIC probes, updates, sync or other
            // background requests.
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!(
                "--user-data-dir={}",
                browser._profile.path().join("chromium").display()
            ),
        ];
        let mut options = json!({ "binary": programs.chromium });
        match screen {
            Screen::Desktop { width, height } => {
                args.push(format!("--window-size={width},{height}"));
            }
            Screen::Phone { width, height } => {
                options["mobileEmulation"] = json!({
                    "deviceMetrics": { "width": width, "height": height, "pixelRatio": 3.0, "touch": true },
                });
            }
        }
        options["args"] = json!(args);
        let created = browser.post(
            "/session",
            json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
            } } }),
        );
        browser.session = created["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    /// Loads `url` and waits for its `load` event.
    pub fn goto(&self, url: &str) {
        self.session_post("/url", json!({ "url": url }));
    }

    /// The address of the page now shown.
    pub fn url(&self) -> String {
        self.session_get("/url").as_str().unwrap().to_owned()
    }

    /// The first element matching a CSS selector, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let found = self.send(
            "POST",
            &format!("/session/{}/element", self.session),
            Some(json!({ "using": "css selector", "value": css })),
        );
        match found {
            Ok(value) => Some(self.element(&value)),
            Err(error) if error.error == "no such element" => None,
            Err(error) => panic!("finding {css}: {error}"),
        }
    }

    /// The first element matching a CSS selector; panics when there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element matches {css} on {}", self.url()))
    }

    /// Every element matching a CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.session_post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|value| self.element(value))
            .collect()
    }

    /// Runs `script` as the body of a function called with `args` and returns its result
    /// (elements passed in `args` arrive as DOM nodes).
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.session_post("/execute/sync", json!({ "script": script, "args": args }))
    }

    /// Presses and releases a key on the keyboard, delivered to whatever has the focus.
    pub fn press(&self, key: &str) {
        self.session_post(
            "/actions",
            json!({ "actions": [{
                "type": "key",
                "id": "keyboard",
                "actions": [{ "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }],
            }] }),
        );
        self.send(
            "DELETE",
            &format!("/session/{}/actions", self.session),
            None,
        )
        .unwrap();
    }

    /// Polls `probe` until it returns something or `timeout` passes; panics then, naming
    /// `what` and the page's address.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls a script until it returns something other than `null`, `false` or `undefined`.
    pub fn wait_for_script(&self, what: &str, timeout: Duration, script: &str) -> Value {
        self.wait_for(what, timeout, || {
            let value = self.execute(script, &[]);
            (!matches!(value, Value::Null | Value::Bool(false))).then_some(value)
        })
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_get("/screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }

    fn element(&self, value: &Value) -> Element<'_> {
        Element {
            browser: self,
            id: value[ELEMENT_KEY].as_str().unwrap().to_owned(),
        }
    }

    fn session_get(&self, path: &str) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.send("GET", &path, None)
            .unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    fn session_post(&self, path: &str, body: Value) -> Value {
        self.post(&format!("/session/{}{path}", self.session), body)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.send("POST", path, Some(body))
            .unwrap_or_else(|error| panic!("POST {path}: {error}"))
    }

    /// One WebDriver command: the response's `value`, or the error it reports.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, DriverError> {
        let request = self.agent.request(method, &format!("{}{path}", self.base));
        let response = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
            None => request.call(),
        };
        // Errors come back as 4xx/5xx with a JSON body naming them.
        let response = match response {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: chromedriver did not answer: {error}"),
        };
        let status = response.status();
        let mut reply: Value = serde_json::from_reader(response.into_reader())
            .unwrap_or_else(|e| panic!("{method} {path}: chromedriver's answer is not JSON: {e}"));
        let value = reply["value"].take();
        if status == 200 {
            Ok(value)
        } else {
            Err(DriverError {
                error: value["error"].as_str().unwrap_or_default().to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes Chromium gracefully; the kill below covers a driver that no longer answers.
            let _ = self
                .agent
                .delete(&format!("{}/session/{}", self.base, self.session))
                .timeout(Duration::from_secs(10))
                .call();
        }
        kill_group(&mut self.driver);
    }
}

/// An element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    /// Types into the element (focusing it first); for `<input type=file>`, `text` is the
    /// absolute path of the file to choose.
    pub fn send_keys(&self, text: &str) {
        self.post("/value", json!({ "text": text }));
    }

    /// Clicks the element's centre, as a user would (it must be visible and not covered).
    pub fn click(&self) {
        self.post("/click", json!({}));
    }

    /// An attribute as written in the markup, if present.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.get(&format!("/attribute/{name}"))
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property (`naturalWidth`, `value`, `href` resolved, …).
    pub fn property(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}"))
    }

    /// The rendered text, as a user sees it.
    pub fn text(&self) -> String {
        self.get("/text").as_str().unwrap().to_owned()
    }

    fn get(&self, path: &str) -> Value {
        self.browser
            .session_get(&format!("/element/{}{path}", self.id))
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.browser
            .session_post(&format!("/element/{}{path}", self.id), body)
    }
}

/// A WebDriver error: its code (`no such element`, …) and message.
#[derive(Debug)]
struct DriverError {
    error: String,
    message: String,
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// Starts chromedriver on a free loopback port, in its own process group (Chromium joins it),
/// and waits until it reports ready. Returns it and its base URL.
fn start_driver(program: &Path, dir: &Path) -> (Child, String) {
    let log = dir.join("chromedriver.log");
    // The port is free when asked but could be taken before chromedriver binds it; a driver
    // that exits at once is retried on a new port.
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new(program)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if driver.try_wait().unwrap().is_some() {
                break;
            }
            let ready = ureq::get(&format!("{base}/status"))
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .and_then(|r| serde_json::from_reader::<_, Value>(r.into_reader()).ok())
                .is_some_and(|status| status["value"]["ready"] == true);
            if ready {
                return (driver, base);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_group(&mut driver);
    }
    panic!(
        "{}: never became ready; its log:\n{}",
        program.display(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// SIGKILLs a child's whole process group (it was started as the group's leader) and reaps it.
pub fn kill_group(child: &mut Child) {
    let group = child.id() as libc::pid_t;
    // SAFETY: killpg only sends a signal; the group is the child's own, still unreaped.
    unsafe { libc::killpg(group, libc::SIGKILL) };
    let _ = child.wait();
}
