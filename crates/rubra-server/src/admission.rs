//! Who gets in: CPU-heavy image work is admitted to a pool sized to the cores, behind a short
//! bounded queue and a budget of decoded pixels in flight, of which no client may hold more
//! than its share; SSE streams are capped per client.
//! What cannot be admitted is refused at once (503 `overloaded`, 429 `too_many_streams`), so
//! the requests already admitted keep their latency and nobody waits out the request timeout.

use crate::error::{ApiError, ErrorCode};
use rubra_store::{ClientId, Principal};
use rubra_telemetry::metrics;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// What a refused client is told to wait before trying again, in seconds.
const RETRY_AFTER_SECS: u64 = 1;

/// Counts a refused request under `rubra_rejected_requests_total{reason}`.
pub fn count_rejection(reason: &'static str) {
    metrics::counter!("rubra_rejected_requests_total", "reason" => reason).increment(1);
}

/// The gate in front of decoding and compositing: `slots` run at once, at most `max_waiting`
/// wait for a slot, and the pixels of admitted and waiting requests together stay within
/// `pixel_budget`. Cheap to clone.
///
/// No client may take the whole gate: each caller (an API key's client; every admin key is
/// one caller, also when it acts for a client with `?client=`) holds at most
/// `max(1, (slots + max_waiting) × share / 100)` places (running and waiting together) and at
/// most `pixel_budget × share / 100` pixels, except that a caller holding no pixels may always
/// bring one image that fits in what is free. With a share of at most 50 %, at least two
/// places and a budget of at least twice the largest image, a second caller's first request
/// therefore always finds a place and room for its pixels, however the first one floods.
///
/// Slots are handed to waiting requests fairly between callers: each caller waits in its own
/// line, and a freed slot goes to the next caller in turn (round robin), not to whoever asked
/// first. A caller with one image waiting therefore gets the next or nearly the next slot,
/// however many the flooding caller has queued.
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<Gate>,
}

#[derive(Debug)]
struct Gate {
    slots: Mutex<Slots>,
    waiting: AtomicUsize,
    max_waiting: usize,
    pixel_budget: u64,
    places_per_client: usize,
    pixels_per_client: u64,
    held: Mutex<Held>,
}

/// The worker slots: how many are free, and who waits for one, by caller.
#[derive(Debug, Default)]
struct Slots {
    free: usize,
    /// Each caller's waiting requests, oldest first.
    lines: HashMap<Option<ClientId>, VecDeque<oneshot::Sender<Slot>>>,
    /// Callers with a waiting request, in the order they are served next.
    turn: VecDeque<Option<ClientId>>,
}

/// A running slot; dropping it hands the slot to the next waiting caller in turn.
#[derive(Debug)]
struct Slot {
    /// `None` once handed on by other means (see [`Gate::release`]).
    gate: Option<Arc<Gate>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            Gate::release(&gate);
        }
    }
}

/// What the admitted and waiting requests hold, in all and per caller.
#[derive(Debug, Default)]
struct Held {
    pixels: u64,
    by_caller: HashMap<Option<ClientId>, Share>,
}

/// One caller's part of the gate: its places (running and waiting) and pixels.
#[derive(Debug, Default, Clone, Copy)]
struct Share {
    places: usize,
    pixels: u64,
}

/// The right to run one piece of CPU work; dropping it frees the slot and the pixels. Move it
/// into the blocking task so they are held exactly as long as the work runs, even when the
/// request is abandoned meanwhile.
#[derive(Debug)]
pub struct Admitted {
    _slot: Slot,
    _charge: Charge,
}

/// A caller's place and pixels, counted against the gate until dropped.
#[derive(Debug)]
struct Charge {
    gate: Arc<Gate>,
    caller: Option<ClientId>,
    pixels: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let now = {
            let mut held = self.gate.lock();
            held.pixels -= self.pixels;
            if let Some(share) = held.by_caller.get_mut(&self.caller) {
                share.places -= 1;
                share.pixels -= self.pixels;
                if share.places == 0 {
                    held.by_caller.remove(&self.caller);
                }
            }
            held.pixels
        };
        metrics::gauge!("rubra_decode_pixels_in_flight").set(now as f64);
    }
}

