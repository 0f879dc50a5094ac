//! The JSON Lines of `xsearch embed --stdin`, which `xsearch import` reads: a first line naming
//! the model, then per file its record or its failure.
//!
//! ```text
//! {"kind":"model","fingerprint":"9f0c…","source":"/models/rn50","dim":1024}
//! {"kind":"image","path":"/abs/a.jpg","size":2123,"mtime_ns":1700000000123456789,
//!  "blake3":"ab12…","taken":{"unix":1626278580,"offset_minutes":120,"source":"exif"},
//!  "camera":"Apple iPhone 12","width":4032,"height":3024,"gps":[48.85,2.35],"embedding":[…]}
//! {"kind":"failure","path":"/abs/b.jpg","reason":"truncated JPEG …"}
//! ```
//!
//! (one object per line). Paths are as in every `--json` output: `path` as text, and
//! `path_bytes` (base64) when the name is not UTF-8. `taken`, `camera` and `gps` are absent when
//! unknown. Numbers are written in their shortest form that reads back to the same `f32` (the
//! embedding) or `f64` (GPS), and read back with Rust's correctly rounded parser, not through
//! `f64` (serde_json's default), so a vector crosses the pipe bit for bit.

use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use xsearch::{Failure, FileRecord, ImageMeta, ModelInfo, Taken, TakenSource};

use crate::output::JsonPath;

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Out<'a> {
    Model {
        fingerprint: &'a str,
        source: &'a str,
        dim: usize,
    },
    Image {
        #[serde(flatten)]
        path: JsonPath,
        size: u64,
        mtime_ns: i64,
        blake3: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        taken: Option<TakenLine>,
        #[serde(skip_serializing_if = "Option::is_none")]
        camera: Option<&'a str>,
        width: u32,
        height: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        gps: Option<(f64, f64)>,
        embedding: &'a [f32],
    },
    Failure {
        #[serde(flatten)]
        path: JsonPath,
        reason: &'a str,
    },
}

#[derive(Serialize, Deserialize)]
struct TakenLine {
    unix: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset_minutes: Option<i16>,
    source: SourceLine,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceLine {
    Exif,
    Mtime,
}

/// The model line.
pub fn model_line(model: &ModelInfo) -> Result<String> {
    Ok(serde_json::to_string(&Out::Model {
        fingerprint: &model.fingerprint,
        source: &model.source,
        dim: model.dim,
    })?)
}

/// The line of one file: its record, or its failure.
pub fn file_line(file: &Result<FileRecord, Failure>) -> Result<String> {
    let out = match file {
        Ok(record) => Out::Image {
            path: JsonPath::new(&record.path),
            size: record.size,
            mtime_ns: record.mtime_ns,
            blake3: hex(&record.hash),
            taken: record.meta.taken.map(|taken| TakenLine {
                unix: taken.unix,
                offset_minutes: taken.offset_minutes,
                source: match taken.source {
                    TakenSource::Exif => SourceLine::Exif,
                    TakenSource::Mtime => SourceLine::Mtime,
                },
            }),
            camera: record.meta.camera.as_deref(),
            width: record.meta.width,
            height: record.meta.height,
            gps: record.meta.gps,
            embedding: &record.embedding,
        },
        Err(failure) => Out::Failure {
            path: JsonPath::new(&failure.path),
            reason: &failure.reason,
        },
    };
    Ok(serde_json::to_string(&out)?)
}

/// Every field any line may have; which must be there depends on `kind`.
#[derive(Deserialize)]
struct In<'a> {
    kind: String,
    fingerprint: Option<String>,
    source: Option<String>,
    dim: Option<usize>,
    path: Option<String>,
    path_bytes: Option<String>,
    size: Option<u64>,
    mtime_ns: Option<i64>,
    blake3: Option<String>,
    taken: Option<TakenLine>,
    camera: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    #[serde(borrow)]
    gps: Option<&'a RawValue>,
    #[serde(borrow)]
    embedding: Option<&'a RawValue>,
    reason: Option<String>,
}

/// Reads the lines of `input`, named `name` in messages: the model line first, then the files.
pub struct Lines<R> {
    input: R,
    name: String,
    line: usize,
    buffer: String,
}

