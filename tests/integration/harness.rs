//! Test harness: fixtures (generated images, real photos), and helpers to run the real
//! `rendition` binary and wait for what it logs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use image::{ImageEncoder, Rgb, RgbImage};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

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

/// The `rendition` binary under test.
pub fn rendition_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rendition"))
}

/// Writes `dir/rendition.toml`: the repository's own configuration, then `extra`.
pub fn write_config(dir: &Path, extra: &str) {
    let defaults = std::fs::read_to_string(repo_root().join("rendition.toml")).unwrap();
    std::fs::write(dir.join("rendition.toml"), format!("{defaults}\n{extra}")).unwrap();
}

/// `rendition run --local BUCKET --once` in `cwd` (its `rendition.toml`), JSON logs on
/// stderr.
pub async fn run_local_once(cwd: &Path, bucket: &Path) -> std::process::Output {
    tokio::process::Command::new(rendition_bin())
        .current_dir(cwd)
        .args(["run", "--local", bucket.to_str().unwrap(), "--once"])
        .env("RENDITION__LOG__FORMAT", "json")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

/// A running `rendition` process whose JSON log lines can be awaited. Its stderr is
/// drained all along by a task of its own, so a test that does not look at the logs for
/// a while never blocks the process on a full pipe.
pub struct Running {
    pub child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub seen: Vec<serde_json::Value>,
}

/// Every line of `stderr`, as it comes.
fn drain(stderr: ChildStderr) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines: Lines<BufReader<ChildStderr>> = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    /// Starts `rendition ARGS` with JSON logs on stderr.
    pub fn spawn(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(rendition_bin());
        cmd.current_dir(cwd)
            .args(args)
            .env("RENDITION__LOG__FORMAT", "json")
            .env("RENDITION__LOG__FILTER", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn rendition");
        let stderr = child.stderr.take().unwrap();
        Running {
            child,
            lines: drain(stderr),
            seen: Vec::new(),
        }
    }

    /// Reads log lines until one satisfies `pred`, failing after `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for {what}; log so far: {:#?}", self.seen)
                });
            let Some(line) = line else {
                panic!("process ended before {what}; log: {:#?}", self.seen)
            };
            let value: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
            self.seen.push(value.clone());
            if pred(&value) {
                return value;
            }
        }
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