/// One place in the wait queue, given back when the wait ends (admitted or abandoned).
struct QueuePlace<'a>(&'a Gate);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        let now = self.0.waiting.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("rubra_admission_queue_depth").set(now as f64);
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot now if one is free and nobody waits (waiters go first), else `None`.
    fn try_slot(gate: &Arc<Gate>) -> Option<Slot> {
        let mut slots = gate.lock_slots();
        if slots.free > 0 && slots.turn.is_empty() {
            slots.free -= 1;
            return Some(Slot {
                gate: Some(Arc::clone(gate)),
            });
        }
        None
    }

    /// A slot now if one came free meanwhile, else a place in `caller`'s line (checked under
    /// the same lock as [`Gate::release`], so a slot freed in between is never missed): the
    /// receiver gets a slot when it is this caller's turn.
    fn wait_for_slot(
        gate: &Arc<Gate>,
        caller: &Option<ClientId>,
    ) -> Result<Slot, oneshot::Receiver<Slot>> {
        let mut slots = gate.lock_slots();
        if slots.free > 0 && slots.turn.is_empty() {
            slots.free -= 1;
            return Ok(Slot {
                gate: Some(Arc::clone(gate)),
            });
        }
        let (tx, rx) = oneshot::channel();
        let line = slots.lines.entry(caller.clone()).or_default();
        let was_empty = line.is_empty();
        line.push_back(tx);
        if was_empty {
            slots.turn.push_back(caller.clone());
        }
        Err(rx)
    }

    /// A slot came free: to the first waiter of the caller whose turn it is (that caller goes
    /// to the back of the turn if it still waits), or back to the free count. Waiters that
    /// gave up (their request ended) are passed over.
    fn release(gate: &Arc<Gate>) {
        loop {
            let next = {
                let mut slots = gate.lock_slots();
                let mut found = None;
                while let Some(caller) = slots.turn.pop_front() {
                    let Some(line) = slots.lines.get_mut(&caller) else {
                        continue;
                    };
                    let waiter = line.pop_front();
                    if line.is_empty() {
                        slots.lines.remove(&caller);
                    } else {
                        slots.turn.push_back(caller);
                    }
                    if let Some(w) = waiter {
                        found = Some(w);
                        break;
                    }
                }
                if found.is_none() {
                    slots.free += 1;
                }
                found
            };
            let Some(waiter) = next else { return };
            let slot = Slot {
                gate: Some(Arc::clone(gate)),
            };
            match waiter.send(slot) {
                Ok(()) => return,
                // The waiter is gone: disarm the slot (its drop would hand it on recursively)
                // and hand it on here instead.
                Err(mut slot) => slot.gate = None,
            }
        }
    }
}

impl Admission {
    /// A gate with `slots` workers (at least 1), `max_waiting` queue places and a budget of
    /// `pixel_budget` decoded pixels, of which one caller may hold `client_share_percent`
    /// (1–100; see the type's docs for the rule).
    pub fn new(
        slots: usize,
        max_waiting: usize,
        pixel_budget: u64,
        client_share_percent: u8,
    ) -> Admission {
        let slots = slots.max(1);
        let share = u64::from(client_share_percent.clamp(1, 100));
        let places = (slots + max_waiting) as u64 * share / 100;
        Admission {
            inner: Arc::new(Gate {
                slots: Mutex::new(Slots {
                    free: slots,
                    ..Slots::default()
                }),
                waiting: AtomicUsize::new(0),
                max_waiting,
                pixel_budget,
                places_per_client: usize::try_from(places).unwrap_or(usize::MAX).max(1),
                pixels_per_client: u64::try_from(
                    u128::from(pixel_budget) * u128::from(share) / 100,
                )
                .unwrap_or(u64::MAX),
                held: Mutex::new(Held::default()),
            }),
        }
    }

