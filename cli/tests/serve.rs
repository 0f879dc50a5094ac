//! `xsearch serve` end to end: a real server process on a port the system picks, over an index
//! of the shapes world, spoken to over plain TCP (so requests go out exactly as written, `..`
//! and bad escapes included). The API contract, safety, the token, thumbnails, freshness, load.

#![cfg(unix)]

#[path = "common/server.rs"]
mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

const SHAPES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/models/shapes-tiny"
);
const PARITY_IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/parity/images");

fn xsearch(index: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsearch"));
    cmd.env("XSEARCH_INDEX", index)
        .env("XSEARCH_MODEL", SHAPES)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("XSEARCH_TOKEN");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An index of 48 shapes images and their captions as texts, built once for the tests that
/// only read it.
struct World {
    _dir: tempfile::TempDir,
    index: PathBuf,
    photos: PathBuf,
    items: Vec<xsearch_shapes::Item>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let photos = std::path::absolute(dir.path().join("photos")).unwrap();
        let index = dir.path().join("index");
        let items = xsearch_shapes::write_dataset(&photos, 48, 7).unwrap();
        run_ok(xsearch(&index).arg("index").arg(&photos));
        let captions = dir.path().join("captions.txt");
        let mut lines: Vec<String> = items.iter().map(|it| it.captions[1].clone()).collect();
        lines.sort();
        lines.dedup();
        std::fs::write(&captions, lines.join("\n")).unwrap();
        run_ok(xsearch(&index).args(["texts", "add"]).arg(&captions));
        World {
            _dir: dir,
            index,
            photos,
            items,
        }
    })
}

/// A running `xsearch serve` (stopped by pid when a test fails before stopping it), and the
/// requests the tests send it.
struct Server {
    process: server::Server,
    addr: SocketAddr,
}

impl Server {
    fn start(index: &Path, args: &[&str]) -> Server {
        Self::start_in(index, "", args)
    }

    /// A server in the time zone `tz` (a POSIX rule; empty for the machine's).
    fn start_in(index: &Path, tz: &str, args: &[&str]) -> Server {
        let mut cmd = xsearch(index);
        if !tz.is_empty() {
            cmd.env("TZ", tz);
        }
        cmd.args(["serve", "--addr", "127.0.0.1:0"]).args(args);
        let process = server::Server::start(cmd);
        let addr = process.addr();
        Server { process, addr }
    }

    /// What the server printed on stderr so far.
    fn log(&self) -> String {
        self.process.log()
    }

    fn send(&self, raw: &[u8]) -> Response {
        send(self.addr, raw)
    }

    fn get(&self, target: &str) -> Response {
        self.get_with(target, "")
    }

    fn get_with(&self, target: &str, headers: &str) -> Response {
        self.send(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    }

    fn post(&self, target: &str, content_type: &str, body: &[u8]) -> Response {
        let mut raw = format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        self.send(&raw)
    }

    /// SIGTERM, then the exit status, which must be 0.
    fn stop(self) {
        let log = self.log();
        let exit = self.process.stop();
        assert_eq!(exit.code(), Some(0), "{log}");
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `error` of a JSON error, checking the status.
    fn error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()["error"].as_str().unwrap().to_owned()
    }
}

/// Sends `raw` on a new connection and reads the response to its end (the requests say
/// `Connection: close`).
fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Response {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let body = bytes[end + 4..].to_vec();
    let response = Response {
        status,
        headers,
        body,
    };
    assert_ne!(response.header("transfer-encoding"), Some("chunked"));
    if let Some(len) = response.header("content-length") {
        assert_eq!(response.body.len(), len.parse::<usize>().unwrap());
    }
    response
}

fn item_at<'a>(world: &'a World, path: &str) -> &'a xsearch_shapes::Item {
    world
        .items
        .iter()
        .find(|it| world.photos.join(&it.file) == Path::new(path))
        .unwrap_or_else(|| panic!("{path} is not a photo of the world"))
}

