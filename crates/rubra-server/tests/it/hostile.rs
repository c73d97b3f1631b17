//! Hostile input over HTTP (issue #20): seeded mutations (bit flips, truncations, splices,
//! inserted, overwritten and repeated bytes) of valid JPEG, PNG, GIF and WebP files to
//! `POST /red`, `POST /images`, `POST /watermark` and `PUT /overlays/{name}`, of CSV files to
//! `POST /jobs`, and of the JSON bodies of every JSON endpoint (as bytes and as values). No
//! answer may be a 5xx, no job may fail with `internal`, and `/healthz` answers after every
//! batch. Deterministic: a failure names the endpoint and the case, and leaves the body in
//! the temp folder to replay.

use crate::helpers::{TestApp, spawn_app_with};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Requests in flight at once: enough to overlap decodes, few enough that admission (whose
/// 503 is load shedding, not a fault) never refuses one.
const CONCURRENCY: usize = 4;

/// xorshift64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Bytes that parsers treat specially: markers, lengths' edges, quotes, separators.
const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0xD8, 0xD9, 0xDA, 0xC0, 0xC2, 0xC4, 0xDB, b'"', b',', b';',
    b'\r', b'\n', b'{', b'[', b'\\', b'e', b'-', b'.', b'0', b'9',
];

/// Length and size fields' edges, written big- or little-endian over 2 or 4 bytes.
const INTERESTING_WORDS: &[u32] = &[0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, u32::MAX];

/// One to four edits of `seeds[base]`; half of them land in the first 128 bytes, where the
/// headers are.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], base: usize) -> Vec<u8> {
    let mut out = seeds[base].clone();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            out.push(rng.byte());
        }
        let len = out.len();
        let pos = if rng.below(2) == 0 {
            rng.below(len.min(128))
        } else {
            rng.below(len)
        };
        match rng.below(8) {
            0 => out[pos] ^= 1 << rng.below(8),
            1 => out.truncate(pos),
            2 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(other.len());
                out.truncate(pos);
                out.extend_from_slice(&other[cut..]);
            }
            3 => {
                for _ in 0..1 + rng.below(8) {
                    let b = if rng.below(2) == 0 {
                        INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
                    } else {
                        rng.byte()
                    };
                    out.insert(pos, b);
                }
            }
            4 => {
                let w = INTERESTING_WORDS[rng.below(INTERESTING_WORDS.len())];
                let bytes = match rng.below(4) {
                    0 => (w as u16).to_be_bytes().to_vec(),
                    1 => (w as u16).to_le_bytes().to_vec(),
                    2 => w.to_be_bytes().to_vec(),
                    _ => w.to_le_bytes().to_vec(),
                };
                for (i, b) in bytes.into_iter().enumerate() {
                    if let Some(slot) = out.get_mut(pos + i) {
                        *slot = b;
                    }
                }
            }
            5 => out[pos] = rng.byte(),
            6 => {
                let end = len.min(pos + 1 + rng.below(64));
                let chunk = out[pos..end].to_vec();
                let at = rng.below(len);
                out.splice(at..at, chunk);
            }
            _ => {
                let end = len.min(pos + 1 + rng.below(32));
                out.drain(pos..end);
            }
        }
    }
    out
}