    /// Admits work for `who` that decodes `pixels` pixels (width × height from the header
    /// probe), waiting for a slot only when a queue place is free. Refuses at once with 503
    /// `overloaded` (and `Retry-After`) when the pixel budget or the queue is full or `who`
    /// already holds its share, and with 413 `image_too_large` when `pixels` alone exceed the
    /// whole budget.
    pub async fn admit(&self, who: &Principal, pixels: u64) -> Result<Admitted, ApiError> {
        let gate = &self.inner;
        if pixels > gate.pixel_budget {
            return Err(ApiError::new(
                ErrorCode::ImageTooLarge,
                format!(
                    "the image has {pixels} pixels; this server decodes at most {} pixels at \
                     a time (max-decode-pixels-in-flight)",
                    gate.pixel_budget
                ),
            ));
        }
        let caller = caller_of(who);
        let charge = self.charge(caller.clone(), pixels)?;
        let slot = match Gate::try_slot(gate) {
            Some(slot) => slot,
            None => {
                let place = self.queue_place()?;
                let slot = match Gate::wait_for_slot(gate, &caller) {
                    Ok(slot) => slot,
                    Err(line) => line
                        .await
                        .map_err(|_| overloaded("the server is shutting down"))?,
                };
                drop(place);
                slot
            }
        };
        Ok(Admitted {
            _slot: slot,
            _charge: charge,
        })
    }

    /// Counts one place and `pixels` against the caller's share and the budget, or refuses
    /// when they do not fit now. Waiting requests hold their place and pixels too, so one that
    /// was admitted to the queue is never refused later for memory.
    fn charge(&self, caller: Option<ClientId>, pixels: u64) -> Result<Charge, ApiError> {
        let gate = &self.inner;
        let now = {
            let mut held = gate.lock();
            let mine = held.by_caller.get(&caller).copied().unwrap_or_default();
            if mine.places >= gate.places_per_client {
                drop(held);
                return Err(overloaded(&format!(
                    "this client already has {} image requests running or waiting, its share \
                     of the server (admission-client-share)",
                    mine.places
                )));
            }
            if mine.pixels > 0 && mine.pixels.saturating_add(pixels) > gate.pixels_per_client {
                drop(held);
                return Err(overloaded(
                    "this client already has its share of the image pixels being decoded \
                     (admission-client-share)",
                ));
            }
            let next = held.pixels.saturating_add(pixels);
            if next > gate.pixel_budget {
                drop(held);
                return Err(overloaded(
                    "too many image pixels are being decoded at the moment",
                ));
            }
            held.pixels = next;
            let share = held.by_caller.entry(caller.clone()).or_default();
            share.places += 1;
            share.pixels += pixels;
            next
        };
        metrics::gauge!("rubra_decode_pixels_in_flight").set(now as f64);
        Ok(Charge {
            gate: Arc::clone(gate),
            caller,
            pixels,
        })
    }

    fn queue_place(&self) -> Result<QueuePlace<'_>, ApiError> {
        let gate = &*self.inner;
        let before = gate.waiting.fetch_add(1, Ordering::AcqRel);
        let place = QueuePlace(gate);
        if before >= gate.max_waiting {
            drop(place);
            return Err(overloaded(
                "every worker is busy and the wait queue is full",
            ));
        }
        metrics::gauge!("rubra_admission_queue_depth").set((before + 1) as f64);
        Ok(place)
    }
}

fn overloaded(why: &str) -> ApiError {
    count_rejection("overloaded");
    ApiError::new(ErrorCode::Overloaded, format!("{why}; retry in a moment"))
        .with_retry_after(RETRY_AFTER_SECS)
}

/// Open Server-Sent Event streams per caller, at most `per_client` each. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamCaps {
    inner: Arc<StreamCounts>,
}

#[derive(Debug)]
struct StreamCounts {
    per_client: usize,
    /// Open streams by caller; `None` is the admin.
    open: Mutex<HashMap<Option<ClientId>, usize>>,
    total: AtomicUsize,
}

/// One open stream, counted against its caller until dropped: move it into the task that
/// feeds the stream, which ends when the client goes away.
#[derive(Debug)]
pub struct StreamSlot {
    counts: Arc<StreamCounts>,
    caller: Option<ClientId>,
}

impl StreamCaps {
    /// Caps that allow `per_client` open streams per caller.
    pub fn new(per_client: usize) -> StreamCaps {
        StreamCaps {
            inner: Arc::new(StreamCounts {
                per_client,
                open: Mutex::new(HashMap::new()),
                total: AtomicUsize::new(0),
            }),
        }
    }

