//! `[serve]`: `rendition serve`'s listener, connection limits, render slots and source
//! cache, and the options [`super::run`] takes from them.

use std::time::Duration;

use rendition_pipeline::config::{ConfigError, Settings};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// `[serve]`: its listener, connection limits, render slots and source cache. (The section's
// description in the schema is its field's doc, in `crate::settings::CliSections`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Listen address (loopback by default).
    pub addr: String,
    /// How long a request waits for a render before giving up (the render carries on).
    pub wait_timeout_secs: u64,
    /// Memory for recently used sources, so several variants of one source read it once.
    pub source_cache_bytes: u64,
    /// Renders (misses) at once (0 = number of CPUs). Misses of one derivative share a
    /// render.
    pub max_renders: usize,
    /// How long a miss may wait for a render slot before it is answered
    /// `503 Service Unavailable` with `Retry-After`, in milliseconds.
    pub render_queue_ms: u64,
    /// Open connections at most; past it new connections are closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this many seconds of the connection (or of
    /// the previous response), else the connection is closed.
    pub header_read_timeout_secs: u64,
    /// A connection with no request in progress is closed after this many seconds.
    pub idle_timeout_secs: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            addr: "127.0.0.1:8080".into(),
            wait_timeout_secs: 30,
            source_cache_bytes: 256 * 1024 * 1024,
            max_renders: 0,
            render_queue_ms: 2000,
            max_connections: 512,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
        }
    }
}

impl ServeSettings {
    /// Checks rules types cannot express; the wait is compared with the core's render
    /// deadline.
    pub fn validate(&self, core: &Settings) -> Result<(), ConfigError> {
        let deadline = core.render.deadline_secs;
        if self.wait_timeout_secs <= deadline {
            return Err(ConfigError::Rule(format!(
                "serve.wait_timeout_secs ({}) must be longer than render.deadline_secs ({deadline}): a render over its budget is answered with its error, not a timeout",
                self.wait_timeout_secs
            )));
        }
        if self.max_connections == 0
            || self.header_read_timeout_secs == 0
            || self.idle_timeout_secs == 0
        {
            return Err(ConfigError::Rule(
                "serve: max_connections, header_read_timeout_secs and idle_timeout_secs must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Renders at once: the configured value, or the number of CPUs.
    pub fn max_renders(&self) -> usize {
        match self.max_renders {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Connection limits and timeouts of `rendition serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long a request waits for a render (the render carries on for the others).
    pub wait: Duration,
    /// Open connections at most; past it a new connection is closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this long of the connection or of the
    /// previous response.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no bytes moving for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// After `shutdown`, how long connections may take to finish before `run` returns.
    pub grace: Duration,
}

impl ServeOptions {
    /// `serve.*`, and `grace_secs` (`worker.shutdown_grace_secs`).
    pub fn from_settings(s: &ServeSettings, grace_secs: u64) -> Self {
        ServeOptions {
            wait: Duration::from_secs(s.wait_timeout_secs),
            max_connections: s.max_connections,
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            grace: Duration::from_secs(grace_secs),
        }
    }
}