fn paths(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn dates_cameras_and_sort_filter_on_exif_metadata_and_bad_values_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let photos = std::path::absolute(dir.path().join("photos")).unwrap();
    std::fs::create_dir_all(&photos).unwrap();
    let meta = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/meta");
    for name in ["offset.jpg", "local.jpg", "plain.jpg", "exif.png"] {
        std::fs::copy(meta.join(name), photos.join(name)).unwrap();
    }
    let index = dir.path().join("index");
    run_ok(xsearch(&index).env("TZ", "UTC0").arg("index").arg(&photos));
    let names = |server: &Server, filters: &str| {
        let response = server.get(&format!("/api/search?q=a+photo&k=10{filters}"));
        assert_eq!(response.status, 200, "{filters}: {response:?}");
        let mut names: Vec<String> = paths(&response.json())
            .iter()
            .map(|p| p.strip_prefix(photos.to_str().unwrap()).unwrap()[1..].to_owned())
            .collect();
        names.sort();
        names
    };
    let utc = Server::start_in(&index, "UTC0", &[]);
    // Cameras: "Apple iPhone 12", "Canon EOS 5D", "NIKON D750"; plain.jpg has none.
    assert_eq!(names(&utc, "&camera=IPHONE"), ["local.jpg"]);
    assert_eq!(names(&utc, "&camera=d750"), ["exif.png"]);
    // offset.jpg was taken at 18:03 +02:00, i.e. 16:03Z: `after` is inclusive to the second.
    assert_eq!(
        names(&utc, "&camera=canon&after=2021-07-14T16:03Z"),
        ["offset.jpg"]
    );
    assert!(names(&utc, "&camera=canon&after=2021-07-14T16:03:01Z").is_empty());
    // An offset in the value (`+` escaped): 18:03+01:59 is 16:04Z.
    assert!(names(&utc, "&camera=canon&after=2021-07-14T18:03%2B01:59").is_empty());
    // exif.png was taken at 23:59:59 on 29 February 2020 in New York (-05:00): 04:59:59Z on
    // the 1st of March, so not before it in the server's zone (UTC)...
    assert!(names(&utc, "&camera=nikon&before=2020-03-01").is_empty());
    // ... but before it in New York's.
    utc.stop();
    let new_york = Server::start_in(&index, "EST5EDT,M3.2.0,M11.1.0", &[]);
    assert_eq!(
        names(&new_york, "&before=2020-03-01&camera=nikon"),
        ["exif.png"]
    );

    // sort=date: newest first, plain.jpg by its mtime (the copy, today); each result says
    // when it was taken, in the photo's own zone when it has one.
    let all = new_york.get("/api/search?q=a+photo&k=10&sort=date").json();
    let order: Vec<(String, &str)> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let path = Path::new(r["path"].as_str().unwrap());
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, r["taken"].as_str().unwrap())
        })
        .collect();
    let names: Vec<&str> = order.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["plain.jpg", "offset.jpg", "local.jpg", "exif.png"]);
    assert_eq!(order[1].1, "2021-07-14T18:03:00+02:00");
    assert_eq!(order[3].1, "2020-02-29T23:59:59-05:00");

    for (target, said) in [
        (
            "after=2021-13-01",
            "after=2021-13-01: expected an ISO 8601 date",
        ),
        (
            "before=yesterday",
            "before=yesterday: expected an ISO 8601 date",
        ),
        ("sort=name", "sort=name: give score or date"),
        ("min_score=1.5", "min_score=1.5"),
    ] {
        let err = new_york
            .get(&format!("/api/search?q=a+photo&{target}"))
            .error(400);
        assert!(err.starts_with(said), "{target}: {err}");
    }
    new_york.stop();
}