    /// Opens a stream for `who` (admin keys share one count), or refuses with 429
    /// `too_many_streams` when the caller already has `per_client` open.
    pub fn open(&self, who: &Principal) -> Result<StreamSlot, ApiError> {
        let counts = &self.inner;
        let caller = caller_of(who);
        {
            let mut open = counts.open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(caller.clone()).or_insert(0);
            if *n >= counts.per_client {
                drop(open);
                count_rejection("too_many_streams");
                return Err(ApiError::new(
                    ErrorCode::TooManyStreams,
                    format!(
                        "at most {} streams may be open per client (max-streams-per-client); \
                         close one first",
                        counts.per_client
                    ),
                )
                .with_retry_after(RETRY_AFTER_SECS));
            }
            *n += 1;
        }
        let total = counts.total.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::gauge!("rubra_streams_open").set(total as f64);
        Ok(StreamSlot {
            counts: Arc::clone(counts),
            caller,
        })
    }

    /// Streams open now for `who`.
    pub fn open_for(&self, who: &Principal) -> usize {
        let open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&caller_of(who)).copied().unwrap_or(0)
    }
}

fn caller_of(who: &Principal) -> Option<ClientId> {
    match who {
        Principal::Client(id) => Some(id.clone()),
        Principal::Admin => None,
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        {
            let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&self.caller) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.caller);
                }
            }
        }
        let total = self.counts.total.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("rubra_streams_open").set(total as f64);
    }
}

/// The default budget of decoded pixels in flight: a quarter of the memory this process may
/// use (the cgroup limit when lower than the physical memory) at 8 bytes per pixel (16-bit
/// RGBA, the most a decoder holds per pixel), never below `max_pixels` so that the largest
/// accepted image can always be decoded; 200 000 000 pixels (1.6 GB) when the memory cannot
/// be read.
pub fn default_pixel_budget(max_pixels: u64) -> u64 {
    let budget = match usable_memory_bytes() {
        Some(bytes) => bytes / 4 / 8,
        None => 200_000_000,
    };
    budget.max(max_pixels)
}

/// Physical memory, or the cgroup v2 limit when lower (Linux); `None` elsewhere.
fn usable_memory_bytes() -> Option<u64> {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        })?;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(cgroup.map_or(physical, |c| c.min(physical)))
}

