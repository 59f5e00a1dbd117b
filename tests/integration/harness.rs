//! Test harness: fixtures (generated images, real photos); the one way to run the binaries
//! under test ([`Spawn`], [`Running`]) and wait for what they log; the test services
//! ([`services`]: RabbitMQ, moto's S3 and SQS) with names of a test's own ([`unique`],
//! [`Bucket`]); a test's [`World`] (a scratch folder, a store, the variables pointing the
//! binaries at them); one HTTP client and one [`eventually`].

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use image::{ImageEncoder, Rgb, RgbImage};
use rendition_pipeline::manifest::Manifest;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Real photos from Debian's wallpaper packages, fetched once by `scripts/fetch-photos.sh`
/// into a cache outside git.
pub fn photos_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/fetch-photos.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/fetch-photos.sh");
        assert!(out.status.success(), "scripts/fetch-photos.sh failed");
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("fetch-photos prints its folder")
                .trim(),
        )
    })
}

/// Real JPEG photos at least `min_width` pixels wide, from `photos.tsv`.
pub fn photos(ext: &str, min_width: u32) -> Vec<(PathBuf, u32, u32)> {
    let dir = photos_dir();
    let tsv = std::fs::read_to_string(dir.join("photos.tsv")).expect("photos.tsv");
    let mut out = Vec::new();
    for line in tsv.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 || !cols[0].ends_with(ext) {
            continue;
        }
        let (Ok(w), Ok(h)) = (cols[1].parse::<u32>(), cols[2].parse::<u32>()) else {
            continue;
        };
        if w >= min_width {
            out.push((dir.join(cols[0]), w, h));
        }
    }
    out
}

pub const RED: [u8; 3] = [220, 30, 30];
pub const GREEN: [u8; 3] = [30, 200, 30];
pub const BLUE: [u8; 3] = [30, 30, 220];
pub const YELLOW: [u8; 3] = [230, 220, 30];

/// An asymmetric test card: four coloured quadrants (red, green / blue, yellow).
pub fn quadrants(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let right = x >= width / 2;
        let bottom = y >= height / 2;
        Rgb(match (right, bottom) {
            (false, false) => RED,
            (true, false) => GREEN,
            (false, true) => BLUE,
            (true, true) => YELLOW,
        })
    })
}

pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// Inserts an EXIF APP1 segment carrying only `Orientation = orientation` after SOI.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF, IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// What a viewer shows for `stored` pixels tagged with EXIF `orientation`.
pub fn apply_orientation(stored: &RgbImage, orientation: u16) -> RgbImage {
    use image::imageops::{flip_horizontal, flip_vertical, rotate180, rotate270, rotate90};
    match orientation {
        1 => stored.clone(),
        2 => flip_horizontal(stored),
        3 => rotate180(stored),
        4 => flip_vertical(stored),
        5 => flip_horizontal(&rotate90(stored)),
        6 => rotate90(stored),
        7 => flip_horizontal(&rotate270(stored)),
        8 => rotate270(stored),
        _ => panic!("orientation {orientation}"),
    }
}

/// A PNG whose header declares `width`×`height` but carries almost no data.
pub fn png_bomb_header(width: u32, height: u32) -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let crc = crc32(&[kind, data].concat());
        c.extend_from_slice(&crc.to_be_bytes());
        c
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Decodes JPEG, PNG or WebP output for pixel checks.
pub fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes)
        .expect("decodable output")
        .to_rgb8()
}

/// Mean colour of a small window around (fx, fy) given as fractions of the size.
pub fn sample(img: &RgbImage, fx: f64, fy: f64) -> [u8; 3] {
    let cx = (f64::from(img.width()) * fx) as i64;
    let cy = (f64::from(img.height()) * fy) as i64;
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for dy in -1..=1 {
        for dx in -1..=1 {
            let x = (cx + dx).clamp(0, i64::from(img.width()) - 1) as u32;
            let y = (cy + dy).clamp(0, i64::from(img.height()) - 1) as u32;
            let p = img.get_pixel(x, y).0;
            for c in 0..3 {
                sum[c] += u64::from(p[c]);
            }
            n += 1;
        }
    }
    [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]
}

pub fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| x.abs_diff(*y) <= tolerance)
}

// ---- the binaries under test ------------------------------------------------------------------

