//! Why the benchmark stops: one error type for every module but `main` (which reports it
//! through `anyhow`). A variant that wraps a cause names what was being done and keeps the
//! cause as its `source`, so `main` prints the same chain ("Caused by: …") it always did.
//! The benchmark is a command-line tool run by hand: no `kind()` or retry verdict, an
//! error ends the run.

use std::path::PathBuf;

use rendition_image::render::RenderError;
use rendition_image::spec::SpecError;
use rendition_image::vips::VipsError;
use rendition_pipeline::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    // The command line and `--child`'s argument.
    #[error("unknown allocator {0:?} (jemalloc, glibc)")]
    UnknownAllocator(String),
    #[error("unknown class {0:?} (progressive, baseline, png, heic)")]
    UnknownClass(String),
    #[error("unknown kind {0:?} (jpeg, png; or --class)")]
    UnknownKind(String),
    /// `known`: the sets' names, comma-separated.
    #[error("unknown set {name:?} (known: {known})")]
    UnknownSet { name: String, known: String },
    #[error("--child wants rendition:CLASS:SET:CONCURRENCY:on|off, got {0:?}")]
    ChildArgument(String),
    #[error("--child runs only rendition cases, got {0:?}")]
    ChildTool(String),
    #[error("sandbox must be on or off, got {0:?}")]
    ChildSandbox(String),
    #[error("concurrency")]
    ChildConcurrency(#[source] std::num::ParseIntError),
    #[error("--child needs the files to render (--file)")]
    ChildFiles,
    #[error("no allocator")]
    NoAllocator,

    // What is rendered.
    #[error("the bench's preset configuration")]
    PresetConfig(#[source] ConfigError),
    #[error("bench spec {text:?}")]
    Spec {
        text: String,
        #[source]
        source: SpecError,
    },
    /// `spec`: the spec as text.
    #[error("sharp-bench.mjs cannot render {spec} like Rendition does")]
    SharpCannotRender { spec: String },

    // Files.
    #[error("reading {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating {}", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `of_classes`: empty, or " of the classes asked for" when `--class` narrowed them.
    #[error("no progressive or baseline JPEG, PNG or HEIC files{of_classes} in {}", .dir.display())]
    NoSources {
        of_classes: &'static str,
        dir: PathBuf,
    },

    // Measured processes.
    #[error("libjemalloc.so.2 not found (scripts/install-deps.sh --jemalloc installs Debian's libjemalloc2; or --allocator glibc)")]
    NoJemalloc,
    #[error("starting {what}")]
    Start {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pid")]
    Pid(#[source] std::num::TryFromIntError),
    #[error("waiting for {what}")]
    Wait {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `stderr`: what the process wrote there, trimmed.
    #[error("{what} failed (wait status {status}): {stderr}")]
    Failed {
        what: String,
        status: i32,
        stderr: String,
    },
    #[error("locating this binary")]
    CurrentExe(#[source] std::io::Error),
    /// `case`: the `--child` argument; `preload`: the library preloaded.
    #[error("{case}: jemalloc was not loaded in the case process (LD_PRELOAD={preload:?})")]
    JemallocNotLoaded {
        case: String,
        preload: Option<PathBuf>,
    },
    #[error("rendition case output")]
    CaseOutput(#[source] serde_json::Error),
    #[error("sharp probe output")]
    SharpProbe(#[source] serde_json::Error),
    #[error("sharp script output")]
    SharpOutput(#[source] serde_json::Error),

    // Rendering in a case process.
    #[error("starting libvips")]
    Vips(#[source] VipsError),
    #[error("starting the render sandbox")]
    Sandbox(#[source] RenderError),
    #[error("rendering image {image}")]
    Render {
        image: usize,
        #[source]
        source: RenderError,
    },
    #[error("bench task panicked")]
    Task(#[source] tokio::task::JoinError),

    /// Reading the scratch folder, starting the runtime: the I/O error as it is.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Printing or writing a report as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