/// JSON values validators meet at their edges: wrong types, extreme numbers, odd strings,
/// deep nesting.
fn interesting_value(rng: &mut Rng) -> Value {
    let deep = |open: &str, close: &str, n: usize| -> Value {
        serde_json::from_str(&format!("{}{}", open.repeat(n), close.repeat(n))).unwrap()
    };
    match rng.below(30) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(1),
        5 => json!(0.5),
        6 => json!(-0.0),
        7 => json!(1e308),
        8 => json!(-1e308),
        9 => json!(5e-324),
        10 => json!(u64::MAX),
        11 => json!(i64::MIN),
        12 => json!(""),
        13 => json!(" "),
        14 => json!("\u{0}"),
        15 => json!("é\u{202e}\u{fffd}"),
        16 => json!("a".repeat(5000)),
        17 => json!("../../../etc/passwd"),
        18 => json!("/etc/passwd"),
        19 => json!("s3://bucket/key.csv"),
        20 => json!("http://127.0.0.1:1/x"),
        21 => json!("https://hooks.invalid/x"),
        22 => json!("9999-12-31T23:59:59.999Z"),
        23 => json!("10000-01-01T00:00:00Z"),
        24 => json!("1969-12-31T23:59:59Z"),
        25 => json!([]),
        26 => json!({}),
        27 => deep("[", "]", 60),
        28 => json!(2.5e9),
        _ => json!(4_294_967_296u64),
    }
}

/// Field names the endpoints read, to be added where they do not belong.
const FIELD_NAMES: &[&str] = &[
    "name",
    "source",
    "step",
    "delimiter",
    "header",
    "skip_invalid",
    "red",
    "ts",
    "image_id",
    "client_id",
    "threshold",
    "channel",
    "type",
    "url",
    "interval_ms",
    "pointer",
    "key",
    "headers",
    "subscription_id",
    "expires_at",
    "rate_limit_rps",
    "rate_limit_burst",
    "quotas",
    "disabled",
];

/// Replaces, removes or adds one value somewhere inside `v`.
fn poke(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(map) if !map.is_empty() && rng.below(4) != 0 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            match rng.below(6) {
                0 => {
                    map.remove(k);
                }
                1 => {
                    let name = FIELD_NAMES[rng.below(FIELD_NAMES.len())];
                    map.insert(name.to_owned(), interesting_value(rng));
                }
                _ => poke(rng, map.get_mut(k).unwrap()),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.below(4) != 0 => {
            let i = rng.below(items.len());
            match rng.below(6) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.push(copy);
                }
                _ => poke(rng, &mut items[i]),
            }
        }
        _ => *v = interesting_value(rng),
    }
}

/// A mutated JSON body: half the time edited as a value (still JSON, wrong in meaning), half
/// the time edited as bytes (mostly not JSON any more).
fn mutate_json(rng: &mut Rng, seeds: &[Value]) -> Vec<u8> {
    let base = rng.below(seeds.len());
    if rng.below(2) == 0 {
        let mut v = seeds[base].clone();
        for _ in 0..1 + rng.below(3) {
            poke(rng, &mut v);
        }
        serde_json::to_vec(&v).unwrap()
    } else {
        let bytes: Vec<Vec<u8>> = seeds
            .iter()
            .map(|s| serde_json::to_vec(s).unwrap())
            .collect();
        mutate(rng, &bytes, base)
    }
}

/// One planned request: what to send and how to name it in a failure.
struct Case {
    label: String,
    method: Method,
    path: String,
    key: String,
    content_type: &'static str,
    body: Vec<u8>,
}