#[test]
fn search_answers_as_the_cli_does_with_ids_thumbnails_and_originals() {
    let world = world();
    let server = Server::start(&world.index, &[]);
    let found = server.get("/api/search?q=a+red+circle&k=5").json();
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let cli: Vec<Value> =
        run_ok(xsearch(&world.index).args(["query", "--json", "-k", "5", "a red circle"]))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    for (i, (hit, line)) in results.iter().zip(&cli).enumerate() {
        let keys: Vec<&String> = hit.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["id", "image", "path", "rank", "score", "taken", "thumbnail"]
        );
        assert_eq!(hit["rank"], i + 1);
        // The CLI's fields, the same values.
        for field in ["path", "score", "taken"] {
            assert_eq!(hit[field], line[field], "{field}");
        }
        let id = hit["id"].as_str().unwrap();
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{id}"
        );
        assert_eq!(hit["thumbnail"], format!("/api/thumbnail/{id}"));
        assert_eq!(hit["image"], format!("/api/image/{id}"));
    }
    let top = item_at(world, results[0]["path"].as_str().unwrap());
    assert_eq!(
        (top.scene.colour.name(), top.scene.shape.name()),
        ("red", "circle")
    );

    // Paging: offset 2, k 3 are ranks 3 to 5.
    let page = server
        .get("/api/search?q=a%20red%20circle&k=3&offset=2")
        .json();
    assert_eq!(paths(&page), paths(&found)[2..]);
    assert_eq!(page["results"][0]["rank"], 3);

    // More like this: the image itself first, at score 1.
    let id = results[3]["id"].as_str().unwrap();
    let like = server.get(&format!("/api/search?like={id}&k=3")).json();
    assert_eq!(like["results"][0]["id"], id);
    assert!(
        (like["results"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-3,
        "{like}"
    );

    // The folder filter and the score floor.
    let outside = server.get("/api/search?q=red&in=%2Fnowhere").json();
    assert_eq!(outside["results"], Value::Array(vec![]));
    let inside = server
        .get(&format!(
            "/api/search?q=red&k=3&in={}",
            world.photos.display()
        ))
        .json();
    assert_eq!(inside["results"].as_array().unwrap().len(), 3);
    // Between the third and fourth scores (they print rounded to 4 places).
    let floor =
        (results[2]["score"].as_f64().unwrap() + results[3]["score"].as_f64().unwrap()) / 2.0;
    let floored = server
        .get(&format!("/api/search?q=a+red+circle&k=5&min_score={floor}"))
        .json();
    assert_eq!(paths(&floored), paths(&found)[..3]);

    // The original, byte for byte, with the type its content says.
    let original = server.get(&format!("/api/image/{id}"));
    assert_eq!(original.status, 200);
    let path = results[3]["path"].as_str().unwrap();
    assert_eq!(original.body, std::fs::read(path).unwrap());
    let kind = image::guess_format(&original.body).unwrap().to_mime_type();
    assert_eq!(original.header("content-type"), Some(kind));

    // Image → texts: the image's own short caption first.
    let texts = server.get(&format!("/api/texts?like={id}&k=3")).json();
    let item = item_at(world, path);
    assert_eq!(texts["results"][0]["text"], item.captions[1]);
    let keys: Vec<&String> = texts["results"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["rank", "score", "text"]);
    let by_text = server.get("/api/texts?q=a+blue+square&k=1").json();
    assert_eq!(by_text["results"][0]["text"], "a blue square");

    let status = server.get("/api/status").json();
    assert_eq!(status["images"], 48);
    assert_eq!(status["failures_total"], 0);
    assert!(status["texts"].as_u64().unwrap() > 1);
    server.stop();
}

#[test]
fn an_uploaded_image_finds_itself_raw_or_in_a_form() {
    let world = world();
    let server = Server::start(&world.index, &[]);
    let item = &world.items[5];
    let path = world.photos.join(&item.file);
    let bytes = std::fs::read(&path).unwrap();
    // The claimed type is ignored: the content decides.
    let raw = server.post("/api/search?k=2", "image/gif", &bytes).json();
    assert_eq!(raw["results"][0]["path"], path.to_str().unwrap());
    assert!((raw["results"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-3);

    let mut form = b"--XB\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n1\r\n--XB\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    form.extend_from_slice(&bytes);
    form.extend_from_slice(b"\r\n--XB--\r\n");
    let multipart = server
        .post("/api/search", "multipart/form-data; boundary=XB", &form)
        .json();
    assert_eq!(paths(&multipart), [path.to_str().unwrap()]);

    // A form of parameters carries queries too long for a URL; too long for CLIP is a 400.
    let long = format!("q={}", "a".repeat(100 * 1024));
    let err = server
        .post(
            "/api/search",
            "application/x-www-form-urlencoded",
            long.as_bytes(),
        )
        .error(400);
    assert!(err.contains("over the limit of 1000"), "{err}");
    let form = server
        .post(
            "/api/search",
            "application/x-www-form-urlencoded",
            b"q=a+green+square&k=1",
        )
        .json();
    let top = item_at(world, form["results"][0]["path"].as_str().unwrap());
    assert_eq!(
        (top.scene.colour.name(), top.scene.shape.name()),
        ("green", "square")
    );

    let err = server
        .post("/api/search", "image/png", b"not an image")
        .error(400);
    assert!(err.starts_with("the upload is not an image"), "{err}");
    assert_eq!(server.post("/api/search", "image/png", b"").status, 400);
    assert_eq!(
        server.post("/api/search", "application/json", b"{}").status,
        415
    );
    server.stop();
}

#[test]
fn traversal_unknown_ids_and_bad_parameters_are_refused() {
    let world = world();
    let server = Server::start(&world.index, &[]);
    let photo = world.photos.join(&world.items[0].file);
    let photo = photo.to_str().unwrap();
    for target in [
        "/api/image/..",
        "/api/image/../../etc/passwd",
        "/api/image/%2e%2e",
        "/api/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/image/..%2F..%2Fetc%2Fpasswd",
        "/api/image/%2Fetc%2Fpasswd",
        "/api/thumbnail/..%5c..%5cwindows",
        &format!("/api/image/{photo}"),
        &format!("/api/image/{}", photo.replace('/', "%2F")),
        "/api/image//etc/passwd",
        "/api/image/",
        "/api/image/ffffffffffffffff",
        "/api/image/10000000000000000",
        "/api/image/2A",
        "/api/image/02a",
        "/api/image/-1",
        "/api/image/%ff",
        "/api/thumbnail/%00",
        "/api/thumbnail/1/2",
        "/etc/passwd",
        "/../../etc/passwd",
        "/static/../api/status",
        "/api/files?path=/etc/passwd",
    ] {
        let response = server.get(target);
        assert_eq!(response.error(404), "not found", "{target}");
    }
    let absolute = server.get(&format!("http://x{photo}"));
    assert_eq!(absolute.status, 404, "absolute-form target");

    for (target, said) in [
        ("/api/search?q=red&k=0", "k=0"),
        ("/api/search?q=red&k=-3", "k=-3"),
        ("/api/search?q=red&k=1001", "k=1001"),
        ("/api/search?q=red&k=18446744073709551616", "from 1 to 1000"),
        ("/api/search?q=red&k=1e3", "k=1e3"),
        ("/api/search?q=red&offset=-1", "offset=-1"),
        ("/api/search?q=red&offset=9999&k=10", "offset + k"),
        ("/api/search?q=", "empty query"),
        ("/api/search?q=+-+", "`-` is not followed by a term"),
        ("/api/search", "empty query"),
        ("/api/search?q=%ff%fe", "not valid UTF-8"),
        ("/api/search?q=%e2%82", "not valid UTF-8"),
        ("/api/search?q=%zz", "two hex digits"),
        ("/api/search?q=red&like=..%2Fx", "not an image id"),
        ("/api/search?q=red&in=photos", "absolute folder"),
        (
            "/api/search?q=red&path=%2Fetc%2Fpasswd",
            "unknown parameter `path`",
        ),
        ("/api/search?q=red&q=blue", "given twice"),
        ("/api/search?q=beach+%2B", "not followed by a term"),
        ("/api/texts?q=red&in=%2Fp", "unknown parameter `in`"),
        ("/api/texts", "empty query"),
        ("/api/status?x=1", "no parameters"),
    ] {
        let err = server.get(target).error(400);
        assert!(err.contains(said), "{target}: {err}");
    }
    for chars in [2000, 60_000] {
        let long = format!("/api/search?q={}", "a".repeat(chars));
        assert!(server
            .get(&long)
            .error(400)
            .contains("over the limit of 1000"));
    }
    // Past 64 KiB a target is refused by the HTTP layer before any route (an empty 414); a
    // query that long goes in a POSTed form, where it is a 400 (see the upload test).
    let huge = format!("/api/search?q={}", "a".repeat(100 * 1024));
    assert_eq!(server.get(&huge).status, 414);
    // A term naming a file is still text: the server never reads a path from a request.
    let passwd = server.get("/api/search?q=%2Fetc%2Fpasswd&k=1").json();
    assert_eq!(passwd["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        server.get("/api/search?like=ffffff&k=1").error(404),
        "not found"
    );

    let response =
        server.send(b"DELETE /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(response.error(405), "method not allowed");
    assert_eq!(server.post("/api/status", "text/plain", b"").status, 405);

    // Security headers everywhere, never a CORS grant.
    for target in [
        "/",
        "/app.js",
        "/api/status",
        "/api/image/zz",
        "/api/search?q=red",
    ] {
        let response = server.get_with(target, "Origin: https://evil.example\r\n");
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{target}"
        );
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
        let csp = response.header("content-security-policy").unwrap();
        assert!(
            csp.starts_with("default-src 'none'") && !csp.contains("http"),
            "{csp}"
        );
        assert!(response
            .headers
            .iter()
            .all(|(n, _)| !n.starts_with("access-control-")));
    }
    server.stop();
}

#[test]
fn uploads_over_the_limit_are_413_declared_or_not() {
    let world = world();
    let server = Server::start(&world.index, &[]);
    let declared = b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 33554433\r\nConnection: close\r\n\r\n";
    let response = server.send(declared);
    assert!(response.error(413).contains("over 32 MiB"));

    // Chunked, no length given: refused once the limit is passed.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..33 {
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    assert_eq!(parse(&bytes).error(413), "the upload is over 32 MiB");
    server.stop();
}

#[test]
fn a_slow_client_is_dropped_after_the_timeout_while_others_are_served() {
    let world = world();
    let server = Server::start(&world.index, &["--client-timeout", "1"]);
    let mut half_head = TcpStream::connect(server.addr).unwrap();
    half_head
        .write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut half_body = TcpStream::connect(server.addr).unwrap();
    half_body
        .write_all(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789")
        .unwrap();
    let silent = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(server.get("/api/status").status, 200);
    }
    for (name, mut stream) in [
        ("half a head", half_head),
        ("half a body", half_body),
        ("nothing", silent),
    ] {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut bytes = Vec::new();
        // Dropped: the server closes (after a 408 for the body), long before our 20 s.
        stream.read_to_end(&mut bytes).unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
            "{name}: {waited:?}"
        );
        if !bytes.is_empty() {
            assert_eq!(parse(&bytes).status, 408, "{name}");
        }
    }
    assert_eq!(server.get("/api/status").status, 200);
    server.stop();
}

#[test]
fn with_a_token_every_api_request_needs_it() {
    let world = world();
    let server = Server::start(&world.index, &["--token", "s3cret-token"]);
    for headers in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: s3cret-token\r\n",
        "Cookie: xsearch_token=wrong\r\n",
    ] {
        let response = server.get_with("/api/status", headers);
        assert!(
            response.error(401).contains("a token is needed"),
            "{headers}"
        );
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(server.get("/api/thumbnail/1").status, 401);
    let ok = server.get_with("/api/status", "Authorization: Bearer s3cret-token\r\n");
    assert_eq!(ok.json()["images"], 48);

    // The page takes the token once, keeps it in a cookie only the browser sends, and drops
    // it from the address.
    assert_eq!(server.get("/?token=wrong").status, 401);
    let taken = server.get("/?q=red+circle&token=s3cret-token");
    assert_eq!(taken.status, 303);
    assert_eq!(taken.header("location"), Some("/?q=red%20circle"));
    assert_eq!(
        taken.header("set-cookie"),
        Some("xsearch_token=s3cret-token; HttpOnly; SameSite=Strict; Path=/")
    );
    let with_cookie = server.get_with("/api/status", "Cookie: xsearch_token=s3cret-token\r\n");
    assert_eq!(with_cookie.status, 200);
    assert_eq!(server.get("/").status, 200, "the page itself holds no data");
    server.stop();

    // From the environment too.
    let server = Server::start(&world.index, &[]);
    assert_eq!(server.get("/api/status").status, 200);
    server.stop();
    let mut cmd = xsearch(&world.index);
    cmd.env("XSEARCH_TOKEN", "env-token")
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let get = |headers: &str| {
        send(
            addr,
            format!("GET /api/status HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .status
    };
    assert_eq!(get(""), 401);
    assert_eq!(get("Authorization: Bearer env-token\r\n"), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused() {
    let world = world();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:7878"] {
        let out = xsearch(&world.index)
            .args(["serve", "--addr", addr])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{addr}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!("xsearch: {addr}: refusing to serve")),
            "{err}"
        );
        assert!(err.contains("--token or XSEARCH_TOKEN"), "{err}");
    }
}

#[test]
fn thumbnails_are_upright_small_jpegs_cached_and_remade_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let photos = std::path::absolute(dir.path().join("photos")).unwrap();
    std::fs::create_dir(&photos).unwrap();
    for name in ["exif_rotate6.jpg", "large.jpg", "tiny.png"] {
        std::fs::copy(Path::new(PARITY_IMAGES).join(name), photos.join(name)).unwrap();
    }
    let index = dir.path().join("index");
    run_ok(xsearch(&index).arg("index").arg(&photos));
    let server = Server::start(&index, &[]);
    let ids: Vec<(String, String)> = server.get("/api/search?q=a+photo&k=3").json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap();
            (
                Path::new(path)
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let id = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let thumb = |id: &str| {
        let response = server.get(&format!("/api/thumbnail/{id}"));
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("image/jpeg"));
        assert!(response
            .header("cache-control")
            .unwrap()
            .contains("max-age"));
        assert_eq!(
            image::guess_format(&response.body).unwrap(),
            image::ImageFormat::Jpeg
        );
        let decoded = image::load_from_memory(&response.body).unwrap();
        (response, (decoded.width(), decoded.height()))
    };

    // 4000x3000 → 360x270; the EXIF-rotated one comes upright (its sides swapped); a 10x10
    // one is not enlarged.
    assert_eq!(thumb(&id("large.jpg")).1, (360, 270));
    let (w, h) = image::image_dimensions(photos.join("exif_rotate6.jpg")).unwrap();
    let (_, (tw, th)) = thumb(&id("exif_rotate6.jpg"));
    assert_eq!(
        (tw.max(th), w > h),
        (360.min(w.max(h)), th > tw),
        "stored {w}x{h}, thumbnail {tw}x{th}"
    );
    assert_eq!(thumb(&id("tiny.png")).1, (10, 10));

    // Cached beside the index under the id and the file's size and time; an ETag answers 304.
    let tiny = id("tiny.png");
    let cached = |id: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(index.join("thumbnails"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(&format!("{id}-")))
            .collect();
        names.sort();
        names
    };
    assert_eq!(cached(&tiny).len(), 1);
    let (first, _) = thumb(&tiny);
    let etag = first.header("etag").unwrap().to_owned();
    let again = server.get_with(
        &format!("/api/thumbnail/{tiny}"),
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!((again.status, again.body.len()), (304, 0));

    // The file changes in place (not indexed again): a new thumbnail, a new tag.
    std::thread::sleep(Duration::from_millis(20));
    let mut bigger = image::RgbImage::new(40, 20);
    bigger
        .pixels_mut()
        .for_each(|p| *p = image::Rgb([200, 10, 10]));
    bigger.save(photos.join("tiny.png")).unwrap();
    let (second, size) = thumb(&tiny);
    assert_eq!(size, (40, 20));
    assert_ne!(second.header("etag").unwrap(), etag);
    assert_eq!(cached(&tiny).len(), 2);
    let stale = server.get_with(
        &format!("/api/thumbnail/{tiny}"),
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(stale.status, 200);

    // A photo replaced by a link to a file that is not an image serves nothing.
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "not for the web").unwrap();
    let exif = photos.join("exif_rotate6.jpg");
    std::fs::remove_file(&exif).unwrap();
    std::os::unix::fs::symlink(&secret, &exif).unwrap();
    let rotated = id("exif_rotate6.jpg");
    assert_eq!(
        server.get(&format!("/api/image/{rotated}")).error(404),
        "not found"
    );
    assert_eq!(server.get(&format!("/api/thumbnail/{rotated}")).status, 404);

    // A file gone from the disk is a 404, thumbnail and original.
    std::fs::remove_file(photos.join("large.jpg")).unwrap();
    assert_eq!(
        server
            .get(&format!("/api/thumbnail/{}", id("large.jpg")))
            .status,
        404
    );
    assert_eq!(
        server
            .get(&format!("/api/image/{}", id("large.jpg")))
            .status,
        404
    );
    server.stop();
}

#[test]
fn the_server_sees_what_an_index_run_beside_it_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let first = std::path::absolute(dir.path().join("first")).unwrap();
    let second = std::path::absolute(dir.path().join("second")).unwrap();
    xsearch_shapes::write_dataset(&first, 8, 1).unwrap();
    xsearch_shapes::write_dataset(&second, 8, 2).unwrap();
    run_ok(xsearch(&index).arg("index").arg(&first));
    let server = Server::start(&index, &[]);
    assert_eq!(server.get("/api/status").json()["images"], 8);
    run_ok(xsearch(&index).arg("index").arg(&second));
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.get("/api/status").json()["images"] != 16 {
        assert!(
            Instant::now() < deadline,
            "the server never saw the new images"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let found = server
        .get(&format!("/api/search?q=red&k=16&in={}", second.display()))
        .json();
    assert_eq!(found["results"].as_array().unwrap().len(), 8);
    server.stop();
}

/// Polls `/api/search` until `done` holds for its paths (within 20 s); the paths.
fn poll_search(server: &Server, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = paths(&server.get("/api/search?q=a+shape&k=10").json());
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "still {found:?} after 20 s: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `/api/status` until the watcher has applied `passes` passes (within 20 s).
fn poll_status(server: &Server, passes: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = server.get("/api/status").json();
        if status["indexing"]["passes"].as_u64() >= Some(passes) {
            return status;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_watch_a_photo_copied_in_is_found_and_gone_once_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let watched = std::path::absolute(dir.path().join("watched")).unwrap();
    std::fs::create_dir_all(&watched).unwrap();
    let source = dir.path().join("source");
    let items = xsearch_shapes::write_dataset(&source, 1, 11).unwrap();
    let index = dir.path().join("index");
    let server = Server::start(&index, &["--watch", watched.to_str().unwrap()]);
    // The initial pass over the empty folder: one pass, nothing in it.
    let status = poll_status(&server, 1);
    let indexing = &status["indexing"];
    assert_eq!(
        indexing["roots"],
        serde_json::json!([watched.to_str().unwrap()])
    );
    assert_eq!(indexing["last"]["pass"], "initial");
    assert_eq!(indexing["last"]["found"], 0);
    assert_eq!(status["images"], 0);
    assert!(paths(&server.get("/api/search?q=a+shape").json()).is_empty());

    // Copied in (written beside it, then renamed, as a finished copy appears).
    let photo = watched.join(&items[0].file);
    std::fs::copy(source.join(&items[0].file), dir.path().join("part")).unwrap();
    std::fs::rename(dir.path().join("part"), &photo).unwrap();
    let found = poll_search(&server, |found| !found.is_empty());
    assert_eq!(found, [photo.to_str().unwrap()]);
    // The pass is published before the watcher's report of it reaches the status.
    let status = poll_status(&server, 2);
    assert_eq!(status["images"], 1);
    assert_eq!(status["indexing"]["busy"], false);
    assert_eq!(status["indexing"]["last"]["added"], 1);

    std::fs::remove_file(&photo).unwrap();
    poll_search(&server, <[String]>::is_empty);
    assert_eq!(server.get("/api/status").json()["images"], 0);
    server.stop();
}

#[test]
fn dupes_groups_planted_byte_copies_with_ids_thumbnails_and_the_keeper() {
    let dir = tempfile::tempdir().unwrap();
    let photos = std::path::absolute(dir.path().join("photos")).unwrap();
    let items = xsearch_shapes::write_dataset(&photos, 6, 21).unwrap();
    // The first image, copied byte for byte twice, each copy newer than the one before.
    let original = photos.join(&items[0].file);
    let copies = photos.join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    let base = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (i, path) in [original.clone(), copies.join("a.png"), copies.join("b.png")]
        .iter()
        .enumerate()
    {
        if i > 0 {
            std::fs::copy(&original, path).unwrap();
        }
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(base + Duration::from_secs(60 * i as u64))
            .unwrap();
    }
    let index = dir.path().join("index");
    run_ok(xsearch(&index).arg("index").arg(&photos));
    let server = Server::start(&index, &[]);
    // Every image's id, as search gives it.
    let all = server.get("/api/search?q=a+shape&k=100").json();
    let id_of = |path: &Path| {
        all["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("{path:?} not in {all}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let image = |path: &Path| {
        let id = id_of(path);
        serde_json::json!({
            "id": id,
            "path": path.to_str().unwrap(),
            "thumbnail": format!("/api/thumbnail/{id}"),
        })
    };

    // The three copies, sorted by path; the oldest is the keeper.
    let exact = |paths: &[&Path], keep: &Path| {
        serde_json::json!({
            "group": 1,
            "kind": "exact",
            "score": 1.0,
            "images": paths.iter().map(|p| image(p)).collect::<Vec<_>>(),
            "keep": id_of(keep),
        })
    };
    let (a, b) = (copies.join("a.png"), copies.join("b.png"));
    let mut three = vec![original.as_path(), a.as_path(), b.as_path()];
    three.sort();
    let groups = server.get("/api/dupes?threshold=1").json();
    assert_eq!(
        groups,
        serde_json::json!({ "groups": [exact(&three, &original)] })
    );
    // Within copies/: the two copies, the older kept.
    let groups = server
        .get(&format!(
            "/api/dupes?in={}",
            copies.to_str().unwrap().replace('/', "%2F")
        ))
        .json();
    assert_eq!(
        groups,
        serde_json::json!({ "groups": [exact(&[&a, &b], &a)] })
    );

    for (target, said) in [
        (
            "threshold=0",
            "threshold=0: give a number above 0 and at most 1",
        ),
        ("threshold=x", "threshold=x"),
        ("in=copies", "in=copies: give an absolute folder"),
        ("k=3", "unknown parameter `k`"),
    ] {
        let err = server.get(&format!("/api/dupes?{target}")).error(400);
        assert!(err.starts_with(said), "{target}: {err}");
    }
    server.stop();
}

#[test]
fn hundreds_of_concurrent_searches_all_succeed_with_the_same_answer() {
    let world = world();
    let server = Server::start(&world.index, &[]);
    let expected = server.get("/api/search?q=a+green+triangle&k=10").body;
    const CLIENTS: usize = 300;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let addr = server.addr;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let target = if i % 3 == 0 {
                    "/api/status"
                } else {
                    "/api/search?q=a+green+triangle&k=10"
                };
                let response = send(
                    addr,
                    format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
                (i, response)
            })
        })
        .collect();
    for thread in threads {
        let (i, response) = thread.join().unwrap();
        assert_eq!(
            response.status,
            200,
            "client {i}: {}",
            String::from_utf8_lossy(&response.body)
        );
        if i % 3 != 0 {
            assert_eq!(response.body, expected, "client {i}");
        }
    }
    server.stop();
}

#[test]
fn the_page_and_its_assets_are_embedded_and_follow_the_dom_contract() {
    let world = world();
    let server = Server::start(&world.index, &[]);
    let page = server.get("/?q=red");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(page.body).unwrap();
    for needle in [
        "<form id=\"search\"",
        "id=\"q\" type=\"search\"",
        "id=\"results\"",
        "<dialog id=\"viewer\"",
        "id=\"viewer-image\"",
        "id=\"viewer-path\"",
        "id=\"more-like-this\"",
        "id=\"viewer-texts\"",
        "id=\"viewer-original\"",
        "id=\"viewer-close\"",
        "id=\"upload\" type=\"file\" accept=\"image/*\"",
        "id=\"in\"",
        "id=\"min-score\"",
        "id=\"after\" type=\"date\"",
        "id=\"before\" type=\"date\"",
        "id=\"camera\"",
        "<select id=\"sort\">",
        "id=\"more\"",
        "id=\"status\"",
        "id=\"status-link\"",
        "id=\"dupes-link\"",
        "id=\"dupes\"",
        "id=\"error\"",
        "name=\"viewport\"",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    let script = server.get("/app.js");
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let style = server.get("/style.css");
    assert_eq!(
        style.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    for asset in [
        &html,
        &String::from_utf8(script.body).unwrap(),
        &String::from_utf8(style.body).unwrap(),
    ] {
        assert!(
            !asset.contains("http://") && !asset.contains("https://") && !asset.contains("//cdn"),
            "no outside origin"
        );
    }
    server.stop();
}