/// The `rendition` binary under test.
pub fn rendition_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rendition"))
}

/// The `rendition-lambda` binary, built once per test process into this target dir with
/// this profile (`CARGO_BIN_EXE_*` exists only for the worker package's own binaries).
/// Blocking: from async code, go through [`Spawn::lambda`].
pub fn lambda_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // {target}/{profile dir}/deps/integration-{hash}
        let deps = exe.parent().expect("deps dir");
        let profile_dir = deps.parent().expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_string(),
            Some(other) => other.to_string(),
            None => "dev".to_string(),
        };
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "rendition-lambda",
                "--profile",
                &profile,
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .status()
            .expect("run cargo build -p rendition-lambda");
        assert!(status.success(), "cargo build -p rendition-lambda failed");
        let bin = profile_dir.join("rendition-lambda");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

/// The variant of preset `name` in `format` under `settings`, named by its current spec
/// hash (`thumb.a3134a7c`), as the server and the eager job name it (`Format::Auto`: its
/// negotiated `.auto` URL).
pub fn preset_in(
    settings: &rendition_pipeline::config::Settings,
    name: &str,
    format: rendition_image::spec::Format,
) -> rendition_pipeline::naming::Variant {
    use rendition_image::spec::Format;
    let preset = &settings.presets[name];
    let hash = if format == Format::Auto && preset.negotiates() {
        preset.negotiated_hash()
    } else if preset.formats() == [Format::Original] {
        // `fm=original`: one spec whatever format the source makes.
        preset.hash_in(Format::Original)
    } else {
        preset.hash_in(format)
    };
    rendition_pipeline::naming::Variant::preset(name, hash)
}

/// [`preset_in`] the default configuration (the repository's `rendition.toml` has the
/// same presets).
pub fn preset(
    name: &str,
    format: rendition_image::spec::Format,
) -> rendition_pipeline::naming::Variant {
    preset_in(
        &rendition_pipeline::config::Settings::default(),
        name,
        format,
    )
}

/// `{name}.{hash}.{ext}`: the file name of preset `name` in `format` (default
/// configuration).
pub fn preset_file(name: &str, format: rendition_image::spec::Format) -> String {
    let ext = format.extension().expect("a format with an extension");
    format!("{}.{ext}", preset(name, format).segment())
}

/// The settings the repository's configuration followed by `extra` loads to.
pub fn settings_of(extra: &str) -> rendition_pipeline::config::Settings {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), extra);
    let file = dir.path().join("rendition.toml");
    rendition_pipeline::config::Settings::load(Some(&file), std::iter::empty()).unwrap()
}

/// The URL file name of preset `name` in `format` under `settings` (`.auto`: its
/// negotiated URL): `{name}.{hash}.{ext}`.
pub fn preset_file_in(
    settings: &rendition_pipeline::config::Settings,
    name: &str,
    format: rendition_image::spec::Format,
) -> String {
    let ext = format.extension().expect("a format with an extension");
    format!("{}.{ext}", preset_in(settings, name, format).segment())
}

/// The file a preset's variant made in `format` is stored as, with extension `ext`
/// (`fm=auto`'s legacy format: `jpg` or `png`).
pub fn stored_file_in(
    settings: &rendition_pipeline::config::Settings,
    name: &str,
    format: rendition_image::spec::Format,
    ext: &str,
) -> String {
    format!("{name}.{}.{ext}", settings.presets[name].hash_in(format))
}

/// Writes `dir/rendition.toml`: the repository's own configuration, then `extra`.
pub fn write_config(dir: &Path, extra: &str) {
    let defaults = std::fs::read_to_string(repo_root().join("rendition.toml")).unwrap();
    std::fs::write(dir.join("rendition.toml"), format!("{defaults}\n{extra}")).unwrap();
}

/// The one way to start a binary under test: working directory, arguments, environment,
/// configuration file; then either [`Spawn::start`] (a long-running process: JSON logs
/// drained all along, killed on drop, readiness awaited on a log line with
/// [`Spawn::ready`] or [`Running::wait_for`]) or [`Spawn::output`] (a one-shot run to the
/// end: `run --once`, `backfill`, `html`, `url`, `render` …).
pub struct Spawn {
    program: PathBuf,
    cwd: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    remove: Vec<OsString>,
    json_logs: bool,
    stdout_logs: bool,
}

