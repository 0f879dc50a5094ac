//! Command-line arguments, parsed once into plain structs; commands never see clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::date::DateArg;

#[derive(Debug, Parser)]
#[command(
    name = "xsearch",
    version,
    about = "Find images by describing them: CLIP ResNet-50 search over your photos, offline.",
    long_about = "xsearch embeds images and texts with CLIP's ResNet-50 into one space, so a \
                  sentence finds the photos it describes, a photo finds its look-alikes, and a \
                  photo finds its best captions.",
    after_help = "Examples:\n  \
                  xsearch index ~/Pictures\n  \
                  xsearch query sunset over sea\n  \
                  xsearch query --image photo.jpg -k 5\n  \
                  xsearch tag photo.jpg --labels labels.txt\n  \
                  xsearch embed --text \"a dog\" --json\n\n\
                  Weights: --model takes a local directory holding open_clip_config.json and \
                  open_clip_model.safetensors, or a Hugging Face hub id (downloaded once into the \
                  Hugging Face cache; set HF_HUB_OFFLINE=1 to use the cache only)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Model: a directory with open_clip_config.json and open_clip_model.safetensors, or a
    /// Hugging Face hub id [default: the model the index was built with; for a new index,
    /// timm/resnet50_clip.openai].
    #[arg(long, global = true, env = "XSEARCH_MODEL", value_name = "DIR|HUB_ID")]
    pub model: Option<String>,

    /// Print JSON Lines (one object per result) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Index directory [default: the platform's data directory, e.g. ~/.local/share/xsearch].
    #[arg(long, global = true, env = "XSEARCH_INDEX", value_name = "DIR")]
    pub index: Option<PathBuf>,

    /// Worker threads for inference [default: RAYON_NUM_THREADS, else one per core].
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// No progress bars or summaries on stderr; errors are still reported.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add or refresh folders and files in the index (incremental: unchanged files are skipped,
    /// changed ones re-embedded, deleted ones removed).
    #[command(
        after_help = "Exit status: 0 when every image was indexed, 1 when no image was \
                            found, 2 when some files were skipped (listed on stderr and by \
                            `xsearch status`) or the run failed. With --watch: 0 once stopped \
                            by Ctrl-C or SIGTERM, 2 if it failed."
    )]
    Index(IndexArgs),
    /// Search the index: text → images, image → images, or (with --texts) → texts.
    #[command(after_help = QUERY_HELP)]
    Query(QueryArgs),
    /// Manage the text collection that `query --texts` searches.
    #[command(subcommand)]
    Texts(TextsCommand),
    /// Rank labels for images (zero-shot classification); needs no index.
    Tag(TagArgs),
    /// Show what the index holds: counts, model, files that could not be indexed.
    Status,
    /// Find duplicate images in the index: byte-identical files and near-duplicates (never
    /// deletes or moves anything).
    #[command(after_help = DUPES_HELP)]
    Dupes(DupesArgs),
    /// Serve a web gallery and a JSON API over the index (read-only unless --watch; loopback by
    /// default).
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Print the embeddings of images or texts; with --stdin, embed the files listed on
    /// standard input into records for `xsearch import`.
    #[command(after_help = EMBED_HELP)]
    Embed(EmbedArgs),
    /// Commit records made by `xsearch embed --stdin` (here or on other machines) into the
    /// index, as `xsearch index` would have: unchanged records are skipped, changed ones replace
    /// the old.
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
}

const EMBED_HELP: &str = "With --stdin: one path per line (or per NUL byte with -0, for names \
that hold a newline; a name is taken byte for byte, blank lines are skipped), read, decoded and \
embedded in batches as `xsearch index` does, with bounded memory however long the list. The \
output is JSON Lines: first {\"kind\":\"model\",\"fingerprint\",\"source\",\"dim\"}, then per \
path {\"kind\":\"image\",\"path\",\"size\",\"mtime_ns\",\"blake3\",\"taken\",\"camera\",\"width\",\
\"height\",\"gps\",\"embedding\"} or {\"kind\":\"failure\",\"path\",\"reason\"}, written a batch at \
a time.\n\n\
Examples:\n  \
xsearch embed --text \"a dog\" --json\n  \
find ~/Pictures -type f -print0 | xsearch embed --stdin -0 > records.jsonl\n\n\
Exit status: 0 when every input was embedded, 2 when some were not (each is named on stderr, \
and has a failure line) or on error.";

