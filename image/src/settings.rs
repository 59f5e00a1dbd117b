//! The image layer's configuration sections: `[limits]` (what one source may cost,
//! checked from its header) and `[render]` (concurrency, codecs, the sandbox's budgets).
//! They are part of the one configuration file; the pipeline's `config::Settings` holds
//! them, loads and validates them with the rest.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hard limits, each checked from the header before pixels are decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_input_bytes: u64,
    /// Width × height of the source (75 MP by default); when an animation is kept (GIF or
    /// WebP output), all its frames count together.
    pub max_input_pixels: u64,
    /// Largest width or height of any output (after `dpr`).
    pub max_output_dimension: u32,
    /// Frames (pages) of a source, e.g. an animated GIF or WebP. A source with more is
    /// refused from its header, never truncated. A still output (JPEG, PNG, AVIF) decodes
    /// only the first frame; a kept animation counts every frame's pixels against
    /// `max_input_pixels`.
    pub max_frames: u32,
    /// Width × height × bands × bytes per sample × frames kept, from the header: what the
    /// decode would have to produce. The pixel limit alone ignores bands and bit depth (a
    /// 73 MP TIFF with 200 samples per pixel is 14.6 GB). Default 600 MB = 75 MP of
    /// 16-bit RGBA.
    pub max_decoded_bytes: u64,
    /// Scans of a JPEG, counted from its markers before decoding. A progressive decode
    /// costs about one pass over every block per scan, so repeated scans make a small file
    /// cost minutes of CPU. Default 100, the most libjpeg's own scan scripts can express.
    pub max_scans: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RenderSettings {
    /// Sources rendered at the same time (0 = number of CPUs).
    pub concurrency: usize,
    /// libvips threads per image; parallelism across images pays better.
    pub vips_threads: u32,
    /// AVIF encoder effort 0 (fastest) – 9 (smallest).
    pub avif_effort: u8,
    /// JPEG shrink-on-load as sharp's default (`fastShrinkOnLoad`) chooses it: decode at
    /// 1/8, 1/4 or 1/2 as soon as the output is at most that size — faster, a little
    /// more aliasing on fine detail. Off (the default, so that a derivative rendered again
    /// has the same bytes): as libvips' `thumbnail` chooses it, leaving a factor of two to
    /// the resize (1/8 only from a shrink of 16). Either way a progressive JPEG decoded at
    /// 1/8 is read from its DC scans alone, with the same pixels.
    pub fast_shrink_on_load: bool,
    /// Render in sandboxed helper processes (the same binary, pre-started): decoders run
    /// with a memory and CPU budget, a wall-clock deadline, `no_new_privs` and a seccomp
    /// filter, so a crash or a budget exceeded costs one job, not the process. See the
    /// "Security" page (docs/security.md). Off: renders run in this process (no budgets beyond
    /// the limits).
    pub sandbox: bool,
    /// Address space of a render helper (RLIMIT_AS), in MiB.
    pub max_memory_mb: u64,
    /// CPU time one render may use in its helper (RLIMIT_CPU), in seconds.
    pub max_cpu_secs: u64,
    /// Wall-clock time one render may take before its helper is killed, in seconds.
    pub deadline_secs: u64,
    /// Render helpers kept running (0 = `concurrency`).
    pub pool_size: usize,
    /// A helper is replaced after this many renders…
    pub recycle_after_jobs: u32,
    /// …or when its resident memory after a render is above this, in MiB (this also caps
    /// allocator fragmentation).
    pub recycle_above_rss_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 100 * 1024 * 1024,
            max_input_pixels: 75_000_000,
            max_output_dimension: 8192,
            max_frames: 100,
            max_decoded_bytes: 600_000_000,
            max_scans: 100,
        }
    }
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            concurrency: 0,
            vips_threads: 1,
            avif_effort: 2,
            fast_shrink_on_load: false,
            sandbox: true,
            max_memory_mb: 1024,
            max_cpu_secs: 8,
            deadline_secs: 20,
            pool_size: 0,
            recycle_after_jobs: 500,
            recycle_above_rss_mb: 512,
        }
    }
}

impl RenderSettings {
    /// Sources rendered at once: the configured value, or the number of CPUs.
    pub fn concurrency(&self) -> usize {
        match self.concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Render helpers in the sandbox pool: the configured value, or `concurrency`.
    pub fn pool_size(&self) -> usize {
        match self.pool_size {
            0 => self.concurrency(),
            n => n,
        }
    }
}
