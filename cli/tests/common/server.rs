//! `xsearch serve` as a child process for the serve and browser tests: started on a port the
//! system picks, its address read from the one line it prints once listening, stopped with
//! SIGTERM (by its pid, never by name).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `xsearch serve`.
pub struct Server {
    child: Child,
    /// Its address, `http://127.0.0.1:PORT/`.
    pub url: String,
    // Everything it printed on stderr, for failure messages.
    log: Arc<Mutex<String>>,
    // Set once `stop` has reaped it, so that drop signals no pid the system may have reused.
    stopped: bool,
}

impl Server {
    /// Runs `command` (an `xsearch serve --addr 127.0.0.1:0` invocation) and waits for its
    /// `listening on http://HOST:PORT/` line.
    pub fn start(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (found, url) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::clone(&log);
        // Reads stderr to its end so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = found.send(url.to_owned());
                }
                let mut log = lines.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            match url.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => break url,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "xsearch serve printed no `listening on` line in 60 s:\n{}",
                        log.lock().unwrap()
                    );
                }
                // Its stderr closed: it exited, and the reader has logged every line.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!(
                        "xsearch serve exited ({status}) before listening:\n{}",
                        log.lock().unwrap()
                    );
                }
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
            "{url}"
        );
        Server {
            child,
            url,
            log,
            stopped: false,
        }
    }

    /// What the server printed on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Its socket address, from [`Server::url`].
    #[allow(dead_code)] // the browser tests speak to it by URL only
    pub fn addr(&self) -> SocketAddr {
        self.url["http://".len()..self.url.len() - 1]
            .parse()
            .unwrap()
    }

    /// SIGTERM, then its exit status once it has stopped.
    #[allow(dead_code)] // the browser tests leave stopping to drop
    pub fn stop(mut self) -> ExitStatus {
        self.terminate();
        let status = self.child.wait().unwrap();
        self.stopped = true;
        status
    }

    fn terminate(&self) {
        // SAFETY: kill only sends a signal, to our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