const IMPORT_HELP: &str = "Reads what `xsearch embed --stdin` writes. A new index takes the \
records' model unless --model names one; records of another model than the index's are refused. \
Importing the same records twice adds nothing the second time. \
Files deleted from disk are not removed: the next `xsearch index` of their folder removes them.\n\n\
Examples:\n  \
xsearch index --dry-run --json ~/Pictures | jq -r .path | xsearch embed --stdin | xsearch import\n  \
xsearch --index /srv/photos.xsearch import records.jsonl\n\n\
Exit status: 0 when every record was committed, 2 when some were failures (recorded, and listed \
by `xsearch status`) or on error.";

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A file of records; `-` reads standard input.
    #[arg(default_value = "-", value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(false))]
pub struct EmbedArgs {
    /// Images to embed (JPEG, PNG, WebP, GIF, BMP, TIFF).
    #[arg(long = "image", num_args = 1.., value_name = "PATH", group = "input")]
    pub images: Vec<PathBuf>,

    /// Texts to embed.
    #[arg(long = "text", num_args = 1.., value_name = "TEXT", group = "input")]
    pub texts: Vec<String>,

    /// Embed the image files listed on standard input, one path per line, into records for
    /// `xsearch import` (JSON Lines).
    #[arg(long, group = "input")]
    pub stdin: bool,

    /// With --stdin: paths are separated by NUL bytes (`find -print0`), not newlines.
    #[arg(short = '0', long = "null", requires = "stdin")]
    pub null: bool,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Folders or image files to index.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Follow symbolic links (loops are detected and reported).
    #[arg(long)]
    pub follow_symlinks: bool,

    /// Of a RAW file and a same-named JPEG beside it (IMG_1.CR2 + IMG_1.JPG), index the JPEG or both
    #[arg(long, value_enum, default_value_t = RawPairsArg::Jpeg, value_name = "WHICH")]
    pub raw_pairs: RawPairsArg,

    /// Images embedded together.
    #[arg(long, default_value_t = xsearch::DEFAULT_BATCH_SIZE, value_name = "N")]
    pub batch_size: usize,

    /// Keep running after indexing: apply changes to the folders as they happen, and rescan
    /// them in full every --rescan seconds; stop with Ctrl-C or SIGTERM (exit status 0).
    #[arg(long)]
    pub watch: bool,

    /// List the image files the run would read (new, or changed since indexed), one per line
    /// (with --json, {"path"} objects), and change nothing.
    #[arg(long, conflicts_with = "watch")]
    pub dry_run: bool,

    #[command(flatten)]
    pub rescan: Rescan,
}

/// `--raw-pairs`: `jpeg` (only the JPEG) or `both`. The variants carry no doc comments on
/// purpose: clap would turn them into a long-form help page.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RawPairsArg {
    Jpeg,
    Both,
}

const QUERY_HELP: &str = "Query syntax: terms joined by ' + ' and ' - ' (spaces around the \
operator), each optionally weighted with N: in front. A term naming an existing image file is an \
image; anything else is text.\n\n\
Examples:\n  \
xsearch query sunset over sea\n  \
xsearch query --image ./beach.jpg\n  \
xsearch query '2:beach + ./photo.jpg - people'\n  \
xsearch query --image photo.jpg --texts      (best captions for a photo)\n  \
xsearch query -k 20 --in ~/Pictures/2024 dog\n  \
xsearch query --after 2021-06-01 --before 2021-09-01 --sort date beach\n  \
xsearch query --camera iphone --min-score 0.25 'birthday cake'\n\n\
Dates without a zone are local time (TZ); --after is inclusive, --before exclusive. An image \
without a capture date in its metadata is dated by its file's modification time.\n\n\
Exit status: 0 when results were printed, 1 when nothing was found, 2 on error.";

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query (words are joined with spaces; see the syntax below).
    #[arg(value_name = "QUERY", required_unless_present = "images")]
    pub words: Vec<String>,

    /// Query with an image (repeatable; combined with the text terms).
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,

    /// Search the text collection (`xsearch texts add`) instead of the images.
    #[arg(long)]
    pub texts: bool,

    /// Number of results.
    #[arg(short = 'k', long = "top", default_value_t = 10, value_name = "K")]
    pub top: usize,

    /// Only images under this folder.
    #[arg(long = "in", value_name = "DIR")]
    pub within: Option<PathBuf>,

    /// Only images taken on or after DATE: 2021-07-01 (local midnight), 2021-07-01T18:00
    /// (local time) or with a zone, 2021-07-01T18:00Z or 2021-07-01T18:00+02:00.
    #[arg(long, value_name = "DATE", value_parser = crate::date::parse)]
    pub after: Option<DateArg>,

    /// Only images taken before DATE (same forms as --after).
    #[arg(long, value_name = "DATE", value_parser = crate::date::parse)]
    pub before: Option<DateArg>,

    /// Only images whose camera ("Make Model") contains TEXT, ignoring case.
    #[arg(long, value_name = "TEXT")]
    pub camera: Option<String>,

    /// Only results scoring at least S (cosine similarity, from -1 to 1).
    #[arg(long, value_name = "S", allow_negative_numbers = true, value_parser = parse_score)]
    pub min_score: Option<f32>,

    /// Order of the results: by score, or the best by score shown newest first.
    #[arg(long, value_enum, default_value_t = SortArg::Score, value_name = "ORDER")]
    pub sort: SortArg,

    /// Show thumbnails of the hits in the terminal (kitty, iTerm2, sixel, or coloured blocks;
    /// XSEARCH_PREVIEW=kitty|iterm2|sixel|blocks overrides the detection).
    #[arg(long)]
    pub preview: bool,
}

