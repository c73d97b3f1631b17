//! Compare two JSON documents the way people mean "equal".
//!
//! ```
//! use rubra_jsondiff::{diff, Document, Options};
//!
//! let a: Document = r#"{"items":[{"id":1,"price":1.000012}]}"#.parse()?;
//! let b: Document = r#"{"items":[{"id":1,"price":1.000031}]}"#.parse()?;
//! let report = diff(&a, &b, &Options::default());
//! assert_eq!(report.to_text(false), ".items[0].price: 1.000012 → 1.000031 (Δ 1.9e-5)\n");
//! # Ok::<(), rubra_jsondiff::ParseError>(())
//! ```
//!
//! # Numbers
//!
//! Numbers are never converted to float64 to be compared: each literal is read
//! as an exact decimal, so `1 == 1.0 == 1e0`, `1e2 == 100` and
//! `12345678901234567890 ≠ 12345678901234567891`.
//!
//! **The tolerance rule.** Two numbers are equal when they are the same decimal
//! value, or when *at least one of them is written with a fraction or an
//! exponent* and `|a − b| ≤ abs` or `|a − b| ≤ rel · max(|a|, |b|)`. Two integer
//! literals are always compared exactly, whatever the tolerance. The default is
//! `abs = 0.5·10⁻⁵` ("equal to 5 decimal places"), `rel = 0`; the bound is
//! inclusive and computed exactly in decimal (so `1.00001` and `1.000015` are
//! equal), falling back to float64 only for numbers with more than 38
//! significant digits or exponents too far apart for 128-bit arithmetic.
//!
//! # Arrays
//!
//! Ordered by default: a real sequence alignment finds insertions and deletions
//! (common prefix and suffix, then Myers' diff with a cost cap, then anchors on
//! elements unique on both sides, then position by position), so it stays near
//! linear on large arrays. A run of deletions next to insertions is reported as
//! changed elements. [`ArrayMode::Set`], [`ArrayMode::Multiset`] and
//! [`ArrayMode::Key`] match elements regardless of order, in expected linear
//! time, and keep the tolerance (see the `arrays` module notes in the README).
//! Keys of keyed arrays are compared exactly.
//!
//! # Paths
//!
//! Modes, ignores and tolerances can be set per path with [`PathPattern`]s such as
//! `items[*].updated_at` or `**.timestamp`; later rules win. A tolerance set for a
//! path holds for all numbers at and below it.
//!
//! # Patches
//!
//! With [`Options::patch`], the report carries an RFC 6902 patch; [`apply`]ing it
//! to the first document gives a document that compares equal to the second
//! under the same options (exactly the second when the tolerance is
//! [`Tolerance::EXACT`] and every array is ordered).
#![deny(missing_docs)]

mod arrays;
#[cfg(feature = "cli")]
pub mod cli;
mod engine;
mod memory;
mod number;
mod ordered;
mod parse;
pub mod patch;
mod path;
mod policy;
mod report;

pub use number::{Decimal, Tolerance};
pub use parse::{Document, MAX_DEPTH, ParseError};
pub use patch::{PatchError, apply};
pub use path::{PathPattern, PatternError};
pub use policy::{ArrayMode, Options, PolicyError};
pub use report::{Difference, Kind, Op, PatchOp, Report};

/// Documents nested deeper than this are compared on a thread with a larger stack;
/// up to it, the comparison takes well under 1 MiB of the caller's stack even in
/// a debug build (measured at most ~7 KiB per level there, ~2 KiB in release), so
/// it is safe on a 2 MiB thread (tokio's and the test harness's).
const INLINE_DEPTH: usize = 128;
/// Stack reserved per nesting level on that thread: a level of keyed or unordered
/// arrays takes several frames. Only touched pages cost memory.
const STACK_PER_LEVEL: usize = if cfg!(debug_assertions) {
    48 << 10
} else {
    8 << 10
};

/// Stack for a thread that compares documents `depth` levels deep.
pub(crate) fn stack_size(depth: usize) -> usize {
    (1 << 20) + depth * STACK_PER_LEVEL
}

