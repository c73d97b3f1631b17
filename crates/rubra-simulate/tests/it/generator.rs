//! The change generator reports exactly what the JSON comparer finds between versions.

use rubra_jsondiff::{Document, Kind, Options, Tolerance, diff};
use rubra_simulate::{Game, Op};
use serde_json::Value;

fn op_of(kind: Kind) -> Op {
    match kind {
        Kind::Added => Op::Add,
        Kind::Removed => Op::Remove,
        Kind::Changed => Op::Replace,
    }
}

type Row = (String, Op, Option<Value>, Option<Value>);

fn json(s: &Option<String>) -> Option<Value> {
    s.as_deref().map(|s| serde_json::from_str(s).unwrap())
}

/// Many seeds, several games each, long runs: every version's edits, in order, are the
/// differences `diff` reports with exact tolerance and ordered arrays (the watches'
/// settings), pointer for pointer and value for value.
#[test]
fn edits_are_exactly_what_jsondiff_reports() {
    let opts = Options {
        tolerance: Tolerance::EXACT,
        ..Options::default()
    };
    let (mut adds, mut removes, mut multi) = (0, 0, 0);
    for seed in 0..120u64 {
        for id in [1, 2, 77] {
            let mut game = Game::new(id, seed);
            let mut before = game.to_json();
            for _ in 0..150 {
                let edits = game.step();
                let after = game.to_json();
                let a: Document = before.parse().unwrap();
                let b: Document = after.parse().unwrap();
                let report = diff(&a, &b, &opts);
                let found: Vec<Row> = report
                    .differences
                    .iter()
                    .map(|d| (d.pointer.clone(), op_of(d.kind), json(&d.old), json(&d.new)))
                    .collect();
                let made: Vec<Row> = edits
                    .iter()
                    .map(|e| (e.path.clone(), e.op, e.old.clone(), e.new.clone()))
                    .collect();
                assert_eq!(
                    made,
                    found,
                    "seed {seed}, game {id}, version {}\nbefore {before}\nafter  {after}",
                    game.version()
                );
                adds += edits.iter().filter(|e| e.op == Op::Add).count();
                removes += edits.iter().filter(|e| e.op == Op::Remove).count();
                multi += usize::from(edits.len() > 1);
                before = after;
            }
        }
    }
    // The runs covered every kind of version, not only single price moves.
    assert!(
        adds > 100 && removes > 100 && multi > 1000,
        "{adds} {removes} {multi}"
    );
}

/// The edits, applied to the old document by pointer, give the new one.
#[test]
fn edits_applied_by_pointer_give_the_next_version() {
    for seed in [0, 1, 99] {
        let mut game = Game::new(3, seed);
        let mut doc = game.to_value();
        for _ in 0..500 {
            for e in game.step() {
                crate::helpers::apply(&mut doc, &e.path, e.op, e.new.clone());
            }
            assert_eq!(
                doc,
                game.to_value(),
                "seed {seed}, version {}",
                game.version()
            );
        }
    }
}
