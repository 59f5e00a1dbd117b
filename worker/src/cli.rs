//! The command line.

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rendition",
    version,
    about = "Renders image derivatives (thumbnails, responsive sizes, modern formats) as uploads land in storage",
    after_help = "Example:\n  rendition run --local ./bucket      # drop JPEGs into ./bucket/originals/\n  rendition render in.jpg --spec \"w=300,fit=cover,fm=webp\" -o out.webp"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./rendition.toml when present. Every key can
    /// also be set as RENDITION__SECTION__KEY, e.g. RENDITION__LIMITS__MAX_INPUT_PIXELS.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch a folder used as the bucket and render every eager preset of each source.
    #[command(
        after_help = "Example:\n  rendition run --local ./bucket\n  cp photo.jpg ./bucket/originals/   # → ./bucket/derived/photo.jpg/<guid>/{xl,lg,md,sm,thumb}.webp + manifest.json\n\nA source that cannot be rendered gets ./bucket/failed/<name>.json with the reason.\nCtrl-C or SIGTERM finishes the jobs in flight and exits 0."
    )]
    Run {
        /// The folder used as the bucket (sources under originals/, derivatives under derived/).
        #[arg(long, value_name = "DIR")]
        local: PathBuf,
        /// Process what is in the folder now, then exit (no watching).
        #[arg(long)]
        once: bool,
    },
    /// Render one variant of one file.
    #[command(
        group(ArgGroup::new("variant").required(true).args(["preset", "spec"])),
        after_help = "Examples:\n  rendition render photo.jpg --spec \"w=300,fit=cover,fm=webp\" -o thumb.webp\n  rendition render photo.jpg --preset thumb -o thumb.webp\n\nSpec keys: w, h, fit (cover|contain|fill|inside|outside), g (centre|north|…|northwest),\nfm (jpeg|png|webp|avif|gif|original), q (1-100), bg (rrggbb), enlarge (true|false)."
    )]
    Render {
        /// Source image.
        input: PathBuf,
        /// A configured preset.
        #[arg(long, value_name = "NAME")]
        preset: Option<String>,
        /// A variant spec, e.g. "w=320,h=320,fit=cover,fm=webp,q=75".
        #[arg(long, value_name = "SPEC")]
        spec: Option<String>,
        /// Output file; its extension picks the format when the spec has no fm.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: PathBuf,
    },
    /// Consume storage events from a queue and render every eager preset into S3.
    #[command(
        after_help = "Examples:\n  RENDITION__S3__BUCKET=photos rendition worker --queue sqs   # with RENDITION__SQS__QUEUE_URL\n  rendition worker --queue rabbitmq --config rendition.toml\n\n/healthz, /readyz and /metrics are served on worker.http_addr (default 127.0.0.1:9464).\nSIGTERM stops intake and finishes jobs in flight within worker.shutdown_grace_secs."
    )]
    Worker {
        /// Which queue to consume.
        #[arg(long, value_enum)]
        queue: crate::app::QueueKind,
    },
    /// Serve derivatives on demand from a folder bucket or S3 (the local twin of CDN + Lambda).
    #[command(
        after_help = "Examples:\n  rendition serve --local ./bucket\n  curl -O \"http://127.0.0.1:8080$(rendition url originals/cat.jpg --preset thumb --local ./bucket)\"\n  RENDITION__S3__BUCKET=photos rendition serve   # S3 (s3.endpoint for MinIO or moto)\n\nGET /sheet/{source key} shows a source's contact sheet; GET /latest/{source key}/{preset}\nredirects (302) to the preset's current URL. A URL ending in .auto (fm=auto) answers in\nthe best format the client's Accept takes, with Vary: Accept."
    )]
    Serve {
        /// The folder used as the bucket; without it, the S3 bucket of the configuration.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
        /// Listen address (default: serve.addr, 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        addr: Option<String>,
    },
    /// Print the URL of a derivative (signed when it is an explicit spec).
    #[command(
        group(ArgGroup::new("urlvariant").required(true).args(["preset", "spec"])),
        after_help = "Examples:\n  rendition url originals/cat.jpg --preset thumb --local ./bucket\n  rendition url originals/cat.jpg --preset w640 --local ./bucket   # a preset with formats = [...]: its .auto URL, then one per format\n  rendition url originals/cat.jpg --spec \"w=300,h=300,fit=cover,fm=webp\" --local ./bucket   # needs urls.signing_keys\n\nWithout --local the source is looked up in the S3 bucket of the configuration."
    )]
    Url {
        /// The source's key, e.g. originals/cat.jpg.
        source: String,
        #[arg(long, value_name = "NAME")]
        preset: Option<String>,
        #[arg(long, value_name = "SPEC")]
        spec: Option<String>,
        /// Look the source up in this folder bucket instead of S3.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
    },
    /// Write an HTML contact sheet of a source and every variant in its manifest.
    #[command(
        after_help = "Examples:\n  rendition sheet originals/cat.jpg --local ./bucket -o cat.html   # then open cat.html\n  rendition sheet originals/cat.jpg > cat.html                     # the S3 bucket of the configuration\n\nEach image shows its name, spec, width×height, bytes and format; every image is embedded\n(data: URIs), so the page is one self-contained file. `rendition serve` has the same page\nat /sheet/SOURCE. Fails when the source has no manifest yet."
    )]
    Sheet {
        /// The source's key, e.g. originals/cat.jpg.
        source: String,
        /// Look the source up in this folder bucket instead of S3.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
        /// Write the page here instead of to stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    // This doc comment is the command's `--help` text (clap), where `<picture>` is meant.
    #[allow(rustdoc::invalid_html_tags)]
    /// Print a ready-made <picture> of a source: a srcset per format (AVIF, WebP, then the
    /// JPEG/PNG <img>) over its eager width presets, size and placeholder from its manifest.
    #[command(
        after_help = "Examples:\n  rendition html originals/cat.jpg --local ./bucket\n  rendition html originals/cat.jpg --sizes \"(min-width: 60rem) 50vw, 100vw\" --alt \"A cat\" > cat.html\n  rendition html originals/cat.jpg --preset md --preset lg   # only these presets\n\nThe ladder is every eager preset with a width and no height (or the --preset ones), one\ncandidate per width. Each format its presets are made in gets a <source type=…>, AVIF\nfirst; the last format (JPEG or PNG when the presets list it in `formats`, else WebP —\nstderr says so) is the <img>'s srcset, with src its widest candidate and width/height\nfrom the manifest. loading=\"lazy\", decoding=\"async\", and the manifest's placeholder\n(dominant colour, LQIP) as the <img>'s background. The <img> has the widest variant's\nwidth/height: give it `max-width: 100%; height: auto` in the page's CSS. URLs come from\nurls.* like `rendition url`. Fails when the source has no manifest yet."
    )]
    Html {
        /// The source's key, e.g. originals/cat.jpg.
        source: String,
        /// Look the source up in this folder bucket instead of S3.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
        /// Only this preset (repeatable); its variants must be in the manifest.
        #[arg(long = "preset", value_name = "NAME")]
        presets: Vec<String>,
        /// The `sizes` attribute: how wide the image is shown, per media condition.
        #[arg(long, value_name = "SIZES", default_value = "100vw")]
        sizes: String,
        /// The `alt` text (default empty: a decorative image).
        #[arg(long, value_name = "TEXT", default_value = "")]
        alt: String,
    },
    /// Give existing sources the variant of a new or edited preset: enqueue a job for each
    /// source whose manifest lacks it or lists it made from another spec.
    #[command(
        after_help = "Examples:\n  rendition backfill --preset avif_lg --dry-run --queue sqs     # count what is missing in S3\n  rendition backfill --preset avif_lg --queue rabbitmq --rate 200\n  rendition backfill --preset avif_lg --prefix 2024/ --queue sqs  # only originals/2024/…\n  rendition backfill --preset avif_lg --local ./bucket          # a folder bucket: render in place\n  rendition backfill --changed --queue sqs                      # every added or edited eager preset\n\nSources whose manifest already lists the preset with its current spec hash are skipped,\nso an interrupted run is resumed by running it again. Ends with one line:\n  backfill: preset=NAME sources=N done=D enqueued=E added=A re-rendered=R failed=F\n(preset=* with --changed) and exits 1 when a source failed."
    )]
    Backfill {
        /// The preset to backfill (eager or not): sources lacking it, or holding it made
        /// from another spec.
        #[arg(long, value_name = "NAME", required_unless_present = "changed")]
        preset: Option<String>,
        /// Every eager preset added or changed since each source's manifest was written.
        #[arg(long, conflicts_with = "preset")]
        changed: bool,
        /// Only sources whose key starts with this; a prefix not under the source prefix is
        /// taken relative to it (2024/ → originals/2024/).
        #[arg(long, value_name = "P", default_value = "")]
        prefix: String,
        /// List and count the sources missing the preset; enqueue nothing.
        #[arg(long)]
        dry_run: bool,
        /// The work queue to enqueue on (the one `rendition worker --queue` consumes).
        #[arg(long, value_enum, required_unless_present_any = ["local", "dry_run"], conflicts_with = "local")]
        queue: Option<crate::app::QueueKind>,
        /// A folder bucket instead of S3: the missing variants are rendered in place.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
        /// Most jobs per second (0: no limit).
        #[arg(long, value_name = "N", default_value_t = 50)]
        rate: u32,
    },
    /// Remove derivatives no current URL names: other versions of a replaced source
    /// (superseded) and old versions of edited presets (retired-spec, legacy), once older
    /// than the grace period. A dry run unless --delete.
    #[command(
        after_help = "Examples:\n  rendition gc --local ./bucket                       # dry run: list what would go, and its bytes\n  rendition gc --local ./bucket --grace 0s --delete   # remove every retired derivative now\n  rendition gc --delete                               # the S3 bucket of the configuration, 30d grace\n\nNever removes the current version: the current manifest, what it lists, explicit-spec\n(signed URL) derivatives, presets no longer configured, nor the derivatives of a source\nthat no longer exists (the removal path's job). Run `rendition backfill --changed` first:\na preset edited but not yet re-rendered is still listed, so kept. One line per retired\nobject (unless --quiet):\n  would-delete|deleted|waiting KEY bytes=B reason=superseded|retired-spec|legacy age=AGE\nthen: gc: retired N objects (B bytes), waiting M, kept K\nDeletes are idempotent (a superseded folder's manifest goes last), so an interrupted run\nis resumed by running it again. --queue is accepted for symmetry with backfill and\nignored: gc deletes from the store itself."
    )]
    Gc {
        /// Only report (the default).
        #[arg(long, conflicts_with = "delete")]
        dry_run: bool,
        /// Remove the retired derivatives older than the grace period.
        #[arg(long)]
        delete: bool,
        /// Keep retired derivatives younger than this (reported as waiting): 30d, 12h, 90m, 0s.
        #[arg(long, value_name = "AGE", default_value = "30d")]
        grace: String,
        /// Accepted for symmetry with backfill (the S3 bucket of the configuration); gc
        /// publishes nothing.
        #[arg(long, value_enum, conflicts_with = "local")]
        queue: Option<crate::app::QueueKind>,
        /// A folder bucket instead of S3.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
        /// Only the summary line.
        #[arg(long)]
        quiet: bool,
    },
    /// Write (or check) the JSON Schemas of the config, manifest and failure record.
    #[command(after_help = "Example:\n  rendition schema --out schemas")]
    Schema {
        /// Folder to write into; without it the config schema is printed.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}
