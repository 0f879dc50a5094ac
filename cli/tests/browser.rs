//! `xsearch serve`'s page in a real browser: headless Chromium from the distribution's packages,
//! driven over WebDriver. Each test indexes a shapes-world library with the fixture model,
//! starts the server on a port the system picks, and uses the page as a person would: typing a
//! query, opening a result, "more like this", uploading a photo, the `/` key, a phone screen.
//! Results are checked against the engine's own answers (the CLI and the HTTP API), by id and
//! exact path.
//!
//! Without `chromium` and `chromedriver` the tests skip loudly; under CI (`CI=true`) they fail.

#![cfg(unix)]

#[path = "common/server.rs"]
mod server;
#[path = "browser/webdriver.rs"]
mod webdriver;

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};

use common::skip::skip_or_fail;
use common::{json_lines, stderr, Sandbox, SHAPES};
use server::Server;
use webdriver::{key, Browser, Programs, Screen};

/// The query the tests type; the shapes world has red circles to find.
const QUERY: &str = "a red circle";
/// The library's size: more than the page shows at first, so that scrolling loads more.
const PHOTOS: usize = 96;
/// How long the page may take to show what a step expects (generous: CI machines are shared).
const WAIT: Duration = Duration::from_secs(30);
/// The desktop window, also the screenshot's size.
const DESKTOP: Screen = Screen::Desktop {
    width: 1280,
    height: 800,
};

/// One browser at a time: Chromium is heavy and the tests share the machine's few cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A browser on a served, indexed library: what each test starts from. `None` after a loud skip
/// when the browser is not installed (a failure under CI).
fn open(screen: Screen) -> Option<(Gallery, Browser, MutexGuard<'static, ()>)> {
    let programs = match Programs::find() {
        Ok(programs) => programs,
        Err(message) => {
            skip_or_fail(&message);
            return None;
        }
    };
    // A test that failed while holding the lock leaves nothing behind for the next one.
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gallery = Gallery::new();
    let browser = Browser::start(&programs, screen);
    Some((gallery, browser, turn))
}

/// An indexed shapes-world library with labels, served by `xsearch serve`.
struct Gallery {
    sb: Sandbox,
    photos: PathBuf,
    items: Vec<xsearch_shapes::Item>,
    server: Server,
}