impl<R: BufRead> Lines<R> {
    /// Reads the model line.
    pub fn open(input: R, name: String) -> Result<(ModelInfo, Self)> {
        let mut lines = Self {
            input,
            name,
            line: 0,
            buffer: String::new(),
        };
        let at = format!("{}: line 1", lines.name);
        let model = match lines.next_line()? {
            Some((line, at)) if line.kind == "model" => ModelInfo {
                fingerprint: field(line.fingerprint, "fingerprint", &at)?,
                source: field(line.source, "source", &at)?,
                dim: field(line.dim, "dim", &at)?,
            },
            _ => bail!(
                "{at}: not a model line\n\nImport reads what `xsearch embed --stdin` writes, \
                 whose first line names the model."
            ),
        };
        Ok((model, lines))
    }

    /// The next line that is not blank, parsed, and where it is (`NAME: line N`).
    fn next_line(&mut self) -> Result<Option<(In<'_>, String)>> {
        loop {
            self.buffer.clear();
            self.line += 1;
            let read = self
                .input
                .read_line(&mut self.buffer)
                .with_context(|| format!("{}: could not read line {}", self.name, self.line))?;
            if read == 0 {
                return Ok(None);
            }
            if !self.buffer.trim().is_empty() {
                break;
            }
        }
        let at = format!("{}: line {}", self.name, self.line);
        match serde_json::from_str(&self.buffer) {
            Ok(line) => Ok(Some((line, at))),
            Err(err) => Err(anyhow::Error::from(err).context(format!("{at}: not a record"))),
        }
    }

    /// The next file's record or failure; `None` at the end.
    fn next_file(&mut self) -> Result<Option<Result<FileRecord, Failure>>> {
        let Some((line, at)) = self.next_line()? else {
            return Ok(None);
        };
        let path = line_path(line.path, line.path_bytes, &at)?;
        match line.kind.as_str() {
            "failure" => Ok(Some(Err(Failure {
                path,
                reason: field(line.reason, "reason", &at)?,
            }))),
            "image" => {
                let gps = match line.gps.map(RawValue::get) {
                    None | Some("null") => None,
                    Some(text) => match numbers::<f64>(text).context(at.clone())?[..] {
                        [lat, lon] => Some((lat, lon)),
                        _ => bail!("{at}: \"gps\" is not [latitude, longitude]"),
                    },
                };
                let embedding = numbers::<f32>(field(line.embedding, "embedding", &at)?.get())
                    .with_context(|| format!("{at}: \"embedding\""))?;
                Ok(Some(Ok(FileRecord {
                    path,
                    size: field(line.size, "size", &at)?,
                    mtime_ns: field(line.mtime_ns, "mtime_ns", &at)?,
                    hash: unhex(&field(line.blake3, "blake3", &at)?).context(at.clone())?,
                    meta: ImageMeta {
                        taken: line.taken.map(|taken| Taken {
                            unix: taken.unix,
                            offset_minutes: taken.offset_minutes,
                            source: match taken.source {
                                SourceLine::Exif => TakenSource::Exif,
                                SourceLine::Mtime => TakenSource::Mtime,
                            },
                        }),
                        camera: line.camera,
                        width: field(line.width, "width", &at)?,
                        height: field(line.height, "height", &at)?,
                        gps,
                    },
                    embedding,
                })))
            }
            other => bail!("{at}: unknown kind \"{other}\""),
        }
    }
}

/// A field a line of its kind must have.
fn field<T>(value: Option<T>, name: &str, at: &str) -> Result<T> {
    value.with_context(|| format!("{at}: no \"{name}\""))
}

/// A line's path: its exact bytes when the name is not UTF-8, else its text.
fn line_path(text: Option<String>, bytes: Option<String>, at: &str) -> Result<PathBuf> {
    if let Some(bytes) = bytes {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(bytes)
            .with_context(|| format!("{at}: \"path_bytes\" is not base64"))?;
        return Ok(PathBuf::from(OsString::from_vec(bytes)));
    }
    Ok(PathBuf::from(field(text, "path", at)?))
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<Result<FileRecord, Failure>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_file().transpose()
    }
}