impl Spawn {
    /// `rendition` in `cwd` (which is where it looks for `rendition.toml`).
    pub fn rendition(cwd: &Path) -> Spawn {
        Spawn::program(rendition_bin(), cwd)
    }

    /// `rendition-lambda` in `cwd` (its task root), built first if need be.
    pub async fn lambda(cwd: &Path) -> Spawn {
        let bin = tokio::task::spawn_blocking(lambda_bin)
            .await
            .expect("building rendition-lambda");
        Spawn::program(bin.to_path_buf(), cwd)
    }

    fn program(program: PathBuf, cwd: &Path) -> Spawn {
        Spawn {
            program,
            cwd: cwd.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            remove: Vec::new(),
            json_logs: false,
            stdout_logs: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Spawn {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Spawn
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// One variable; set after the earlier ones, so it wins over them.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spawn {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Spawn
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Does not pass `key` on from the test's own environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Spawn {
        self.remove.push(key.as_ref().to_os_string());
        self
    }

    /// Nothing from the developer's shell configures the process: the test's own
    /// `RENDITION__*` and `AWS_*` variables are not passed on.
    pub fn hermetic(mut self) -> Spawn {
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("RENDITION__") || text.starts_with("AWS_") {
                self.remove.push(name);
            }
        }
        self
    }

    /// `serve --local FOLDER --addr 127.0.0.1:0`: `rendition serve` on a free loopback port
    /// (await it with [`Running::serving_addr`]).
    pub fn serve(self, folder: &Path) -> Spawn {
        self.args(["serve", "--local"])
            .arg(folder)
            .args(["--addr", "127.0.0.1:0"])
    }

    /// Writes `./rendition.toml` in the working directory: the repository's own, then
    /// `extra`.
    pub fn config(self, extra: &str) -> Spawn {
        write_config(&self.cwd, extra);
        self
    }

    /// JSON log lines at `info` on stderr (always so for [`Spawn::start`]).
    pub fn json_logs(mut self) -> Spawn {
        self.json_logs = true;
        self
    }

    /// Lines on stdout are log lines too (the Lambda's CloudWatch EMF metrics).
    pub fn stdout_logs(mut self) -> Spawn {
        self.stdout_logs = true;
        self
    }

    /// The configured command, stdin closed; for a caller that must wait for the process
    /// itself (e.g. with `wait4`, for its resource usage).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.current_dir(&self.cwd)
            .args(&self.args)
            .stdin(Stdio::null());
        for key in &self.remove {
            cmd.env_remove(key);
        }
        if self.json_logs {
            cmd.env("RENDITION__LOG__FORMAT", "json")
                .env("RENDITION__LOG__FILTER", "info");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts the process: JSON logs on stderr (and stdout, with
    /// [`Spawn::stdout_logs`]), drained all along; killed when the [`Running`] is dropped.
    pub fn start(mut self) -> Running {
        self.json_logs = true;
        let mut cmd = Command::from(self.command());
        cmd.stdout(if self.stdout_logs {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        drain(child.stderr.take().unwrap(), tx.clone());
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, tx);
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// [`Spawn::start`], then waits for the log line that says it is ready.
    pub async fn ready(
        self,
        within: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> (Running, serde_json::Value) {
        let mut running = self.start();
        let line = running.wait_for(within, what, pred).await;
        (running, line)
    }

    /// Runs the process to the end; its exit status, stdout and stderr.
    pub async fn output(self) -> std::process::Output {
        Command::from(self.command())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {}: {e}", self.program.display()))
    }

    /// [`Spawn::output`] for code that is not async.
    pub fn output_blocking(self) -> std::process::Output {
        self.command()
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.program.display()))
    }
}

/// `rendition run --local BUCKET --once` in `cwd` (its `rendition.toml`), JSON logs on
/// stderr.
pub async fn run_local_once(cwd: &Path, bucket: &Path) -> std::process::Output {
    Spawn::rendition(cwd)
        .args(["run", "--local"])
        .arg(bucket)
        .arg("--once")
        .env("RENDITION__LOG__FORMAT", "json")
        .output()
        .await
}

/// A running binary whose JSON log lines can be awaited. Its stderr (and stdout, when
/// those are logs too) is drained all along by a task of its own, so a test that does not
/// look at the logs for a while never blocks the process on a full pipe.
pub struct Running {
    pub child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    pub seen: Vec<serde_json::Value>,
}

/// Every line of `pipe`, as it comes, as JSON (`{"raw": line}` when it is not).
fn drain(
    pipe: impl AsyncRead + Send + Unpin + 'static,
    tx: tokio::sync::mpsc::UnboundedSender<serde_json::Value>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let value =
                serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
            if tx.send(value).is_err() {
                break;
            }
        }
    });
}

impl Running {
    /// Reads log lines until one satisfies `pred`, failing after `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        if let Some(v) = self.logs().iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let value = self.next_line(deadline, what).await;
            if pred(&value) {
                return value;
            }
        }
    }

    /// Reads log lines until at least `n` satisfy `pred`, failing after `within`.
    pub async fn wait_count(
        &mut self,
        within: Duration,
        what: &str,
        n: usize,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while self.logs().iter().filter(|v| pred(v)).count() < n {
            self.next_line(deadline, what).await;
        }
    }

    /// The log lines seen so far, including any that arrived since the last look.
    pub fn logs(&mut self) -> &[serde_json::Value] {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
        &self.seen
    }

    /// The next log line (also kept in `seen`), or a panic at `deadline` or at exit.
    async fn next_line(&mut self, deadline: tokio::time::Instant, what: &str) -> serde_json::Value {
        let line = tokio::time::timeout_at(deadline, self.lines.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("timed out waiting for {what}; log so far: {:#?}", self.seen)
            });
        let Some(value) = line else {
            panic!("process ended before {what}; log: {:#?}", self.seen)
        };
        self.seen.push(value.clone());
        value
    }

    /// Waits for `rendition serve` to say it listens; the address it listens on.
    pub async fn serving_addr(&mut self, within: Duration) -> String {
        let started = self
            .wait_for(within, "the listening address", |v| {
                field(v, "message") == Some("serving derivatives")
            })
            .await;
        field(&started, "addr").unwrap().to_string()
    }

    pub fn terminate(&self) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: sending a signal to our own child.
        unsafe { libc_kill(pid, 15) };
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// A loopback port nothing listens on (for now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name of `prefix` no other test (or test run) uses: buckets, queues, exchanges.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

