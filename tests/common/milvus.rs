//! A milvus-lite server for one test: started on 127.0.0.1 with a free port and its own data
//! directory, stopped by pid when dropped. Shared with the CLI's tests (`cli/tests`), which
//! include this file by path.
//!
//! milvus-lite is found under `$XSEARCH_CI_VENV/bin` (the virtual environment `.ci/run`
//! makes), else on the PATH. Without it the caller skips loudly, or fails under `CI=true`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to listen (a cold start imports its Python modules).
const START_TIMEOUT: Duration = Duration::from_secs(90);

pub struct MilvusLite {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
}

impl MilvusLite {
    /// The `milvus-lite` program, if installed.
    pub fn program() -> Option<PathBuf> {
        let venv = std::env::var_os("XSEARCH_CI_VENV")
            .map(|venv| PathBuf::from(venv).join("bin/milvus-lite"))
            .filter(|path| path.is_file());
        venv.or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("milvus-lite"))
                .find(|path| path.is_file())
        })
    }

    /// Starts a server and waits until it listens; `None` when milvus-lite is not installed
    /// (after the skip rule of `skip::skip_or_fail`, which the caller passes in).
    pub fn start(skip: impl Fn(&str)) -> Option<MilvusLite> {
        let Some(program) = Self::program() else {
            skip(
                "milvus-lite is not installed: `python3 -m venv V && V/bin/pip install \
                 milvus-lite==3.2.2`, then set XSEARCH_CI_VENV=V (or put V/bin on the PATH)",
            );
            return None;
        };
        let data = tempfile::tempdir().unwrap();
        // A port the system just handed out and released: free unless another process takes
        // it in the moment between.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(data.path().join("server.log")).unwrap();
        let child = Command::new(&program)
            .args(["server", "--data-dir"])
            .arg(data.path().join("db"))
            // It listens on 0.0.0.0 unless told otherwise.
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("{}: {err}", program.display()));
        let mut server = MilvusLite { child, port, data };
        server.wait_listening();
        Some(server)
    }

    fn wait_listening(&mut self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("milvus-lite exited ({status}):\n{}", self.log());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "milvus-lite did not listen on port {} within {START_TIMEOUT:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    /// The index location of collection `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("milvus://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for MilvusLite {
    fn drop(&mut self) {
        // By pid: the child we started, nothing else.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
