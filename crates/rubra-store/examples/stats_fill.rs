//! Fills a database with synthetic RED_STATS events for the query benchmark
//! (`bench/stats-query`), through the store's own write path (raw rows, rollups, outbox).
//!
//! usage: stats_fill DATABASE_URL EVENTS DAYS
//!
//! One client, `EVENTS` events spread evenly over the `DAYS` days before now (in time order,
//! as they would arrive), red uniform in [0, 1). Prints the client's id and API key.

use rubra_store::{ApiKey, DatabaseUrl, NewEvent, NewKey, Principal};
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, events, days] = args.as_slice() else {
        return Err("usage: stats_fill DATABASE_URL EVENTS DAYS".into());
    };
    let events: u64 = events.parse()?;
    let days: i64 = days.parse()?;
    let store = rubra_store::open(&DatabaseUrl::parse(url)?).await?;
    let client = store
        .create_client("bench", &rubra_store::Actor::system())
        .await?;
    let key = ApiKey::generate();
    store
        .insert_key(
            &NewKey::new(&key, Principal::Client(client.id.clone()), "stats_fill"),
            &rubra_store::Actor::system(),
        )
        .await?;
    let end = rubra_store::now_ms();
    let span = days * 86_400_000;
    let start = end - span;
    const BATCH: u64 = 25_000;
    let started = Instant::now();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut pending = Vec::new();
    let mut i = 0u64;
    while i < events {
        let n = BATCH.min(events - i);
        let batch: Vec<NewEvent> = (i..i + n)
            .map(|j| NewEvent {
                client_id: client.id.clone(),
                image_id: None,
                red: (next() >> 11) as f64 / (1u64 << 53) as f64,
                ts: start + (j as i128 * span as i128 / events as i128) as i64,
            })
            .collect();
        let store = store.clone();
        pending.push(tokio::spawn(
            async move { store.insert_events(batch).await },
        ));
        if pending.len() >= 4 {
            pending.remove(0).await??;
        }
        i += n;
        if i % 5_000_000 < BATCH {
            eprintln!(
                "{i} events, {:.0} events/s",
                i as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    for p in pending {
        p.await??;
    }
    eprintln!(
        "filled {events} events over {days} days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{} {}", client.id, key.reveal());
    Ok(())
}