/// Sends `cases` `CONCURRENCY` at a time; panics on the first 5xx (leaving its body in the
/// temp folder) and checks `/healthz` afterwards. Returns the count of each status.
async fn run_batch(app: &TestApp, name: &str, cases: Vec<Case>) -> BTreeMap<u16, usize> {
    let mut statuses = BTreeMap::new();
    let mut cases = cases.into_iter();
    loop {
        let mut set = tokio::task::JoinSet::new();
        for case in cases.by_ref().take(CONCURRENCY) {
            let req: RequestBuilder = app
                .with_key(&case.key, case.method.clone(), &case.path)
                .header("content-type", case.content_type)
                .body(case.body.clone());
            set.spawn(async move {
                let again = req.try_clone();
                let mut resp = req.send().await;
                // A 503 is load shedding (admission, a busy database on a loaded test
                // machine), not a fault: the same request once more, a moment later, must
                // then be answered without a 5xx.
                if let (Ok(r), Some(again)) = (&resp, again)
                    && r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    resp = again.send().await;
                }
                (case, resp)
            });
        }
        if set.is_empty() {
            break;
        }
        while let Some(joined) = set.join_next().await {
            let (case, resp) = joined.unwrap();
            let resp = resp.unwrap_or_else(|e| {
                panic!(
                    "{}: {} {} got no answer: {e}",
                    case.label, case.method, case.path
                )
            });
            let status = resp.status().as_u16();
            *statuses.entry(status).or_default() += 1;
            if status >= 500 {
                let text = resp.text().await.unwrap_or_default();
                let file = std::env::temp_dir().join(format!(
                    "rubra-hostile-{}.bin",
                    case.label.replace(['/', ' '], "_")
                ));
                std::fs::write(&file, &case.body).unwrap();
                panic!(
                    "{}: {} {} answered {status} {text}; body ({} bytes) in {}",
                    case.label,
                    case.method,
                    case.path,
                    case.body.len(),
                    file.display()
                );
            }
        }
    }
    healthy(app, name).await;
    statuses
}

async fn healthy(app: &TestApp, after: &str) {
    let resp = app
        .anon(Method::GET, "/healthz")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz after {after}: {e}"));
    assert_eq!(resp.status(), 200, "/healthz after {after}");
}

// ---------- seeds ----------

/// Gradients with a red disc: small enough for a debug build to decode thousands.
fn rgba_picture(w: u32, h: u32) -> image::RgbaImage {
    image::ImageBuffer::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as i32 - w as i32 / 3, y as i32 - h as i32 / 2);
        if dx * dx + dy * dy < (h as i32 / 3).pow(2) {
            image::Rgba([240, 20, 30, 255])
        } else {
            image::Rgba([(x * 255 / w) as u8, (y * 255 / h) as u8, 128, 200])
        }
    })
}

fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn jpeg(w: u16, h: u16, progressive: bool, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
    let rgb = image::DynamicImage::ImageRgba8(rgba_picture(w.into(), h.into())).to_rgb8();
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_sampling_factor(sampling);
    enc.set_progressive(progressive);
    enc.encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// Valid images of every accepted format, with their media types.
fn image_seeds() -> Vec<(Vec<u8>, &'static str)> {
    use image::{DynamicImage, ImageFormat};
    use jpeg_encoder::SamplingFactor;
    let pic = rgba_picture(40, 30);
    let gif = {
        let mut out = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
            let frames = [pic.clone(), image::imageops::flip_horizontal(&pic)];
            for f in frames {
                enc.encode_frame(image::Frame::new(f)).unwrap();
            }
        }
        out
    };
    vec![
        (jpeg(40, 30, false, SamplingFactor::R_4_2_0), "image/jpeg"),
        (jpeg(33, 17, true, SamplingFactor::R_4_2_2), "image/jpeg"),
        (jpeg(24, 24, false, SamplingFactor::R_4_4_4), "image/jpeg"),
        (
            include_bytes!("../../../rubra-image/tests/fixtures/arith_seq_420_restart.jpg")
                .to_vec(),
            "image/jpeg",
        ),
        (
            include_bytes!("../../../rubra-image/tests/fixtures/cmyk.jpg").to_vec(),
            "image/jpeg",
        ),
        (
            encoded(DynamicImage::ImageRgba8(pic.clone()), ImageFormat::Png),
            "image/png",
        ),
        (
            encoded(
                DynamicImage::ImageRgba8(pic.clone()).to_luma16().into(),
                ImageFormat::Png,
            ),
            "image/png",
        ),
        (gif, "image/gif"),
        (
            encoded(DynamicImage::ImageRgba8(pic), ImageFormat::WebP),
            "image/webp",
        ),
        (
            include_bytes!("../../../rubra-image/tests/fixtures/half_red_lossy.webp").to_vec(),
            "image/webp",
        ),
        (
            include_bytes!("../../../rubra-image/tests/fixtures/red_alpha_lossy.webp").to_vec(),
            "image/webp",
        ),
    ]
}