// ---- the test services ------------------------------------------------------------------------

/// Where the test services listen (`infra/local/services.sh up`: RabbitMQ, and moto for
/// S3 and SQS) and the credentials to use with them.
#[derive(Debug)]
pub struct Services {
    pub amqp_url: String,
    pub s3_endpoint: String,
    pub sqs_endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// Starts (or reuses) the services once per test process. The env file `services.sh up`
/// names is parsed here; the process environment is left alone, since other tests run in
/// parallel.
pub async fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    tokio::task::spawn_blocking(|| SERVICES.get_or_init(start_services))
        .await
        .expect("services start-up task")
}

fn start_services() -> Services {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("infra/local/services.sh"))
        .arg("up")
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("run infra/local/services.sh up");
    assert!(
        out.status.success(),
        "infra/local/services.sh up failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let path = stdout
        .lines()
        .last()
        .expect("services.sh up prints the env file")
        .trim();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .collect();
    let var = |k: &str| {
        vars.get(k)
            .unwrap_or_else(|| panic!("{path} has no {k}"))
            .to_string()
    };
    Services {
        amqp_url: var("RENDITION_TEST_AMQP_URL"),
        s3_endpoint: var("RENDITION_TEST_S3_ENDPOINT"),
        sqs_endpoint: var("RENDITION_TEST_SQS_ENDPOINT"),
        access_key_id: var("AWS_ACCESS_KEY_ID"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
        region: var("AWS_REGION"),
    }
}

/// `host:port` of a URL such as `amqp://user:pass@127.0.0.1:5672/%2f`.
fn socket_addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    authority
        .parse()
        .unwrap_or_else(|e| panic!("{url}: not host:port ({e})"))
}

impl Services {
    /// The broker's address (for a proxy in front of it).
    pub fn amqp_addr(&self) -> SocketAddr {
        socket_addr_of(&self.amqp_url)
    }