impl Gallery {
    fn new() -> Gallery {
        let sb = Sandbox::new();
        let (photos, items) = sb.photos("photos", PHOTOS as u64, 2024);
        let out = sb.run(SHAPES, &["index", "--quiet", photos.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        // Labels for the viewer's nearest texts: every colour and shape of the world.
        let mut labels = Vec::new();
        for colour in [
            "red", "green", "blue", "yellow", "orange", "purple", "white", "black",
        ] {
            for shape in ["circle", "square", "triangle", "star"] {
                labels.push(format!("a {colour} {shape}"));
            }
        }
        let labels_file = sb.path("labels.txt");
        std::fs::write(&labels_file, labels.join("\n")).unwrap();
        let out = sb.run(SHAPES, &["texts", "add", labels_file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));

        let mut serve = sb.command(SHAPES);
        serve.args(["serve", "--addr", "127.0.0.1:0"]);
        let server = Server::start(serve);
        Gallery {
            sb,
            photos,
            items,
            server,
        }
    }

    /// The page's address with a query string, as a bookmark would hold it.
    fn page(&self, query: &[(&str, &str)]) -> String {
        let query: Vec<String> = query
            .iter()
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect();
        format!("{}?{}", self.server.url, query.join("&"))
    }

    /// `GET /api/search` with these parameters: its results.
    fn api_search(&self, query: &[(&str, &str)]) -> Vec<Value> {
        let mut request = ureq::get(&format!("{}api/search", self.server.url));
        for (name, value) in query {
            request = request.query(name, value);
        }
        let response = request
            .call()
            .unwrap_or_else(|e| panic!("/api/search {query:?}: {e}\n{}", self.server.log()));
        let mut body: Value = serde_json::from_reader(response.into_reader()).unwrap();
        match body["results"].take() {
            Value::Array(results) => results,
            other => panic!("/api/search {query:?}: no results array: {other}"),
        }
    }

    /// `GET /api/search` with parameters it refuses: its error message.
    fn api_error(&self, query: &[(&str, &str)]) -> String {
        let mut request = ureq::get(&format!("{}api/search", self.server.url));
        for (name, value) in query {
            request = request.query(name, value);
        }
        match request.call() {
            Err(ureq::Error::Status(400..=499, response)) => {
                let body: Value = serde_json::from_reader(response.into_reader()).unwrap();
                body["error"].as_str().unwrap().to_owned()
            }
            other => panic!("/api/search {query:?} should be refused: {other:?}"),
        }
    }

    /// Every indexed image's path by its id, from the API.
    fn paths_by_id(&self) -> HashMap<String, String> {
        self.api_search(&[("q", QUERY), ("k", "1000")])
            .iter()
            .map(|hit| (id_of(hit), hit["path"].as_str().unwrap().to_owned()))
            .collect()
    }

    /// The CLI's ranking for a text query: image paths, best first.
    fn cli_query(&self, query: &str, k: usize) -> Vec<String> {
        let out = self
            .sb
            .run(SHAPES, &["query", "--json", "-k", &k.to_string(), query]);
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&out)
            .iter()
            .map(|hit| hit["path"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The CLI's nearest label for an image.
    fn cli_nearest_text(&self, image: &str) -> String {
        let out = self.sb.run(
            SHAPES,
            &["query", "--json", "--texts", "-k", "1", "--image", image],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&out)[0]["text"].as_str().unwrap().to_owned()
    }

    /// The shapes-world scene of an indexed path.
    fn item(&self, path: &str) -> &xsearch_shapes::Item {
        self.items
            .iter()
            .find(|item| self.photos.join(&item.file).to_str() == Some(path))
            .unwrap_or_else(|| panic!("{path} is not one of the library's photos"))
    }
}

/// An API hit's id, as the page's `data-id` spells it.
fn id_of(hit: &Value) -> String {
    match &hit["id"] {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a query-string value (`encodeURIComponent`'s set).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `data-id`s of the results shown, in order.
fn result_ids(browser: &Browser) -> Vec<String> {
    let ids = browser.execute(
        "return [...document.querySelectorAll('#results a.result')].map(a => a.dataset.id);",
        &[],
    );
    serde_json::from_value(ids).unwrap()
}

/// Waits for results other than `before` (a new search's) and returns their ids.
fn wait_for_new_results(browser: &Browser, before: &[String]) -> Vec<String> {
    browser.wait_for("search results", WAIT, || {
        let ids = result_ids(browser);
        (!ids.is_empty() && ids != before).then_some(ids)
    })
}

/// A parameter of the page's address (`q`, `like`), decoded.
fn url_param(browser: &Browser, name: &str) -> Option<String> {
    browser
        .execute(
            "return new URL(location.href).searchParams.get(arguments[0]);",
            &[json!(name)],
        )
        .as_str()
        .map(str::to_owned)
}

/// Waits until every result's thumbnail has loaded (`naturalWidth > 0`), scrolling each into
/// view so that lazy loading fetches it, then back to the top; panics naming those that did
/// not load.
fn wait_for_thumbnails(browser: &Browser, url: &str) {
    let pending = "return [...document.querySelectorAll('#results a.result img')]
        .filter(img => { img.scrollIntoView({block: 'nearest'}); return !(img.complete && img.naturalWidth > 0); })
        .map(img => img.currentSrc || img.src);";
    browser.wait_for("every thumbnail to load", WAIT, || {
        let pending = browser.execute(pending, &[]);
        pending.as_array().unwrap().is_empty().then_some(())
    });
    browser.execute("window.scrollTo(0, 0);", &[]);
    // Each thumbnail comes from the API's thumbnail route for its own result.
    let thumbnails = browser.execute(
        "return [...document.querySelectorAll('#results a.result')]
            .map(a => [a.dataset.id, a.querySelector('img').src]);",
        &[],
    );
    for pair in thumbnails.as_array().unwrap() {
        let id = pair[0].as_str().unwrap();
        assert_eq!(pair[1], format!("{url}api/thumbnail/{id}"), "{pair}");
    }
}

/// Every address the page fetched (the document and its resources) is the server's own: no
/// CDN, no web font, nothing beyond loopback.
fn assert_nothing_left_loopback(browser: &Browser) {
    let foreign = browser.execute(
        "return performance.getEntriesByType('navigation')
            .concat(performance.getEntriesByType('resource'))
            .map(e => e.name)
            .filter(name => !name.startsWith('data:') && new URL(name).origin !== location.origin);",
        &[],
    );
    assert_eq!(foreign, json!([]), "requests beyond the server");
    assert!(browser.url().starts_with("http://127.0.0.1:"));
}

/// The PNG of the results grid for the README: `$XSEARCH_SCREENSHOT_DIR/serve.png`, else
/// under the target directory.
fn save_screenshot(png: &[u8]) {
    let dir = std::env::var_os("XSEARCH_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("serve.png"), png).unwrap();
}

#[test]
fn a_typed_query_shows_the_engines_ranking_and_every_thumbnail() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    let url = &gallery.server.url;
    browser.goto(url);
    let q = browser.find("form#search input#q");
    assert_eq!(q.attribute("type").as_deref(), Some("search"));
    q.send_keys(QUERY);
    q.send_keys(key::ENTER);

    let first_page = wait_for_new_results(&browser, &[]);
    assert_eq!(url_param(&browser, "q").as_deref(), Some(QUERY));
    assert!(
        first_page.len() < PHOTOS,
        "the page showed all {PHOTOS} results at once; a larger library would test scrolling"
    );
    // Scrolling to the end loads the rest, a page at a time.
    let ids = browser.wait_for("every result, scrolling for more", WAIT, || {
        browser.execute("window.scrollTo(0, document.body.scrollHeight);", &[]);
        let ids = result_ids(&browser);
        (ids.len() == PHOTOS).then_some(ids)
    });
    assert_eq!(ids[..first_page.len()], first_page);
    // The page shows the API's ranking, and the API the engine's, as the CLI prints it.
    let api = gallery.api_search(&[("q", QUERY), ("k", &PHOTOS.to_string())]);
    assert_eq!(ids, api.iter().map(id_of).collect::<Vec<_>>());
    let paths: Vec<&str> = api
        .iter()
        .map(|hit| hit["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, gallery.cli_query(QUERY, PHOTOS));
    let top = &gallery.item(paths[0]).scene;
    assert_eq!((top.colour.name(), top.shape.name()), ("red", "circle"));
    // Each result shows its score.
    let scores: Vec<String> = serde_json::from_value(browser.execute(
        "return [...document.querySelectorAll('#results a.result')]
            .map(a => a.querySelector('.score').textContent);",
        &[],
    ))
    .unwrap();
    for (shown, hit) in scores.iter().zip(&api) {
        let score = hit["score"].as_f64().unwrap();
        let value: f64 = shown
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("score {shown:?}: {e}"));
        assert!((value - score).abs() < 0.005, "{shown} for {score}");
    }
    wait_for_thumbnails(&browser, url);
    // Without the text cursor blinking in the search box.
    browser.execute("document.activeElement.blur();", &[]);
    save_screenshot(&browser.screenshot());
    assert_nothing_left_loopback(&browser);

    // The address is a bookmark: loading it again runs the same search.
    let bookmark = browser.url();
    browser.goto(url);
    browser.goto(&bookmark);
    // The sentinel may already be in view while thumbnails load, and fetch the second page too:
    // what counts is that the first page is the same search's.
    let shown = browser.wait_for("the bookmarked search's first page", WAIT, || {
        let ids = result_ids(&browser);
        (ids.len() >= first_page.len()).then_some(ids)
    });
    assert_eq!(shown[..first_page.len()], first_page);
    assert_eq!(browser.find("#q").property("value"), QUERY);
    assert_nothing_left_loopback(&browser);
}

#[test]
fn a_result_opens_with_its_path_and_more_like_this_ranks_it_first() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    let url = &gallery.server.url;
    let paths = gallery.paths_by_id();
    browser.goto(&gallery.page(&[("q", QUERY)]));
    let ids = wait_for_new_results(&browser, &[]);
    // Not the top result: "more like this" must bring the opened image up to first place.
    let (pick, id) = (3, ids[3].clone());
    let path = &paths[&id];

    let open_viewer = || {
        browser.find_all("#results a.result")[pick].click();
        browser.wait_for("the viewer to open", WAIT, || {
            browser.try_find("dialog#viewer[open]")
        });
    };
    open_viewer();
    assert_eq!(&browser.find("#viewer-path").text(), path);
    assert_eq!(
        browser.find("a#viewer-original").property("href"),
        format!("{url}api/image/{id}")
    );
    browser.wait_for_script(
        "the viewer's image to load",
        WAIT,
        "const img = document.querySelector('img#viewer-image');
         return img.complete && img.naturalWidth > 0;",
    );
    let nearest = browser.wait_for("the viewer's nearest texts", WAIT, || {
        browser
            .find_all("ul#viewer-texts li")
            .first()
            .map(|li| li.text())
    });
    let expected = gallery.cli_nearest_text(path);
    assert!(
        nearest.contains(&expected),
        "{nearest:?} should name {expected:?}"
    );

    browser.find("button#viewer-close").click();
    browser.wait_for("the viewer to close", WAIT, || {
        browser
            .try_find("dialog#viewer[open]")
            .is_none()
            .then_some(())
    });

    open_viewer();
    browser.find("button#more-like-this").click();
    let similar = wait_for_new_results(&browser, &ids);
    assert_eq!(url_param(&browser, "like").as_deref(), Some(id.as_str()));
    assert_eq!(similar[0], id, "the opened image should rank first");
    let api = gallery.api_search(&[("like", &id), ("k", &similar.len().to_string())]);
    assert_eq!(similar, api.iter().map(id_of).collect::<Vec<_>>());
    wait_for_thumbnails(&browser, url);
    assert_nothing_left_loopback(&browser);
}

#[test]
fn an_uploaded_or_dropped_photo_finds_itself_first() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    let paths = gallery.paths_by_id();
    browser.goto(&gallery.server.url);
    let photo = gallery.photos.join(&gallery.items[5].file);
    let upload = browser.find("input#upload[type=file]");
    upload.send_keys(photo.to_str().unwrap());
    let ids = wait_for_new_results(&browser, &[]);
    assert_eq!(paths[&ids[0]], photo.to_str().unwrap());
    wait_for_thumbnails(&browser, &gallery.server.url);

    // Dropped on the page: WebDriver cannot drag a file from the desktop, so the page gets the
    // events a browser sends for one, carrying another photo's bytes (its original, fetched).
    let dropped = gallery.photos.join(&gallery.items[9].file);
    let dropped_id = paths
        .iter()
        .find(|(_, path)| Path::new(path) == dropped)
        .map(|(id, _)| id.clone())
        .unwrap();
    browser.execute(
        "const [url, name] = arguments;
         fetch(url).then(r => r.blob()).then(blob => {
           const data = new DataTransfer();
           data.items.add(new File([blob], name, { type: blob.type }));
           for (const type of ['dragenter', 'dragover', 'drop']) {
             document.body.dispatchEvent(
               new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
           }
         });",
        &[
            json!(format!("{}api/image/{dropped_id}", gallery.server.url)),
            json!(gallery.items[9].file),
        ],
    );
    // The upload's results may still grow by a page meanwhile: wait for the drop's own.
    let top = browser.wait_for("the dropped photo's results", WAIT, || {
        let top = result_ids(&browser).first().cloned()?;
        (top != ids[0]).then_some(top)
    });
    assert_eq!(top, dropped_id);
    assert_nothing_left_loopback(&browser);
}

#[test]
fn the_slash_key_focuses_the_search_box() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    browser.goto(&gallery.server.url);
    browser.execute("document.activeElement.blur();", &[]);
    assert_eq!(
        browser.execute("return document.activeElement.id;", &[]),
        ""
    );
    browser.press("/");
    browser.wait_for_script(
        "#q to have the focus",
        WAIT,
        "return document.activeElement.id === 'q';",
    );
    // The key only moves the focus; it is not typed into the box.
    assert_eq!(browser.find("#q").property("value"), "");
}

#[test]
fn the_page_fits_a_phone_screen() {
    let Some((gallery, browser, _turn)) = open(Screen::Phone {
        width: 390,
        height: 844,
    }) else {
        return;
    };
    browser.goto(&gallery.page(&[("q", QUERY)]));
    wait_for_new_results(&browser, &[]);
    wait_for_thumbnails(&browser, &gallery.server.url);
    let fits = "return [innerWidth, document.documentElement.scrollWidth];";
    // The layout is the phone's width (the page declares a device-width viewport), and
    // nothing is wider than the screen.
    assert_eq!(browser.execute(fits, &[]), json!([390, 390]));
    browser.find_all("#results a.result")[0].click();
    browser.wait_for("the viewer to open", WAIT, || {
        browser.try_find("dialog#viewer[open]")
    });
    let viewer = browser.execute(
        "const r = document.querySelector('dialog#viewer').getBoundingClientRect();
         return [r.left, r.right];",
        &[],
    );
    let (left, right) = (viewer[0].as_f64().unwrap(), viewer[1].as_f64().unwrap());
    assert!(
        left >= 0.0 && right <= 390.0,
        "the viewer spans {left}..{right} px, wider than the 390 px screen"
    );
    assert_eq!(browser.execute(fits, &[]), json!([390, 390]));
}

#[test]
fn a_score_floor_keeps_only_the_results_above_it() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    browser.goto(&gallery.page(&[("q", QUERY)]));
    let ids = wait_for_new_results(&browser, &[]);
    let floor = "0.6";
    let expected: Vec<String> = gallery
        .api_search(&[("q", QUERY), ("k", "1000"), ("min_score", floor)])
        .iter()
        .map(id_of)
        .collect();
    assert!(
        !expected.is_empty() && expected.len() < ids.len(),
        "{expected:?}"
    );
    let input = browser.find("input#min-score");
    input.send_keys(floor);
    // Leaving the field commits the value.
    input.send_keys(key::TAB);
    assert_eq!(wait_for_new_results(&browser, &ids), expected);
    assert_eq!(url_param(&browser, "q").as_deref(), Some(QUERY));
    assert_eq!(url_param(&browser, "min_score").as_deref(), Some(floor));
}

#[test]
fn newest_first_shows_the_apis_date_order_with_each_date() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    browser.goto(&gallery.page(&[("q", QUERY)]));
    let ids = wait_for_new_results(&browser, &[]);
    let expected = gallery.api_search(&[("q", QUERY), ("k", "1000"), ("sort", "date")]);
    let expected_ids: Vec<String> = expected.iter().map(id_of).collect();
    // By date the page asks once for all of the best matches: a second page of "the best k
    // by date" would be another set.
    assert_eq!(expected_ids.len(), PHOTOS);
    browser.find("select#sort option[value=date]").click();
    assert_eq!(wait_for_new_results(&browser, &ids), expected_ids);
    assert_eq!(url_param(&browser, "sort").as_deref(), Some("date"));
    // Each thumbnail shows its date, to the minute, as the API gives it.
    let shown = browser.execute(
        "return [...document.querySelectorAll('#results a.result')]
           .map(a => a.querySelector('time.taken').textContent);",
        &[],
    );
    let dates: Vec<String> = expected
        .iter()
        .map(|hit| hit["taken"].as_str().unwrap()[..16].replace('T', " "))
        .collect();
    assert_eq!(shown, json!(dates));
}

#[test]
fn the_duplicates_view_shows_the_apis_groups_with_the_keeper_marked() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    // A byte copy of a photo, indexed by a run beside the server, which sees it within a second.
    let original = gallery.photos.join(&gallery.items[0].file);
    let copy = gallery.photos.join("copy-of-first.png");
    std::fs::copy(&original, &copy).unwrap();
    let out = gallery.sb.run(
        SHAPES,
        &["index", "--quiet", gallery.photos.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let groups = browser.wait_for("the copy in /api/dupes", WAIT, || {
        let response = ureq::get(&format!("{}api/dupes", gallery.server.url))
            .call()
            .ok()?;
        let mut body: Value = serde_json::from_reader(response.into_reader()).ok()?;
        let groups = body["groups"].take();
        let exact = groups
            .as_array()?
            .iter()
            .any(|g| g["kind"] == "exact" && g["images"].as_array().is_some_and(|i| i.len() == 2));
        exact.then_some(groups)
    });
    browser.goto(&gallery.server.url);
    browser.find("a#dupes-link").click();
    // Each group a row of its images' thumbnails, in the API's order, the keeper marked.
    let shown = browser.wait_for_script(
        "the duplicate groups",
        WAIT,
        "const rows = [...document.querySelectorAll('#dupes .dupe-group')];
         if (!document.querySelector('#dupes').checkVisibility() || rows.length === 0) return null;
         return rows.map(row => ({
           ids: [...row.querySelectorAll('a')].map(a => a.dataset.id),
           keep: [...row.querySelectorAll('a.keep')].map(a => a.dataset.id),
           thumbnails: [...row.querySelectorAll('img')].map(i => new URL(i.src).pathname),
         }));",
    );
    let expected: Vec<Value> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            let images = group["images"].as_array().unwrap();
            json!({
                "ids": images.iter().map(id_of).collect::<Vec<_>>(),
                "keep": [group["keep"]],
                "thumbnails": images.iter().map(|i| i["thumbnail"].clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    assert_eq!(shown, json!(expected));
}

#[test]
fn the_status_view_counts_the_library_and_api_errors_are_shown() {
    let Some((gallery, browser, _turn)) = open(DESKTOP) else {
        return;
    };
    browser.goto(&gallery.server.url);
    browser.find("a#status-link").click();
    // The view opens and shows the library's image count.
    browser.wait_for_script(
        "the status view with the image count",
        WAIT,
        &format!(
            "const view = document.querySelector('#status');
             return view.checkVisibility() && view.innerText.split(/\\s+/).includes('{PHOTOS}');"
        ),
    );

    // A search the API refuses shows the API's own message.
    let expected = gallery.api_error(&[("like", "not-an-id")]);
    browser.goto(&gallery.page(&[("like", "not-an-id")]));
    let shown = browser.wait_for_script(
        "the error",
        WAIT,
        "const error = document.querySelector('#error');
         return error.checkVisibility() && error.textContent;",
    );
    assert_eq!(shown, expected.as_str());
    assert!(result_ids(&browser).is_empty());
}