/// Compares `a` with `b`.
///
/// Every nesting depth that [`Document::parse`] accepts (up to [`MAX_DEPTH`]) gets
/// a correct answer: documents deeper than a hundred levels or so are compared on
/// a scoped thread whose stack is sized from their depth (if that thread cannot be
/// started, on the caller's: the limit keeps that within ~1.2 MiB in release builds).
pub fn diff(a: &Document, b: &Document, opts: &Options) -> Report {
    let depth = a.depth().max(b.depth());
    if depth <= INLINE_DEPTH {
        // Large unordered and keyed arrays can be matched and diffed on several
        // threads (`RUBRA_JSONDIFF_THREADS`).
        return engine::Engine::new(a, b, opts).parallel_default().run();
    }
    let stack = stack_size(depth);
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("rubra-jsondiff".into())
            .stack_size(stack)
            .spawn_scoped(s, || engine::Engine::new(a, b, opts).run())
        {
            Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            Err(_) => engine::Engine::new(a, b, opts).run(),
        }
    })
}

/// Whether `a` and `b` are equal under `opts` (stops at the first difference).
pub fn equal(a: &Document, b: &Document, opts: &Options) -> bool {
    let opts = Options {
        stop_at_first: true,
        patch: false,
        ..opts.clone()
    };
    diff(a, b, &opts).is_equal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Document {
        s.parse().expect("valid JSON")
    }

    fn check(a: &str, b: &str, opts: &Options) -> Report {
        let (da, db) = (doc(a), doc(b));
        let opts = Options {
            patch: true,
            ..opts.clone()
        };
        let r = diff(&da, &db, &opts);
        let patched = doc(&apply(&da, &r.patch).expect("patch applies"));
        assert!(
            diff(&patched, &db, &opts).is_equal(),
            "patch does not give B\nA={a}\nB={b}\npatch={}",
            r.patch_json()
        );
        assert_eq!(r.is_equal(), equal(&da, &db, &opts));
        r
    }

    fn text(a: &str, b: &str, opts: &Options) -> String {
        check(a, b, opts).to_text(false)
    }

    #[test]
    fn spec_example_line() {
        let o = Options::default();
        assert_eq!(
            text(
                r#"{"items":[0,1,2,{"price":1.000012}]}"#,
                r#"{"items":[0,1,2,{"price":1.000031}]}"#,
                &o
            ),
            ".items[3].price: 1.000012 → 1.000031 (Δ 1.9e-5)\n"
        );
    }

    #[test]
    fn objects_report_added_removed_changed() {
        let o = Options::default();
        let t = text(
            r#"{"a":1,"b":"x","c":true}"#,
            r#"{"b":"y","c":true,"d":null}"#,
            &o,
        );
        assert_eq!(t, ".a: - 1\n.b: \"x\" → \"y\"\n.d: + null\n");
        assert_eq!(
            text(r#"{"a b":1}"#, r#"{"a b":2}"#, &o),
            "[\"a b\"]: 1 → 2 (Δ 1)\n"
        );
        assert_eq!(text("1", "\"1\"", &o), ".: 1 → \"1\"\n");
    }

    #[test]
    fn ordered_arrays_find_insertions_and_deletions() {
        let o = Options::default();
        assert_eq!(text("[1,2,3,4]", "[1,3,4,5]", &o), "[1]: - 2\n[3]: + 5\n");
        assert_eq!(text("[1,2,3]", "[0,1,2,3]", &o), "[0]: + 0\n");
        assert_eq!(text("[]", "[1]", &o), "[0]: + 1\n");
        check("[1,2,3,4,5,6]", "[6,5,4,3,2,1]", &o);
        check(r#"[{"a":1},{"b":2},3]"#, r#"[{"a":2},3,{"b":2}]"#, &o);
    }

    #[test]
    fn large_arrays_with_sparse_edits_stay_aligned() {
        // Enough edits to exceed Myers' cap, so the resynchronising walk runs.
        let n = 20_000;
        let a: Vec<String> = (0..n)
            .map(|i| format!("{{\"id\":{i},\"v\":1.5}}"))
            .collect();
        let mut b = Vec::new();
        let mut edits = 0;
        for (i, x) in a.iter().enumerate() {
            if i % 50 == 7 {
                edits += 1;
                continue;
            }
            if i % 70 == 3 {
                b.push("\"new\"".to_owned());
                edits += 1;
            }
            b.push(if i % 90 == 5 {
                x.replace("1.5", "2.5")
            } else {
                x.clone()
            });
        }
        let (a, b) = (format!("[{}]", a.join(",")), format!("[{}]", b.join(",")));
        let r = check(&a, &b, &Options::default());
        let changed = r
            .differences
            .iter()
            .filter(|d| d.path.ends_with(".v"))
            .count();
        assert_eq!(
            changed,
            (0..n).filter(|i| i % 90 == 5 && i % 50 != 7).count()
        );
        assert!(
            r.differences.len() <= edits + changed,
            "{}",
            r.differences.len()
        );
    }

    #[test]
    fn unordered_modes() {
        let set = Options {
            array_mode: ArrayMode::Set,
            ..Options::default()
        };
        assert!(text("[1,2,2,3]", "[3,2,1]", &set).is_empty());
        assert_eq!(text("[1,2]", "[2,3]", &set), "[0]: - 1\n[1]: + 3\n");
        let bag = Options {
            array_mode: ArrayMode::Multiset,
            ..Options::default()
        };
        assert_eq!(text("[1,2,2]", "[2,1]", &bag), "[2]: - 2\n");
        assert!(text("[[1,2],{\"a\":1}]", "[{\"a\":1.0},[1,2]]", &bag).is_empty());
    }

    #[test]
    fn keyed_arrays_diff_matched_elements() {
        let o = Options {
            arrays: vec![(
                "items[*]".parse().expect("pattern"),
                ArrayMode::Key("id".into()),
            )],
            ..Options::default()
        };
        let t = text(
            r#"{"items":[{"id":1,"p":1.5},{"id":2,"p":2},{"id":3},4]}"#,
            r#"{"items":[{"id":4},{"id":2,"p":2.5},{"id":1,"p":1.5000001},4]}"#,
            &o,
        );
        assert_eq!(
            t,
            ".items[id=2].p: 2 → 2.5 (Δ 0.5)\n.items[id=3]: - {\"id\":3}\n.items[id=4]: + {\"id\":4}\n"
        );
    }

    #[test]
    fn tolerance_in_every_array_mode() {
        for mode in [
            ArrayMode::Ordered,
            ArrayMode::Set,
            ArrayMode::Multiset,
            ArrayMode::Key("k".into()),
        ] {
            let o = Options {
                array_mode: mode.clone(),
                ..Options::default()
            };
            // Straddles the 5th-decimal rounding boundary: rounding both would differ.
            let a = r#"[{"k":1,"v":0.1234549},{"k":2,"v":[2.0000049,7]},0.3333349]"#;
            let b = r#"[0.333335,{"k":2,"v":[2.0000051,7]},{"k":1,"v":0.1234551}]"#;
            let r = check(a, b, &o);
            if mode == ArrayMode::Ordered {
                assert!(!r.is_equal());
            } else {
                assert!(r.is_equal(), "{mode:?}: {}", r.to_text(false));
            }
            let exact = Options {
                tolerance: Tolerance::EXACT,
                ..o.clone()
            };
            assert!(!check(a, b, &exact).is_equal());
        }
    }

    #[test]
    fn ignores_with_wildcards() {
        let o = Options {
            ignore: vec![
                "**.timestamp".parse().expect("pattern"),
                "items[*].updated_at".parse().expect("pattern"),
            ],
            ..Options::default()
        };
        let a = r#"{"timestamp":1,"x":{"timestamp":2},"items":[{"a":1,"updated_at":3}]}"#;
        let b = r#"{"x":{"timestamp":5},"items":[{"a":1,"updated_at":4}],"timestamp":9}"#;
        assert!(text(a, b, &o).is_empty());
        let b2 = r#"{"x":{},"items":[{"a":2}]}"#;
        assert_eq!(text(a, b2, &o), ".items[0].a: 1 → 2 (Δ 1)\n");
    }

    #[test]
    fn per_path_tolerance() {
        let o = Options {
            tolerances: vec![(
                "**.price".parse().expect("pattern"),
                Tolerance {
                    abs: Decimal::parse("0.01").expect("decimal"),
                    rel: Decimal::ZERO,
                },
            )],
            ..Options::default()
        };
        assert_eq!(
            text(
                r#"{"price":1.001,"q":1.001}"#,
                r#"{"price":1.009,"q":1.009}"#,
                &o
            ),
            ".q: 1.001 → 1.009 (Δ 0.008)\n"
        );
    }

    #[test]
    fn quiet_stops_at_the_first_difference() {
        let o = Options {
            stop_at_first: true,
            ..Options::default()
        };
        let r = diff(&doc("[1,2,3]"), &doc("[4,5,6]"), &o);
        assert_eq!(r.differences.len(), 1);
    }

    /// A pseudo-random pair: arrays of objects with ids, prices near each other,
    /// repeated elements, deletions, insertions, nested arrays and a shuffle.
    fn random_pair(seed: u64, n: usize) -> (String, String) {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..n {
            let price = format!("{}.{:06}", next(100), next(1_000_000));
            let tags = format!("[{},{}]", next(4), next(4));
            let elem = |p: &str, tags: &str, skip: u64| {
                format!(
                    r#"{{"id":{i},"p":{p},"tags":{tags},"skip":{skip},"n":{{"q":[{}]}}}}"#,
                    i % 7
                )
            };
            a.push(elem(&price, &tags, next(9)));
            let roll = next(20);
            if roll == 0 {
                continue; // deleted
            }
            let p2 = match roll {
                1 => format!("{price}0000001"),  // within the tolerance
                2 => format!("{}.5", next(100)), // changed
                _ => price.clone(),
            };
            let t2 = if roll == 3 {
                "[9,9]".to_owned()
            } else {
                tags.clone()
            };
            b.push(elem(&p2, &t2, next(9)));
            if roll == 4 {
                b.push(format!(r#"{{"id":{},"p":1.5}}"#, n + i)); // inserted
            }
            if roll == 5 {
                b.push(a[i].clone()); // repeated
            }
        }
        // Shuffle B but keep runs in place so ordered mode has something to align.
        for k in (1..b.len()).rev() {
            if next(3) == 0 {
                let j = next(k as u64 + 1) as usize;
                b.swap(k, j);
            }
        }
        let wrap = |v: &[String]| {
            format!(
                r#"{{"items":[{}],"nested":[[{}],[1,2.000001]],"skip":1}}"#,
                v.join(","),
                v[..v.len().min(5)].join(",")
            )
        };
        (wrap(&a), wrap(&b))
    }

    #[test]
    fn threads_give_the_same_report_as_one() {
        let field: PathPattern = "items[*]".parse().expect("pattern");
        let modes = [
            ArrayMode::Ordered,
            ArrayMode::Set,
            ArrayMode::Multiset,
            ArrayMode::Key("id".into()),
        ];
        for seed in 0..6 {
            let (a, b) = random_pair(seed, 300);
            let (da, db) = (doc(&a), doc(&b));
            for mode in &modes {
                for rules in [false, true] {
                    let mut o = Options {
                        array_mode: mode.clone(),
                        patch: true,
                        ..Options::default()
                    };
                    if rules {
                        o.arrays = vec![(field.clone(), mode.clone())];
                        o.array_mode = ArrayMode::Multiset;
                        o.ignore = vec!["**.skip".parse().expect("pattern")];
                        o.tolerances = vec![(
                            "items[*].p".parse().expect("pattern"),
                            Tolerance {
                                abs: Decimal::parse("0.6").expect("decimal"),
                                rel: Decimal::ZERO,
                            },
                        )];
                    }
                    let one = engine::Engine::new(&da, &db, &o).run();
                    assert!(!one.is_equal());
                    for (threads, par_min) in [(2, 1), (3, 2), (5, 64)] {
                        let many = engine::Engine::new(&da, &db, &o)
                            .parallel(threads, par_min)
                            .run();
                        assert_eq!(
                            many, one,
                            "seed {seed}, {mode:?}, rules {rules}, {threads} threads"
                        );
                    }
                    // The patch of the threaded run still turns A into B.
                    let many = engine::Engine::new(&da, &db, &o).parallel(3, 1).run();
                    let patched = doc(&apply(&da, &many.patch).expect("patch applies"));
                    assert!(diff(&patched, &db, &o).is_equal(), "seed {seed}, {mode:?}");
                }
            }
        }
    }

    #[test]
    fn quiet_stays_sequential_with_threads() {
        let (a, b) = random_pair(9, 200);
        let o = Options {
            array_mode: ArrayMode::Key("id".into()),
            stop_at_first: true,
            ..Options::default()
        };
        let r = engine::Engine::new(&doc(&a), &doc(&b), &o)
            .parallel(4, 1)
            .run();
        assert_eq!(r.differences.len(), 1);
    }

    #[test]
    fn deep_nesting_gets_an_answer() {
        let n = MAX_DEPTH;
        let a = "[".repeat(n) + "1" + &"]".repeat(n);
        let b = "[".repeat(n) + "2" + &"]".repeat(n);
        let r = diff(&doc(&a), &doc(&b), &Options::default());
        assert_eq!(r.differences.len(), 1);
        assert!(r.differences[0].path.starts_with("[0][0]"));
        let o = r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n);
        assert!(equal(&doc(&o), &doc(&o), &Options::default()));
        for mode in [
            ArrayMode::Set,
            ArrayMode::Multiset,
            ArrayMode::Key("k".into()),
        ] {
            let opts = Options {
                array_mode: mode,
                ..Options::default()
            };
            let r = diff(&doc(&a), &doc(&b), &opts);
            assert_eq!(r.differences.len(), 2, "{:?}", opts.array_mode);
            let k = r#"[{"k":1,"v":"#.repeat(n / 2) + "1" + &"}]".repeat(n / 2);
            assert!(equal(&doc(&k), &doc(&k), &opts));
        }
    }

    /// Runs `f` on a thread with `stack` bytes of stack: a recursion per nesting
    /// level would overflow it and abort the whole test binary.
    fn on_stack<T: Send + 'static>(stack: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(f)
            .expect("thread")
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Attack: a 100 000-deep array or object (`[[[[…]]]]`, `{"a":{"a":…}}`) given
    /// to the library is a parse error, refused without recursing (a 256 KiB stack).
    #[test]
    fn deep_json_attack_100000_levels_is_an_error_not_a_stack_overflow() {
        on_stack(256 << 10, || {
            let n = 100_000;
            for text in [
                "[".repeat(n) + &"]".repeat(n),
                r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n),
                "[".repeat(n),
            ] {
                let e = Document::parse(text).expect_err("too deep");
                assert!(e.message.contains("nesting deeper than"), "{e}");
                assert!(e.message.contains(&MAX_DEPTH.to_string()), "{e}");
            }
        });
    }

    /// Attack: sets nested in sets whose elements differ only in a deep number
    /// (`[[[…[1,1]…,1],1],1]` against the same ending in 2) once compared each
    /// pair twice per level, 2^depth work: 40 levels (under 200 bytes) never ended.
    #[test]
    fn deep_json_attack_nested_sets_are_not_exponential() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let d = 40;
            let a = doc(&("[".repeat(d) + "1" + &",1]".repeat(d)));
            let b = doc(&("[".repeat(d) + "2" + &",1]".repeat(d)));
            let o = Options {
                array_mode: ArrayMode::Set,
                ..Options::default()
            };
            let _ = tx.send((diff(&a, &b, &o).differences.len(), equal(&a, &b, &o)));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(got, Ok((2, false)), "40 nested sets took over a minute");
    }

    /// Attack, at the limit: the deepest documents accepted are compared, patched
    /// and printed in every array mode on a 2 MiB thread (tokio's and the test
    /// harness's stack size) without overflowing it.
    #[test]
    fn deep_json_attack_at_the_depth_limit_fits_a_2_mib_stack() {
        on_stack(2 << 20, || {
            let n = MAX_DEPTH;
            let shapes = [
                ("[".repeat(n), "]".repeat(n)),
                (r#"{"a":"#.repeat(n), "}".repeat(n)),
                (r#"[{"id":1,"v":"#.repeat(n / 2), "}]".repeat(n / 2)),
                ("[1,".repeat(n - 1), r#",{"x":2}]"#.repeat(n - 1)),
            ];
            for (open, close) in shapes {
                let a = doc(&format!("{open}1{close}"));
                let b = doc(&format!("{open}2{close}"));
                for mode in [
                    ArrayMode::Ordered,
                    ArrayMode::Set,
                    ArrayMode::Multiset,
                    ArrayMode::Key("id".into()),
                ] {
                    let o = Options {
                        array_mode: mode,
                        patch: true,
                        ..Options::default()
                    };
                    let r = diff(&a, &b, &o);
                    assert!(!r.is_equal());
                    assert!(equal(&a, &a, &o));
                    let printed = r.to_text(false).len() + r.to_json().len();
                    assert!(printed > 0 && !r.patch_json().is_empty());
                    let patched = doc(&apply(&a, &r.patch).expect("patch applies"));
                    assert!(equal(&patched, &b, &o), "{:?}", o.array_mode);
                }
            }
        });
    }

    #[test]
    fn pointers_name_positions_in_the_documents() {
        let ptrs = |a: &str, b: &str, mode: ArrayMode| {
            let o = Options {
                array_mode: mode,
                ..Options::default()
            };
            let r = check(a, b, &o);
            r.differences
                .iter()
                .map(|d| format!("{} {}", d.kind.as_str(), d.pointer))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ptrs(
                r#"{"a/b":[1,2,3],"~":0}"#,
                r#"{"a/b":[1,3,4],"~":1}"#,
                ArrayMode::Ordered
            ),
            ["removed /a~1b/1", "added /a~1b/2", "changed /~0"]
        );
        assert_eq!(
            ptrs(
                r#"[{"id":1,"v":1},{"id":2,"v":2}]"#,
                r#"[{"id":3,"v":3},{"id":2,"v":5}]"#,
                ArrayMode::Key("id".into())
            ),
            ["changed /1/v", "removed /0", "added /0"]
        );
        assert_eq!(ptrs("1", "2", ArrayMode::Ordered), ["changed "]);
    }
}