/// Mutated images for `path`, each sent with its seed's media type (or, one time in eight,
/// another).
fn image_cases(
    rng: &mut Rng,
    seeds: &[(Vec<u8>, &'static str)],
    n: usize,
    method: Method,
    path: impl Fn(usize) -> String,
    key: &str,
) -> Vec<Case> {
    let bytes: Vec<Vec<u8>> = seeds.iter().map(|(b, _)| b.clone()).collect();
    (0..n)
        .map(|i| {
            let base = rng.below(seeds.len());
            let content_type = if rng.below(8) == 0 {
                seeds[rng.below(seeds.len())].1
            } else {
                seeds[base].1
            };
            let path = path(i);
            Case {
                label: format!("{path} case {i}"),
                method: method.clone(),
                path,
                key: key.to_owned(),
                content_type,
                body: mutate(rng, &bytes, base),
            }
        })
        .collect()
}

/// The content type of [`multipart_seeds`].
const MULTIPART: &str = "multipart/form-data; boundary=XhostileX";

/// Multipart forms holding one or two of the image seeds (and a plain value), for the
/// routes that take images as form file parts.
fn multipart_seeds(images: &[(Vec<u8>, &'static str)]) -> Vec<(Vec<u8>, &'static str)> {
    let part = |out: &mut Vec<u8>, (bytes, ct): &(Vec<u8>, &str), i: usize| {
        let head = format!(
            "--XhostileX\r\nContent-Disposition: form-data; name=\"file{i}\"; \
             filename=\"f{i}\"\r\nContent-Type: {ct}\r\n\r\n"
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    };
    (0..images.len())
        .map(|i| {
            let mut out =
                b"--XhostileX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
                    .to_vec();
            part(&mut out, &images[i], 0);
            if i % 2 == 0 {
                part(&mut out, &images[(i + 1) % images.len()], 1);
            }
            out.extend_from_slice(b"--XhostileX--\r\n");
            (out, MULTIPART)
        })
        .collect()
}

/// A small valid CSV: header, quoted cells, decimals, exponents, CRLF and LF.
fn csv_seeds() -> Vec<Vec<u8>> {
    vec![
        b"id,name,net,gross\r\n1,\"a, b\",1.25,2\r\n2,\"say \"\"hi\"\"\",-0.5,3e2\r\n3,,7,\r\n"
            .to_vec(),
        b"x;y;z\n1;2;3\n4.5;\"6\n7\";8\n-9;10e-1;.5\n".to_vec(),
        b"\xEF\xBB\xBFa,b\r\n1,2\r\n3,4".to_vec(),
    ]
}

/// Waits until every job in `ids` is final; none may end `internal`.
async fn jobs_settle(app: &TestApp, key: &str, ids: &[String]) -> BTreeMap<String, usize> {
    let mut states = BTreeMap::new();
    let until = Instant::now() + Duration::from_secs(60);
    for id in ids {
        let job = loop {
            let resp = app
                .with_key(key, Method::GET, &format!("/jobs/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "GET /jobs/{id}");
            let job: Value = resp.json().await.unwrap();
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "failed" | "canceled")
            ) {
                break job;
            }
            assert!(Instant::now() < until, "job never finished: {job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_ne!(job["error"]["code"], "internal", "{job}");
        let state = match job["error"]["code"].as_str() {
            Some(code) => format!("failed:{code}"),
            None => job["state"].as_str().unwrap().to_owned(),
        };
        *states.entry(state).or_default() += 1;
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_never_get_a_5xx_and_the_server_keeps_answering() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_owned();
    let app = spawn_app_with(move |c| {
        c.jobs_local_root = Some(root_path);
        c.job_workers = Some(2);
        c.jobs_per_client = Some(4);
        c.max_jobs_per_client = Some(10_000);
        c.max_keys_per_client = Some(10_000);
        c.max_subscriptions_per_client = Some(10_000);
        c.max_watches_per_client = Some(10_000);
        // Notifications to a closed local port, never out of the machine.
        c.viber_base_url = Some("http://127.0.0.1:9".into());
    })
    .await;
    let (_, key) = app.create_client("hostile").await;
    let (victim, _) = app.create_client("patched").await;
    let mut rng = Rng(0x5eed_2026_1206);
    let mut total = 0;
    let mut report = Vec::new();

    // Images.
    let seeds = image_seeds();
    let overlay = encoded(
        image::DynamicImage::ImageRgba8(rgba_picture(12, 6)),
        image::ImageFormat::Png,
    );
    let resp = app
        .with_key(&key, Method::PUT, "/overlays/logo")
        .header("content-type", "image/png")
        .body(overlay.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "PUT /overlays/logo");
    let watermark_queries = [
        "overlay=logo",
        "overlay=logo&gravity=south_east&dx=3&dy=2&opacity=0.7",
        "overlay=logo&x=-5&y=20&scale=2.5",
        "overlay=logo&gravity=center&width=64",
    ];
    let forms = multipart_seeds(&seeds);
    let overlay_seed = [(overlay, "image/png")];
    let watermark_path = |i: usize| {
        let q = watermark_queries[i % watermark_queries.len()];
        format!("/watermark?{q}")
    };
    let batches: Vec<(&str, Vec<Case>)> = vec![
        (
            "/red",
            image_cases(
                &mut rng,
                &seeds,
                1800,
                Method::POST,
                |_| "/red".into(),
                &key,
            ),
        ),
        (
            "/images",
            image_cases(
                &mut rng,
                &seeds,
                1000,
                Method::POST,
                |_| "/images".into(),
                &key,
            ),
        ),
        (
            "/images form",
            image_cases(
                &mut rng,
                &forms,
                600,
                Method::POST,
                |_| "/images".into(),
                &key,
            ),
        ),
        (
            "/red form",
            image_cases(&mut rng, &forms, 300, Method::POST, |_| "/red".into(), &key),
        ),
        (
            "/watermark",
            image_cases(&mut rng, &seeds, 1800, Method::POST, watermark_path, &key),
        ),
        (
            "/overlays",
            image_cases(
                &mut rng,
                &overlay_seed,
                400,
                Method::PUT,
                |i| format!("/overlays/m{}", i % 4),
                &key,
            ),
        ),
    ];
    for (name, cases) in batches {
        total += cases.len();
        let statuses = run_batch(&app, name, cases).await;
        report.push(format!("{name}: {statuses:?}"));
    }

    // CSV jobs: mutated files on the local root, submitted with options of every kind.
    let csvs = csv_seeds();
    let mut ids = Vec::new();
    let mut cases = Vec::new();
    for i in 0..300 {
        let file = format!("m{i}.csv");
        std::fs::write(root.path().join(&file), {
            let base = rng.below(csvs.len());
            mutate(&mut rng, &csvs, base)
        })
        .unwrap();
        let delimiter = [",", ";", "\t", "|"][rng.below(4)];
        let body = json!({
            "source": file,
            "step": 1 + rng.below(4),
            "delimiter": delimiter,
            "header": rng.below(2) == 0,
            "skip_invalid": rng.below(2) == 0,
        });
        cases.push(Case {
            label: format!("/jobs csv {i}"),
            method: Method::POST,
            path: "/jobs".into(),
            key: key.clone(),
            content_type: "application/json",
            body: serde_json::to_vec(&body).unwrap(),
        });
    }
    total += cases.len();
    for case in cases {
        let resp = app
            .with_key(&case.key, Method::POST, "/jobs")
            .header("content-type", case.content_type)
            .body(case.body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status < 500, "{}: {status} {body}", case.label);
        if let Some(id) = body["id"].as_str() {
            ids.push(id.to_owned());
        }
    }
    let states = jobs_settle(&app, &key, &ids).await;
    healthy(&app, "/jobs csv").await;
    report.push(format!("/jobs csv: {} jobs {states:?}", ids.len()));

    // JSON bodies of every JSON endpoint.
    std::fs::write(root.path().join("ok.csv"), &csvs[0]).unwrap();
    let admin = app.admin_key.clone();
    let json_endpoints: Vec<(Method, String, &String, Vec<Value>)> = vec![
        (
            Method::POST,
            "/clients".into(),
            &admin,
            vec![json!({"name": "acme"})],
        ),
        (
            Method::PATCH,
            format!("/clients/{victim}"),
            &admin,
            vec![json!({
                "rate_limit_rps": 100, "rate_limit_burst": 200, "disabled": false,
                "quotas": {"subscriptions": 5, "jobs": null, "watches": 3, "overlays": 2,
                           "overlay_bytes": 100000, "image_bytes": 1000000}
            })],
        ),
        (
            Method::POST,
            format!("/clients/{victim}/keys"),
            &admin,
            vec![
                json!({"name": "k", "expires_at": "2030-01-01T00:00:00Z"}),
                json!({}),
            ],
        ),
        (
            Method::POST,
            "/jobs".into(),
            &key,
            vec![
                json!({"source": "ok.csv", "step": 2, "delimiter": ",", "header": true,
                        "skip_invalid": false}),
            ],
        ),
        (
            Method::POST,
            "/events".into(),
            &key,
            vec![
                json!([{"red": 0.5}, {"red": 0.7, "ts": "2026-12-06T10:00:00Z",
                         "image_id": "abc"}, {"red": 0.1, "ts": 1_765_000_000_000u64}]),
            ],
        ),
        (
            Method::POST,
            "/subscriptions".into(),
            &key,
            vec![
                json!({"threshold": 0.5, "channel": {"type": "stream"}}),
                json!({"threshold": 0.9, "channel": {"type": "webhook",
                                                     "url": "https://hooks.invalid/x"}}),
                json!({"threshold": 0.2, "channel": {"type": "viber", "receiver": "u",
                                                     "auth_token": "t"}}),
            ],
        ),
        (
            Method::POST,
            "/watches".into(),
            &key,
            vec![
                json!({"url": "https://watch.invalid/odds", "interval_ms": 60000,
                        "pointer": "/games", "key": "id", "headers": {"X-A": "b"}}),
            ],
        ),
    ];
    for (method, path, who, seeds) in json_endpoints {
        let cases: Vec<Case> = (0..400)
            .map(|i| Case {
                label: format!("{path} json {i}"),
                method: method.clone(),
                path: path.clone(),
                key: who.clone(),
                content_type: "application/json",
                body: mutate_json(&mut rng, &seeds),
            })
            .collect();
        total += cases.len();
        let statuses = run_batch(&app, &path, cases).await;
        report.push(format!("{method} {path}: {statuses:?}"));
    }
    // The admin's events name clients; the jobs the JSON batch queued finish too.
    let mut cases = Vec::new();
    for i in 0..300 {
        let seeds = [json!([{"red": 0.5, "client_id": victim}, {"red": 0.9}])];
        cases.push(Case {
            label: format!("admin /events json {i}"),
            method: Method::POST,
            path: format!("/events?client={victim}"),
            key: admin.clone(),
            content_type: "application/json",
            body: mutate_json(&mut rng, &seeds),
        });
    }
    total += cases.len();
    let statuses = run_batch(&app, "admin /events", cases).await;
    report.push(format!("admin POST /events: {statuses:?}"));

    eprintln!(
        "hostile: {total} requests in {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        report.join("\n")
    );
}