    /// The AMQP URL of a broker at `addr` (e.g. a proxy), with the same credentials.
    pub fn amqp_url_at(&self, addr: SocketAddr) -> String {
        self.amqp_url
            .replace(&self.amqp_addr().to_string(), &addr.to_string())
    }

    /// moto's address (for a proxy in front of it).
    pub fn moto_addr(&self) -> SocketAddr {
        socket_addr_of(&self.s3_endpoint)
    }

    fn credentials(&self, source: &'static str) -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            source,
        )
    }

    /// An S3 client for moto, built explicitly (no environment, no profile files).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .endpoint_url(&self.s3_endpoint)
            .force_path_style(true)
            .credentials_provider(self.credentials("test"))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An S3 client for `endpoint` with an operation timeout and three attempts.
    pub fn s3_at(&self, endpoint: &str, timeout: Duration) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::retry::RetryConfig;
        use aws_sdk_s3::config::timeout::TimeoutConfig;
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(self.credentials("moto-env-file"))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .connect_timeout(timeout.min(Duration::from_secs(1)))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An SQS client for moto.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(self.region.clone()))
            .endpoint_url(&self.sqs_endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    /// The AWS credentials of a binary talking to moto (and no instance metadata).
    pub fn aws_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

/// A fresh bucket of a test's own on moto.
pub struct Bucket {
    pub name: String,
    pub s3: aws_sdk_s3::Client,
    pub services: &'static Services,
}

impl Bucket {
    pub async fn new() -> Bucket {
        let services = services().await;
        let s3 = services.s3();
        let name = unique("rendition");
        s3.create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
        Bucket { name, s3, services }
    }

    /// The `RENDITION__S3__*` and `AWS_*` variables that point a binary at this bucket.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let s = self.services;
        let mut vars = vec![
            ("RENDITION__S3__BUCKET", self.name.clone()),
            ("RENDITION__S3__ENDPOINT", s.s3_endpoint.clone()),
            ("RENDITION__S3__FORCE_PATH_STYLE", "true".into()),
            ("RENDITION__S3__REGION", s.region.clone()),
        ];
        vars.extend(s.aws_vars());
        vars
    }

    /// Uploads `body` under `key` (with `content_type`, if any); the object's ETag.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: Option<&str>) -> String {
        self.s3
            .put_object()
            .bucket(&self.name)
            .key(key)
            .set_content_type(content_type.map(str::to_string))
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap()
            .e_tag()
            .unwrap()
            .to_string()
    }

    /// The stored object and its ETag, if any.
    pub async fn object(&self, key: &str) -> Option<(Vec<u8>, String)> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .ok()?;
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.unwrap().into_bytes().to_vec();
        Some((body, etag))
    }

    pub async fn head(&self, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.s3
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap()
    }

    /// Deletes `key` (as an uploader deleting its source would).
    pub async fn delete(&self, key: &str) {
        self.s3
            .delete_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap();
    }

    /// The keys under `prefix` (one listing page).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// Manifests under `derived/`, by source key.
    pub async fn manifests(&self) -> HashMap<String, Manifest> {
        let mut out = HashMap::new();
        for key in self.keys("derived/").await {
            if key.ends_with("/manifest.json") {
                let (bytes, _) = self.object(&key).await.expect("a listed manifest");
                let m: Manifest = serde_json::from_slice(&bytes).unwrap();
                out.insert(m.source.key.clone(), m);
            }
        }
        out
    }
}

// ---- a test's world ---------------------------------------------------------------------------

/// Where a test's binaries keep their sources and derivatives.
pub enum Store {
    /// A folder bucket (`--local DIR`), with `originals/` made.
    Folder(PathBuf),
    /// A fresh bucket on moto.
    S3(Bucket),
}

/// A test's world: a scratch folder the binaries run in (their `rendition.toml`), the
/// store they work on, and the variables that point them at it and at the test's queues.
/// The protocol modules extend it (`sqs::SqsWorld`, `lambda::Function`, `rabbit::Broker`'s
/// variables) rather than each making its own.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub store: Store,
    vars: Vec<(&'static str, String)>,
}