/// The numbers of a JSON array of numbers, each parsed from its own text.
fn numbers<T: std::str::FromStr>(array: &str) -> Result<Vec<T>> {
    let inner = array
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .context("not an array of numbers")?
        .trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|number| {
            let number = number.trim();
            number
                .parse()
                .ok()
                .with_context(|| format!("{number} is not a number"))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("\"blake3\" is not a hex string");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&text[i..i + 2], 16)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn record(path: &std::path::Path, embedding: Vec<f32>, gps: Option<(f64, f64)>) -> FileRecord {
        FileRecord {
            path: path.to_path_buf(),
            size: 2123,
            mtime_ns: -5,
            hash: (0u8..32).collect(),
            meta: ImageMeta {
                taken: Some(Taken {
                    unix: 1_626_278_580,
                    offset_minutes: Some(120),
                    source: TakenSource::Exif,
                }),
                camera: Some("Apple iPhone 12".into()),
                width: 4032,
                height: 3024,
                gps,
            },
            embedding,
        }
    }

    fn read_back(lines: &[String]) -> (ModelInfo, Vec<Result<FileRecord, Failure>>) {
        let text = lines.join("\n");
        let (model, rest) = Lines::open(text.as_bytes(), "-".into()).unwrap();
        (model, rest.collect::<Result<_>>().unwrap())
    }

    #[test]
    fn records_cross_the_pipe_bit_for_bit() {
        // Values whose shortest decimal forms read back wrongly through f64 rounding are
        // what the own parser is for; these cover the extremes and awkward mantissas.
        let embedding = vec![
            0.1,
            -0.0,
            f32::MIN_POSITIVE,
            1.0e-45,
            f32::MAX,
            0.333_333_34,
            16_777_217.0,
            -7.038531e-26,
        ];
        let model = ModelInfo {
            fingerprint: "0123456789abcdef".into(),
            source: "/m".into(),
            dim: 8,
        };
        let odd = std::path::Path::new(OsStr::from_bytes(b"/p/caf\xe9 \"x\".jpg"));
        let files = vec![
            Ok(record(
                odd,
                embedding.clone(),
                Some((48.858_370_1, -2.294_481_3)),
            )),
            Err(Failure {
                path: "/p/b.jpg".into(),
                reason: "truncated JPEG".into(),
            }),
            Ok(FileRecord {
                meta: ImageMeta::default(),
                ..record(std::path::Path::new("/p/c.png"), vec![1.0], None)
            }),
        ];
        let mut lines = vec![model_line(&model).unwrap()];
        lines.extend(files.iter().map(|f| file_line(f).unwrap()));
        assert_eq!(
            lines[2],
            r#"{"kind":"failure","path":"/p/b.jpg","reason":"truncated JPEG"}"#
        );
        let (back_model, back) = read_back(&lines);
        assert_eq!(back_model, model);
        assert_eq!(back, files);
        let Ok(first) = &back[0] else { panic!() };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first.embedding), bits(&embedding));
    }

    #[test]
    fn a_stream_without_its_model_line_is_refused_with_the_way_on() {
        let line = file_line(&Err(Failure {
            path: "/p/b.jpg".into(),
            reason: "x".into(),
        }))
        .unwrap();
        let err = Lines::open(line.as_bytes(), "records.jsonl".into())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "records.jsonl: line 1: not a model line\n\nImport reads what `xsearch embed \
             --stdin` writes, whose first line names the model."
        );
    }

    #[test]
    fn a_broken_embedding_names_its_line() {
        let model = ModelInfo {
            fingerprint: "f".into(),
            source: "/m".into(),
            dim: 1,
        };
        let good = file_line(&Ok(record(
            std::path::Path::new("/p/a.jpg"),
            vec![0.5],
            None,
        )));
        let bad = good.unwrap().replace("[0.5]", "[0.5,\"x\"]");
        let text = [model_line(&model).unwrap(), bad].join("\n");
        let (_, mut lines) = Lines::open(text.as_bytes(), "-".into()).unwrap();
        let err = lines.next().unwrap().unwrap_err();
        assert_eq!(
            crate::output::error_message(&err),
            "-: line 2: \"embedding\": \"x\" is not a number"
        );
    }
}