/// The cores this process may use (at least 1): the size of the admission pool.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ME: Principal = Principal::Admin;

    #[test]
    fn by_default_one_client_may_run_eight_image_requests_at_once() {
        for cores in [1, 2, 4, 16, 64] {
            let queue = crate::settings::default_admission_queue(cores);
            let gate = Admission::new(cores, queue, 1 << 40, 50);
            assert!(
                gate.inner.places_per_client >= 8,
                "{cores} cores: {} places",
                gate.inner.places_per_client
            );
        }
    }

    /// Issue #18, the noisy-neighbour benchmark: waiters were served first come, first
    /// served, so another client's image waited behind every image the flood had queued.
    #[tokio::test]
    async fn another_clients_waiting_image_gets_the_next_slot_not_the_end_of_the_floods_line() {
        let flood = Principal::Client(ClientId::parse("cl_00000000000000aa").unwrap());
        let polite = Principal::Client(ClientId::parse("cl_00000000000000bb").unwrap());
        let gate = Admission::new(1, 16, 1 << 30, 100);
        let running = gate.admit(&flood, 10).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (g, f, tx) = (gate.clone(), flood.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let admitted = g.admit(&f, 10).await.unwrap();
                tx.send("flood").unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(admitted);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (g, p) = (gate.clone(), polite.clone());
        tasks.push(tokio::spawn(async move {
            let admitted = g.admit(&p, 10).await.unwrap();
            tx.send("polite").unwrap();
            drop(admitted);
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(running);
        for t in tasks {
            t.await.unwrap();
        }
        let mut order = Vec::new();
        while let Ok(who) = rx.try_recv() {
            order.push(who);
        }
        let at = order.iter().position(|w| *w == "polite").unwrap();
        assert!(at <= 1, "the polite image ran {}th: {order:?}", at + 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let a = Principal::Client(ClientId::parse("cl_00000000000000aa").unwrap());
        let b = Principal::Client(ClientId::parse("cl_00000000000000bb").unwrap());
        let gate = Admission::new(1, 16, 1 << 30, 100);
        let running = gate.admit(&a, 10).await.unwrap();
        let abandoned = {
            let g = gate.clone();
            let a = a.clone();
            tokio::spawn(async move { g.admit(&a, 10).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting = {
            let g = gate.clone();
            tokio::spawn(async move { g.admit(&b, 10).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(running);
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("the slot reached the next waiter")
            .unwrap()
            .unwrap();
        // And the slot is free again afterwards.
        assert!(Gate::try_slot(&gate.inner).is_some());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_freed_slot_admits_the_waiter() {
        let gate = Admission::new(1, 1, 1_000, 100);
        let running = gate.admit(&ME, 10).await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit(&ME, 10).await.map(drop) })
        };
        while gate.inner.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.admit(&ME, 10).await.unwrap_err();
        assert_eq!(
            (refused.status().as_u16(), refused.code()),
            (503, "overloaded")
        );
        drop(running);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(gate.inner.lock().pixels, 0);
        assert_eq!(gate.inner.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn pixels_over_the_budget_are_refused_and_given_back() {
        let gate = Admission::new(4, 4, 100, 100);
        let held = gate.admit(&ME, 60).await.unwrap();
        assert_eq!(gate.admit(&ME, 50).await.unwrap_err().code(), "overloaded");
        assert_eq!(
            gate.admit(&ME, 101).await.unwrap_err().code(),
            "image_too_large"
        );
        drop(held);
        gate.admit(&ME, 100).await.unwrap();
        assert_eq!(gate.inner.lock().pixels, 0);
    }

    #[tokio::test]
    async fn an_abandoned_wait_gives_back_its_place_and_pixels() {
        let gate = Admission::new(1, 1, 1_000, 100);
        let _running = gate.admit(&ME, 10).await.unwrap();
        let abandoned = tokio::time::timeout(Duration::from_millis(20), gate.admit(&ME, 10)).await;
        assert!(abandoned.is_err(), "still waiting");
        assert_eq!(gate.inner.waiting.load(Ordering::Acquire), 0);
        assert_eq!(gate.inner.lock().pixels, 10);
    }

    #[tokio::test]
    async fn one_caller_holds_at_most_its_share_of_the_places_and_pixels() {
        // 3 slots + 1 waiting place, half each: 2 places and 500 pixels per caller (and a
        // slot for every request below, so none of them waits).
        let gate = Admission::new(3, 1, 1_000, 50);
        let (a, b) = (
            Principal::Client(ClientId::generate()),
            Principal::Client(ClientId::generate()),
        );
        // A first image may be larger than the share; nothing more then fits the share.
        let big = gate.admit(&a, 700).await.unwrap();
        assert_eq!(gate.admit(&a, 1).await.unwrap_err().code(), "overloaded");
        let other = gate.admit(&b, 300).await.unwrap();
        drop((big, other));
        let a1 = gate.admit(&a, 250).await.unwrap();
        let a2 = gate.admit(&a, 250).await.unwrap();
        let refused = gate.admit(&a, 1).await.unwrap_err();
        assert_eq!(
            (refused.status().as_u16(), refused.code()),
            (503, "overloaded")
        );
        // Admin keys are one caller of their own.
        let admin = gate.admit(&ME, 100).await.unwrap();
        drop(a1);
        let a3 = gate.admit(&a, 250).await.unwrap();
        drop((a2, a3, admin));
        assert_eq!(gate.inner.lock().pixels, 0);
        assert!(gate.inner.lock().by_caller.is_empty());
    }

    #[test]
    fn streams_are_capped_per_caller_and_counted_down_on_close() {
        let caps = StreamCaps::new(2);
        let a = Principal::Client(ClientId::generate());
        let b = Principal::Admin;
        let a1 = caps.open(&a).unwrap();
        let _a2 = caps.open(&a).unwrap();
        assert_eq!(caps.open(&a).unwrap_err().code(), "too_many_streams");
        let _b = caps.open(&b).unwrap();
        drop(a1);
        assert_eq!(caps.open_for(&a), 1);
        let _a3 = caps.open(&a).unwrap();
        assert_eq!(caps.open_for(&b), 1);
    }

    #[test]
    fn the_default_budget_holds_the_largest_image() {
        assert!(default_pixel_budget(u64::MAX) == u64::MAX);
        assert!(default_pixel_budget(1) >= 1);
    }
}
