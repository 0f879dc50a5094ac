//! `xsearch query`: text → images, image → images, or either → texts.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use xsearch::{format_taken, Engine, Query, SearchOptions, Sort, Term};

use crate::args::{QueryArgs, SortArg};
use crate::output::{score4, JsonPath, Printer};
use crate::preview::{write_preview, Protocol};
use crate::Outcome;

#[derive(Serialize)]
struct ImageRecord {
    rank: usize,
    score: f64,
    #[serde(flatten)]
    path: JsonPath,
    /// ISO 8601, when known (see `xsearch::format_taken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    taken: Option<String>,
}

#[derive(Serialize)]
struct TextRecord<'a> {
    rank: usize,
    score: f64,
    text: &'a str,
}

/// The most results one query returns. More is never useful to read, and `-k` must not ask
/// for memory by the number (a `-k` of 2^64 - 1 allocated that many slots).
pub const MAX_K: usize = 10_000;

/// Thumbnail size in terminal cells.
const PREVIEW_CELLS: (u16, u16) = (24, 8);

/// The query the arguments describe: the words in the query syntax, plus each `--image`.
pub fn parse(args: &QueryArgs) -> Result<Query> {
    let mut query = if args.words.is_empty() {
        Query::default()
    } else {
        Query::parse(&args.words.join(" "))?
    };
    for image in &args.images {
        query = query.with(1.0, Term::ImagePath(image.clone()));
    }
    Ok(query)
}

pub fn run(
    engine: &Engine,
    query: &Query,
    args: &QueryArgs,
    printer: &mut Printer,
) -> Result<Outcome> {
    let count = if args.texts {
        engine.text_count()?
    } else {
        engine.image_count()?
    };
    if count == 0 {
        let hint = if args.texts {
            "add texts with `xsearch texts add <FILE>` first"
        } else {
            "run `xsearch index <FOLDER>` first"
        };
        eprintln!(
            "xsearch: {}: the {} collection is empty\n\nTo search it, {hint}.",
            engine
                .index_dir()
                .unwrap_or(std::path::Path::new(""))
                .display(),
            if args.texts { "text" } else { "image" },
        );
        return Ok(Outcome::NothingFound);
    }
    let k = if args.top > MAX_K {
        crate::output::warn(&format_args!(
            "-k {}: showing at most {MAX_K} results",
            args.top
        ));
        MAX_K
    } else {
        args.top
    };
    let found = if args.texts {
        let hits = engine.search_texts(query, &SearchOptions::new(k))?;
        for (i, hit) in hits.iter().enumerate() {
            let record = TextRecord {
                rank: i + 1,
                score: score4(hit.score),
                text: &hit.text,
            };
            printer.record(&record, || format!("{:.4}  {}", hit.score, hit.text))?;
        }
        !hits.is_empty()
    } else {
        let hits = engine.search(query, &image_options(args, k))?;
        if hits.is_empty() {
            explain_nothing_found(args);
        }
        let protocol = Protocol::detect(|name| std::env::var(name).ok());
        for (i, hit) in hits.iter().enumerate() {
            let record = ImageRecord {
                rank: i + 1,
                score: score4(hit.score),
                path: JsonPath::new(&hit.path),
                taken: hit.taken.as_ref().map(format_taken),
            };
            printer.record(&record, || {
                format!("{:.4}  {}", hit.score, record.path.text())
            })?;
            if args.preview && !printer.is_json() {
                preview(engine, &hit.path, protocol, printer)?;
            }
        }
        !hits.is_empty()
    };
    printer.flush()?;
    Ok(if found {
        Outcome::Found
    } else {
        Outcome::NothingFound
    })
}

/// The search options the image filters and the order describe.
fn image_options(args: &QueryArgs, k: usize) -> SearchOptions {
    let mut options = SearchOptions::new(k).sort(match args.sort {
        SortArg::Score => Sort::Score,
        SortArg::Date => Sort::Date,
    });
    if let Some(dir) = &args.within {
        options = options.within(dir);
    }
    if let Some(after) = &args.after {
        options = options.after(after.instant);
    }
    if let Some(before) = &args.before {
        options = options.before(before.instant);
    }
    if let Some(camera) = &args.camera {
        options = options.camera(camera);
    }
    if let Some(floor) = args.min_score {
        options = options.min_score(floor);
    }
    options
}

/// When filters left nothing, says which (without filters, an empty answer needs no words:
/// the collection is not empty, so that cannot happen).
fn explain_nothing_found(args: &QueryArgs) {
    let mut filters = Vec::new();
    if let Some(dir) = &args.within {
        filters.push(format!("--in {}", dir.display()));
    }
    if let Some(after) = &args.after {
        filters.push(format!("--after {}", after.text));
    }
    if let Some(before) = &args.before {
        filters.push(format!("--before {}", before.text));
    }
    if let Some(camera) = &args.camera {
        filters.push(format!("--camera {camera}"));
    }
    if let Some(floor) = args.min_score {
        filters.push(format!("--min-score {floor}"));
    }
    if !filters.is_empty() {
        eprintln!(
            "xsearch: no image passes {}\n\nTo see more, loosen or drop {}.",
            filters.join(" "),
            if filters.len() == 1 {
                "it"
            } else {
                "some of them"
            }
        );
    }
}

/// Draws a thumbnail under a hit; an image that no longer decodes gets a note instead.
fn preview(
    engine: &Engine,
    path: &std::path::Path,
    protocol: Protocol,
    printer: &mut Printer,
) -> Result<()> {
    printer.flush()?;
    let mut out = std::io::stdout().lock();
    match engine.decode_preview(path) {
        Ok(image) => write_preview(&mut out, &image, protocol, PREVIEW_CELLS.0, PREVIEW_CELLS.1)?,
        Err(err) => writeln!(out, "  (no preview: {err})")?,
    }
    out.flush()?;
    Ok(())
}
