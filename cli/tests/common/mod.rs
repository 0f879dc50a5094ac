//! Helpers shared by the CLI's test binaries: a sandbox with an index directory and photos,
//! the fixture model, the `xsearch` binary's output.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

pub mod held;
#[path = "../../../tests/common/skip.rs"]
pub mod skip;

/// The tiny model of the shapes world, quick enough for every test.
pub const SHAPES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/models/shapes-tiny"
);

/// Central European Time with its summer time: the zone every test's `xsearch` runs in, so
/// capture times without an offset read and print the same on any machine.
pub const ZONE: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

/// A temporary home for one test: an index directory and a photos folder.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn index(&self) -> PathBuf {
        self.dir.path().join("index")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        std::path::absolute(self.dir.path().join(rel)).unwrap()
    }

    /// Writes `n` shapes-world images into `rel`.
    pub fn photos(&self, rel: &str, n: u64, seed: u64) -> (PathBuf, Vec<xsearch_shapes::Item>) {
        let dir = self.path(rel);
        let items = xsearch_shapes::write_dataset(&dir, n, seed).unwrap();
        (dir, items)
    }

    /// The `xsearch` binary with this sandbox's index and `model`, offline.
    pub fn command(&self, model: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsearch"));
        cmd.env("XSEARCH_INDEX", self.index())
            .env("XSEARCH_MODEL", model)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", self.dir.path().join("hf"))
            .env("TZ", ZONE)
            .env_remove("XSEARCH_PREVIEW");
        cmd
    }

    pub fn run(&self, model: &str, args: &[&str]) -> Output {
        self.command(model).args(args).output().unwrap()
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}