const DUPES_HELP: &str = "Groups: \"exact\" groups are files with the same bytes (score 1); \
\"near\" groups are images whose embeddings reach the threshold for every pair in the group (the \
score is the group's lowest pair), such as re-encodes, resizes, small crops and edits. A copy \
in an exact group joins near groups only through its group's keeper. Each group names a \
suggested keeper (the most pixels, then the most metadata, then the oldest, then the largest \
file, then the shortest path); xsearch never deletes or moves a file.\n\n\
Examples:\n  \
xsearch dupes\n  \
xsearch dupes --threshold 0.98 --in ~/Pictures/2024\n  \
xsearch dupes --json | jq -r 'select(.kind == \"exact\") | .paths[]'\n\n\
Exit status: 0 when groups were found, 1 when none, 2 on error.";

#[derive(Debug, Args)]
pub struct DupesArgs {
    /// Cosine similarity at or above which two images are near-duplicates (0 to 1; higher
    /// finds fewer, closer pairs).
    #[arg(long, default_value_t = xsearch::DEFAULT_THRESHOLD, value_name = "S")]
    pub threshold: f32,

    /// Only images under this folder.
    #[arg(long = "in", value_name = "DIR")]
    pub within: Option<PathBuf>,
}

const SERVE_HELP: &str = "Open the printed URL in a browser. The API: GET /api/search?q=TEXT&k=N\
[&offset=N][&in=DIR][&min_score=S][&after=DATE][&before=DATE][&camera=TEXT][&sort=score|date]\
[&like=ID]..., POST /api/search with an image, GET /api/texts, /api/status, \
/api/thumbnail/ID, /api/image/ID. Only indexed files are served, by their ids. With --watch, \
/api/status says what the watcher is doing (indexing).\n\n\
Exit status: 0 after a clean stop (Ctrl-C, SIGTERM), 2 on error.";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 lets the system pick one. Anything but a loopback address
    /// needs a token.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "HOST:PORT")]
    pub addr: std::net::SocketAddr,

    /// Require `Authorization: Bearer TOKEN` on every API request (the page takes it once
    /// from `/?token=TOKEN`).
    #[arg(
        long,
        env = "XSEARCH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// Seconds a client may take to send a request's headers, or to send the next part of its
    /// body, before it is disconnected.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = positive_seconds)]
    pub client_timeout: f64,

    /// Keep these folders indexed while serving: index them, then apply changes as they
    /// happen (the server is then the index's writer: an `xsearch index` beside it is refused).
    #[arg(long, num_args = 1.., value_name = "DIR")]
    pub watch: Vec<PathBuf>,

    #[command(flatten)]
    pub rescan: Rescan,
}

/// `--rescan`, shared by `index --watch` and `serve --watch`.
#[derive(Debug, Args)]
pub struct Rescan {
    /// With --watch: seconds between full rescans, which find what file system events miss
    /// (network shares, changes made by other machines).
    #[arg(
        id = "rescan",
        long = "rescan",
        default_value_t = 300,
        value_name = "SECS",
        requires = "watch",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub seconds: u64,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 3600.0 => Ok(secs),
        _ => Err("give a number of seconds above 0 and at most 3600".into()),
    }
}

/// `--sort`: `score` or `date`. No doc comments on the variants: clap would turn them into a
/// long-form help page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortArg {
    Score,
    Date,
}

/// `--min-score`: a finite number from -1 to 1.
fn parse_score(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(score) if (-1.0..=1.0).contains(&score) => Ok(score),
        _ => Err("expected a score from -1 to 1, e.g. 0.25".to_owned()),
    }
}

#[derive(Debug, Subcommand)]
pub enum TextsCommand {
    /// Add the lines of a file (one text per line; blank lines skipped) to the text collection.
    Add {
        /// A UTF-8 text file; `-` reads standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Images to tag.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,

    /// A file with one label per line.
    #[arg(long, value_name = "FILE")]
    pub labels: PathBuf,

    /// Labels shown per image.
    #[arg(short = 'k', long = "top", default_value_t = 5, value_name = "K")]
    pub top: usize,
}