impl World {
    /// A scratch folder with an empty folder bucket `bucket/` in it.
    pub fn local() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("bucket");
        std::fs::create_dir_all(folder.join("originals")).unwrap();
        World {
            tmp,
            store: Store::Folder(folder),
            vars: Vec::new(),
        }
    }

    /// A scratch folder and a fresh bucket on moto.
    pub async fn s3() -> World {
        let bucket = Bucket::new().await;
        World {
            tmp: tempfile::tempdir().unwrap(),
            vars: bucket.vars(),
            store: Store::S3(bucket),
        }
    }

    /// The binaries' working directory.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The folder bucket.
    pub fn folder(&self) -> &Path {
        match &self.store {
            Store::Folder(dir) => dir,
            Store::S3(_) => panic!("this world's store is a bucket on moto"),
        }
    }

    /// The bucket on moto.
    pub fn bucket(&self) -> &Bucket {
        match &self.store {
            Store::S3(bucket) => bucket,
            Store::Folder(_) => panic!("this world's store is a folder"),
        }
    }

    /// Adds variables every binary of this world gets (after the store's: they win).
    pub fn add_vars<K: Into<String>>(&mut self, vars: impl IntoIterator<Item = (&'static str, K)>) {
        self.vars
            .extend(vars.into_iter().map(|(k, v)| (k, v.into())));
    }

    /// The variables every binary of this world gets.
    pub fn vars(&self) -> Vec<(&'static str, &str)> {
        self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// `rendition` in this world: its folder, its variables.
    pub fn rendition(&self) -> Spawn {
        Spawn::rendition(self.dir()).envs(self.vars())
    }
}

/// A log event's field, as a string.
pub fn field<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(|f| f.as_str())
}

/// Polls `probe` every 100 ms until it returns `Some`, panicking with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- a minimal HTTP/1.1 client (the test crate has none) -------------------------------------

/// How long one HTTP exchange may take.
const HTTP_WAIT: Duration = Duration::from_secs(120);

pub struct Http {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Decoded when the response was chunked.
    pub body: Vec<u8>,
}

impl Http {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` field of a JSON body (or the body itself, in angle brackets).
    pub fn error_kind(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("<{}>", String::from_utf8_lossy(&self.body)))
    }
}

/// One request on a new connection (`Connection: close`; `Content-Length` when there is a
/// body). The target goes out as given, so raw NULs and control characters reach the
/// server. `None` when the server closes the connection without a response; panics if the
/// exchange takes longer than two minutes.
pub async fn http(
    addr: &str,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Http> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let mut req = format!("{method} ").into_bytes();
        req.extend_from_slice(target);
        req.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes(),
        );
        for (k, v) in headers {
            req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if !body.is_empty() {
            req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        stream.write_all(&req).await.ok()?;
        let mut raw = Vec::new();
        // A reset after the response still leaves what was read in `raw`.
        let _ = stream.read_to_end(&mut raw).await;
        Some(raw)
    };
    let raw = tokio::time::timeout(HTTP_WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no response from {addr} within {HTTP_WAIT:?}"))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let mut http = parse_head(&raw[..split])?;
    http.body = raw[split + 4..].to_vec();
    if method.eq_ignore_ascii_case("HEAD") {
        // No body, whatever the headers say.
    } else if http
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        http.body = dechunk(&http.body);
    } else if let Some(len) = http.header("content-length").and_then(|v| v.parse().ok()) {
        http.body.truncate(len);
    }
    Some(http)
}

/// The status line and headers of a response (`head` ends before the blank line).
pub fn parse_head(head: &[u8]) -> Option<Http> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Http {
        status,
        headers,
        body: Vec::new(),
    })
}

/// A request without a body that must be answered.
pub async fn request(
    addr: &str,
    method: &str,
    target: impl AsRef<[u8]>,
    headers: &[(&str, &str)],
) -> Http {
    let target = target.as_ref();
    http(addr, method, target, headers, &[])
        .await
        .unwrap_or_else(|| {
            let shown = String::from_utf8_lossy(&target[..target.len().min(120)]).to_string();
            panic!("{method} {shown}: the connection closed without a response")
        })
}

/// A `GET` that must be answered.
pub async fn get(addr: &str, target: impl AsRef<[u8]>, headers: &[(&str, &str)]) -> Http {
    request(addr, "GET", target, headers).await
}

/// A `Transfer-Encoding: chunked` body, decoded.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&rest[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
}
